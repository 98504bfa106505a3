/* tests/sched/test_schedule.c - schedule arrays against independently computed values,
 * algebraic identities of the derived arrays, timestep rules, continuous forms, conversions. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "sched/schedule.h"

static void close_rel(double got, double want, double rtol, const char *what)
{
    double err = fabs(got - want) / fmax(fabs(want), 1e-300);
    cr_assert(err <= rtol, "%s: got %.15e want %.15e (rel err %.3e > %.1e)", what, got, want, err,
              rtol);
}

/* Values computed in double by a separate script from the published definitions
 * (Ho et al. 2020 linear schedule; spec table "reference values for tests"). */
Test(schedule, linear_matches_reference_values)
{
    Schedule s;
    cr_assert_eq(sched_init_linear(&s, 1000, 1e-4, 0.02, SCHED_PRED_EPS), ERR_OK);
    const struct { int t; double abar, sa, s1m, pv; } ref[] = {
        {1, 9.9990000000e-01, 9.9994999875e-01, 1.0000000000e-02, 0.0},
        {2, 9.9978009207e-01, 9.9989003999e-01, 1.4829292900e-02, 5.4531876613e-05},
        {10, 9.9810520479e-01, 9.9905215319e-01, 4.3529245504e-02, 2.3818202782e-04},
        {100, 8.9701814567e-01, 9.4711041895e-01, 3.2090785956e-01, 2.0345962595e-03},
        {250, 5.2408537383e-01, 7.2393741016e-01, 6.8986565806e-01, 5.0317208679e-03},
        {500, 7.8587242882e-02, 2.8033416289e-01, 9.5990247271e-01, 1.0031355415e-02},
        {750, 3.3505504389e-03, 5.7883939387e-02, 9.9832331915e-01, 1.5019250026e-02},
        {1000, 4.0358297654e-05, 6.3528180876e-03, 9.9997982065e-01, 1.9999983527e-02},
    };
    for (size_t i = 0; i < sizeof ref / sizeof ref[0]; i++) {
        int t = ref[i].t;
        close_rel(s.abar[t], ref[i].abar, 1e-9, "abar");
        close_rel(s.sqrt_abar[t], ref[i].sa, 1e-9, "sqrt_abar");
        close_rel(s.sqrt_1m_abar[t], ref[i].s1m, 1e-9, "sqrt_1m_abar");
        if (t > 1) close_rel(s.post_var[t], ref[i].pv, 1e-9, "post_var");
    }
    cr_assert_eq(s.post_var[1], 0.0, "beta~_1 must be exactly 0");
    close_rel(s.beta[1], 1e-4, 1e-15, "beta_1");
    cr_assert_eq(s.beta[1000], 0.02);
    close_rel(s.beta[2] - s.beta[1], 1.99199199199e-05, 1e-9, "beta step");
    close_rel(s.post_coef1[500], 3.070071114264977e-03, 1e-12, "post_coef1[500]");
    close_rel(s.post_coef2[500], 9.941066702101666e-01, 1e-12, "post_coef2[500]");
    close_rel(s.post_logvar_clipped[1], -9.816725135295670e+00, 1e-12, "logvar clipped t=1");
    close_rel(s.post_logvar_clipped[500], log(s.post_var[500]), 1e-15, "logvar t=500");
    /* clean end */
    cr_assert_eq(s.abar[0], 1.0);
    cr_assert_eq(s.sqrt_1m_abar[0], 0.0);
    cr_assert_eq(s.abar_prev[1], 1.0);
    sched_free(&s);
    sched_free(&s); /* safe twice */
}

Test(schedule, cosine_matches_reference_values)
{
    Schedule s;
    cr_assert_eq(sched_init_cosine(&s, 1000, 0.008, 0.999, SCHED_PRED_EPS), ERR_OK);
    close_rel(s.beta[1], 4.1284224822e-05, 1e-9, "cos beta_1");
    close_rel(s.beta[500], 3.1458862305e-03, 1e-9, "cos beta_500");
    cr_assert_eq(s.beta[1000], 0.999, "beta_T must be clipped at 0.999");
    close_rel(s.abar[1], 9.9995871578e-01, 1e-10, "cos abar_1");
    close_rel(s.abar[500], 4.9384359044e-01, 1e-9, "cos abar_500");
    close_rel(s.abar[999], 2.4287669070e-06, 1e-8, "cos abar_999");
    close_rel(s.abar[1000], 2.4287669070e-09, 1e-8, "cos abar_T (from the clipped beta)");
    /* abar is the product of the clipped alphas */
    for (int t = 1; t <= 1000; t++)
        cr_assert_eq(s.abar[t], s.abar[t - 1] * (1.0 - s.beta[t]));
    /* before clipping sets in, abar_t = f(t/T)/f(0) (telescoping product) */
    for (int t = 1; t <= 900; t += 37) {
        double a, sg;
        sched_cosine_cont((double)t / 1000.0, 0.008, &a, &sg);
        close_rel(s.abar[t], a * a, 1e-11, "cosine abar vs continuous form");
    }
    sched_free(&s);
}

/* The identities every derived array must satisfy, for both schedules and many t. */
Test(schedule, derived_arrays_satisfy_identities)
{
    Schedule sc[2];
    cr_assert_eq(sched_init_linear(&sc[0], 1000, 1e-4, 0.02, SCHED_PRED_EPS), ERR_OK);
    cr_assert_eq(sched_init_cosine(&sc[1], 1000, 0.008, 0.999, SCHED_PRED_EPS), ERR_OK);
    for (int k = 0; k < 2; k++) {
        Schedule *s = &sc[k];
        for (int t = 1; t <= s->T; t++) {
            double ab = s->abar[t], abp = s->abar[t - 1], b = s->beta[t], al = s->alpha[t];
            cr_assert_eq(al, 1.0 - b);
            close_rel(s->sqrt_recip_abar[t] * s->sqrt_abar[t], 1.0, 1e-14, "1/sqrt(abar)");
            close_rel(s->sqrt_recipm1_abar[t], sqrt(1.0 / ab - 1.0), 1e-14, "sqrt(1/abar-1)");
            close_rel(s->sqrt_abar[t] * s->sqrt_abar[t] + s->sqrt_1m_abar[t] * s->sqrt_1m_abar[t],
                      1.0, 1e-14, "VP: a^2 + s^2 = 1");
            close_rel(s->eps_coef[t], b / sqrt(1.0 - ab), 1e-14, "eps_coef");
            if (t >= 2) {
                /* C2: merging one step: alpha_t (1 - abar_{t-1}) + (1 - alpha_t) = 1 - abar_t */
                close_rel(al * (1.0 - abp) + b, 1.0 - ab, 1e-12, "variance merge");
                /* beta~ = 1 / (alpha/beta + 1/(1 - abar_{t-1})) and beta~ < beta */
                close_rel(s->post_var[t], 1.0 / (al / b + 1.0 / (1.0 - abp)), 1e-12,
                          "beta~ from precisions");
                cr_assert(s->post_var[t] < b);
            }
            /* C4: x0-form posterior mean == eps-form when x0 = (x - s eps)/a, at random values */
            Rng r;
            rng_init(&r, 7, rng_stream(RNG_P_TEST, (uint64_t)t), (uint32_t)k, 0);
            double x = rng_normal(&r), e = rng_normal(&r);
            double x0 = (x - s->sqrt_1m_abar[t] * e) / s->sqrt_abar[t];
            double m1 = s->post_coef1[t] * x0 + s->post_coef2[t] * x;
            double m2 = (x - s->eps_coef[t] * e) / sqrt(al);
            cr_assert(fabs(m1 - m2) <= 1e-10 * (1.0 + fabs(m2)), "t=%d: %.17g vs %.17g", t, m1, m2);
        }
    }
    sched_free(&sc[0]);
    sched_free(&sc[1]);
}

Test(schedule, rejects_bad_arguments)
{
    Schedule s;
    cr_assert_eq(sched_init_linear(&s, 1, 1e-4, 0.02, SCHED_PRED_EPS), ERR_ARG);
    cr_assert_eq(sched_init_linear(&s, 10, 0.0, 0.02, SCHED_PRED_EPS), ERR_ARG);
    cr_assert_eq(sched_init_linear(&s, 10, 0.1, 0.02, SCHED_PRED_EPS), ERR_ARG);
    cr_assert_eq(sched_init_linear(&s, 10, 1e-4, 1.0, SCHED_PRED_EPS), ERR_ARG);
    cr_assert_eq(sched_init_linear(&s, 10, 1e-4, 0.02, SCHED_PRED_VELOCITY), ERR_ARG);
    cr_assert_eq(sched_init_cosine(&s, 10, 0.008, 1.0, SCHED_PRED_EPS), ERR_ARG);
    cr_assert_eq(sched_init_flow(&s, 1.0), ERR_ARG);
    cr_assert_eq(sched_init_flow(&s, -0.1), ERR_ARG);
    cr_assert_eq(sched_init_flow(&s, 0.0), ERR_OK);
    cr_assert_eq(s.pred, SCHED_PRED_VELOCITY);
    sched_free(&s);
}

/* ---- timesteps: hand-written expected arrays (1-based tau = k + 1) ------------------------ */

static void check_tau(SchedSpacing sp, int T, int S, const int *want_k, int want_n)
{
    int tau[1100], n = -1;
    cr_assert_eq(sched_timesteps(sp, T, S, tau, &n), ERR_OK);
    cr_assert_eq(n, want_n, "%s T=%d S=%d: %d steps, want %d", sched_spacing_name(sp), T, S, n,
                 want_n);
    cr_assert_eq(tau[0], 0);
    for (int i = 0; i < n; i++)
        cr_assert_eq(tau[i + 1], want_k[i] + 1, "%s T=%d S=%d entry %d: %d want %d",
                     sched_spacing_name(sp), T, S, i, tau[i + 1], want_k[i] + 1);
}

Test(schedule, timesteps_uniform)
{
    check_tau(SCHED_SPACING_UNIFORM, 1000, 10,
              (const int[]){0, 100, 200, 300, 400, 500, 600, 700, 800, 900}, 10);
    check_tau(SCHED_SPACING_UNIFORM, 1000, 3, (const int[]){0, 333, 666}, 3);
    check_tau(SCHED_SPACING_UNIFORM, 10, 4, (const int[]){0, 2, 4, 6}, 4);
    check_tau(SCHED_SPACING_UNIFORM, 1000, 7, (const int[]){0, 142, 284, 426, 568, 710, 852}, 7);
    check_tau(SCHED_SPACING_UNIFORM, 1000, 1, (const int[]){0}, 1);
}

Test(schedule, timesteps_trailing)
{
    check_tau(SCHED_SPACING_TRAILING, 1000, 10,
              (const int[]){99, 199, 299, 399, 499, 599, 699, 799, 899, 999}, 10);
    check_tau(SCHED_SPACING_TRAILING, 1000, 3, (const int[]){332, 666, 999}, 3);
    /* 10, 7.5, 5, 2.5 round half to even: 10, 8, 5, 2 */
    check_tau(SCHED_SPACING_TRAILING, 10, 4, (const int[]){1, 4, 7, 9}, 4);
    check_tau(SCHED_SPACING_TRAILING, 1000, 7, (const int[]){142, 285, 428, 570, 713, 856, 999},
              7);
    check_tau(SCHED_SPACING_TRAILING, 1000, 6, (const int[]){166, 332, 499, 666, 832, 999}, 6);
    check_tau(SCHED_SPACING_TRAILING, 1000, 1, (const int[]){999}, 1);
}

Test(schedule, timesteps_quadratic_deduplicated)
{
    check_tau(SCHED_SPACING_QUADRATIC, 1000, 10,
              (const int[]){0, 9, 39, 88, 158, 246, 355, 483, 632, 800}, 10);
    check_tau(SCHED_SPACING_QUADRATIC, 1000, 3, (const int[]){0, 200, 800}, 3);
    check_tau(SCHED_SPACING_QUADRATIC, 10, 4, (const int[]){0, 3, 8}, 3); /* 0,0.89,3.56,8 */
    check_tau(SCHED_SPACING_QUADRATIC, 1000, 7, (const int[]){0, 22, 88, 200, 355, 555, 800}, 7);
    const int q50[] = {0,   1,   2,   5,   8,   11,  16,  21,  26,  33,  40,  47,  56,
                       65,  74,  85,  96,  107, 120, 133, 146, 161, 176, 191, 208, 225,
                       242, 261, 280, 299, 320, 341, 362, 385, 408, 431, 456, 481, 506,
                       533, 560, 587, 616, 645, 674, 705, 736, 767, 800};
    check_tau(SCHED_SPACING_QUADRATIC, 1000, 50, q50, 49); /* 50 requested, 49 unique */
}

Test(schedule, timesteps_full_chain_and_errors)
{
    int tau[1001], n;
    for (int sp = 0; sp < 3; sp++) {
        if (sp == SCHED_SPACING_QUADRATIC) continue; /* quad tops out at 0.8 T by design */
        cr_assert_eq(sched_timesteps((SchedSpacing)sp, 1000, 1000, tau, &n), ERR_OK);
        cr_assert_eq(n, 1000);
        for (int i = 0; i <= 1000; i++) cr_assert_eq(tau[i], i);
    }
    cr_assert_eq(sched_timesteps(SCHED_SPACING_UNIFORM, 1000, 0, tau, &n), ERR_ARG);
    cr_assert_eq(sched_timesteps(SCHED_SPACING_UNIFORM, 10, 11, tau, &n), ERR_ARG);
    cr_assert_eq(sched_timesteps((SchedSpacing)9, 10, 5, tau, &n), ERR_ARG);
}

/* ---- continuous-time forms ---------------------------------------------------------------- */

Test(schedule, vp_continuous_matches_discrete_linear)
{
    /* beta_i = beta(t_i)/N with N = 1000 reproduces Ho et al.'s 1e-4 .. 0.02 (C23) */
    double bmin = 0.1, bmax = 20.0;
    Schedule d;
    cr_assert_eq(sched_init_linear(&d, 1000, 1e-4, 0.02, SCHED_PRED_EPS), ERR_OK);
    /* score_sde: discrete_betas = linspace(bmin / N, bmax / N, N) */
    for (int i = 1; i <= 1000; i++)
        close_rel((bmin + (double)(i - 1) / 999.0 * (bmax - bmin)) / 1000.0, d.beta[i], 1e-12,
                  "beta(t_i)/N");
    double a, s;
    sched_vp_linear_cont(1.0, bmin, bmax, &a, &s);
    close_rel(a, exp(-0.5 * (0.1 + 0.5 * 19.9)), 1e-14, "a(1)");
    close_rel(a, 0.00657, 1e-3, "a(1) reference 0.00657");
    close_rel(a * a + s * s, 1.0, 1e-14, "a^2+s^2");
    sched_vp_linear_cont(1e-6, bmin, bmax, &a, &s);
    close_rel(s, sqrt(1.0 - exp(-(0.1e-6 + 0.5e-12 * 19.9))), 1e-6, "s(small u) no cancellation");
    /* the continuous marginal log stays within 1% of the discrete one over the chain */
    for (int t = 100; t <= 1000; t += 100) {
        sched_vp_linear_cont((double)t / 1000.0, bmin, bmax, &a, &s);
        close_rel(log(a * a), log(d.abar[t]), 1e-2, "continuous vs discrete log abar");
    }
    sched_free(&d);
}

Test(schedule, flow_path_and_time_change)
{
    double a, s;
    sched_flow_coef(0.0, 0.01, &a, &s);
    cr_assert_eq(a, 0.0);
    cr_assert_eq(s, 1.0);
    sched_flow_coef(1.0, 0.01, &a, &s);
    cr_assert_eq(a, 1.0);
    close_rel(s, 0.01, 1e-15, "sigma at tau=1 is sigma_min");
    /* tau <-> VP coefficients are inverse and preserve the SNR */
    for (double tau = 0.05; tau < 1.0; tau += 0.1) {
        double va, vs;
        sched_vp_from_flow_time(tau, &va, &vs);
        close_rel(va * va + vs * vs, 1.0, 1e-14, "VP unit");
        close_rel(sched_flow_time_from_vp(va, vs), tau, 1e-14, "round trip");
        close_rel(va / vs, tau / (1.0 - tau), 1e-13, "equal SNR");
    }
}

/* ---- conversions -------------------------------------------------------------------------- */

Test(schedule, conversions_are_exact_inverses)
{
    enum { N = 64 };
    double x0[N], e[N], x[N], tgt[N], rx0[N], re[N];
    Rng r;
    rng_init(&r, 11, rng_stream(RNG_P_TEST, 1), 0, 0);
    for (int i = 0; i < N; i++) {
        x0[i] = rng_normal(&r);
        e[i] = rng_normal(&r);
    }
    const double as[][2] = {{0.999949998750, 0.01}, {0.28033416289, 0.95990247271},
                            {0.0063528180876, 0.99997982065}};
    for (int p = SCHED_PRED_EPS; p <= SCHED_PRED_V; p++)
        for (int c = 0; c < 3; c++) {
            double a = as[c][0], s = as[c][1];
            for (int i = 0; i < N; i++) x[i] = a * x0[i] + s * e[i];
            sched_target_from_x0_eps((SchedPred)p, a, s, 0.0, x0, e, tgt, N);
            sched_pred_to_x0_eps((SchedPred)p, a, s, 0.0, x, tgt, rx0, re, N);
            for (int i = 0; i < N; i++) {
                /* x0 from eps divides by a: the error scales with s/a */
                double tol = 1e-13 * (1.0 + s / a);
                cr_assert(fabs(rx0[i] - x0[i]) <= tol * 10, "%s c=%d x0 %g vs %g",
                          sched_pred_name((SchedPred)p), c, rx0[i], x0[i]);
                cr_assert(fabs(re[i] - e[i]) <= 1e-12 * (1.0 + a / s), "%s eps",
                          sched_pred_name((SchedPred)p));
            }
        }
    /* v-prediction against the closed VP forms: x0 = a x - s v, eps = s x + a v */
    double a = 0.6, s = 0.8, v[N];
    for (int i = 0; i < N; i++) x[i] = a * x0[i] + s * e[i];
    sched_target_from_x0_eps(SCHED_PRED_V, a, s, 0.0, x0, e, v, N);
    for (int i = 0; i < N; i++) {
        cr_assert(fabs(v[i] - (a * e[i] - s * x0[i])) < 1e-15);
        cr_assert(fabs((a * x[i] - s * v[i]) - x0[i]) < 1e-14);
        cr_assert(fabs((s * x[i] + a * v[i]) - e[i]) < 1e-14);
    }
    /* flow velocity: u = x1 - (1 - smin) n; noise = x - tau u; data = u + (1 - smin) noise */
    double smin = 0.02;
    for (double tau = 0.0; tau <= 1.0; tau += 0.25) {
        double fa, fs;
        sched_flow_coef(tau, smin, &fa, &fs);
        for (int i = 0; i < N; i++) x[i] = fa * x0[i] + fs * e[i];
        sched_target_from_x0_eps(SCHED_PRED_VELOCITY, fa, fs, smin, x0, e, tgt, N);
        for (int i = 0; i < N; i++) cr_assert(fabs(tgt[i] - (x0[i] - (1 - smin) * e[i])) < 1e-15);
        sched_pred_to_x0_eps(SCHED_PRED_VELOCITY, fa, fs, smin, x, tgt, rx0, re, N);
        for (int i = 0; i < N; i++) {
            cr_assert(fabs(re[i] - e[i]) < 1e-13, "flow noise at tau %g", tau);
            cr_assert(fabs(rx0[i] - x0[i]) < 1e-13, "flow data at tau %g", tau);
        }
        /* the conditional OT flow is a straight line with this constant velocity (C29):
         * d/dtau (tau x1 + (1 - (1-smin) tau) n) = x1 - (1 - smin) n */
        double h = 1e-4, ga, gs, ha, hs;
        sched_flow_coef(tau - h, smin, &ga, &gs);
        sched_flow_coef(tau + h, smin, &ha, &hs);
        for (int i = 0; i < N; i++) {
            double fd = ((ha * x0[i] + hs * e[i]) - (ga * x0[i] + gs * e[i])) / (2 * h);
            cr_assert(fabs(fd - tgt[i]) < 1e-9);
        }
    }
    /* score: s = -eps / sigma, and back */
    double sc[N], eb[N];
    sched_eps_to_score(0.5, e, sc, N);
    sched_score_to_eps(0.5, sc, eb, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(sc[i], -e[i] / 0.5);
        cr_assert(fabs(eb[i] - e[i]) < 1e-15);
    }
}

/* C19/C20: for Gaussian data the score of q_t is -(x - a mu)/(a^2 sd^2 + s^2), and the optimal
 * eps converted by score = -eps/s equals it; also the DSM target -eps/s. */
Test(schedule, score_of_gaussian_from_eps)
{
    double mu = 0.3, sd = 0.7;
    for (double ab = 0.05; ab < 1.0; ab += 0.2) {
        double a = sqrt(ab), s = sqrt(1 - ab), v = ab * sd * sd + 1 - ab;
        for (double x = -2.0; x <= 2.0; x += 0.5) {
            double eps = s * (x - a * mu) / v, score;
            sched_eps_to_score(s, &eps, &score, 1);
            cr_assert(fabs(score - (-(x - a * mu) / v)) < 1e-14);
            /* score by finite difference of log N(x; a mu, v) */
            double h = 1e-5;
            double lp = -(x + h - a * mu) * (x + h - a * mu) / (2 * v);
            double lm = -(x - h - a * mu) * (x - h - a * mu) / (2 * v);
            cr_assert(fabs((lp - lm) / (2 * h) - score) < 1e-8);
        }
    }
}

/* C1: q(x_t | x_0) closed form equals iterating the one-step kernel (Monte Carlo). */
Test(schedule, q_sample_moments_match_iterated_chain)
{
    Schedule s;
    cr_assert_eq(sched_init_linear(&s, 1000, 1e-4, 0.02, SCHED_PRED_EPS), ERR_OK);
    const int tt = 500, N = 20000;
    double x0 = 0.8, sum = 0, sum2 = 0;
    double *eps = malloc(sizeof(double) * tt);
    for (int n = 0; n < N; n++) {
        rng_fill_normal_f64(eps, tt, 3, rng_stream(RNG_P_TEST, (uint64_t)n), 0);
        double x = x0;
        for (int t = 1; t <= tt; t++) x = sqrt(s.alpha[t]) * x + sqrt(s.beta[t]) * eps[t - 1];
        sum += x;
        sum2 += x * x;
    }
    free(eps);
    double m = sum / N, v = sum2 / N - m * m;
    double want_m = s.sqrt_abar[tt] * x0, want_v = 1.0 - s.abar[tt];
    /* 4 standard errors: mean SE = sqrt(v/N), variance SE = v sqrt(2/N) */
    cr_assert(fabs(m - want_m) < 4 * sqrt(want_v / N), "mean %g want %g", m, want_m);
    cr_assert(fabs(v - want_v) < 4 * want_v * sqrt(2.0 / N), "var %g want %g", v, want_v);
    close_rel(want_m / x0, 2.8033416289e-01, 1e-9, "sqrt abar_500");
    close_rel(want_v, 0.9214127571, 1e-9, "1 - abar_500");
    sched_free(&s);
}

Test(schedule, names)
{
    cr_assert_str_eq(sched_pred_name(SCHED_PRED_EPS), "eps");
    cr_assert_str_eq(sched_pred_name(SCHED_PRED_V), "v");
    cr_assert_str_eq(sched_pred_name(SCHED_PRED_VELOCITY), "velocity");
    cr_assert_str_eq(sched_pred_name((SchedPred)99), "?");
    cr_assert_str_eq(sched_spacing_name(SCHED_SPACING_TRAILING), "trailing");
    cr_assert_str_eq(sched_spacing_name((SchedSpacing)-1), "?");
}
