/* tests/sched/test_sampler.c - every sampler against exact oracle models (no network).
 *
 * Oracles: Gaussian data N(mu, sd^2 I) and small finite point sets, for which E[x0|x_t] and
 * E[eps|x_t] (and the flow velocity) are analytic (sched/oracle.h). Reference numbers marked
 * "python" were computed by an independent double-precision script from the published update
 * rules. Measured orders and errors are logged with cr_log_info (run with --verbose).
 *
 * Mutations of sched/sampler.c tried, each with the tests that fail on it:
 *   clipping keeps the network's eps (no re-derivation from the clipped x0)
 *       -> clipping_keeps_ddim_eta1_equal_to_ddpm_beta_tilde,
 *          clipped_ddim_step_uses_the_eps_of_the_clipped_x0
 *   DDIM sigma with eta^2 instead of eta       -> ddim_sigma_and_step_at_eta_half
 *   diffusion inpainting re-noises the known part to the level it left (one level too noisy)
 *       -> inpainting_feeds_the_network_fresh_draws_of_the_known_part
 *   diffusion inpainting never re-noises the known part
 *       -> inpainting_feeds_the_network_fresh_draws_of_the_known_part,
 *          inpainting_completes_data_points_above_chance
 *   flow inpainting re-noises to the step's start time (one level too noisy)
 *       -> inpainting_feeds_the_network_fresh_draws_of_the_known_part
 *   flow inpainting never re-noises the known part
 *       -> inpainting_feeds_the_network_fresh_draws_of_the_known_part
 *   DPM-Solver++(2M) step ratio inverted (r = h_i / h_{i-1})
 *       -> dpmpp_2m_pinned_on_trailing_steps,
 *          dpmpp_and_ddim_errors_follow_their_order_on_discrete_schedule
 *       (it stays second order: the leading error terms of the wrong ratio telescope, so
 *        dpmpp_2m_order_on_uneven_lambda alone cannot see it)
 *   DDPM draws noise on its last step too      -> ddpm_last_step_adds_no_noise
 *   RePaint resampling without the re-noising back to level i
 *       -> inpainting_resampling_completes_more_points */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "sched/oracle.h"
#include "sched/sampler.h"
#include "sched/schedule.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static Schedule lin(SchedPred pred)
{
    Schedule s;
    cr_assert_eq(sched_init_linear(&s, 1000, 1e-4, 0.02, pred), ERR_OK);
    return s;
}

/* Gaussian oracle with K classes; mu has (K+1)*D entries supplied by the caller. */
static Oracle gauss(OracleTime tm, const Schedule *s, SchedPred pred, size_t D, int K,
                    const double *mu, double sd)
{
    Oracle o;
    memset(&o, 0, sizeof o);
    o.kind = ORACLE_GAUSS;
    o.time = tm;
    o.sched = s;
    o.pred = pred;
    o.D = D;
    o.K = K;
    o.mu = mu;
    o.sd = sd;
    return o;
}

static Oracle points(OracleTime tm, const Schedule *s, SchedPred pred, size_t D, size_t M,
                     const double *p)
{
    Oracle o;
    memset(&o, 0, sizeof o);
    o.kind = ORACLE_POINTS;
    o.time = tm;
    o.sched = s;
    o.pred = pred;
    o.D = D;
    o.M = M;
    o.points = p;
    return o;
}

static SamplerConfig cfg_of(SamplerKind k, int steps)
{
    SamplerConfig c;
    sampler_config_default(&c, k);
    c.steps = steps;
    c.seed = 1234;
    return c;
}

static uint64_t *iota_idx(size_t B, uint64_t start)
{
    uint64_t *idx = malloc(B * sizeof(uint64_t));
    for (size_t j = 0; j < B; j++) idx[j] = start + j;
    return idx;
}

static double max_abs_diff(const double *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

/* 4 well-separated points in D = 4 (a small finite data set). */
static const double PTS4[4 * 4] = {1.0, 0.5,  -0.5, 0.2,  -1.0, 0.8, 0.3, -0.6,
                                   0.4, -0.9, 0.9,  0.7,  -0.3, -0.4, -1.0, 1.0};

/* ---- DDIM(eta = 1, all T steps) == DDPM(beta~) in double --------------------------------- */

Test(sampler, ddim_eta1_full_chain_equals_ddpm_beta_tilde)
{
    Schedule s = lin(SCHED_PRED_EPS);
    Oracle o = points(ORACLE_TIME_INDEX, &s, SCHED_PRED_EPS, 4, 4, PTS4);
    size_t B = 6, D = 4;
    uint64_t *idx = iota_idx(B, 100);
    double a[24], b[24], c[24];
    SamplerConfig ddim = cfg_of(SAMPLER_DDIM, 1000), ddpm = cfg_of(SAMPLER_DDPM, 1000);
    ddim.eta = 1.0;
    ddpm.var = SCHED_VAR_BETA_TILDE;
    cr_assert_eq(sched_sample_d(&ddim, &s, oracle_net_d, &o, idx, B, D, NULL, NULL, NULL, a, NULL),
                 ERR_OK);
    cr_assert_eq(sched_sample_d(&ddpm, &s, oracle_net_d, &o, idx, B, D, NULL, NULL, NULL, b, NULL),
                 ERR_OK);
    double d = max_abs_diff(a, b, B * D);
    cr_log_info("DDIM(eta=1, S=T) vs DDPM(beta~): max |diff| = %.3e", d);
    cr_assert(d <= 1e-12, "max diff %.3e", d);
    /* the same with Gaussian data, where the samples do not collapse onto data points, and the
     * comparison can fail: the large variance gives different samples */
    double mu[8] = {0.3, -0.2, 0.1, 0.6, 0.3, -0.2, 0.1, 0.6};
    Oracle og = gauss(ORACLE_TIME_INDEX, &s, SCHED_PRED_EPS, 4, 1, mu, 0.4);
    cr_assert_eq(sched_sample_d(&ddim, &s, oracle_net_d, &og, idx, B, D, NULL, NULL, NULL, a, NULL),
                 ERR_OK);
    cr_assert_eq(sched_sample_d(&ddpm, &s, oracle_net_d, &og, idx, B, D, NULL, NULL, NULL, b, NULL),
                 ERR_OK);
    d = max_abs_diff(a, b, B * D);
    cr_log_info("DDIM(eta=1, S=T) vs DDPM(beta~), Gaussian data: max |diff| = %.3e", d);
    cr_assert(d <= 1e-12, "max diff %.3e", d);
    ddpm.var = SCHED_VAR_BETA;
    cr_assert_eq(sched_sample_d(&ddpm, &s, oracle_net_d, &og, idx, B, D, NULL, NULL, NULL, c, NULL),
                 ERR_OK);
    cr_assert(max_abs_diff(a, c, B * D) > 1e-3);
    free(idx);
    sched_free(&s);
}

/* Respaced DDPM (beta'_i = 1 - abar_i / abar_{i-1}) with beta~' equals DDIM eta = 1 on the same
 * sub-sequence. */
Test(sampler, ddim_eta1_equals_respaced_ddpm)
{
    Schedule s = lin(SCHED_PRED_EPS);
    Oracle o = points(ORACLE_TIME_INDEX, &s, SCHED_PRED_EPS, 4, 4, PTS4);
    size_t B = 5, D = 4;
    uint64_t *idx = iota_idx(B, 7);
    double a[20], b[20];
    for (int sp = 0; sp < 3; sp++) {
        SamplerConfig ddim = cfg_of(SAMPLER_DDIM, 50), ddpm = cfg_of(SAMPLER_DDPM, 50);
        ddim.eta = 1.0;
        ddim.spacing = ddpm.spacing = (SchedSpacing)sp;
        cr_assert_eq(sched_sample_d(&ddim, &s, oracle_net_d, &o, idx, B, D, NULL, NULL, NULL, a,
                                    NULL), ERR_OK);
        cr_assert_eq(sched_sample_d(&ddpm, &s, oracle_net_d, &o, idx, B, D, NULL, NULL, NULL, b,
                                    NULL), ERR_OK);
        cr_assert(max_abs_diff(a, b, B * D) <= 1e-12, "%s: %.3e", sched_spacing_name((SchedSpacing)sp),
                  max_abs_diff(a, b, B * D));
    }
    free(idx);
    sched_free(&s);
}

/* With x0 clipping on, every sampler re-derives eps from the clipped x0 (eps = (x - a clip(x0))
 * / s), so DDIM(eta = 1) and DDPM(beta~) still take the same steps. Gaussian data N(0.9, 0.3^2)
 * puts much of the early x0-hat mass beyond 1, so the clip is active for most of the chain. */
Test(sampler, clipping_keeps_ddim_eta1_equal_to_ddpm_beta_tilde)
{
    size_t B = 256, D = 2, n = B * D;
    double mu[4] = {0.9, 0.9, 0.9, 0.9};
    uint64_t *idx = iota_idx(B, 0);
    double *a = malloc(n * sizeof(double)), *b = malloc(n * sizeof(double));
    double *u = malloc(n * sizeof(double));
    for (int p = SCHED_PRED_EPS; p <= SCHED_PRED_V; p++) {
        Schedule s = lin((SchedPred)p);
        Oracle o = gauss(ORACLE_TIME_INDEX, &s, (SchedPred)p, D, 1, mu, 0.3);
        SamplerConfig ddim = cfg_of(SAMPLER_DDIM, 1000), ddpm = cfg_of(SAMPLER_DDPM, 1000);
        ddim.eta = 1.0;
        ddpm.var = SCHED_VAR_BETA_TILDE;
        ddim.clip_x0 = ddpm.clip_x0 = 1;
        cr_assert_eq(sched_sample_d(&ddim, &s, oracle_net_d, &o, idx, B, D, NULL, NULL, NULL, a,
                                    NULL), ERR_OK);
        cr_assert_eq(sched_sample_d(&ddpm, &s, oracle_net_d, &o, idx, B, D, NULL, NULL, NULL, b,
                                    NULL), ERR_OK);
        double d = max_abs_diff(a, b, n), ma = 0, mb = 0;
        for (size_t i = 0; i < n; i++) {
            ma += a[i] / (double)n;
            mb += b[i] / (double)n;
        }
        cr_log_info("clip on, %s: DDIM(eta=1) vs DDPM(beta~) max |diff| %.3e, means %.4f %.4f",
                    sched_pred_name((SchedPred)p), d, ma, mb);
        cr_assert(d <= 1e-9, "%s: max diff %.3e", sched_pred_name((SchedPred)p), d);
        /* the clip was active: the same chain without it gives other samples */
        ddpm.clip_x0 = 0;
        cr_assert_eq(sched_sample_d(&ddpm, &s, oracle_net_d, &o, idx, B, D, NULL, NULL, NULL, u,
                                    NULL), ERR_OK);
        cr_assert(max_abs_diff(u, b, n) > 1e-2, "%s: clipping changed nothing",
                  sched_pred_name((SchedPred)p));
        sched_free(&s);
    }
    free(a);
    free(b);
    free(u);
    free(idx);
}

/* One clipped DDIM step (eta = 0) in closed form: x' = a' clip(x0-hat) + s' (x - a clip(x0-hat))
 * / s, with x0-hat from the Gaussian oracle. */
Test(sampler, clipped_ddim_step_uses_the_eps_of_the_clipped_x0)
{
    const double ab[2] = {0.81, 0.36}; /* a' = 0.9, s' = sqrt(0.19); a = 0.6, s = 0.8 */
    SchedLevels lv;
    cr_assert_eq(sched_levels_from_abar(ab, ab, 1, &lv), ERR_OK);
    const double mu[2] = {2.0, 2.0};
    Oracle o = gauss(ORACLE_TIME_ABAR, NULL, SCHED_PRED_EPS, 1, 1, mu, 0.5);
    double x = 1.5;
    /* x0-hat = 2 + 0.6 * 0.25 * (1.5 - 1.2) / (0.09 + 0.64) = 2.0616438..., clipped to 1 */
    SamplerConfig c = cfg_of(SAMPLER_DDIM, 1);
    c.clip_x0 = 1;
    uint64_t idx = 0;
    cr_assert_eq(sched_diffusion_run_d(&c, SCHED_PRED_EPS, &lv, oracle_net_d, &o, &idx, 1, 1, NULL,
                                       NULL, NULL, &x, NULL), ERR_OK);
    double want = 0.9 * 1.0 + sqrt(0.19) * (1.5 - 0.6 * 1.0) / 0.8;
    cr_assert(fabs(x - want) < 1e-14, "%.17g vs %.17g", x, want);
    sched_levels_free(&lv);
}

/* DDIM's sigma is linear in eta (eq. 16): pinned at eta = 0.5, where eta and eta^2 differ, and
 * one full step at eta = 0.5 with the documented noise stream. */
Test(sampler, ddim_sigma_and_step_at_eta_half)
{
    /* abar = 0.25, abar' = 0.64: sigma(1) = sqrt(0.36/0.75) sqrt(1 - 0.25/0.64) = sqrt(0.2925) */
    cr_assert(fabs(sched_ddim_sigma(0.5, 0.25, 0.64) - 0.5 * sqrt(0.2925)) < 1e-15);
    cr_assert(fabs(sched_ddim_sigma(0.5, 0.25, 0.64) - 0.27041634565979916) < 1e-15);
    cr_assert(fabs(sched_ddim_sigma(1.0, 0.25, 0.64) - 0.5408326913195983) < 1e-15);
    cr_assert_eq(sched_ddim_sigma(0.0, 0.25, 0.64), 0.0);
    const double ab[2] = {0.64, 0.25};
    SchedLevels lv;
    cr_assert_eq(sched_levels_from_abar(ab, ab, 1, &lv), ERR_OK);
    const double mu[2] = {0.5, 0.5}, sd = 0.4;
    Oracle o = gauss(ORACLE_TIME_ABAR, NULL, SCHED_PRED_EPS, 1, 1, mu, sd);
    SamplerConfig c = cfg_of(SAMPLER_DDIM, 1);
    c.eta = 0.5;
    uint64_t idx = 77;
    double x = 0.3;
    cr_assert_eq(sched_diffusion_run_d(&c, SCHED_PRED_EPS, &lv, oracle_net_d, &o, &idx, 1, 1, NULL,
                                       NULL, NULL, &x, NULL), ERR_OK);
    /* by hand: a = 0.5, s = sqrt(0.75), a' = 0.8, s'^2 = 0.36 */
    double a = 0.5, s = sqrt(0.75), v = a * a * sd * sd + s * s;
    double x0 = 0.5 + a * sd * sd * (0.3 - a * 0.5) / v, e = s * (0.3 - a * 0.5) / v;
    double sig = 0.5 * sqrt(0.2925), z;
    rng_fill_normal_f64(&z, 1, c.seed, rng_stream(RNG_P_SAMPLE_STEP, idx), 0);
    double want = 0.8 * x0 + sqrt(0.36 - sig * sig) * e + sig * z;
    cr_log_info("DDIM eta=0.5 step: z = %.6f, x' = %.12f", z, x);
    cr_assert(fabs(x - want) < 1e-14, "%.17g vs %.17g", x, want);
    sched_levels_free(&lv);
}

/* ---- DDIM eta = 0 against independently computed trajectories ---------------------------- */

static double ddim_from(const Schedule *s, Oracle *o, SchedSpacing sp, int S, double x0)
{
    SamplerConfig c = cfg_of(SAMPLER_DDIM, S);
    SchedLevels lv;
    cr_assert_eq(sched_levels_from_schedule(s, sp, S, &lv), ERR_OK);
    uint64_t idx = 0;
    double x = x0;
    cr_assert_eq(sched_diffusion_run_d(&c, s->pred, &lv, oracle_net_d, o, &idx, 1, 1, NULL, NULL,
                                       NULL, &x, NULL), ERR_OK);
    sched_levels_free(&lv);
    return x;
}

Test(sampler, ddim_eta0_matches_reference_values)
{
    Schedule s = lin(SCHED_PRED_EPS);
    double mu[2] = {0.5, 0.5};
    Oracle o = gauss(ORACLE_TIME_INDEX, &s, SCHED_PRED_EPS, 1, 1, mu, 0.2);
    /* python: x_T = 1, tau_i = i T/S (trailing), Gaussian data N(0.5, 0.2^2) */
    const int S[] = {1000, 100, 50, 20, 10};
    const double want[] = {0.6978730375, 0.6857575866, 0.6732559655, 0.6396942931, 0.5969703848};
    for (int i = 0; i < 5; i++) {
        double x = ddim_from(&s, &o, SCHED_SPACING_TRAILING, S[i], 1.0);
        cr_assert(fabs(x - want[i]) < 1e-9, "S=%d: %.10f want %.10f", S[i], x, want[i]);
    }
    /* and it converges to the exact probability-flow map (python: 0.6993685804) */
    double x = ddim_from(&s, &o, SCHED_SPACING_TRAILING, 1000, 1.0);
    cr_assert(fabs(x - 0.6993685804) < 2e-3);
    sched_free(&s);
}

Test(sampler, ddim_eta0_recovers_gaussian_mean_and_variance)
{
    /* DDIM(eta=0) with the Gaussian oracle is an affine map x_T -> a x_T + b, so the moments of
     * the sampled distribution (x_T ~ N(0,1)) are exactly b and a^2: no Monte Carlo error. */
    Schedule s = lin(SCHED_PRED_EPS);
    double mu[2] = {0.5, 0.5};
    Oracle o = gauss(ORACLE_TIME_INDEX, &s, SCHED_PRED_EPS, 1, 1, mu, 0.5);
    double f0 = ddim_from(&s, &o, SCHED_SPACING_UNIFORM, 1000, 0.0);
    double f1 = ddim_from(&s, &o, SCHED_SPACING_UNIFORM, 1000, 1.0);
    double f2 = ddim_from(&s, &o, SCHED_SPACING_UNIFORM, 1000, -2.0);
    double mean = f0, var = (f1 - f0) * (f1 - f0);
    cr_assert(fabs((f2 - f0) - (-2.0) * (f1 - f0)) < 1e-12, "affine map");
    cr_log_info("DDIM eta=0 S=1000 N(0.5, 0.5^2): mean %.6f (rel %.2e), var %.6f (rel %.2e)",
                mean, mean / 0.5 - 1, var, var / 0.25 - 1);
    cr_assert(fabs(mean / 0.5 - 1.0) < 0.01, "mean %.6f", mean);
    cr_assert(fabs(var / 0.25 - 1.0) < 0.01, "var %.6f", var);
    /* python values of the same chain */
    cr_assert(fabs(mean - 0.498416575075) < 1e-9);
    cr_assert(fabs(var - 0.248497547169) < 1e-9);
    sched_free(&s);
}

/* DDPM: Monte Carlo over 2^16 draws; the exact moments of the discrete chain (python) give the
 * reference, and sigma^2 = beta reproduces the data moments within 1%. */
Test(sampler, ddpm_recovers_gaussian_mean_and_variance)
{
    Schedule s = lin(SCHED_PRED_EPS);
    size_t B = 1024, D = 64, n = B * D;
    double *mu = malloc(2 * D * sizeof(double));
    for (size_t i = 0; i < 2 * D; i++) mu[i] = 0.5;
    Oracle o = gauss(ORACLE_TIME_INDEX, &s, SCHED_PRED_EPS, D, 1, mu, 0.5);
    uint64_t *idx = iota_idx(B, 0);
    double *x = malloc(n * sizeof(double));
    const struct { SchedVar v; double m, var; } cases[] = {
        {SCHED_VAR_BETA, 0.499994955060, 0.250752075007},
        {SCHED_VAR_BETA_TILDE, 0.499994955060, 0.246125211360},
    };
    for (int c = 0; c < 2; c++) {
        SamplerConfig cfg = cfg_of(SAMPLER_DDPM, 1000);
        cfg.var = cases[c].v;
        if (c == 1) n = (B / 4) * D; /* beta~ only against the exact chain: 2^14 draws */
        cr_assert_eq(sched_sample_d(&cfg, &s, oracle_net_d, &o, idx, n / D, D, NULL, NULL, NULL,
                                    x, NULL), ERR_OK);
        double sum = 0, sum2 = 0;
        for (size_t i = 0; i < n; i++) sum += x[i];
        double m = sum / (double)n;
        for (size_t i = 0; i < n; i++) sum2 += (x[i] - m) * (x[i] - m);
        double v = sum2 / (double)(n - 1);
        double se_m = sqrt(cases[c].var / (double)n), se_v = cases[c].var * sqrt(2.0 / (double)n);
        cr_log_info("DDPM %s: mean %.5f (exact chain %.5f), var %.5f (exact chain %.5f)",
                    c == 0 ? "beta" : "beta~", m, cases[c].m, v, cases[c].var);
        cr_assert(fabs(m - cases[c].m) < 4 * se_m, "mean %.6f vs %.6f", m, cases[c].m);
        cr_assert(fabs(v - cases[c].var) < 4 * se_v, "var %.6f vs %.6f", v, cases[c].var);
        if (cases[c].v == SCHED_VAR_BETA) {
            cr_assert(fabs(m / 0.5 - 1) < 0.01);
            cr_assert(fabs(v / 0.25 - 1) < 0.01);
        }
    }
    free(x);
    free(idx);
    free(mu);
    sched_free(&s);
}

/* C8: the last DDPM step returns the posterior mean without noise; earlier steps draw noise. */
Test(sampler, ddpm_last_step_adds_no_noise)
{
    Schedule s = lin(SCHED_PRED_EPS);
    Oracle o = points(ORACLE_TIME_INDEX, &s, SCHED_PRED_EPS, 4, 4, PTS4);
    uint64_t idx = 3;
    for (int S = 1; S <= 2; S++) {
        SchedLevels lv;
        cr_assert_eq(sched_levels_from_schedule(&s, SCHED_SPACING_UNIFORM, S, &lv), ERR_OK);
        double x1[4] = {0.1, 0.2, 0.3, 0.4}, x2[4] = {0.1, 0.2, 0.3, 0.4};
        SamplerConfig c = cfg_of(SAMPLER_DDPM, S);
        c.var = SCHED_VAR_BETA;
        c.seed = 1;
        cr_assert_eq(sched_diffusion_run_d(&c, SCHED_PRED_EPS, &lv, oracle_net_d, &o, &idx, 1, 4,
                                           NULL, NULL, NULL, x1, NULL), ERR_OK);
        c.seed = 2;
        cr_assert_eq(sched_diffusion_run_d(&c, SCHED_PRED_EPS, &lv, oracle_net_d, &o, &idx, 1, 4,
                                           NULL, NULL, NULL, x2, NULL), ERR_OK);
        if (S == 1) {
            cr_assert_eq(memcmp(x1, x2, sizeof x1), 0, "the last step must not draw noise");
            /* and equals the eps-form mean (x - eps_coef eps)/sqrt(alpha_1) (spec 2.6) */
            double x[4] = {0.1, 0.2, 0.3, 0.4}, e[4], tt = 0.0;
            cr_assert_eq(oracle_net_d(&o, x, &tt, NULL, 1, 4, e), ERR_OK);
            for (int i = 0; i < 4; i++) {
                double m = (x[i] - s.eps_coef[1] * e[i]) / sqrt(s.alpha[1]);
                cr_assert(fabs(x1[i] - m) < 1e-12, "%.17g vs %.17g", x1[i], m);
            }
        } else {
            cr_assert_neq(memcmp(x1, x2, sizeof x1), 0, "earlier steps must draw noise");
        }
        sched_levels_free(&lv);
    }
    sched_free(&s);
}

/* C14: with a single data point every diffusion sampler returns it exactly. */
Test(sampler, every_sampler_returns_the_single_data_point)
{
    Schedule s = lin(SCHED_PRED_EPS);
    const double p[3] = {0.7, -0.2, 0.35};
    Oracle o = points(ORACLE_TIME_INDEX, &s, SCHED_PRED_EPS, 3, 1, p);
    size_t B = 4, D = 3;
    uint64_t *idx = iota_idx(B, 50);
    double x[12];
    const SamplerKind kinds[] = {SAMPLER_DDPM, SAMPLER_DDIM, SAMPLER_DPMPP_2M};
    for (int k = 0; k < 3; k++)
        for (int S = 10; S <= 1000; S *= 10) {
            SamplerConfig c = cfg_of(kinds[k], S);
            c.eta = 0.5;
            cr_assert_eq(sched_sample_d(&c, &s, oracle_net_d, &o, idx, B, D, NULL, NULL, NULL, x,
                                        NULL), ERR_OK);
            for (size_t i = 0; i < B * D; i++)
                cr_assert(fabs(x[i] - p[i % 3]) < 1e-9, "%s S=%d: %.12f vs %.12f",
                          sampler_kind_name(kinds[k]), S, x[i], p[i % 3]);
        }
    /* flow: straight conditional paths, so one Euler step is exact (C31): x1 + sigma_min n */
    const double smins[2] = {0.0, 0.1};
    for (int m = 0; m < 2; m++) {
        Schedule f;
        cr_assert_eq(sched_init_flow(&f, smins[m]), ERR_OK);
        Oracle of = points(ORACLE_TIME_FLOW, NULL, SCHED_PRED_VELOCITY, 3, 1, p);
        of.sigma_min = smins[m];
        double n0[12];
        sched_initial_noise(1234, idx, B, D, n0);
        const SamplerKind fk[] = {SAMPLER_EULER, SAMPLER_MIDPOINT, SAMPLER_HEUN, SAMPLER_RK4};
        for (int k = 0; k < 4; k++) {
            SamplerConfig c = cfg_of(fk[k], k == 0 ? 1 : 3);
            /* Heun and RK4 evaluate at tau = 1, where a point mass with sigma_min = 0 has no
             * velocity field */
            if (smins[m] == 0.0 && (fk[k] == SAMPLER_HEUN || fk[k] == SAMPLER_RK4)) continue;
            cr_assert_eq(sched_sample_d(&c, &f, oracle_net_d, &of, idx, B, D, NULL, NULL, NULL, x,
                                        NULL), ERR_OK);
            for (size_t i = 0; i < B * D; i++) {
                double want = p[i % 3] + smins[m] * n0[i];
                cr_assert(fabs(x[i] - want) < 1e-12, "%s: %.15f vs %.15f",
                          sampler_kind_name(fk[k]), x[i], want);
            }
        }
        sched_free(&f);
    }
    free(idx);
    sched_free(&s);
}

/* ---- DDIM inversion ----------------------------------------------------------------------- */

Test(sampler, ddim_inversion_then_sampling_reconstructs)
{
    Schedule s = lin(SCHED_PRED_EPS);
    double mu[2] = {0.5, 0.5};
    Oracle o = gauss(ORACLE_TIME_INDEX, &s, SCHED_PRED_EPS, 1, 1, mu, 0.2);
    /* python, x0 = 0.7, trailing tau, first step eps(x0, tau_1) */
    const int S[] = {1000, 100, 10};
    const double lat[] = {0.9981314760, 0.9772433492, 0.9207569044};
    const double rec[] = {0.6975021288, 0.6815168959, 0.5892616653};
    double prev_err = 0;
    for (int i = 0; i < 3; i++) {
        SchedLevels lv;
        cr_assert_eq(sched_levels_from_schedule(&s, SCHED_SPACING_TRAILING, S[i], &lv), ERR_OK);
        SamplerConfig c = cfg_of(SAMPLER_DDIM, S[i]);
        double x = 0.7;
        SampleStats st;
        cr_assert_eq(sched_ddim_invert_d(&c, SCHED_PRED_EPS, &lv, oracle_net_d, &o, 1, 1, NULL,
                                         &x, &st), ERR_OK);
        cr_assert_eq(st.nfe, (uint64_t)S[i]);
        cr_assert(fabs(x - lat[i]) < 1e-9, "S=%d latent %.10f want %.10f", S[i], x, lat[i]);
        uint64_t idx = 0;
        cr_assert_eq(sched_diffusion_run_d(&c, SCHED_PRED_EPS, &lv, oracle_net_d, &o, &idx, 1, 1,
                                           NULL, NULL, NULL, &x, NULL), ERR_OK);
        cr_assert(fabs(x - rec[i]) < 1e-9, "S=%d reconstruction %.10f want %.10f", S[i], x, rec[i]);
        double err = fabs(x - 0.7);
        cr_log_info("DDIM inversion S=%d: |x0 - rec| = %.3e", S[i], err);
        if (i > 0) cr_assert(err > prev_err, "error must fall as S grows");
        prev_err = err;
        sched_levels_free(&lv);
    }
    cr_assert(fabs(rec[0] - 0.7) < 3e-3);
    /* a finite data set in D = 4: 1000-step round trip of each data point */
    Oracle op = points(ORACLE_TIME_INDEX, &s, SCHED_PRED_EPS, 4, 4, PTS4);
    SchedLevels lv;
    cr_assert_eq(sched_levels_from_schedule(&s, SCHED_SPACING_UNIFORM, 1000, &lv), ERR_OK);
    SamplerConfig c = cfg_of(SAMPLER_DDIM, 1000);
    double x[16];
    memcpy(x, PTS4, sizeof x);
    cr_assert_eq(sched_ddim_invert_d(&c, SCHED_PRED_EPS, &lv, oracle_net_d, &op, 4, 4, NULL, x,
                                     NULL), ERR_OK);
    uint64_t *idx = iota_idx(4, 0);
    cr_assert_eq(sched_diffusion_run_d(&c, SCHED_PRED_EPS, &lv, oracle_net_d, &op, idx, 4, 4, NULL,
                                       NULL, NULL, x, NULL), ERR_OK);
    double d = max_abs_diff(x, PTS4, 16);
    cr_log_info("DDIM inversion, 4-point data, S=1000: max |x0 - rec| = %.3e", d);
    cr_assert(d < 1e-3, "round trip error %.3e", d);
    free(idx);
    sched_levels_free(&lv);
    sched_free(&s);
}

/* The float API round trip: encode data points to latents, decode them with DDIM. */
Test(sampler, ddim_inversion_float_api_round_trip)
{
    Schedule s = lin(SCHED_PRED_V);
    const double mu[8] = {0.2, -0.1, 0.4, 0.0, 0.2, -0.1, 0.4, 0.0};
    Oracle o = gauss(ORACLE_TIME_INDEX, &s, SCHED_PRED_V, 4, 1, mu, 0.5);
    SamplerConfig c = cfg_of(SAMPLER_DDIM, 1000);
    c.spacing = SCHED_SPACING_TRAILING;
    float x0[16], lat[16], rec[16];
    for (int i = 0; i < 16; i++) x0[i] = (float)PTS4[i];
    SampleStats st;
    cr_assert_eq(sched_ddim_invert(&c, &s, oracle_net, &o, 4, 4, NULL, x0, lat, &st), ERR_OK);
    cr_assert_eq(st.nfe, 1000);
    /* decode with the lower-level runner from these latents */
    SchedLevels lv;
    cr_assert_eq(sched_levels_from_schedule(&s, c.spacing, c.steps, &lv), ERR_OK);
    double x[16];
    for (int i = 0; i < 16; i++) x[i] = (double)lat[i];
    uint64_t *idx = iota_idx(4, 0);
    cr_assert_eq(sched_diffusion_run_d(&c, SCHED_PRED_V, &lv, oracle_net_d, &o, idx, 4, 4, NULL,
                                       NULL, NULL, x, NULL), ERR_OK);
    for (int i = 0; i < 16; i++) rec[i] = (float)x[i];
    double d = 0;
    for (int i = 0; i < 16; i++) d = fmax(d, fabs((double)rec[i] - (double)x0[i]));
    cr_log_info("DDIM inversion (float API, v-prediction), Gaussian data, S=1000: max err %.3e", d);
    cr_assert(d < 1e-2 && d > 0, "%.3e", d); /* solver error, as in the 1-D case */
    /* the latent is not the data: the encoder moved it */
    cr_assert(fabs((double)lat[0] - (double)x0[0]) > 0.1);
    Schedule f;
    cr_assert_eq(sched_init_flow(&f, 0.0), ERR_OK);
    cr_assert_eq(sched_ddim_invert(&c, &f, oracle_net, &o, 4, 4, NULL, x0, lat, NULL), ERR_ARG);
    free(idx);
    sched_levels_free(&lv);
    sched_free(&s);
    sched_free(&f);
}

/* ---- DDIM eta = 0 is flow Euler under the time change ------------------------------------- */

/* Velocity of the rectified-flow path from a VP eps-model: at FM time tau the VP state is
 * x / r with r = sqrt(tau^2 + (1-tau)^2), abar = tau^2 / r^2, and v = (x - eps) / tau. */
typedef struct {
    Oracle *vp; /* ORACLE_TIME_ABAR, eps output */
} EpsAsVelocity;

static int eps_as_velocity(void *ctx, const double *x, const double *t, const int *labels,
                           size_t B, size_t D, double *out)
{
    EpsAsVelocity *e = ctx;
    double *xv = calloc(B * D, sizeof(double)), *ab = calloc(B, sizeof(double));
    for (size_t j = 0; j < B; j++) {
        double a, s;
        sched_vp_from_flow_time(t[j], &a, &s);
        ab[j] = a * a;
        for (size_t i = 0; i < D; i++) xv[j * D + i] = x[j * D + i] * (a + s);
    }
    int rc = oracle_net_d(e->vp, xv, ab, labels, B, D, out);
    for (size_t j = 0; j < B; j++)
        for (size_t i = 0; i < D; i++) out[j * D + i] = (x[j * D + i] - out[j * D + i]) / t[j];
    free(xv);
    free(ab);
    return rc;
}

Test(sampler, ddim_eta0_equals_flow_euler_under_time_change)
{
    Schedule s = lin(SCHED_PRED_EPS);
    size_t B = 4, D = 4;
    uint64_t *idx = iota_idx(B, 0);
    for (int S = 10; S <= 1000; S *= 10) {
        SchedLevels dl, lv;
        cr_assert_eq(sched_levels_from_schedule(&s, SCHED_SPACING_UNIFORM, S, &dl), ERR_OK);
        /* the same levels with the network reading abar itself */
        cr_assert_eq(sched_levels_from_abar(dl.abar, dl.abar, dl.n, &lv), ERR_OK);
        Oracle o = points(ORACLE_TIME_ABAR, NULL, SCHED_PRED_EPS, D, 4, PTS4);
        double xv[16], xf[16];
        sched_initial_noise(99, idx, B, D, xv);
        /* flow grid: tau_j = a / (a + s) of levels n..0; x_flow = x_vp / (a + s) */
        size_t n = lv.n;
        double *tau = malloc((n + 1) * sizeof(double));
        for (size_t j = 0; j <= n; j++) {
            double ab = lv.abar[n - j];
            tau[j] = sched_flow_time_from_vp(sqrt(ab), sqrt(1 - ab));
        }
        double an = sqrt(lv.abar[n]), sn = sqrt(1 - lv.abar[n]);
        for (size_t i = 0; i < B * D; i++) xf[i] = xv[i] / (an + sn);
        SamplerConfig cd = cfg_of(SAMPLER_DDIM, S), ce = cfg_of(SAMPLER_EULER, S);
        cr_assert_eq(sched_diffusion_run_d(&cd, SCHED_PRED_EPS, &lv, oracle_net_d, &o, idx, B, D,
                                           NULL, NULL, NULL, xv, NULL), ERR_OK);
        EpsAsVelocity ev = {&o};
        cr_assert_eq(tau[n], 1.0);
        cr_assert_eq(sched_flow_run_d(&ce, 0.0, tau, n, eps_as_velocity, &ev, idx, B, D, NULL, NULL,
                                      NULL, xf, NULL), ERR_OK);
        double d = max_abs_diff(xv, xf, B * D);
        cr_log_info("DDIM eta=0 vs flow Euler (time change), S=%d: max |diff| = %.3e", S, d);
        cr_assert(d <= 1e-12, "S=%d: %.3e", S, d);
        free(tau);
        sched_levels_free(&lv);
        sched_levels_free(&dl);
    }
    free(idx);
    sched_free(&s);
}

/* ---- convergence orders ------------------------------------------------------------------- */

/* Fit of the order between successive step counts (N, 2N): log2(e_N / e_2N). */
static double order_of(double e1, double e2) { return log(e1 / e2) / log(2.0); }

Test(sampler, flow_solvers_convergence_order)
{
    /* Gaussian data, 3 dims, rectified flow and sigma_min = 0.05. Exact solution:
     * x(tau) = tau mu + sqrt((1-(1-smin) tau)^2 + tau^2 sd^2) x(0), so x(1) = mu + sqrt(sd^2 +
     * smin^2) x(0). */
    const double mu[6] = {1.0, -0.5, 2.0, 1.0, -0.5, 2.0}, sd = 0.3; /* row 1: label -1 */
    const SamplerKind kinds[] = {SAMPLER_EULER, SAMPLER_MIDPOINT, SAMPLER_HEUN, SAMPLER_RK4};
    const double want[] = {1, 2, 2, 4};
    const int Ns[][4] = {{16, 32, 64, 128}, {8, 16, 32, 64}, {8, 16, 32, 64}, {4, 8, 16, 32}};
    const double smins[2] = {0.0, 0.05};
    size_t D = 3;
    for (int m = 0; m < 2; m++) {
        Oracle o = gauss(ORACLE_TIME_FLOW, NULL, SCHED_PRED_VELOCITY, D, 1, mu, sd);
        o.sigma_min = smins[m];
        Schedule f;
        cr_assert_eq(sched_init_flow(&f, smins[m]), ERR_OK);
        uint64_t idx = 5;
        double x0[3], exact[3];
        sched_initial_noise(1234, &idx, 1, D, x0);
        for (size_t i = 0; i < D; i++) exact[i] = mu[i] + sqrt(sd * sd + smins[m] * smins[m]) * x0[i];
        for (int k = 0; k < 4; k++) {
            double err[4];
            for (int q = 0; q < 4; q++) {
                SamplerConfig c = cfg_of(kinds[k], Ns[k][q]);
                double x[3];
                SampleStats st;
                cr_assert_eq(sched_sample_d(&c, &f, oracle_net_d, &o, &idx, 1, D, NULL, NULL, NULL,
                                            x, &st), ERR_OK);
                err[q] = max_abs_diff(x, exact, D);
            }
            double p = order_of(err[2], err[3]);
            cr_log_info("flow %-8s smin=%.2f: err N=%d %.3e, N=%d %.3e; order %.3f (prev %.3f)",
                        sampler_kind_name(kinds[k]), smins[m], Ns[k][2], err[2], Ns[k][3], err[3],
                        p, order_of(err[1], err[2]));
            /* at least the nominal order: on this linear field the midpoint rule's leading
             * error term integrates to zero and it converges at order 3 */
            cr_assert(p > want[k] - 0.15 && p < want[k] + 1.15, "%s: order %.3f, want %g",
                      sampler_kind_name(kinds[k]), p, want[k]);
        }
        sched_free(&f);
    }
}

/* Curved marginal paths (finite data set, sigma_min > 0): orders hold as well; the reference is
 * RK4 with 4096 steps. */
Test(sampler, flow_solvers_order_on_finite_data)
{
    size_t D = 4;
    Oracle o = points(ORACLE_TIME_FLOW, NULL, SCHED_PRED_VELOCITY, D, 4, PTS4);
    o.sigma_min = 0.3;
    Schedule f;
    cr_assert_eq(sched_init_flow(&f, 0.3), ERR_OK);
    uint64_t idx = 11;
    double ref[4];
    SamplerConfig rc = cfg_of(SAMPLER_RK4, 4096);
    cr_assert_eq(sched_sample_d(&rc, &f, oracle_net_d, &o, &idx, 1, D, NULL, NULL, NULL, ref, NULL),
                 ERR_OK);
    const SamplerKind kinds[] = {SAMPLER_EULER, SAMPLER_MIDPOINT, SAMPLER_HEUN, SAMPLER_RK4};
    const double want[] = {1, 2, 2, 4};
    const int Ns[][2] = {{256, 512}, {128, 256}, {128, 256}, {32, 64}};
    for (int k = 0; k < 4; k++) {
        double err[2];
        for (int q = 0; q < 2; q++) {
            SamplerConfig c = cfg_of(kinds[k], Ns[k][q]);
            double x[4];
            cr_assert_eq(sched_sample_d(&c, &f, oracle_net_d, &o, &idx, 1, D, NULL, NULL, NULL, x,
                                        NULL), ERR_OK);
            err[q] = max_abs_diff(x, ref, D);
        }
        double p = order_of(err[0], err[1]);
        cr_log_info("flow %-8s 4-point data smin=0.3: err N=%d %.3e, N=%d %.3e, order %.3f",
                    sampler_kind_name(kinds[k]), Ns[k][0], err[0], Ns[k][1], err[1], p);
        cr_assert(fabs(p - want[k]) < 0.2, "%s: order %.3f", sampler_kind_name(kinds[k]), p);
    }
    sched_free(&f);
}

/* DDIM (first order) and DPM-Solver++(2M) (second order) on the probability-flow ODE, levels
 * uniform in log-SNR between abar = sigmoid(-6) and sigmoid(6); the Gaussian oracle's exact map
 * x' = a' mu + sqrt(a'^2 sd^2 + s'^2) (x - a mu) / sqrt(a^2 sd^2 + s^2) is the reference. */
Test(sampler, ddim_and_dpmpp_convergence_order)
{
    const double mu[2] = {0.5, 0.5}, sd = 0.5;
    Oracle o = gauss(ORACLE_TIME_ABAR, NULL, SCHED_PRED_EPS, 1, 1, mu, sd);
    const SamplerKind kinds[] = {SAMPLER_DDIM, SAMPLER_DPMPP_2M};
    const double want[] = {1, 2};
    for (int k = 0; k < 2; k++) {
        double err[5];
        int Ns[5] = {8, 16, 32, 64, 128};
        for (int q = 0; q < 5; q++) {
            size_t n = (size_t)Ns[q];
            double *ab = malloc((n + 1) * sizeof(double));
            for (size_t i = 0; i <= n; i++) {
                double lam = 3.0 - 6.0 * (double)i / (double)n; /* lambda = log(a/s) */
                ab[i] = 1.0 / (1.0 + exp(-2.0 * lam));
            }
            SchedLevels lv;
            cr_assert_eq(sched_levels_from_abar(ab, ab, n, &lv), ERR_OK);
            double x = 1.3, a = sqrt(ab[n]), s = sqrt(1 - ab[n]), a0 = sqrt(ab[0]),
                   s0 = sqrt(1 - ab[0]);
            double exact = a0 * mu[0] + sqrt(a0 * a0 * sd * sd + s0 * s0) * (x - a * mu[0]) /
                                            sqrt(a * a * sd * sd + s * s);
            SamplerConfig c = cfg_of(kinds[k], (int)n);
            uint64_t idx = 0;
            cr_assert_eq(sched_diffusion_run_d(&c, SCHED_PRED_EPS, &lv, oracle_net_d, &o, &idx, 1,
                                               1, NULL, NULL, NULL, &x, NULL), ERR_OK);
            err[q] = fabs(x - exact);
            sched_levels_free(&lv);
            free(ab);
        }
        double p = order_of(err[3], err[4]);
        cr_log_info("%s on the PF-ODE: err N=64 %.3e, N=128 %.3e, order %.3f (prev %.3f)",
                    sampler_kind_name(kinds[k]), err[3], err[4], p, order_of(err[2], err[3]));
        cr_assert(fabs(p - want[k]) < 0.15, "%s: order %.3f", sampler_kind_name(kinds[k]), p);
    }
}

/* DPM-Solver++(2M) written out independently in double for the Gaussian oracle N(mu, sd^2):
 * trailing timesteps t_j = T - j T / S (S divides T), lambda = log(a / s), data prediction
 * D = E[x0 | x]; first step first order, then D' = (1 + 1/(2r)) D_i - D_{i-1}/(2r) with
 * r = h_{i-1} / h_i; the step into abar = 1 returns D. */
static double dpmpp_by_hand(const Schedule *s, int S, double mu, double sd, double x)
{
    int T = s->T;
    double Dprev = 0, hprev = 0;
    for (int j = 0; j < S; j++) {
        int t = T - j * (T / S), tn = T - (j + 1) * (T / S);
        double a = sqrt(s->abar[t]), sg = sqrt(1 - s->abar[t]);
        double D = mu + a * sd * sd * (x - a * mu) / (a * a * sd * sd + sg * sg);
        if (tn == 0) return D;
        double an = sqrt(s->abar[tn]), sn = sqrt(1 - s->abar[tn]);
        double h = log(an / sn) - log(a / sg), Du = D;
        if (j > 0) {
            double r = hprev / h;
            Du = (1 + 1 / (2 * r)) * D - Dprev / (2 * r);
        }
        x = (sn / sg) * x - an * (exp(-h) - 1) * Du;
        Dprev = D;
        hprev = h;
    }
    return x;
}

static double run_on_levels(const Schedule *s, Oracle *o, SamplerKind k, SchedSpacing sp, int S,
                            double x, double *abar_n)
{
    SamplerConfig c = cfg_of(k, S);
    SchedLevels lv;
    cr_assert_eq(sched_levels_from_schedule(s, sp, S, &lv), ERR_OK);
    uint64_t idx = 0;
    cr_assert_eq(sched_diffusion_run_d(&c, s->pred, &lv, oracle_net_d, o, &idx, 1, 1, NULL, NULL,
                                       NULL, &x, NULL), ERR_OK);
    if (abar_n) *abar_n = lv.abar[lv.n];
    sched_levels_free(&lv);
    return x;
}

Test(sampler, dpmpp_2m_pinned_on_trailing_steps)
{
    Schedule s = lin(SCHED_PRED_EPS);
    double mu[2] = {0.5, 0.5};
    Oracle o = gauss(ORACLE_TIME_INDEX, &s, SCHED_PRED_EPS, 1, 1, mu, 0.5);
    const int S[] = {10, 20, 50};
    /* python, the same formula: x_T = 1 */
    const double py[] = {0.903478567158, 0.976691616883, 0.998960632764};
    for (int i = 0; i < 3; i++)
        for (double x0 = -1.5; x0 <= 1.5; x0 += 1.25) {
            double x = run_on_levels(&s, &o, SAMPLER_DPMPP_2M, SCHED_SPACING_TRAILING, S[i], x0,
                                     NULL);
            double want = dpmpp_by_hand(&s, S[i], 0.5, 0.5, x0);
            cr_assert(fabs(x - want) < 1e-12, "S=%d x_T=%g: %.15f vs %.15f", S[i], x0, x, want);
        }
    for (int i = 0; i < 3; i++) {
        double x = run_on_levels(&s, &o, SAMPLER_DPMPP_2M, SCHED_SPACING_TRAILING, S[i], 1.0, NULL);
        cr_assert(fabs(x - py[i]) < 1e-11, "S=%d: %.12f vs python %.12f", S[i], x, py[i]);
    }
    sched_free(&s);
}

/* Order 2 on unevenly spaced lambda: steps alternate 1:2 in lambda (so r alternates 2 and 1/2),
 * between abar = sigmoid(-6) and sigmoid(6), against the Gaussian oracle's exact PF-ODE map. */
Test(sampler, dpmpp_2m_order_on_uneven_lambda)
{
    const double mu[2] = {0.5, 0.5}, sd = 0.5;
    Oracle o = gauss(ORACLE_TIME_ABAR, NULL, SCHED_PRED_EPS, 1, 1, mu, sd);
    double err[3];
    const int Ns[3] = {32, 64, 128};
    for (int q = 0; q < 3; q++) {
        size_t n = (size_t)Ns[q];
        double *ab = malloc((n + 1) * sizeof(double));
        double W = 1.5 * (double)n, lam = 3.0; /* level 0 = lambda 3 (clean end) */
        for (size_t i = 0; i <= n; i++) {
            ab[i] = 1.0 / (1.0 + exp(-2.0 * lam));
            lam -= 6.0 * (i % 2 == 0 ? 1.0 : 2.0) / W;
        }
        SchedLevels lv;
        cr_assert_eq(sched_levels_from_abar(ab, ab, n, &lv), ERR_OK);
        double x = 1.3, a = sqrt(ab[n]), s = sqrt(1 - ab[n]), a0 = sqrt(ab[0]), s0 = sqrt(1 - ab[0]);
        double exact = a0 * mu[0] + sqrt(a0 * a0 * sd * sd + s0 * s0) * (x - a * mu[0]) /
                                        sqrt(a * a * sd * sd + s * s);
        SamplerConfig c = cfg_of(SAMPLER_DPMPP_2M, (int)n);
        uint64_t idx = 0;
        cr_assert_eq(sched_diffusion_run_d(&c, SCHED_PRED_EPS, &lv, oracle_net_d, &o, &idx, 1, 1,
                                           NULL, NULL, NULL, &x, NULL), ERR_OK);
        err[q] = fabs(x - exact);
        sched_levels_free(&lv);
        free(ab);
    }
    double p = order_of(err[1], err[2]);
    cr_log_info("dpmpp-2m, lambda steps alternating 1:2: err N=32 %.3e, 64 %.3e, 128 %.3e, order "
                "%.3f", err[0], err[1], err[2], p);
    cr_assert(fabs(p - 2.0) < 0.15, "order %.3f", p);
    cr_assert(fabs(order_of(err[0], err[1]) - 2.0) < 0.25);
}

/* On the discrete linear schedule with trailing timesteps, error against the exact PF-ODE endpoint
 * from x = 1 at the first level. The last step returns x0-hat at the last level, so the error is
 * not monotone in S (it is 5.4e-4 at S = 50 and 7.8e-4 at S = 100); what the order implies is a
 * bound: err(S) <= C / S^p with C from the coarsest run, p = 1 for DDIM and 2 for DPM-Solver++,
 * and DDIM's error is also at least that order's rate from below (it is first order, not better). */
Test(sampler, dpmpp_and_ddim_errors_follow_their_order_on_discrete_schedule)
{
    Schedule s = lin(SCHED_PRED_EPS);
    double mu[2] = {0.5, 0.5};
    Oracle o = gauss(ORACLE_TIME_INDEX, &s, SCHED_PRED_EPS, 1, 1, mu, 0.5);
    const int S[] = {10, 20, 50, 100, 200};
    double e[2][5];
    const SamplerKind kinds[] = {SAMPLER_DDIM, SAMPLER_DPMPP_2M};
    for (int i = 0; i < 5; i++)
        for (int k = 0; k < 2; k++) {
            double ab;
            double x = run_on_levels(&s, &o, kinds[k], SCHED_SPACING_TRAILING, S[i], 1.0, &ab);
            double exact = 0.5 + 0.5 * (1.0 - sqrt(ab) * 0.5) / sqrt(ab * 0.25 + 1 - ab);
            e[k][i] = fabs(x - exact);
        }
    for (int i = 0; i < 5; i++) {
        double r = (double)S[0] / (double)S[i];
        cr_log_info("S=%d (trailing): DDIM err %.3e (S*err %.3f), DPM-Solver++(2M) err %.3e "
                    "(S^2*err %.2f)", S[i], e[0][i], S[i] * e[0][i], e[1][i],
                    S[i] * S[i] * e[1][i]);
        cr_assert(e[0][i] <= 1.25 * e[0][0] * r && e[0][i] >= 0.9 * e[0][0] * r,
                  "DDIM S=%d: %.3e, first order from S=10 gives %.3e", S[i], e[0][i], e[0][0] * r);
        cr_assert(e[1][i] <= 1.1 * e[1][0] * r * r, "DPM++ S=%d: %.3e above the second-order bound "
                  "%.3e", S[i], e[1][i], 1.1 * e[1][0] * r * r);
        cr_assert(e[1][i] < e[0][i], "S=%d: dpm++ %.3e vs ddim %.3e", S[i], e[1][i], e[0][i]);
    }
    sched_free(&s);
}

/* ---- parameterisations -------------------------------------------------------------------- */

Test(sampler, x0_and_v_models_sample_like_eps_models)
{
    size_t B = 3, D = 4;
    uint64_t *idx = iota_idx(B, 40);
    const SamplerKind kinds[] = {SAMPLER_DDPM, SAMPLER_DDIM, SAMPLER_DPMPP_2M};
    for (int k = 0; k < 3; k++) {
        double ref[12], x[12];
        for (int p = SCHED_PRED_EPS; p <= SCHED_PRED_V; p++) {
            Schedule s = lin((SchedPred)p);
            Oracle o = points(ORACLE_TIME_INDEX, &s, (SchedPred)p, D, 4, PTS4);
            SamplerConfig c = cfg_of(kinds[k], 100);
            c.eta = 0.3;
            cr_assert_eq(sched_sample_d(&c, &s, oracle_net_d, &o, idx, B, D, NULL, NULL, NULL,
                                        p == 0 ? ref : x, NULL), ERR_OK);
            if (p > 0)
                cr_assert(max_abs_diff(ref, x, B * D) < 1e-9, "%s with %s: %.3e",
                          sampler_kind_name(kinds[k]), sched_pred_name((SchedPred)p),
                          max_abs_diff(ref, x, B * D));
            sched_free(&s);
        }
    }
    free(idx);
}

/* ---- guidance ----------------------------------------------------------------------------- */

/* A callback that applies the guidance itself: out = u + w (c - u). */
typedef struct {
    Oracle *o;
    double w;
} ManualGuide;

static int manual_guide(void *ctx, const double *x, const double *t, const int *labels, size_t B,
                        size_t D, double *out)
{
    ManualGuide *g = ctx;
    double *u = malloc(B * D * sizeof(double));
    int *null = malloc(B * sizeof(int));
    for (size_t j = 0; j < B; j++) null[j] = -1;
    TRY(oracle_net_d(g->o, x, t, labels, B, D, out));
    TRY(oracle_net_d(g->o, x, t, null, B, D, u));
    for (size_t i = 0; i < B * D; i++) out[i] = u[i] + g->w * (out[i] - u[i]);
    free(u);
    free(null);
    return ERR_OK;
}

Test(sampler, classifier_free_guidance_convention)
{
    size_t B = 4, D = 2;
    const double mu[3 * 2] = {1.0, 0.5, -1.0, -0.5, 0.0, 0.1}; /* class 0, class 1, null */
    const int labels[4] = {0, 1, 0, -1}, nulls[4] = {-1, -1, -1, -1};
    uint64_t *idx = iota_idx(B, 8);
    Schedule sd = lin(SCHED_PRED_EPS), sf;
    cr_assert_eq(sched_init_flow(&sf, 0.0), ERR_OK);
    const SamplerKind kinds[] = {SAMPLER_DDIM, SAMPLER_DDPM, SAMPLER_DPMPP_2M, SAMPLER_HEUN};
    for (int k = 0; k < 4; k++) {
        int flow = kinds[k] == SAMPLER_HEUN;
        Schedule *s = flow ? &sf : &sd;
        Oracle o = gauss(flow ? ORACLE_TIME_FLOW : ORACLE_TIME_INDEX, &sd, SCHED_PRED_EPS, D, 2, mu,
                         0.3);
        SamplerConfig c = cfg_of(kinds[k], 20);
        double cond[8], unc[8], g[8], m[8];
        SampleStats st;
        /* w = 1: the plain conditional model, one evaluation per step */
        o.evals = 0;
        cr_assert_eq(sched_sample_d(&c, s, oracle_net_d, &o, idx, B, D, labels, NULL, NULL, cond,
                                    &st), ERR_OK);
        uint64_t base_nfe = st.nfe;
        cr_assert_eq(o.evals, B * base_nfe);
        /* the conditional model run without labels-aware guidance (a manual w = 1 blend) */
        ManualGuide mg1 = {&o, 1.0};
        cr_assert_eq(sched_sample_d(&c, s, manual_guide, &mg1, idx, B, D, labels, NULL, NULL, m,
                                    NULL), ERR_OK);
        cr_assert(max_abs_diff(cond, m, B * D) < 1e-12);
        /* w = 0: the unconditional model, evaluated alone (one evaluation per step, the same
         * bits as sampling with every label -1) */
        c.guidance = 0.0;
        o.evals = 0;
        cr_assert_eq(sched_sample_d(&c, s, oracle_net_d, &o, idx, B, D, labels, NULL, NULL, g, &st),
                     ERR_OK);
        cr_assert_eq(st.nfe, base_nfe, "%s: w=0 spends %llu NFE, w=1 %llu",
                     sampler_kind_name(kinds[k]), (unsigned long long)st.nfe,
                     (unsigned long long)base_nfe);
        cr_assert_eq(o.evals, B * base_nfe);
        c.guidance = 1.0;
        cr_assert_eq(sched_sample_d(&c, s, oracle_net_d, &o, idx, B, D, nulls, NULL, NULL, unc,
                                    NULL), ERR_OK);
        cr_assert(memcmp(g, unc, B * D * sizeof(double)) == 0, "%s: w=0 vs unconditional %.3e",
                  sampler_kind_name(kinds[k]), max_abs_diff(g, unc, B * D));
        /* w = 3: u + 3 (c - u), two evaluations per step */
        c.guidance = 3.0;
        o.evals = 0;
        cr_assert_eq(sched_sample_d(&c, s, oracle_net_d, &o, idx, B, D, labels, NULL, NULL, g, &st),
                     ERR_OK);
        cr_assert_eq(st.nfe, 2 * base_nfe);
        cr_assert_eq(o.evals, 2 * B * base_nfe);
        ManualGuide mg = {&o, 3.0};
        c.guidance = 1.0;
        cr_assert_eq(sched_sample_d(&c, s, manual_guide, &mg, idx, B, D, labels, NULL, NULL, m,
                                    NULL), ERR_OK);
        cr_assert(max_abs_diff(g, m, B * D) < 1e-12, "%s: w=3 %.3e", sampler_kind_name(kinds[k]),
                  max_abs_diff(g, m, B * D));
        cr_assert(max_abs_diff(g, cond, B * D) > 1e-3, "guidance must change the samples");
        /* the sample with label -1 is unconditional whatever w */
        for (size_t i = 3 * D; i < 4 * D; i++) cr_assert(fabs(g[i] - unc[i]) < 1e-12);
    }
    /* guidance without labels is an error */
    SamplerConfig c = cfg_of(SAMPLER_DDIM, 10);
    c.guidance = 2.0;
    Oracle o = gauss(ORACLE_TIME_INDEX, &sd, SCHED_PRED_EPS, D, 2, mu, 0.3);
    double x[8];
    cr_assert_eq(sched_sample_d(&c, &sd, oracle_net_d, &o, idx, B, D, NULL, NULL, NULL, x, NULL),
                 ERR_ARG);
    free(idx);
    sched_free(&sd);
    sched_free(&sf);
}

/* ---- inpainting --------------------------------------------------------------------------- */

Test(sampler, inpainting_keeps_known_values_exact)
{
    size_t B = 3, D = 4, n = B * D;
    uint64_t *idx = iota_idx(B, 20);
    float mask[12], known[12];
    for (size_t i = 0; i < n; i++) {
        mask[i] = (i % D) < 2 ? 1.0f : 0.0f;
        known[i] = 0.25f * (float)i - 1.0f;
    }
    const double mu[2 * 4] = {0.3, -0.2, 0.8, 0.1, 0.3, -0.2, 0.8, 0.1};
    Schedule sd = lin(SCHED_PRED_EPS), sf;
    cr_assert_eq(sched_init_flow(&sf, 0.0), ERR_OK);
    const SamplerKind kinds[] = {SAMPLER_DDPM, SAMPLER_DDIM, SAMPLER_DPMPP_2M,
                                 SAMPLER_EULER, SAMPLER_MIDPOINT, SAMPLER_HEUN, SAMPLER_RK4};
    for (int k = 0; k < 7; k++) {
        int flow = kinds[k] >= SAMPLER_EULER;
        Schedule *s = flow ? &sf : &sd;
        Oracle o = gauss(flow ? ORACLE_TIME_FLOW : ORACLE_TIME_INDEX, &sd, SCHED_PRED_EPS, D, 1,
                         mu, 0.4);
        SamplerConfig c = cfg_of(kinds[k], 25);
        c.eta = 0.7;
        double x[12], free_run[12];
        cr_assert_eq(sched_sample_d(&c, s, oracle_net_d, &o, idx, B, D, NULL, mask, known, x,
                                    NULL), ERR_OK);
        for (size_t i = 0; i < n; i++)
            if (mask[i] == 1.0f) cr_assert_eq(x[i], (double)known[i], "%s: entry %zu",
                                             sampler_kind_name(kinds[k]), i);
        /* the Gaussian oracle treats coordinates independently, so the unknown coordinates
         * must come out exactly as in an unmasked run */
        cr_assert_eq(sched_sample_d(&c, s, oracle_net_d, &o, idx, B, D, NULL, NULL, NULL, free_run,
                                    NULL), ERR_OK);
        for (size_t i = 0; i < n; i++)
            if (mask[i] == 0.0f) cr_assert_eq(x[i], free_run[i], "%s: free entry %zu changed",
                                             sampler_kind_name(kinds[k]), i);
    }
    free(idx);
    sched_free(&sd);
    sched_free(&sf);
}

/* A recording oracle: at every network evaluation, the known entries it is fed must be a fresh
 * draw of q(x_level | known): (x - a y) / s has mean 0 and variance 1 over the batch, where (a, s)
 * are the path coefficients of the time the network is asked about. Checked at every level. */
typedef struct {
    Oracle *o;
    const float *mask, *known;
    int calls, bad;
    double worst_mean, worst_var;
} InpaintRecorder;

static int inpaint_recorder(void *ctx, const double *x, const double *t, const int *labels,
                            size_t B, size_t D, double *out)
{
    InpaintRecorder *r = ctx;
    double a, s;
    TRY(oracle_coef(r->o, t[0], &a, &s));
    double sum = 0, sum2 = 0, cnt = 0;
    for (size_t q = 0; q < B * D; q++)
        if (r->mask[q] == 1.0f) {
            double z = (x[q] - a * (double)r->known[q]) / s;
            sum += z;
            sum2 += z * z;
            cnt += 1;
        }
    double m = sum / cnt, v = sum2 / cnt - m * m;
    /* 4.5 standard errors: mean se = 1/sqrt(N), variance se = sqrt(2/N) */
    double em = fabs(m) * sqrt(cnt), evar = fabs(v - 1.0) / sqrt(2.0 / cnt);
    r->worst_mean = fmax(r->worst_mean, em);
    r->worst_var = fmax(r->worst_var, evar);
    if (em > 4.5 || evar > 4.5) r->bad++;
    r->calls++;
    return oracle_net_d(r->o, x, t, labels, B, D, out);
}

Test(sampler, inpainting_feeds_the_network_fresh_draws_of_the_known_part)
{
    size_t B = 4096, D = 2, n = B * D;
    uint64_t *idx = iota_idx(B, 0);
    float *mask = malloc(n * sizeof(float)), *known = malloc(n * sizeof(float));
    double *x = malloc(n * sizeof(double));
    for (size_t j = 0; j < B; j++) {
        mask[j * D] = 1.0f; /* coordinate 0 known, far from the data mean */
        mask[j * D + 1] = 0.0f;
        known[j * D] = 2.0f + 0.5f * (float)(j % 3);
        known[j * D + 1] = 0.0f;
    }
    const double mu[4] = {-0.5, 0.3, -0.5, 0.3};
    Schedule sd = lin(SCHED_PRED_EPS);
    const SamplerKind kinds[] = {SAMPLER_DDPM, SAMPLER_DDIM, SAMPLER_DPMPP_2M};
    for (int k = 0; k < 3; k++) {
        Oracle o = gauss(ORACLE_TIME_INDEX, &sd, SCHED_PRED_EPS, D, 1, mu, 0.4);
        InpaintRecorder rec = {&o, mask, known, 0, 0, 0, 0};
        SamplerConfig c = cfg_of(kinds[k], 10);
        cr_assert_eq(sched_sample_d(&c, &sd, inpaint_recorder, &rec, idx, B, D, NULL, mask, known,
                                    x, NULL), ERR_OK);
        cr_log_info("inpainting %s: %d levels, worst |mean| %.2f se, worst |var - 1| %.2f se",
                    sampler_kind_name(kinds[k]), rec.calls, rec.worst_mean, rec.worst_var);
        cr_assert_eq(rec.calls, 10);
        cr_assert_eq(rec.bad, 0, "%s: %d of %d levels fed off-level known entries (worst mean "
                     "%.1f se, var %.1f se)", sampler_kind_name(kinds[k]), rec.bad, rec.calls,
                     rec.worst_mean, rec.worst_var);
    }
    /* flow (Euler evaluates only on the grid): x_tau = tau y + (1 - (1 - smin) tau) n */
    const double smins[2] = {0.0, 0.1};
    for (int m = 0; m < 2; m++) {
        Schedule f;
        cr_assert_eq(sched_init_flow(&f, smins[m]), ERR_OK);
        Oracle o = gauss(ORACLE_TIME_FLOW, NULL, SCHED_PRED_VELOCITY, D, 1, mu, 0.4);
        o.sigma_min = smins[m];
        InpaintRecorder rec = {&o, mask, known, 0, 0, 0, 0};
        SamplerConfig c = cfg_of(SAMPLER_EULER, 10);
        cr_assert_eq(sched_sample_d(&c, &f, inpaint_recorder, &rec, idx, B, D, NULL, mask, known,
                                    x, NULL), ERR_OK);
        cr_log_info("inpainting euler smin=%.1f: %d levels, worst |mean| %.2f se, |var-1| %.2f se",
                    smins[m], rec.calls, rec.worst_mean, rec.worst_var);
        cr_assert_eq(rec.calls, 10);
        cr_assert_eq(rec.bad, 0, "euler smin=%.1f: %d of %d levels off (mean %.1f se, var %.1f "
                     "se)", smins[m], rec.bad, rec.calls, rec.worst_mean, rec.worst_var);
        sched_free(&f);
    }
    free(idx);
    free(mask);
    free(known);
    free(x);
    sched_free(&sd);
}

/* With correlated coordinates (a finite data set of 4 points), the known half of a point should
 * select that point. Plain replacement is known to be imperfect at this (the unknown entries can
 * commit to another point before the known ones are informative; RePaint's resampling addresses
 * it), so the claim tested is a completion rate far above the 25% chance level. */
Test(sampler, inpainting_completes_data_points_above_chance)
{
    size_t B = 64, D = 4;
    uint64_t *idx = iota_idx(B, 0);
    float *mask = malloc(B * D * sizeof(float)), *known = malloc(B * D * sizeof(float));
    double *x = malloc(B * D * sizeof(double));
    for (size_t j = 0; j < B; j++)
        for (size_t i = 0; i < D; i++) {
            mask[j * D + i] = i < 2 ? 1.0f : 0.0f;
            known[j * D + i] = (float)PTS4[(j % 4) * D + i]; /* sample j completes point j % 4 */
        }
    Schedule sd = lin(SCHED_PRED_EPS);
    const SamplerKind kinds[] = {SAMPLER_DDPM, SAMPLER_DDIM, SAMPLER_DPMPP_2M};
    for (int k = 0; k < 3; k++) {
        Oracle o = points(ORACLE_TIME_INDEX, &sd, SCHED_PRED_EPS, D, 4, PTS4);
        SamplerConfig c = cfg_of(kinds[k], 100);
        c.seed = 3;
        cr_assert_eq(sched_sample_d(&c, &sd, oracle_net_d, &o, idx, B, D, NULL, mask, known, x,
                                    NULL), ERR_OK);
        int ok = 0;
        for (size_t j = 0; j < B; j++) {
            double e = 0;
            for (size_t i = 2; i < D; i++) e = fmax(e, fabs(x[j * D + i] - PTS4[(j % 4) * D + i]));
            ok += e < 0.05;
        }
        cr_log_info("inpainting %s, 4-point data, S=100: %d/%zu completed to the right point",
                    sampler_kind_name(kinds[k]), ok, B);
        cr_assert(ok >= (int)(0.6 * (double)B), "%s: %d/%zu", sampler_kind_name(kinds[k]), ok, B);
    }
    free(idx);
    free(mask);
    free(known);
    free(x);
    sched_free(&sd);
}

/* RePaint resampling on the same 4-point task: re-noising each level back and stepping again lets
 * the unknown entries follow the known ones, so the completion rate rises well above plain
 * replacement's at the same number of levels; without a mask it changes nothing. */
Test(sampler, inpainting_resampling_completes_more_points)
{
    size_t B = 64, D = 4;
    uint64_t *idx = iota_idx(B, 0);
    float *mask = malloc(B * D * sizeof(float)), *known = malloc(B * D * sizeof(float));
    double *x = malloc(B * D * sizeof(double)), *y = malloc(B * D * sizeof(double));
    for (size_t j = 0; j < B; j++)
        for (size_t i = 0; i < D; i++) {
            mask[j * D + i] = i < 2 ? 1.0f : 0.0f;
            known[j * D + i] = (float)PTS4[(j % 4) * D + i];
        }
    Schedule sd = lin(SCHED_PRED_EPS);
    const SamplerKind kinds[] = {SAMPLER_DDPM, SAMPLER_DDIM};
    for (int k = 0; k < 2; k++) {
        int ok[2];
        for (int r = 0; r < 2; r++) {
            Oracle o = points(ORACLE_TIME_INDEX, &sd, SCHED_PRED_EPS, D, 4, PTS4);
            SamplerConfig c = cfg_of(kinds[k], 50);
            c.eta = 1.0;
            c.seed = 3;
            c.resample = r ? 20 : 1;
            SampleStats st;
            cr_assert_eq(sched_sample_d(&c, &sd, oracle_net_d, &o, idx, B, D, NULL, mask, known, x,
                                        &st), ERR_OK);
            cr_assert_eq(st.nfe, (uint64_t)(50 * c.resample));
            ok[r] = 0;
            for (size_t j = 0; j < B; j++) {
                double e = 0;
                for (size_t i = 2; i < D; i++) e = fmax(e, fabs(x[j * D + i] - PTS4[(j % 4) * D + i]));
                ok[r] += e < 0.05;
            }
        }
        cr_log_info("inpainting %s, S=50: %d/%zu completed plainly, %d/%zu with 20x resampling",
                    sampler_kind_name(kinds[k]), ok[0], B, ok[1], B);
        cr_assert(ok[1] > ok[0] && ok[1] >= (int)(0.9 * (double)B), "%s: %d vs %d",
                  sampler_kind_name(kinds[k]), ok[1], ok[0]);
        /* without a mask resampling is off */
        Oracle o = points(ORACLE_TIME_INDEX, &sd, SCHED_PRED_EPS, D, 4, PTS4);
        SamplerConfig c = cfg_of(kinds[k], 50);
        c.resample = 8;
        cr_assert_eq(sched_sample_d(&c, &sd, oracle_net_d, &o, idx, B, D, NULL, NULL, NULL, x,
                                    NULL), ERR_OK);
        c.resample = 1;
        cr_assert_eq(sched_sample_d(&c, &sd, oracle_net_d, &o, idx, B, D, NULL, NULL, NULL, y,
                                    NULL), ERR_OK);
        cr_assert_eq(memcmp(x, y, B * D * sizeof(double)), 0);
    }
    /* every repeated step sees the known part re-noised to its level: the recording oracle */
    {
        size_t Bg = 4096, Dg = 2;
        uint64_t *ig = iota_idx(Bg, 0);
        float *mg = malloc(Bg * Dg * sizeof(float)), *kg = malloc(Bg * Dg * sizeof(float));
        double *xg = malloc(Bg * Dg * sizeof(double));
        for (size_t j = 0; j < Bg; j++) {
            mg[j * Dg] = 1.0f;
            mg[j * Dg + 1] = 0.0f;
            kg[j * Dg] = 2.0f;
            kg[j * Dg + 1] = 0.0f;
        }
        const double mu[4] = {-0.5, 0.3, -0.5, 0.3};
        Oracle og = gauss(ORACLE_TIME_INDEX, &sd, SCHED_PRED_EPS, Dg, 1, mu, 0.4);
        InpaintRecorder rec = {&og, mg, kg, 0, 0, 0, 0};
        SamplerConfig cg = cfg_of(SAMPLER_DDPM, 10);
        cg.resample = 3;
        cr_assert_eq(sched_sample_d(&cg, &sd, inpaint_recorder, &rec, ig, Bg, Dg, NULL, mg, kg, xg,
                                    NULL), ERR_OK);
        cr_assert_eq(rec.calls, 30);
        cr_assert_eq(rec.bad, 0, "%d of %d evaluations saw off-level known entries", rec.bad,
                     rec.calls);
        free(ig);
        free(mg);
        free(kg);
        free(xg);
    }
    Oracle o = points(ORACLE_TIME_INDEX, &sd, SCHED_PRED_EPS, D, 4, PTS4);
    SamplerConfig c = cfg_of(SAMPLER_DPMPP_2M, 50);
    c.resample = 4;
    cr_assert_eq(sched_sample_d(&c, &sd, oracle_net_d, &o, idx, B, D, NULL, mask, known, x, NULL),
                 ERR_ARG);
    free(idx);
    free(mask);
    free(known);
    free(x);
    free(y);
    sched_free(&sd);
}

/* The same 4-point task for the flow ODE: with replacement alone the deterministic ODE cannot
 * undo an early commitment to another point (measured: 46 of 64 completed); RePaint resampling
 * with the flow path's re-noising kernel completes clearly more (60 of 64); without a mask it
 * changes nothing. */
Test(sampler, flow_inpainting_resampling_completes_more_points)
{
    size_t B = 64, D = 4;
    uint64_t *idx = iota_idx(B, 0);
    float *mask = malloc(B * D * sizeof(float)), *known = malloc(B * D * sizeof(float));
    double *x = malloc(B * D * sizeof(double)), *y = malloc(B * D * sizeof(double));
    for (size_t j = 0; j < B; j++)
        for (size_t i = 0; i < D; i++) {
            mask[j * D + i] = i < 2 ? 1.0f : 0.0f;
            known[j * D + i] = (float)PTS4[(j % 4) * D + i];
        }
    Schedule f;
    cr_assert_eq(sched_init_flow(&f, 0.0), ERR_OK);
    int ok[2];
    for (int r = 0; r < 2; r++) {
        Oracle o = points(ORACLE_TIME_FLOW, NULL, SCHED_PRED_VELOCITY, D, 4, PTS4);
        SamplerConfig c = cfg_of(SAMPLER_EULER, 50);
        c.seed = 3;
        c.resample = r ? 20 : 1;
        SampleStats st;
        cr_assert_eq(sched_sample_d(&c, &f, oracle_net_d, &o, idx, B, D, NULL, mask, known, x, &st),
                     ERR_OK);
        cr_assert_eq(st.nfe, (uint64_t)(50 * c.resample));
        ok[r] = 0;
        for (size_t j = 0; j < B; j++) {
            double e = 0;
            for (size_t i = 2; i < D; i++) e = fmax(e, fabs(x[j * D + i] - PTS4[(j % 4) * D + i]));
            ok[r] += e < 0.05;
        }
    }
    cr_log_info("flow inpainting, euler S=50: %d/%zu completed plainly, %d/%zu with 20x resampling",
                ok[0], B, ok[1], B);
    cr_assert(ok[1] >= (int)(0.85 * (double)B) && ok[1] >= ok[0] + 8, "%d vs %d", ok[1], ok[0]);
    Oracle o = points(ORACLE_TIME_FLOW, NULL, SCHED_PRED_VELOCITY, D, 4, PTS4);
    SamplerConfig c = cfg_of(SAMPLER_HEUN, 20);
    c.resample = 5;
    cr_assert_eq(sched_sample_d(&c, &f, oracle_net_d, &o, idx, B, D, NULL, NULL, NULL, x, NULL),
                 ERR_OK);
    c.resample = 1;
    cr_assert_eq(sched_sample_d(&c, &f, oracle_net_d, &o, idx, B, D, NULL, NULL, NULL, y, NULL),
                 ERR_OK);
    cr_assert_eq(memcmp(x, y, B * D * sizeof(double)), 0);
    sched_free(&f);
    free(idx);
    free(mask);
    free(known);
    free(x);
    free(y);
}

/* ---- batch and rank independence, NFE, float API, clipping, errors ------------------------ */

Test(sampler, samples_do_not_depend_on_the_batch)
{
    Schedule s = lin(SCHED_PRED_EPS);
    double mu[8] = {0.3, -0.2, 0.1, 0.6, 0.3, -0.2, 0.1, 0.6};
    Oracle o = gauss(ORACLE_TIME_INDEX, &s, SCHED_PRED_EPS, 4, 1, mu, 0.4);
    const SamplerKind kinds[] = {SAMPLER_DDPM, SAMPLER_DDIM};
    for (int k = 0; k < 2; k++) {
        SamplerConfig c = cfg_of(kinds[k], 50);
        c.eta = 1.0;
        const uint64_t all[4] = {10, 11, 12, 13}, one[1] = {12}, perm[2] = {13, 10};
        float a[16], b[4], p[8];
        cr_assert_eq(sched_sample(&c, &s, oracle_net, &o, all, 4, 4, NULL, NULL, NULL, a, NULL),
                     ERR_OK);
        cr_assert_eq(sched_sample(&c, &s, oracle_net, &o, one, 1, 4, NULL, NULL, NULL, b, NULL),
                     ERR_OK);
        cr_assert_eq(sched_sample(&c, &s, oracle_net, &o, perm, 2, 4, NULL, NULL, NULL, p, NULL),
                     ERR_OK);
        cr_assert_eq(memcmp(a + 8, b, 4 * sizeof(float)), 0);
        cr_assert_eq(memcmp(a + 12, p, 4 * sizeof(float)), 0);
        cr_assert_eq(memcmp(a, p + 4, 4 * sizeof(float)), 0);
        /* a different seed gives different samples */
        c.seed++;
        cr_assert_eq(sched_sample(&c, &s, oracle_net, &o, one, 1, 4, NULL, NULL, NULL, p, NULL),
                     ERR_OK);
        cr_assert_neq(memcmp(p, b, 4 * sizeof(float)), 0);
    }
    sched_free(&s);
}

Test(sampler, nfe_counts)
{
    Schedule sd = lin(SCHED_PRED_EPS), sf;
    cr_assert_eq(sched_init_flow(&sf, 0.0), ERR_OK);
    const struct { SamplerKind k; int steps; SchedSpacing sp; uint64_t nfe; } cases[] = {
        {SAMPLER_DDPM, 1000, SCHED_SPACING_UNIFORM, 1000},
        {SAMPLER_DDIM, 50, SCHED_SPACING_UNIFORM, 50},
        {SAMPLER_DDIM, 50, SCHED_SPACING_QUADRATIC, 49},
        {SAMPLER_DPMPP_2M, 20, SCHED_SPACING_TRAILING, 20},
        {SAMPLER_EULER, 10, SCHED_SPACING_UNIFORM, 10},
        {SAMPLER_MIDPOINT, 10, SCHED_SPACING_UNIFORM, 20},
        {SAMPLER_HEUN, 10, SCHED_SPACING_UNIFORM, 20},
        {SAMPLER_RK4, 10, SCHED_SPACING_UNIFORM, 40},
    };
    const double mu[4] = {0, 0, 0, 0};
    uint64_t idx[2] = {0, 1};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int flow = cases[i].k >= SAMPLER_EULER;
        Schedule *s = flow ? &sf : &sd;
        Oracle o = gauss(flow ? ORACLE_TIME_FLOW : ORACLE_TIME_INDEX, &sd, SCHED_PRED_EPS, 2, 1, mu,
                         1.0);
        SamplerConfig c = cfg_of(cases[i].k, cases[i].steps);
        c.spacing = cases[i].sp;
        SampleStats st;
        double x[4];
        uint64_t pre;
        cr_assert_eq(sampler_nfe(&c, s, &pre), ERR_OK);
        cr_assert_eq(sched_sample_d(&c, s, oracle_net_d, &o, idx, 2, 2, NULL, NULL, NULL, x, &st),
                     ERR_OK);
        cr_assert_eq(st.nfe, cases[i].nfe, "%s: nfe %llu", sampler_kind_name(cases[i].k),
                     (unsigned long long)st.nfe);
        cr_assert_eq(pre, cases[i].nfe);
        cr_assert_eq(st.net_calls, cases[i].nfe);
        cr_assert_eq(o.evals, 2 * cases[i].nfe);
    }
    sched_free(&sd);
    sched_free(&sf);
}

Test(sampler, float_api_matches_double_api)
{
    Schedule s = lin(SCHED_PRED_EPS);
    Oracle o = points(ORACLE_TIME_INDEX, &s, SCHED_PRED_EPS, 4, 4, PTS4);
    uint64_t *idx = iota_idx(3, 0);
    SamplerConfig c = cfg_of(SAMPLER_DDIM, 50);
    float xf[12];
    double xd[12];
    cr_assert_eq(sched_sample(&c, &s, oracle_net, &o, idx, 3, 4, NULL, NULL, NULL, xf, NULL),
                 ERR_OK);
    cr_assert_eq(sched_sample_d(&c, &s, oracle_net_d, &o, idx, 3, 4, NULL, NULL, NULL, xd, NULL),
                 ERR_OK);
    for (int i = 0; i < 12; i++) cr_assert(fabs((double)xf[i] - xd[i]) < 1e-4);
    free(idx);
    sched_free(&s);
}

Test(sampler, x0_clipping)
{
    Schedule s = lin(SCHED_PRED_EPS);
    size_t B = 64, D = 2;
    double mu[4] = {3.0, 3.0, 3.0, 3.0};
    Oracle o = gauss(ORACLE_TIME_INDEX, &s, SCHED_PRED_EPS, D, 1, mu, 0.1);
    uint64_t *idx = iota_idx(B, 0);
    double *x = malloc(B * D * sizeof(double));
    const SamplerKind kinds[] = {SAMPLER_DDPM, SAMPLER_DDIM, SAMPLER_DPMPP_2M};
    for (int k = 0; k < 3; k++) {
        SamplerConfig c = cfg_of(kinds[k], 50);
        cr_assert_eq(sched_sample_d(&c, &s, oracle_net_d, &o, idx, B, D, NULL, NULL, NULL, x, NULL),
                     ERR_OK);
        double m = 0;
        for (size_t i = 0; i < B * D; i++) m += x[i] / (double)(B * D);
        cr_assert(fabs(m - 3.0) < 0.1, "%s unclipped mean %g", sampler_kind_name(kinds[k]), m);
        c.clip_x0 = 1;
        c.clip = 1.0;
        cr_assert_eq(sched_sample_d(&c, &s, oracle_net_d, &o, idx, B, D, NULL, NULL, NULL, x, NULL),
                     ERR_OK);
        for (size_t i = 0; i < B * D; i++)
            cr_assert(x[i] <= 1.0 + 1e-12 && x[i] >= -1.0 - 1e-12, "%s: %g",
                      sampler_kind_name(kinds[k]), x[i]);
    }
    free(x);
    free(idx);
    sched_free(&s);
}

static int failing_net(void *ctx, const double *x, const double *t, const int *labels, size_t B,
                       size_t D, double *out)
{
    (void)ctx; (void)x; (void)t; (void)labels; (void)B; (void)D; (void)out;
    return ERR(ERR_NUMERIC, "network blew up");
}

static int nan_net(void *ctx, const double *x, const double *t, const int *labels, size_t B,
                   size_t D, double *out)
{
    (void)ctx; (void)x; (void)t; (void)labels;
    for (size_t i = 0; i < B * D; i++) out[i] = NAN;
    return ERR_OK;
}

Test(sampler, rejects_bad_input_and_propagates_errors)
{
    Schedule sd = lin(SCHED_PRED_EPS), sf;
    cr_assert_eq(sched_init_flow(&sf, 0.0), ERR_OK);
    const double mu[4] = {0, 0, 0, 0};
    Oracle o = gauss(ORACLE_TIME_INDEX, &sd, SCHED_PRED_EPS, 2, 1, mu, 1.0);
    uint64_t idx[1] = {0};
    double x[2];
    float mask[2] = {1.0f, 0.5f}, known[2] = {0, 0};
    SamplerConfig c = cfg_of(SAMPLER_EULER, 10);
    cr_assert_eq(sched_sample_d(&c, &sd, oracle_net_d, &o, idx, 1, 2, NULL, NULL, NULL, x, NULL),
                 ERR_ARG);
    c = cfg_of(SAMPLER_DDIM, 10);
    cr_assert_eq(sched_sample_d(&c, &sf, oracle_net_d, &o, idx, 1, 2, NULL, NULL, NULL, x, NULL),
                 ERR_ARG);
    cr_assert_eq(sched_sample_d(&c, &sd, oracle_net_d, &o, idx, 1, 2, NULL, mask, known, x, NULL),
                 ERR_ARG);
    cr_assert_eq(sched_sample_d(&c, &sd, oracle_net_d, &o, idx, 1, 2, NULL, mask, NULL, x, NULL),
                 ERR_ARG);
    c.steps = 1001;
    cr_assert_eq(sched_sample_d(&c, &sd, oracle_net_d, &o, idx, 1, 2, NULL, NULL, NULL, x, NULL),
                 ERR_ARG);
    c.steps = 0;
    cr_assert_eq(sched_sample_d(&c, &sd, oracle_net_d, &o, idx, 1, 2, NULL, NULL, NULL, x, NULL),
                 ERR_ARG);
    c = cfg_of(SAMPLER_DDIM, 10);
    c.eta = -1;
    cr_assert_eq(sched_sample_d(&c, &sd, oracle_net_d, &o, idx, 1, 2, NULL, NULL, NULL, x, NULL),
                 ERR_ARG);
    c = cfg_of(SAMPLER_HEUN, 10);
    c.clip_x0 = 1;
    cr_assert_eq(sched_sample_d(&c, &sf, oracle_net_d, &o, idx, 1, 2, NULL, NULL, NULL, x, NULL),
                 ERR_ARG);
    c = cfg_of(SAMPLER_DDIM, 10);
    cr_assert_eq(sched_sample_d(&c, &sd, failing_net, NULL, idx, 1, 2, NULL, NULL, NULL, x, NULL),
                 ERR_NUMERIC);
    cr_assert_str_eq(err_message(), "network blew up");
    cr_assert_eq(sched_sample_d(&c, &sd, nan_net, NULL, idx, 1, 2, NULL, NULL, NULL, x, NULL),
                 ERR_NUMERIC);
    cr_assert_str_eq(sampler_kind_name(SAMPLER_DPMPP_2M), "dpmpp2m"); /* as job specs spell it */
    cr_assert_str_eq(sampler_kind_name((SamplerKind)99), "?");
    sched_free(&sd);
    sched_free(&sf);
}

/* sched_sample_from: a given x_T replaces the keyed noise; with DDIM eta 0 (or a flow solver) a
 * sample is a function of its row alone, and starting from the keyed noise (rounded to float)
 * reproduces sched_sample to float precision. */
Test(sampler, sample_from_given_initial_states)
{
    Schedule s = lin(SCHED_PRED_EPS), f;
    cr_assert_eq(sched_init_flow(&f, 0.0), ERR_OK);
    double mu[8] = {0.3, -0.2, 0.1, 0.6, 0.3, -0.2, 0.1, 0.6};
    Oracle o = gauss(ORACLE_TIME_INDEX, &s, SCHED_PRED_EPS, 4, 1, mu, 0.4);
    const uint64_t idx[3] = {5, 6, 7}, other[3] = {40, 41, 42};
    double z[12];
    sched_initial_noise(9, idx, 3, 4, z);
    float x0[12], rev[12], a[12], b[12], ref[12];
    for (int i = 0; i < 12; i++) x0[i] = (float)z[i];
    for (int r = 0; r < 3; r++) memcpy(rev + 4 * r, x0 + 4 * (2 - r), 4 * sizeof(float));
    SamplerConfig c = cfg_of(SAMPLER_DDIM, 20);
    c.seed = 9;
    cr_assert_eq(sched_sample(&c, &s, oracle_net, &o, idx, 3, 4, NULL, NULL, NULL, ref, NULL), ERR_OK);
    cr_assert_eq(sched_sample_from(&c, &s, oracle_net, &o, idx, 3, 4, NULL, NULL, NULL, x0, a, NULL),
                 ERR_OK);
    for (int i = 0; i < 12; i++) cr_assert(fabsf(a[i] - ref[i]) < 1e-5f, "%d: %g vs %g", i, (double)a[i], (double)ref[i]);
    /* eta 0: reversed rows under other indices give the reversed samples, bit for bit */
    cr_assert_eq(sched_sample_from(&c, &s, oracle_net, &o, other, 3, 4, NULL, NULL, NULL, rev, b,
                                   NULL), ERR_OK);
    for (int r = 0; r < 3; r++) cr_assert_eq(memcmp(b + 4 * r, a + 4 * (2 - r), 4 * sizeof(float)), 0);
    /* eta 1: the step noise is still keyed by the index */
    c.eta = 1.0;
    cr_assert_eq(sched_sample_from(&c, &s, oracle_net, &o, idx, 3, 4, NULL, NULL, NULL, x0, a, NULL),
                 ERR_OK);
    cr_assert_eq(sched_sample_from(&c, &s, oracle_net, &o, other, 3, 4, NULL, NULL, NULL, x0, b,
                                   NULL), ERR_OK);
    cr_assert_neq(memcmp(a, b, sizeof a), 0);
    /* a flow solver from the same states */
    SamplerConfig e = cfg_of(SAMPLER_EULER, 8);
    Oracle v = gauss(ORACLE_TIME_FLOW, NULL, SCHED_PRED_VELOCITY, 4, 1, mu, 0.4);
    cr_assert_eq(sched_sample_from(&e, &f, oracle_net, &v, idx, 3, 4, NULL, NULL, NULL, x0, a, NULL),
                 ERR_OK);
    cr_assert_eq(sched_sample_from(&e, &f, oracle_net, &v, other, 3, 4, NULL, NULL, NULL, x0, b,
                                   NULL), ERR_OK);
    cr_assert_eq(memcmp(a, b, sizeof a), 0);
    /* a non-finite start is an error */
    x0[5] = NAN;
    cr_assert_eq(sched_sample_from(&c, &s, oracle_net, &o, idx, 3, 4, NULL, NULL, NULL, x0, a, NULL),
                 ERR_NUMERIC);
    err_clear();
    sched_free(&s);
    sched_free(&f);
}
