/* tests/sched/test_sde.c - the score/SDE view and likelihoods against closed-form Gaussian
 * oracles (no network): VP/VE coefficients, denoising score matching targets, the reverse SDE
 * (moments, weak and strong order), the probability-flow ODE (fixed-step orders, RK45 under its
 * tolerance), annealed Langevin and predictor-corrector, the PF-ODE and flow log-likelihoods
 * (exact divergence and Hutchinson), and the DDPM variational bound.
 *
 * For Gaussian data N(mu, sd^2 I) on a path x = a x0 + s eps every quantity is linear-Gaussian:
 * p_t = N(a mu, a^2 sd^2 + s^2), score = -(x - a mu) / (a^2 sd^2 + s^2), and the PF-ODE map
 * between times t and t' is x' = a' mu + sqrt(V'/V) (x - a mu), V = a^2 sd^2 + s^2. Measured
 * orders and errors are logged with cr_log_info (run with --verbose).
 *
 * Mutations tried (sched/sde.c, sched/vlb.c, sched/oracle.c), each with the tests that fail on it:
 *   VE g^2 without its factor 2          -> vp_and_ve_coefficients, reverse_sde_weak_order_one,
 *                                           pfode_fixed_step_orders, pfode_rk45_error_under_its_
 *                                           tolerance, pfode_loglik_matches_the_exact_density
 *   EM drift with the wrong sign         -> reverse_sde_weak_order_one
 *   VP reverse-diffusion predictor sqrt(alpha) x instead of (2 - sqrt(alpha)) x
 *                                        -> reverse_sde_weak_order_one
 *   corrector noise sqrt(e) z instead of sqrt(2 e) z -> corrector_keeps_p_t
 *   annealed Langevin without the sigma_i^2 / sigma_L^2 step scaling
 *                                        -> annealed_langevin_matches_its_exact_recursion
 *   PF-ODE divergence term with the wrong sign -> pfode_loglik_matches_the_exact_density
 *   Hutchinson probes all +1 (not Rademacher) -> hutchinson_estimate_is_unbiased
 *   RK45 error estimate without the FSAL stage -> pfode_rk45_error_under_its_tolerance,
 *                                           pfode_loglik_..., flow_loglik_..., hutchinson_...
 *   DSM score target +eps/s              -> dsm_targets_and_weightings,
 *                                           dsm_target_regresses_to_the_score, sde_training_targets
 *   discretised decoder bins of half-width 1/256 -> gaussian_kl_and_decoders
 *   bound's KL with the model variance in q's place -> vlb_is_above_the_exact_nll_and_tightens_with_T
 *   oracle Jacobian of a finite data set without a/s^2 -> oracle_jvp_matches_finite_differences */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "model/metrics.h"
#include "sched/oracle.h"
#include "sched/sampler.h"
#include "sched/schedule.h"
#include "sched/sde.h"
#include "sched/targets.h"
#include "sched/vlb.h"

static const double LOG_2PI = 1.8378770664093454836;

static Oracle gauss_sde(const Sde *sde, size_t D, const double *mu, double sd, int score)
{
    Oracle o;
    memset(&o, 0, sizeof o);
    o.kind = ORACLE_GAUSS;
    o.time = ORACLE_TIME_SDE;
    o.sde = sde;
    o.pred = SCHED_PRED_EPS;
    o.score_out = score;
    o.D = D;
    o.K = 0;
    o.mu = mu;
    o.sd = sd;
    return o;
}

static uint64_t *iota_idx(size_t B)
{
    uint64_t *idx = malloc(B * sizeof(uint64_t));
    for (size_t j = 0; j < B; j++) idx[j] = j;
    return idx;
}

static double order_of(double e1, double e2, double ratio) { return log(e1 / e2) / log(ratio); }

/* exact PF-ODE map of Gaussian data from time t to t2 */
static double pf_map(const Sde *sde, double mu, double sd, double t, double t2, double x)
{
    double a, s, a2, s2;
    sde_marginal(sde, t, &a, &s);
    sde_marginal(sde, t2, &a2, &s2);
    return a2 * mu + sqrt((a2 * a2 * sd * sd + s2 * s2) / (a * a * sd * sd + s * s)) * (x - a * mu);
}

static double gauss_logp(const double *x, const double *m, double v, size_t D)
{
    double q = 0;
    for (size_t i = 0; i < D; i++) q += (x[i] - m[i]) * (x[i] - m[i]);
    return -0.5 * q / v - 0.5 * (double)D * (LOG_2PI + log(v));
}

/* ---- coefficients ------------------------------------------------------------------------- */

Test(sde, vp_and_ve_coefficients)
{
    Sde vp, ve;
    cr_assert_eq(sde_init_vp(&vp, 0.1, 20.0, 1e-5), ERR_OK);
    cr_assert_eq(sde_init_ve(&ve, 0.01, 50.0, 1e-5), ERR_OK);
    double a, s, f, g2;
    sde_marginal(&vp, 1.0, &a, &s);
    /* a(1) = exp(-(0.1 + 19.9/2)/2) */
    cr_assert(fabs(a - exp(-0.5 * 10.05)) < 1e-15 && fabs(a - 0.00657) < 1e-5, "a(1) = %.6g", a);
    cr_assert(fabs(s * s - (1 - a * a)) < 1e-15);
    /* d(a^2)/dt = 2 f a^2 and d(s^2)/dt = g^2 - ... : for VP d(s^2)/dt = beta a^2 = g^2 a^2 */
    for (double t = 0.05; t < 1.0; t += 0.2) {
        double h = 1e-5, ap, sp, am, sm;
        sde_coef(&vp, t, &f, &g2);
        sde_marginal(&vp, t + h, &ap, &sp);
        sde_marginal(&vp, t - h, &am, &sm);
        sde_marginal(&vp, t, &a, &s);
        cr_assert(fabs((ap * ap - am * am) / (2 * h) - 2 * f * a * a) < 1e-6);
        cr_assert(fabs(g2 - (0.1 + t * 19.9)) < 1e-13 && fabs(f + 0.5 * g2) < 1e-15);
        /* VE: d(s^2)/dt = g^2, f = 0, a = 1 */
        sde_coef(&ve, t, &f, &g2);
        sde_marginal(&ve, t + h, &ap, &sp);
        sde_marginal(&ve, t - h, &am, &sm);
        sde_marginal(&ve, t, &a, &s);
        cr_assert(f == 0.0 && a == 1.0 && ap == 1.0);
        cr_assert(fabs((sp * sp - sm * sm) / (2 * h) / g2 - 1) < 1e-8);
        cr_assert(fabs(sde_ve_time(&ve, s) - t) < 1e-14);
    }
    sde_marginal(&ve, 0.0, &a, &s);
    cr_assert(fabs(s - 0.01) < 1e-17);
    sde_marginal(&ve, 1.0, &a, &s);
    cr_assert(fabs(s - 50.0) < 1e-12);
    /* VP discretised with N = 1000, beta_i = beta(t_i) / N, is DDPM's linear schedule */
    Schedule d;
    cr_assert_eq(sched_init_linear(&d, 1000, 1e-4, 0.02, SCHED_PRED_EPS), ERR_OK);
    for (int i = 1; i <= 1000; i += 111)
        cr_assert(fabs(d.beta[i] - (0.1 + 19.9 * (i - 1) / 999.0) / 1000.0) < 1e-15);
    sched_free(&d);
    double sig[10];
    sde_geometric_levels(1.0, 0.01, 10, sig);
    cr_assert_eq(sig[0], 1.0);
    cr_assert_eq(sig[9], 0.01);
    for (int i = 1; i < 10; i++) cr_assert(fabs(sig[i] / sig[i - 1] - pow(0.01, 1.0 / 9)) < 1e-13);
    /* bad parameters */
    cr_assert_eq(sde_init_vp(&vp, 0.0, 20.0, 1e-5), ERR_ARG);
    cr_assert_eq(sde_init_vp(&vp, 0.1, 20.0, 0.0), ERR_ARG);
    cr_assert_eq(sde_init_ve(&ve, 1.0, 0.5, 1e-5), ERR_ARG);
    /* the uniform-dequantisation baseline: uniform density on [-1, 1]^D is 8 bits/dim */
    size_t D = 3072;
    cr_assert(fabs(sched_bits_per_dim((double)D * log(2.0), D, 2.0 / 256.0) - 8.0) < 1e-12);
}

/* ---- denoising score matching ------------------------------------------------------------- */

Test(sde, dsm_targets_and_weightings)
{
    Sde vp, ve;
    cr_assert_eq(sde_init_vp(&vp, 0.1, 20.0, 1e-5), ERR_OK);
    cr_assert_eq(sde_init_ve(&ve, 0.01, 50.0, 1e-5), ERR_OK);
    const Sde *sdes[2] = {&vp, &ve};
    const double eps[3] = {0.3, -1.2, 0.7}, ehat[3] = {0.1, -1.0, 0.9};
    for (int k = 0; k < 2; k++)
        for (int w = 0; w < 2; w++) {
            double t = 0.37, a, s, f, g2, te[3], ts[3], shat[3];
            sde_marginal(sdes[k], t, &a, &s);
            sde_coef(sdes[k], t, &f, &g2);
            double we = sde_dsm_target(sdes[k], SDE_OUT_EPS, (SdeWeight)w, t, eps, te, 3);
            double ws = sde_dsm_target(sdes[k], SDE_OUT_SCORE, (SdeWeight)w, t, eps, ts, 3);
            double lambda = w == SDE_WEIGHT_SIGMA2 ? s * s : g2;
            cr_assert(fabs(we - lambda / (s * s)) < 1e-15 * we && fabs(ws - lambda) < 1e-15 * ws);
            if (w == SDE_WEIGHT_SIGMA2) cr_assert(fabs(we - 1.0) < 1e-15); /* L_simple */
            if (w == SDE_WEIGHT_G2 && k == 0) cr_assert(fabs(ws - (0.1 + 0.37 * 19.9)) < 1e-13);
            /* the two parameterisations give the same loss for corresponding outputs */
            sched_eps_to_score(s, ehat, shat, 3);
            double le = 0, ls = 0;
            for (int i = 0; i < 3; i++) {
                cr_assert(fabs(ts[i] + eps[i] / s) < 1e-15 * fabs(ts[i]) + 1e-300);
                le += we * (ehat[i] - te[i]) * (ehat[i] - te[i]);
                ls += ws * (shat[i] - ts[i]) * (shat[i] - ts[i]);
            }
            cr_assert(fabs(le - ls) < 1e-12 * le, "%g vs %g", le, ls);
        }
}

/* The DSM target's conditional mean given x_t is the score of p_t: regress the target on x_t over
 * many draws of Gaussian data and compare slope and intercept with -(x - a mu)/V. */
Test(sde, dsm_target_regresses_to_the_score)
{
    Sde vp;
    cr_assert_eq(sde_init_vp(&vp, 0.1, 20.0, 1e-5), ERR_OK);
    const double mu = 0.8, sd = 0.4, t = 0.3;
    double a, s;
    sde_marginal(&vp, t, &a, &s);
    size_t N = 200000;
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    Rng r;
    rng_init(&r, 5, rng_stream(RNG_P_TEST, 14), 0, 0);
    for (size_t k = 0; k < N; k++) {
        double x0 = mu + sd * rng_normal(&r), e = rng_normal(&r), tg;
        double xt = a * x0 + s * e;
        sde_dsm_target(&vp, SDE_OUT_SCORE, SDE_WEIGHT_G2, t, &e, &tg, 1);
        sx += xt;
        sy += tg;
        sxx += xt * xt;
        sxy += xt * tg;
    }
    double n = (double)N, mx = sx / n, my = sy / n;
    double slope = (sxy / n - mx * my) / (sxx / n - mx * mx), icpt = my - slope * mx;
    double V = a * a * sd * sd + s * s;
    cr_log_info("DSM regression: slope %.4f (score %.4f), intercept %.4f (%.4f)", slope, -1 / V,
                icpt, a * mu / V);
    cr_assert(fabs(slope + 1 / V) < 0.02 / V, "slope %.5f vs %.5f", slope, -1 / V);
    cr_assert(fabs(icpt - a * mu / V) < 0.02 / sqrt(V), "intercept %.5f vs %.5f", icpt, a * mu / V);
}

/* ---- reverse SDE: weak and strong order, moments ---------------------------------------- */

/* With the Gaussian oracle the EM chain is affine in (x_init, z_1..z_N): one run with B = N + 2
 * rows (row 0 from the mean with no noise, row 1 with x_init + 1, row k + 2 with z_k = 1) gives
 * the exact mean and variance of the chain's output. */
static void em_moments(const Sde *sde, SdeOut out, double mu, double sd, size_t N, int pred,
                       double m1, double v1, double *mean, double *var)
{
    size_t B = N + 2, D = 1;
    double *t = malloc((N + 1) * sizeof(double)), *noise = calloc(N * B, sizeof(double));
    double *x = malloc(B * sizeof(double));
    for (size_t k = 0; k <= N; k++) t[k] = 1.0 - (double)k * (1.0 - sde->t_eps) / (double)N;
    t[N] = sde->t_eps;
    for (size_t j = 0; j < B; j++) x[j] = m1 + (j == 1 ? 1.0 : 0.0);
    for (size_t k = 0; k < N; k++) noise[k * B + k + 2] = 1.0;
    double muv[2] = {mu, mu};
    Oracle o = gauss_sde(sde, D, muv, sd, out == SDE_OUT_SCORE);
    SdeSamplerConfig c;
    sde_sampler_config_default(&c);
    c.predictor = (SdePredictor)pred;
    uint64_t *idx = iota_idx(B);
    cr_assert_eq(sde_reverse_run_d(&c, sde, out, t, N, oracle_net_d, &o, idx, B, D, NULL, noise,
                                   x, NULL), ERR_OK);
    double A = x[1] - x[0], v = A * A * v1;
    for (size_t k = 0; k < N; k++) v += (x[k + 2] - x[0]) * (x[k + 2] - x[0]);
    *mean = x[0];
    *var = v;
    free(t);
    free(noise);
    free(x);
    free(idx);
}

Test(sde, reverse_sde_weak_order_one)
{
    const double mu = 0.6, sd = 0.5;
    Sde vp, ve;
    cr_assert_eq(sde_init_vp(&vp, 0.1, 20.0, 1e-3), ERR_OK);
    cr_assert_eq(sde_init_ve(&ve, 0.05, 5.0, 1e-3), ERR_OK);
    const Sde *sdes[2] = {&vp, &ve};
    for (int k = 0; k < 2; k++) {
        double a1, s1, ae, se;
        sde_marginal(sdes[k], 1.0, &a1, &s1);
        sde_marginal(sdes[k], sdes[k]->t_eps, &ae, &se);
        double m1 = a1 * mu, v1 = a1 * a1 * sd * sd + s1 * s1; /* exact p_1 */
        double me = ae * mu, vexact = ae * ae * sd * sd + se * se;
        double em[4], ev[4];
        const size_t Ns[4] = {32, 64, 128, 256};
        for (int q = 0; q < 4; q++) {
            double m, v;
            em_moments(sdes[k], k == 0 ? SDE_OUT_EPS : SDE_OUT_SCORE, mu, sd, Ns[q], SDE_PRED_EM,
                       m1, v1, &m, &v);
            em[q] = fabs(m - me);
            ev[q] = fabs(v - vexact);
        }
        double pm = order_of(em[2], em[3], 2), pv = order_of(ev[2], ev[3], 2);
        cr_log_info("EM %s: mean err N=128 %.3e N=256 %.3e (order %.2f); var err %.3e %.3e (order "
                    "%.2f)", k ? "VE" : "VP", em[2], em[3], pm, ev[2], ev[3], pv);
        /* weak order 1 (VP); on VE the mean is exact (a = 1, the drift only pulls toward mu)
         * and the variance converges at order 2 */
        cr_assert(pv > 0.85, "%s weak order (variance) %.3f", k ? "VE" : "VP", pv);
        if (k == 0) cr_assert(fabs(pv - 1.0) < 0.15 && fabs(pm - 1.0) < 0.15, "VP %.3f %.3f", pv, pm);
        else cr_assert(em[3] < 1e-12, "VE mean error %.3e", em[3]);
        /* reverse-diffusion predictor: first order as well */
        double m, v, m2, v2;
        em_moments(sdes[k], SDE_OUT_EPS, mu, sd, 128, SDE_PRED_REVERSE, m1, v1, &m, &v);
        em_moments(sdes[k], SDE_OUT_EPS, mu, sd, 256, SDE_PRED_REVERSE, m1, v1, &m2, &v2);
        double pr = order_of(fabs(v - vexact), fabs(v2 - vexact), 2);
        cr_log_info("reverse diffusion %s: var err N=128 %.3e N=256 %.3e (order %.2f)",
                    k ? "VE" : "VP", fabs(v - vexact), fabs(v2 - vexact), pr);
        cr_assert(pr > 0.85 && fabs(v2 - vexact) < 0.05 * vexact);
    }
}

/* Strong order: the same Brownian path at every resolution (coarse increments are normalised
 * sums of fine ones), against EM on a 2^12-step grid. The noise is additive (g depends on t
 * only), so EM's strong order is 1 here, above the general 1/2. */
Test(sde, reverse_sde_strong_order)
{
    const double mu = 0.6, sd = 0.5;
    Sde vp;
    cr_assert_eq(sde_init_vp(&vp, 0.1, 20.0, 1e-3), ERR_OK);
    double muv[2] = {mu, mu};
    Oracle o = gauss_sde(&vp, 1, muv, sd, 0);
    size_t P = 64, Nref = 4096;
    double *zf = malloc(Nref * P * sizeof(double)), *x0 = malloc(P * sizeof(double));
    uint64_t *idx = iota_idx(P);
    for (size_t j = 0; j < P; j++) {
        Rng r;
        rng_init(&r, 9, rng_stream(RNG_P_TEST, j), 1, 0);
        x0[j] = rng_normal(&r);
        for (size_t k = 0; k < Nref; k++) zf[k * P + j] = rng_normal(&r);
    }
    SdeSamplerConfig c;
    sde_sampler_config_default(&c);
    double *ref = malloc(P * sizeof(double));
    const size_t Ns[5] = {Nref, 64, 128, 256, 512};
    double err[5];
    for (int q = 0; q < 5; q++) {
        size_t N = Ns[q], m = Nref / N;
        double *t = malloc((N + 1) * sizeof(double)), *z = calloc(N * P, sizeof(double));
        for (size_t k = 0; k <= N; k++) t[k] = 1.0 - (double)k * (1.0 - vp.t_eps) / (double)N;
        t[N] = vp.t_eps;
        for (size_t k = 0; k < N; k++)
            for (size_t j = 0; j < P; j++) {
                double acc = 0;
                for (size_t u = 0; u < m; u++) acc += zf[(k * m + u) * P + j];
                z[k * P + j] = acc / sqrt((double)m);
            }
        double *x = malloc(P * sizeof(double));
        memcpy(x, x0, P * sizeof(double));
        cr_assert_eq(sde_reverse_run_d(&c, &vp, SDE_OUT_EPS, t, N, oracle_net_d, &o, idx, P, 1, NULL,
                                       z, x, NULL), ERR_OK);
        if (q == 0) memcpy(ref, x, P * sizeof(double));
        double e = 0;
        for (size_t j = 0; j < P; j++) e += (x[j] - ref[j]) * (x[j] - ref[j]);
        err[q] = sqrt(e / (double)P);
        free(t);
        free(z);
        free(x);
    }
    double p = order_of(err[1], err[3], 4);
    cr_log_info("EM strong error (RMS over %zu paths): N=64 %.3e, 128 %.3e, 256 %.3e, 512 %.3e; "
                "order %.2f", P, err[1], err[2], err[3], err[4], p);
    cr_assert(p > 0.5, "strong order %.3f below 1/2", p);
    cr_assert(fabs(p - 1.0) < 0.2, "strong order %.3f (additive noise: 1)", p);
    free(zf);
    free(x0);
    free(ref);
    free(idx);
}

/* The public sampler (streams, prior N(0, I)): Monte Carlo moments against the exact moments of
 * the same chain (affine extraction above, from the prior's moments). */
Test(sde, reverse_sde_sample_moments)
{
    const double mu = 0.6, sd = 0.5;
    Sde vp;
    cr_assert_eq(sde_init_vp(&vp, 0.1, 20.0, 1e-3), ERR_OK);
    size_t B = 4096, D = 4, n = B * D, N = 100;
    double *muv = malloc(D * sizeof(double));
    for (size_t i = 0; i < D; i++) muv[i] = mu;
    Oracle o = gauss_sde(&vp, D, muv, sd, 0);
    SdeSamplerConfig c;
    sde_sampler_config_default(&c);
    c.steps = (int)N;
    c.seed = 3;
    uint64_t *idx = iota_idx(B);
    double *x = malloc(n * sizeof(double));
    SdeStats st;
    cr_assert_eq(sde_sample_d(&c, &vp, SDE_OUT_EPS, oracle_net_d, &o, idx, B, D, NULL, x, &st),
                 ERR_OK);
    cr_assert_eq(st.nfe, N);
    double m = 0, v = 0;
    for (size_t i = 0; i < n; i++) m += x[i] / (double)n;
    for (size_t i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m) / (double)(n - 1);
    double cm, cv;
    em_moments(&vp, SDE_OUT_EPS, mu, sd, N, SDE_PRED_EM, 0.0, 1.0, &cm, &cv);
    cr_log_info("reverse SDE (EM, N=%zu): mean %.4f (chain %.4f), var %.4f (chain %.4f)", N, m, cm,
                v, cv);
    cr_assert(fabs(m - cm) < 4 * sqrt(cv / (double)n));
    cr_assert(fabs(v - cv) < 4 * cv * sqrt(2.0 / (double)n));
    /* batch independence: sample 7 alone gives the same values */
    uint64_t one = 7;
    double x7[4];
    cr_assert_eq(sde_sample_d(&c, &vp, SDE_OUT_EPS, oracle_net_d, &o, &one, 1, D, NULL, x7, NULL),
                 ERR_OK);
    cr_assert_eq(memcmp(x7, x + 7 * D, sizeof x7), 0);
    free(x);
    free(idx);
    free(muv);
}

/* ---- probability-flow ODE ----------------------------------------------------------------- */

Test(sde, pfode_fixed_step_orders)
{
    const double mu = 0.6, sd = 0.5;
    Sde vp, ve;
    cr_assert_eq(sde_init_vp(&vp, 0.1, 20.0, 1e-3), ERR_OK);
    cr_assert_eq(sde_init_ve(&ve, 0.05, 5.0, 1e-3), ERR_OK);
    const Sde *sdes[2] = {&vp, &ve};
    const SamplerKind kinds[3] = {SAMPLER_EULER, SAMPLER_HEUN, SAMPLER_RK4};
    const double want[3] = {1, 2, 4};
    double muv[2] = {mu, mu};
    for (int k = 0; k < 2; k++) {
        Oracle o = gauss_sde(sdes[k], 1, muv, sd, 0);
        uint64_t idx = 4;
        double x0;
        sched_initial_noise(11, &idx, 1, 1, &x0);
        double exact = pf_map(sdes[k], mu, sd, 1.0, sdes[k]->t_eps, x0 * sde_prior_sd(sdes[k]));
        for (int q = 0; q < 3; q++) {
            double err[2];
            for (int r = 0; r < 2; r++) {
                SamplerConfig c;
                sampler_config_default(&c, kinds[q]);
                c.steps = (q == 2 ? 32 : 128) << r;
                c.seed = 11;
                double x;
                SdeStats st;
                cr_assert_eq(sde_pfode_sample_d(&c, NULL, sdes[k], SDE_OUT_EPS, oracle_net_d, &o,
                                                &idx, 1, 1, NULL, &x, &st), ERR_OK);
                err[r] = fabs(x - exact);
                cr_assert_eq(st.nfe, (uint64_t)(c.steps * (q == 0 ? 1 : q == 1 ? 2 : 4)));
            }
            double p = order_of(err[0], err[1], 2);
            cr_log_info("PF-ODE %s %s: err %.3e -> %.3e, order %.2f", k ? "VE" : "VP",
                        sampler_kind_name(kinds[q]), err[0], err[1], p);
            cr_assert(fabs(p - want[q]) < 0.25, "%s %s order %.3f", k ? "VE" : "VP",
                      sampler_kind_name(kinds[q]), p);
        }
    }
}

Test(sde, pfode_rk45_error_under_its_tolerance)
{
    const double mu = 0.6, sd = 0.5;
    Sde vp, ve;
    cr_assert_eq(sde_init_vp(&vp, 0.1, 20.0, 1e-3), ERR_OK);
    cr_assert_eq(sde_init_ve(&ve, 0.01, 50.0, 1e-3), ERR_OK);
    const Sde *sdes[2] = {&vp, &ve};
    size_t B = 16, D = 2;
    double muv[2] = {mu, mu};
    uint64_t *idx = iota_idx(B);
    for (int k = 0; k < 2; k++) {
        Oracle o = gauss_sde(sdes[k], D, muv, sd, k);
        uint64_t prev_nfe = 0;
        for (int e = 3; e <= 9; e += 3) {
            double tol = pow(10.0, -e);
            OdeAdaptive ad = {1, tol, tol, 100000};
            SamplerConfig c;
            sampler_config_default(&c, SAMPLER_EULER);
            c.seed = 2;
            double x[32], x0[32];
            SdeStats st;
            cr_assert_eq(sde_pfode_sample_d(&c, &ad, sdes[k], k ? SDE_OUT_SCORE : SDE_OUT_EPS,
                                            oracle_net_d, &o, idx, B, D, NULL, x, &st), ERR_OK);
            sched_initial_noise(2, idx, B, D, x0);
            double err = 0;
            for (size_t i = 0; i < B * D; i++) {
                double ex = pf_map(sdes[k], mu, sd, 1.0, sdes[k]->t_eps,
                                   x0[i] * sde_prior_sd(sdes[k]));
                err = fmax(err, fabs(x[i] - ex) / (1.0 + fabs(ex)));
            }
            cr_log_info("RK45 PF-ODE %s tol %.0e: max rel err %.2e, NFE max %llu mean %.1f, "
                        "accepted %llu rejected %llu", k ? "VE" : "VP", tol, err,
                        (unsigned long long)st.nfe, st.nfe_mean,
                        (unsigned long long)st.accepted, (unsigned long long)st.rejected);
            cr_assert(err < 20 * tol, "%s tol %g: err %.3e", k ? "VE" : "VP", tol, err);
            cr_assert(st.nfe > prev_nfe);
            prev_nfe = st.nfe;
        }
    }
    free(idx);
}

/* ---- Langevin and predictor-corrector ---------------------------------------------------- */

/* Annealed Langevin with the Gaussian oracle: x' = x + a/2 score + sqrt(a) z is affine, so the
 * mean and variance follow m' = m - a/2 (m - mu)/V, v' = (1 - a/(2V))^2 v + a exactly. */
Test(sde, annealed_langevin_matches_its_exact_recursion)
{
    const double mu = 0.6, sd = 0.5;
    Sde ve;
    cr_assert_eq(sde_init_ve(&ve, 0.01, 50.0, 1e-5), ERR_OK);
    size_t B = 4096, D = 2, n = B * D;
    double muv[2] = {mu, mu};
    Oracle o = gauss_sde(&ve, D, muv, sd, 0);
    LangevinConfig c = {10, 1.0, 0.01, 2e-5, 100, 0, 8};
    uint64_t *idx = iota_idx(B);
    double *x = malloc(n * sizeof(double));
    SdeStats st;
    cr_assert_eq(sde_langevin_sample_d(&c, &ve, SDE_OUT_EPS, oracle_net_d, &o, idx, B, D, NULL, x,
                                       &st), ERR_OK);
    cr_assert_eq(st.nfe, 1000);
    double sig[10], m = 0, v = 1.0;
    sde_geometric_levels(1.0, 0.01, 10, sig);
    for (int l = 0; l < 10; l++) {
        double a = 2e-5 * sig[l] * sig[l] / (0.01 * 0.01), V = sd * sd + sig[l] * sig[l];
        for (int k = 0; k < 100; k++) {
            m = m - 0.5 * a * (m - mu) / V;
            v = (1 - 0.5 * a / V) * (1 - 0.5 * a / V) * v + a;
        }
    }
    double sm = 0, sv = 0;
    for (size_t i = 0; i < n; i++) sm += x[i] / (double)n;
    for (size_t i = 0; i < n; i++) sv += (x[i] - sm) * (x[i] - sm) / (double)(n - 1);
    cr_log_info("annealed Langevin: mean %.4f (exact %.4f, data %.2f), var %.4f (exact %.4f, data "
                "%.4f)", sm, m, mu, sv, v, sd * sd);
    cr_assert(fabs(sm - m) < 4 * sqrt(v / (double)n));
    cr_assert(fabs(sv - v) < 4 * v * sqrt(2.0 / (double)n));
    /* the last level's stationary variance of unadjusted Langevin is V / (1 - a / (4V)): many
     * steps at one level reach it */
    LangevinConfig one = {2, 0.5, 0.5 * (1 - 1e-15), 0.05, 400, 0, 9};
    cr_assert_eq(sde_langevin_sample_d(&one, &ve, SDE_OUT_EPS, oracle_net_d, &o, idx, B, D, NULL,
                                       x, NULL), ERR_OK);
    sm = 0;
    sv = 0;
    for (size_t i = 0; i < n; i++) sm += x[i] / (double)n;
    for (size_t i = 0; i < n; i++) sv += (x[i] - sm) * (x[i] - sm) / (double)(n - 1);
    double V = sd * sd + 0.25, a = 0.05, vst = V / (1 - a / (4 * V));
    cr_log_info("ULA at sigma = 0.5: var %.4f, stationary %.4f (target %.4f)", sv, vst, V);
    cr_assert(fabs(sv - vst) < 4 * vst * sqrt(2.0 / (double)n));
    free(x);
    free(idx);
}

static const double PTS4[4 * 2] = {1.0, 0.5, -1.0, 0.8, 0.4, -0.9, -0.3, -0.4};

/* Predictor-corrector: Langevin corrector moves with the signal-to-noise step rule bring the
 * samples closer to p_t at every level, so more corrector steps at the same predictor steps end
 * closer to the data. D = 64: the rule divides by the sample's score norm, which concentrates in
 * high dimension (in 2-D a small |score| makes single steps huge; see sched/sde.h). VE SDE,
 * reverse-diffusion predictor, 10 steps, snr 0.16. Gaussian data: the variance error falls with
 * each corrector step; four data points: the mean distance to the nearest point falls. */
Test(sde, predictor_corrector_improves_with_corrector_steps)
{
    Sde ve;
    cr_assert_eq(sde_init_ve(&ve, 0.01, 50.0, 1e-3), ERR_OK);
    size_t B = 1024, D = 64;
    uint64_t *idx = iota_idx(B);
    double *x = malloc(B * D * sizeof(double)), *mu = malloc(2 * D * sizeof(double));
    double *pts = malloc(4 * D * sizeof(double));
    for (size_t i = 0; i < 2 * D; i++) mu[i] = 0.6;
    Rng r;
    rng_init(&r, 1, rng_stream(RNG_P_TEST, 77), 0, 0);
    for (size_t i = 0; i < 4 * D; i++) pts[i] = 0.5 * rng_normal(&r);
    Oracle og = gauss_sde(&ve, D, mu, 0.5, 0), op;
    memset(&op, 0, sizeof op);
    op.kind = ORACLE_POINTS;
    op.time = ORACLE_TIME_SDE;
    op.sde = &ve;
    op.pred = SCHED_PRED_EPS;
    op.D = D;
    op.M = 4;
    op.points = pts;
    double ae, se;
    sde_marginal(&ve, ve.t_eps, &ae, &se);
    double vexact = 0.25 + se * se, prev_v = INFINITY, prev_d = INFINITY;
    for (int m = 0; m <= 3; m++) {
        SdeSamplerConfig c;
        sde_sampler_config_default(&c);
        c.predictor = SDE_PRED_REVERSE;
        c.steps = 10;
        c.correctors = m;
        c.snr = 0.16;
        c.seed = 5;
        SdeStats st;
        cr_assert_eq(sde_sample_d(&c, &ve, SDE_OUT_EPS, oracle_net_d, &og, idx, B, D, NULL, x, &st),
                     ERR_OK);
        cr_assert_eq(st.nfe, (uint64_t)(10 * (m + 1)));
        double mm = 0, vv = 0;
        size_t n = B * D;
        for (size_t i = 0; i < n; i++) mm += x[i] / (double)n;
        for (size_t i = 0; i < n; i++) vv += (x[i] - mm) * (x[i] - mm) / (double)(n - 1);
        cr_assert_eq(sde_sample_d(&c, &ve, SDE_OUT_EPS, oracle_net_d, &op, idx, B, D, NULL, x, NULL),
                     ERR_OK);
        double dist = 0;
        for (size_t j = 0; j < B; j++) {
            double best = INFINITY;
            for (int q = 0; q < 4; q++) {
                double dd = 0;
                for (size_t i = 0; i < D; i++)
                    dd += (x[j * D + i] - pts[q * D + i]) * (x[j * D + i] - pts[q * D + i]);
                best = fmin(best, dd);
            }
            dist += sqrt(best) / (double)B;
        }
        cr_log_info("PC (VE, reverse diffusion, 10 steps, %d corrector(s), NFE %llu): Gaussian var "
                    "%.4f (exact %.4f), 4 points: mean distance to data %.4f", m,
                    (unsigned long long)st.nfe, vv, vexact, dist);
        cr_assert(fabs(vv - vexact) < prev_v, "M=%d: var error %.4f", m, fabs(vv - vexact));
        cr_assert(dist < prev_d, "M=%d: distance %.4f", m, dist);
        cr_assert(fabs(mm - 0.6) < 0.02);
        prev_v = fabs(vv - vexact);
        prev_d = dist;
    }
    free(x);
    free(idx);
    free(mu);
    free(pts);
}

/* ---- log-likelihood ----------------------------------------------------------------------- */

/* PF-ODE log-likelihood of Gaussian data: with the exact p_1 in place of the prior it equals the
 * exact log p_{t_eps}(x0) up to the solver's tolerance; exact divergence by the oracle's
 * Jacobian-vector products and by central differences agree. */
Test(sde, pfode_loglik_matches_the_exact_density)
{
    const double mu[2] = {0.6, -0.3}, sd = 0.5;
    Sde vp, ve;
    cr_assert_eq(sde_init_vp(&vp, 0.1, 20.0, 1e-5), ERR_OK);
    cr_assert_eq(sde_init_ve(&ve, 0.01, 50.0, 1e-5), ERR_OK);
    const Sde *sdes[2] = {&vp, &ve};
    size_t B = 8, D = 2;
    double muv[4] = {mu[0], mu[1], mu[0], mu[1]}, x0[16];
    uint64_t *idx = iota_idx(B);
    for (size_t i = 0; i < B * D; i++) x0[i] = mu[i % 2] + sd * (0.5 * (double)(i % 5) - 1.0);
    for (int k = 0; k < 2; k++) {
        double ae, se, a1, s1;
        sde_marginal(sdes[k], sdes[k]->t_eps, &ae, &se);
        sde_marginal(sdes[k], 1.0, &a1, &s1);
        double Ve = ae * ae * sd * sd + se * se, V1 = a1 * a1 * sd * sd + s1 * s1;
        for (int mode = 0; mode < 2; mode++) {
            Oracle o = gauss_sde(sdes[k], D, muv, sd, 0);
            LoglikConfig c;
            loglik_config_default(&c);
            c.ode.rtol = c.ode.atol = 1e-8;
            c.jvp = mode == 0 ? oracle_jvp_d : NULL;
            double logp[8], x1[16], delta[8];
            SdeStats st;
            cr_assert_eq(sde_loglik_d(&c, sdes[k], SDE_OUT_EPS, oracle_net_d, &o, idx, B, D, NULL,
                                      x0, logp, x1, delta, &st), ERR_OK);
            double worst = 0, prior_gap = 0;
            for (size_t j = 0; j < B; j++) {
                double m1[2] = {a1 * mu[0], a1 * mu[1]}, me[2] = {ae * mu[0], ae * mu[1]};
                double got = gauss_logp(x1 + j * D, m1, V1, D) + delta[j];
                double want = gauss_logp(x0 + j * D, me, Ve, D);
                worst = fmax(worst, fabs(got - want));
                prior_gap = fmax(prior_gap, fabs(logp[j] - want));
                /* the end state is the exact PF-ODE map of the start */
                for (size_t i = 0; i < D; i++) {
                    double a, s;
                    sde_marginal(sdes[k], sdes[k]->t_eps, &a, &s);
                    double ex = a1 * mu[i] + sqrt(V1 / Ve) * (x0[j * D + i] - a * mu[i]);
                    cr_assert(fabs(x1[j * D + i] - ex) < 1e-5 * (1 + fabs(ex)));
                }
            }
            cr_log_info("PF-ODE loglik %s (%s divergence): max |logp - exact| %.2e with the exact "
                        "p_1 (%.2e with the standard prior), NFE %llu, jvp %llu", k ? "VE" : "VP",
                        mode == 0 ? "oracle JVP" : "finite-difference", worst, prior_gap,
                        (unsigned long long)st.nfe, (unsigned long long)st.jvp);
            cr_assert(worst < 1e-5, "%.3e", worst);
            /* the standard prior differs from the exact p_1 by the prior mismatch only */
            cr_assert(prior_gap < 0.05, "%.3e", prior_gap);
        }
    }
    free(idx);
}

/* Hutchinson's estimator is unbiased: over many Rademacher probes at one data point (finite data
 * set, whose Jacobian is not diagonal, so single probes do vary) the mean of the estimates lies
 * within 3 standard errors of the exact-divergence value. */
Test(sde, hutchinson_estimate_is_unbiased)
{
    Sde vp;
    cr_assert_eq(sde_init_vp(&vp, 0.1, 20.0, 1e-3), ERR_OK);
    size_t B = 512, D = 2;
    Oracle o;
    memset(&o, 0, sizeof o);
    o.kind = ORACLE_POINTS;
    o.time = ORACLE_TIME_SDE;
    o.sde = &vp;
    o.pred = SCHED_PRED_EPS;
    o.D = D;
    o.M = 4;
    o.points = PTS4;
    double *x0 = malloc(B * D * sizeof(double)), *lp = malloc(B * sizeof(double));
    for (size_t j = 0; j < B; j++) {
        x0[j * D] = 0.7;
        x0[j * D + 1] = 0.45;
    }
    uint64_t *idx = iota_idx(B);
    LoglikConfig c;
    loglik_config_default(&c);
    c.ode.rtol = c.ode.atol = 1e-6;
    c.jvp = oracle_jvp_d;
    double exact;
    cr_assert_eq(sde_loglik_d(&c, &vp, SDE_OUT_EPS, oracle_net_d, &o, idx, 1, D, NULL, x0, &exact,
                              NULL, NULL, NULL), ERR_OK);
    c.div = SDE_DIV_HUTCHINSON;
    c.seed = 17;
    cr_assert_eq(sde_loglik_d(&c, &vp, SDE_OUT_EPS, oracle_net_d, &o, idx, B, D, NULL, x0, lp, NULL,
                              NULL, NULL), ERR_OK);
    double m = 0, v = 0;
    for (size_t j = 0; j < B; j++) m += lp[j] / (double)B;
    for (size_t j = 0; j < B; j++) v += (lp[j] - m) * (lp[j] - m) / (double)(B - 1);
    double se = sqrt(v / (double)B);
    cr_log_info("Hutchinson over %zu probes: mean %.4f +- %.4f (sd %.3f), exact divergence %.4f",
                B, m, se, sqrt(v), exact);
    cr_assert(v > 1e-6, "the probes must vary");
    cr_assert(fabs(m - exact) < 3 * se, "mean %.5f vs %.5f (se %.5f)", m, exact, se);
    free(x0);
    free(lp);
    free(idx);
}

/* Flow matching (sigma_min = 0) with Gaussian data: p_1 = N(mu, sd^2) exactly, and the
 * instantaneous change of variables recovers it. */
Test(sde, flow_loglik_matches_the_exact_density)
{
    const double mu[4] = {0.6, -0.3, 0.6, -0.3}, sd = 0.5;
    size_t B = 6, D = 2;
    Oracle o;
    memset(&o, 0, sizeof o);
    o.kind = ORACLE_GAUSS;
    o.time = ORACLE_TIME_FLOW;
    o.pred = SCHED_PRED_VELOCITY;
    o.D = D;
    o.K = 0;
    o.mu = mu;
    o.sd = sd;
    double x[12], lp[6];
    for (size_t i = 0; i < B * D; i++) x[i] = mu[i % 2] + sd * (0.4 * (double)(i % 7) - 1.2);
    uint64_t *idx = iota_idx(B);
    for (int mode = 0; mode < 2; mode++) {
        LoglikConfig c;
        loglik_config_default(&c);
        c.ode.rtol = c.ode.atol = 1e-8;
        c.jvp = mode == 0 ? oracle_jvp_d : NULL;
        SdeStats st;
        cr_assert_eq(flow_loglik_d(&c, 0.0, oracle_net_d, &o, idx, B, D, NULL, x, lp, NULL, NULL,
                                   &st), ERR_OK);
        double worst = 0;
        for (size_t j = 0; j < B; j++)
            worst = fmax(worst, fabs(lp[j] - gauss_logp(x + j * D, mu, sd * sd, D)));
        cr_log_info("flow loglik (%s): max |logp - exact| %.2e, NFE %llu",
                    mode == 0 ? "oracle JVP" : "finite differences", worst,
                    (unsigned long long)st.nfe);
        cr_assert(worst < 1e-5, "%.3e", worst);
    }
    free(idx);
}

/* ---- the DDPM variational bound ---------------------------------------------------------- */

Test(sde, gaussian_kl_and_decoders)
{
    const double m1[2] = {0.3, -0.1}, m2[2] = {0.0, 0.4};
    /* KL(N(m1, 0.5) || N(m2, 2)) = 1/2 sum (log 4 + 0.25 + (m1-m2)^2/2 - 1) */
    double want = 0.5 * (2 * (log(4.0) + 0.25 - 1) + (0.09 + 0.25) / 2);
    cr_assert(fabs(sched_kl_gauss(m1, 0.5, m2, 2.0, 2) - want) < 1e-15);
    cr_assert(fabs(sched_kl_gauss(m1, 0.7, m1, 0.7, 2)) < 1e-15);
    /* the discretised Gaussian sums to one over the 256 levels, and matches the bin integral */
    for (double mean = -1.3; mean <= 1.3; mean += 0.65) {
        double total = 0;
        for (int k = 0; k < 256; k++) {
            double x = -1.0 + 2.0 * k / 255.0;
            total += exp(-sched_nll_discretized_gauss(&x, &mean, 0.01, 1, 256));
        }
        cr_assert(fabs(total - 1.0) < 1e-12, "mean %g: total %.15f", mean, total);
    }
    double x = -1.0 + 2.0 * 100 / 255.0, mean = x + 0.003, var = 1e-4;
    double lo = (x - 1.0 / 255 - mean) / sqrt(var), hi = (x + 1.0 / 255 - mean) / sqrt(var);
    double p = 0.5 * (erf(hi / sqrt(2.0)) - erf(lo / sqrt(2.0)));
    cr_assert(fabs(sched_nll_discretized_gauss(&x, &mean, var, 1, 256) + log(p)) < 1e-12);
    /* far in the tail the mass is still finite and accurate (no 1 - 1 cancellation) */
    x = 0.5;
    mean = -0.5;
    double nll = sched_nll_discretized_gauss(&x, &mean, 1e-3, 1, 256);
    cr_assert(isfinite(nll) && nll > 100 && nll < 1000, "%g", nll);
    double g = sched_nll_gauss(m1, m2, 0.5, 2);
    cr_assert(fabs(g - (LOG_2PI + log(0.5) + (0.09 + 0.25) / 1.0)) < 1e-14);
}

/* With the exact denoiser E[x0 | x_t] of Gaussian data, every expected term is closed form:
 * L_{t-1} = c1_t^2 Var(x0 | x_t) / (2 sigma_t^2) (+ the variance terms for sigma^2 = beta),
 * L_0 = 1/2 log(2 pi sigma_1^2) + Var(x0 | x_1) / (2 sigma_1^2). The Monte Carlo bound (paired
 * with the exact NLL of each example) matches the closed form within 4 standard errors; the
 * expected bound is above the exact NLL, and with sigma^2 = beta~ the gap shrinks as T grows (it
 * does not vanish: with fixed variances the first steps' reverse kernels stay mis-specified however
 * large T is). */
static double expected_gap(const Schedule *s, SchedVar var, double mu, double sd, size_t D)
{
    int T = s->T;
    double tot = 0.5 * (double)D * (-log1p(-s->abar[T]) + (1 - s->abar[T]) - 1) +
                 0.5 * s->abar[T] * (double)D * (mu * mu + sd * sd);
    for (int t = 1; t <= T; t++) {
        double a2 = s->abar[t], s2 = 1 - a2, vpost = sd * sd * s2 / (a2 * sd * sd + s2);
        double v = sched_vlb_model_var(s, var, t);
        if (t == 1) {
            tot += (double)D * (0.5 * (LOG_2PI + log(v)) + vpost / (2 * v));
        } else {
            double bt = s->post_var[t], c1 = s->post_coef1[t];
            tot += (double)D * (0.5 * (log(v / bt) + bt / v - 1) + c1 * c1 * vpost / (2 * v));
        }
    }
    double H = 0.5 * (double)D * (LOG_2PI + 1 + log(sd * sd));
    return tot - H;
}

Test(sde, vlb_is_above_the_exact_nll_and_tightens_with_T)
{
    const double mu = 0.3, sd = 0.5;
    size_t B = 512, D = 8;
    double *muv = malloc(2 * D * sizeof(double)), *x0 = malloc(B * D * sizeof(double));
    double *nll = malloc(B * sizeof(double));
    for (size_t i = 0; i < 2 * D; i++) muv[i] = mu;
    Rng r;
    rng_init(&r, 21, rng_stream(RNG_P_TEST, 3), 0, 0);
    for (size_t i = 0; i < B * D; i++) x0[i] = mu + sd * rng_normal(&r);
    uint64_t *idx = iota_idx(B);
    const int Ts[3] = {50, 200, 1000};
    for (int v = 0; v < 2; v++) {
        double prev = INFINITY;
        for (int q = 0; q < 3; q++) {
            int T = Ts[q];
            Schedule s;
            cr_assert_eq(sched_init_linear(&s, T, 0.1 / T, 20.0 / T, SCHED_PRED_EPS), ERR_OK);
            Oracle o;
            memset(&o, 0, sizeof o);
            o.kind = ORACLE_GAUSS;
            o.time = ORACLE_TIME_INDEX;
            o.sched = &s;
            o.pred = SCHED_PRED_EPS;
            o.D = D;
            o.K = 1;
            o.mu = muv;
            o.sd = sd;
            SchedVar var = v == 0 ? SCHED_VAR_BETA_TILDE : SCHED_VAR_BETA;
            cr_assert_eq(sched_vlb_d(&s, var, 0, oracle_net_d, &o, 1, idx, B, D, NULL, x0, nll,
                                     NULL), ERR_OK);
            double m = 0, m2 = 0;
            for (size_t j = 0; j < B; j++) {
                double exact = -gauss_logp(x0 + j * D, muv, sd * sd, D);
                double g = nll[j] - exact;
                m += g / (double)B;
                m2 += g * g / (double)B;
            }
            double se = sqrt((m2 - m * m) / (double)(B - 1));
            double want = expected_gap(&s, var, mu, sd, D);
            cr_log_info("VLB (%s) T=%d: bound - exact NLL = %.4f +- %.4f nats per example "
                        "(closed form %.4f), %.4f bits/dim", v ? "beta" : "beta~", T, m, se, want,
                        m / ((double)D * log(2.0)));
            cr_assert(fabs(m - want) < 4 * se + 1e-9, "T=%d: %.5f vs closed form %.5f (se %.5f)",
                      T, m, want, se);
            cr_assert(want > 0.0, "expected bound below the NLL");
            cr_assert(m > -4 * se, "bound significantly below the NLL: %.4f (se %.4f)", m, se);
            /* with beta~ (the posterior variance) the gap shrinks with T; with beta it does not
             * (on this data the larger variance gives the tighter bound at T = 50) */
            if (var == SCHED_VAR_BETA_TILDE) cr_assert(want < prev, "the gap must shrink with T");
            prev = want;
            sched_free(&s);
        }
    }
    free(muv);
    free(x0);
    free(nll);
    free(idx);
}

/* One term by hand, every prediction type, and the (example, t) pairs are independent of the
 * batch they are computed in. */
Test(sde, vlb_terms_by_hand_and_batch_independent)
{
    size_t B = 3, D = 2;
    const double mu[4] = {0.3, -0.2, 0.3, -0.2}, x0[6] = {0.5, -0.1, 0.2, 0.4, -0.7, 0.9};
    uint64_t idx[3] = {5, 9, 11};
    for (int p = SCHED_PRED_EPS; p <= SCHED_PRED_V; p++) {
        Schedule s;
        cr_assert_eq(sched_init_linear(&s, 100, 1e-3, 0.2, (SchedPred)p), ERR_OK);
        Oracle o;
        memset(&o, 0, sizeof o);
        o.kind = ORACLE_GAUSS;
        o.time = ORACLE_TIME_INDEX;
        o.sched = &s;
        o.pred = (SchedPred)p;
        o.D = D;
        o.K = 1;
        o.mu = mu;
        o.sd = 0.4;
        double term[3], one;
        int t = 37;
        cr_assert_eq(sched_vlb_terms_at(&s, SCHED_VAR_BETA_TILDE, 256, t, oracle_net_d, &o, 4, idx,
                                        B, D, NULL, x0, term), ERR_OK);
        cr_assert_eq(sched_vlb_terms_at(&s, SCHED_VAR_BETA_TILDE, 256, t, oracle_net_d, &o, 4,
                                        idx + 2, 1, D, NULL, x0 + 4, &one), ERR_OK);
        cr_assert_eq(one, term[2]);
        /* by hand for example 1: x_t from the documented stream */
        double z[2], xt[2], m1[2], m2[2];
        rng_fill_normal_f64(z, 2, 4, rng_stream(RNG_P_EVAL, 9), (uint32_t)t);
        double a = sqrt(s.abar[t]), sg = sqrt(1 - s.abar[t]), V = a * a * 0.16 + sg * sg;
        for (int i = 0; i < 2; i++) {
            xt[i] = a * x0[2 + i] + sg * z[i];
            double x0h = mu[i] + a * 0.16 * (xt[i] - a * mu[i]) / V;
            m1[i] = s.post_coef1[t] * x0[2 + i] + s.post_coef2[t] * xt[i];
            m2[i] = s.post_coef1[t] * x0h + s.post_coef2[t] * xt[i];
        }
        double want = 0;
        for (int i = 0; i < 2; i++) want += (m1[i] - m2[i]) * (m1[i] - m2[i]) / (2 * s.post_var[t]);
        cr_assert(fabs(term[1] - want) < 1e-12 * (1 + want), "%s: %.15g vs %.15g",
                  sched_pred_name((SchedPred)p), term[1], want);
        sched_free(&s);
    }
}

/* Training inputs for the SDE objective: x_t, t and the target follow the documented streams and
 * the path, the weights are sde_dsm_target's, and the weighted loss and its gradient agree with
 * finite differences. */
Test(sde, sde_training_targets)
{
    Sde vp;
    cr_assert_eq(sde_init_vp(&vp, 0.1, 20.0, 1e-5), ERR_OK);
    TrainTargetConfig tc;
    train_target_config_default(&tc);
    tc.seed = 12;
    size_t B = 5, D = 3;
    float x0[15], xt[15], tg[15], tg2[15], xt2[15];
    for (int i = 0; i < 15; i++) x0[i] = 0.1f * (float)i - 0.7f;
    uint64_t idx[5] = {3, 8, 13, 21, 34};
    double t[5], w[5], t2[5], w2[5];
    cr_assert_eq(sched_sde_train_targets(&tc, &vp, SDE_OUT_SCORE, SDE_WEIGHT_G2, 7, idx, B, D, x0,
                                         NULL, xt, t, tg, w, NULL), ERR_OK);
    for (size_t j = 0; j < B; j++) {
        Rng r;
        rng_init(&r, 12, rng_stream(RNG_P_TRAIN_T, idx[j]), 7, 0);
        double tw = 1e-5 + (1 - 1e-5) * rng_uniform(&r), a, s, f, g2;
        cr_assert_eq(t[j], tw);
        sde_marginal(&vp, tw, &a, &s);
        sde_coef(&vp, tw, &f, &g2);
        cr_assert(fabs(w[j] - g2) < 1e-12 * g2);
        float e[3];
        rng_fill_normal(e, 3, 12, rng_stream(RNG_P_TRAIN_NOISE, idx[j]), 7);
        for (size_t i = 0; i < D; i++) {
            cr_assert(fabs((double)xt[j * D + i] - (a * (double)x0[j * D + i] + s * (double)e[i])) < 1e-6);
            cr_assert(fabs((double)tg[j * D + i] + (double)e[i] / s) < 1e-5 * (1 + fabs((double)e[i] / s)));
        }
    }
    /* batch independence: the last example alone */
    cr_assert_eq(sched_sde_train_targets(&tc, &vp, SDE_OUT_SCORE, SDE_WEIGHT_G2, 7, idx + 4, 1, D,
                                         x0 + 12, NULL, xt2, t2, tg2, w2, NULL), ERR_OK);
    cr_assert_eq(memcmp(xt2, xt + 12, 3 * sizeof(float)), 0);
    cr_assert_eq(t2[0], t[4]);
    /* eps output with the sigma^2 weighting is plain MSE */
    cr_assert_eq(sched_sde_train_targets(&tc, &vp, SDE_OUT_EPS, SDE_WEIGHT_SIGMA2, 7, idx, B, D, x0,
                                         NULL, xt2, t2, tg2, w2, NULL), ERR_OK);
    for (size_t j = 0; j < B; j++) cr_assert(fabs(w2[j] - 1.0) < 1e-15);
    float out[15], dout[15];
    for (int i = 0; i < 15; i++) out[i] = tg[i] + 0.01f * (float)(i % 4);
    double L = sched_loss_mse_weighted(out, tg, w, B, D, 30.0, dout, NULL);
    for (int q = 0; q < 15; q += 4) {
        float keep = out[q];
        out[q] = keep + 1e-2f;
        double lp = sched_loss_mse_weighted(out, tg, w, B, D, 30.0, NULL, NULL);
        out[q] = keep - 1e-2f;
        double lm = sched_loss_mse_weighted(out, tg, w, B, D, 30.0, NULL, NULL);
        out[q] = keep;
        double fd = (lp - lm) / (double)(2e-2f);
        cr_assert(fabs(fd - (double)dout[q]) < 1e-3 * (1 + fabs(fd)), "q=%d: %g vs %g", q, fd,
                  (double)dout[q]);
    }
    cr_assert(L > 0);
}

/* The Langevin corrector alone leaves p_t invariant (up to the unadjusted scheme's O(step) bias):
 * start from exact draws of p_t (Gaussian data, VE at t = 0.5, D = 64) and apply 40 corrector
 * moves at t: the moments stay. */
Test(sde, corrector_keeps_p_t)
{
    Sde ve;
    cr_assert_eq(sde_init_ve(&ve, 0.01, 50.0, 1e-3), ERR_OK);
    size_t B = 1024, D = 64, n = B * D;
    double *mu = malloc(2 * D * sizeof(double)), *x = malloc(n * sizeof(double));
    for (size_t i = 0; i < 2 * D; i++) mu[i] = 0.6;
    Oracle o = gauss_sde(&ve, D, mu, 0.5, 1);
    double a, s;
    sde_marginal(&ve, 0.5, &a, &s);
    double V = 0.25 + s * s;
    Rng r;
    rng_init(&r, 3, rng_stream(RNG_P_TEST, 99), 0, 0);
    for (size_t i = 0; i < n; i++) x[i] = a * 0.6 + sqrt(V) * rng_normal(&r);
    SdeSamplerConfig c;
    sde_sampler_config_default(&c);
    c.predictor = SDE_PRED_NONE;
    c.correctors = 40;
    c.snr = 0.16;
    c.seed = 4;
    const double t[2] = {1.0, 0.5};
    uint64_t *idx = iota_idx(B);
    SdeStats st;
    cr_assert_eq(sde_reverse_run_d(&c, &ve, SDE_OUT_SCORE, t, 1, oracle_net_d, &o, idx, B, D, NULL,
                                   NULL, x, &st), ERR_OK);
    cr_assert_eq(st.nfe, 40);
    double m = 0, v = 0;
    for (size_t i = 0; i < n; i++) m += x[i] / (double)n;
    for (size_t i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m) / (double)(n - 1);
    cr_log_info("corrector only, 40 moves at t = 0.5: mean %.4f (%.4f), var %.4f (p_t %.4f)", m,
                a * 0.6, v, V);
    cr_assert(fabs(m - a * 0.6) < 4 * sqrt(V / (double)n));
    /* The step is about 2 snr^2 V (an unadjusted-Langevin bias of snr^2 = 2.6%), but it is
     * computed per sample from |z| / |score|, so it depends on the state: at D = 64 the variance
     * settles about 9% high (the reference code's batch-mean norms would avoid that at the price
     * of samples that depend on their batch). A corrector with the wrong noise scale (sqrt(e)
     * instead of sqrt(2 e)) halves it. */
    cr_assert(v / V > 0.97 && v / V < 1.15, "var %.4f vs %.4f", v, V);
    free(mu);
    free(x);
    free(idx);
}

/* The oracle's exact Jacobian-vector products (used above as the "network input gradient")
 * agree with central differences of its output, for every output kind and both data kinds. */
Test(sde, oracle_jvp_matches_finite_differences)
{
    Sde vp;
    cr_assert_eq(sde_init_vp(&vp, 0.1, 20.0, 1e-3), ERR_OK);
    Schedule s;
    cr_assert_eq(sched_init_linear(&s, 100, 1e-3, 0.2, SCHED_PRED_EPS), ERR_OK);
    const double mu[4] = {0.3, -0.4, 0.3, -0.4};
    const double x[2] = {0.25, -0.1}, v[2] = {0.6, -0.8};
    for (int kind = 0; kind < 2; kind++)
        for (int mode = 0; mode < 5; mode++) {
            Oracle o;
            memset(&o, 0, sizeof o);
            o.kind = kind ? ORACLE_POINTS : ORACLE_GAUSS;
            o.D = 2;
            o.mu = mu;
            o.sd = 0.5;
            o.M = 4;
            o.points = PTS4;
            double t;
            if (mode < 3) { /* eps, x0, v on the discrete schedule */
                o.time = ORACLE_TIME_INDEX;
                o.sched = &s;
                o.pred = (SchedPred)mode;
                t = 30;
            } else if (mode == 3) {
                o.time = ORACLE_TIME_SDE;
                o.sde = &vp;
                o.score_out = 1;
                t = 0.2;
            } else {
                o.time = ORACLE_TIME_FLOW;
                o.sigma_min = 0.05;
                t = 0.7;
            }
            double out[2], jv[2], op[2], om[2], xp[2], xm[2], h = 1e-5;
            cr_assert_eq(oracle_jvp_d(&o, x, &t, NULL, 1, 2, v, out, jv), ERR_OK);
            for (int i = 0; i < 2; i++) {
                xp[i] = x[i] + h * v[i];
                xm[i] = x[i] - h * v[i];
            }
            cr_assert_eq(oracle_net_d(&o, xp, &t, NULL, 1, 2, op), ERR_OK);
            cr_assert_eq(oracle_net_d(&o, xm, &t, NULL, 1, 2, om), ERR_OK);
            for (int i = 0; i < 2; i++) {
                double fd = (op[i] - om[i]) / (2 * h);
                cr_assert(fabs(fd - jv[i]) < 1e-6 * (1 + fabs(fd)), "kind %d mode %d: %.10g vs %.10g",
                          kind, mode, jv[i], fd);
            }
        }
    sched_free(&s);
}

/* ---- the sampler registry's continuous-time entries --------------------------------------- */

/* sched_sample_d on an SDE schedule is exactly the underlying sde_* sampler (same noise keys,
 * bitwise), spends the NFE sampler_nfe announces, and answers the time whose VP noise level is
 * sigma; RK45 also samples flow models, to its tolerance on Gaussian data. */
Test(sde, sampler_registry_dispatch_and_flow_rk45)
{
    Sde vp;
    cr_assert_eq(sde_init_vp(&vp, 0.1, 20.0, 1e-3), ERR_OK);
    for (double t = 0.01; t < 1.0; t += 0.07) {
        double a, s;
        sde_marginal(&vp, t, &a, &s);
        cr_assert(fabs(sde_sigma_time(&vp, s) - t) < 1e-10, "VP time of sigma at t = %g", t);
    }
    size_t B = 6, D = 3;
    const double mu[3] = {0.5, -0.2, 0.1};
    uint64_t *idx = iota_idx(B);
    double x[18], y[18];
    for (int score = 0; score < 2; score++) {
        Schedule sch;
        cr_assert_eq(sched_init_sde(&sch, &vp, score ? SDE_OUT_SCORE : SDE_OUT_EPS), ERR_OK);
        Oracle o = gauss_sde(&vp, D, mu, 0.4, score);
        const SamplerKind kinds[] = {SAMPLER_EM, SAMPLER_PC, SAMPLER_LANGEVIN, SAMPLER_HEUN,
                                     SAMPLER_RK45};
        for (int k = 0; k < 5; k++) {
            SamplerConfig c;
            sampler_config_default(&c, kinds[k]);
            c.steps = 12;
            c.correctors = 2;
            c.snr = 0.1;
            c.langevin_eps = 1e-4;
            c.seed = 7;
            SampleStats st;
            cr_assert_eq(sched_sample_d(&c, &sch, oracle_net_d, &o, idx, B, D, NULL, NULL, NULL, x,
                                        &st), ERR_OK, "%s: %s", sampler_kind_name(kinds[k]),
                         err_message());
            SdeStats ss;
            SdeOut out = score ? SDE_OUT_SCORE : SDE_OUT_EPS;
            if (kinds[k] == SAMPLER_EM || kinds[k] == SAMPLER_PC) {
                SdeSamplerConfig sc;
                sde_sampler_config_default(&sc);
                sc.predictor = kinds[k] == SAMPLER_EM ? SDE_PRED_EM : SDE_PRED_REVERSE;
                sc.correctors = kinds[k] == SAMPLER_EM ? 0 : 2;
                sc.snr = 0.1;
                sc.steps = 12;
                sc.denoise = 1;
                sc.seed = 7;
                cr_assert_eq(sde_sample_d(&sc, &vp, out, oracle_net_d, &o, idx, B, D, NULL, y, &ss),
                             ERR_OK);
            } else if (kinds[k] == SAMPLER_LANGEVIN) {
                double a, lo, hi;
                sde_marginal(&vp, vp.t_eps, &a, &lo);
                sde_marginal(&vp, 1.0, &a, &hi);
                LangevinConfig lc = {12, hi, lo, 1e-4, 2, 1, 7};
                cr_assert_eq(sde_langevin_sample_d(&lc, &vp, out, oracle_net_d, &o, idx, B, D, NULL,
                                                   y, &ss), ERR_OK);
            } else {
                OdeAdaptive ad = {kinds[k] == SAMPLER_RK45, 1e-5, 1e-5, 100000};
                cr_assert_eq(sde_pfode_sample_d(&c, &ad, &vp, out, oracle_net_d, &o, idx, B, D,
                                                NULL, y, &ss), ERR_OK);
            }
            cr_assert_eq(memcmp(x, y, sizeof x), 0, "%s differs from its sde_* sampler",
                         sampler_kind_name(kinds[k]));
            /* guidance w = 0 is the unconditional branch alone: the bits and the NFE of
             * sampling with every label -1 */
            {
                const int lab[6] = {0, 1, 2, 0, 1, 2}, neg[6] = {-1, -1, -1, -1, -1, -1};
                double g0[18], un[18];
                SampleStats s0, s1;
                c.guidance = 0.0;
                cr_assert_eq(sched_sample_d(&c, &sch, oracle_net_d, &o, idx, B, D, lab, NULL,
                                            NULL, g0, &s0), ERR_OK);
                c.guidance = 1.0;
                cr_assert_eq(sched_sample_d(&c, &sch, oracle_net_d, &o, idx, B, D, neg, NULL,
                                            NULL, un, &s1), ERR_OK);
                cr_assert_eq(memcmp(g0, un, sizeof g0), 0, "%s: w = 0", sampler_kind_name(kinds[k]));
                cr_assert_eq(s0.nfe, s1.nfe, "%s: w = 0 spends %llu NFE, labels -1 %llu",
                             sampler_kind_name(kinds[k]), (unsigned long long)s0.nfe,
                             (unsigned long long)s1.nfe);
            }
            cr_assert(isfinite(x[0]));
            uint64_t want;
            cr_assert_eq(sampler_nfe(&c, &sch, &want), ERR_OK);
            if (kinds[k] == SAMPLER_RK45) {
                cr_assert_eq(want, 0);
                cr_assert(st.nfe >= 6 && st.nfe_total >= B * 6);
            } else {
                cr_assert_eq(st.nfe, want, "%s: NFE %llu, announced %llu",
                             sampler_kind_name(kinds[k]), (unsigned long long)st.nfe,
                             (unsigned long long)want);
                cr_assert_eq(st.nfe_total, want * B);
            }
        }
        /* diffusion samplers and inpainting are refused */
        SamplerConfig c;
        sampler_config_default(&c, SAMPLER_DDIM);
        cr_assert_eq(sched_sample_d(&c, &sch, oracle_net_d, &o, idx, B, D, NULL, NULL, NULL, x,
                                    NULL), ERR_ARG);
        sched_free(&sch);
    }
    /* flow RK45: x(1) = mu + sd x(0) for rectified flow on N(mu, sd^2 I) */
    Oracle of;
    memset(&of, 0, sizeof of);
    of.kind = ORACLE_GAUSS;
    of.time = ORACLE_TIME_FLOW;
    of.pred = SCHED_PRED_VELOCITY;
    of.D = D;
    of.mu = mu;
    of.sd = 0.4;
    Schedule f;
    cr_assert_eq(sched_init_flow(&f, 0.0), ERR_OK);
    uint64_t prev = 0;
    for (int e = 3; e <= 7; e += 2) {
        SamplerConfig c;
        sampler_config_default(&c, SAMPLER_RK45);
        c.rtol = c.atol = pow(10.0, -e);
        c.seed = 3;
        SampleStats st;
        cr_assert_eq(sched_sample_d(&c, &f, oracle_net_d, &of, idx, B, D, NULL, NULL, NULL, x, &st),
                     ERR_OK);
        sched_initial_noise(3, idx, B, D, y);
        double err = 0;
        for (size_t i = 0; i < B * D; i++)
            err = fmax(err, fabs(x[i] - (mu[i % D] + 0.4 * y[i])));
        cr_log_info("flow RK45 tol 1e-%d: max err %.2e, NFE %llu", e, err,
                    (unsigned long long)st.nfe);
        cr_assert(err < 20 * c.rtol, "tol %g: err %g", c.rtol, err);
        cr_assert(st.nfe > prev);
        prev = st.nfe;
    }
    sched_free(&f);
    free(idx);
}
