/* sched/sde.c - see sde.h. All arithmetic is double. */
#include "sched/sde.h"

#include <math.h>
#include <string.h>

#include "core/err.h"       /* ERR, TRY */
#include "core/mem.h"       /* xmalloc, xcalloc, xfree, ASSERT */
#include "core/rng.h"       /* rng_fill_normal_f64, rng_stream, rng_init, rng_u32 */
#include "sched/schedule.h" /* sched_vp_linear_cont */

static const double LOG_2PI = 1.8378770664093454836;

/* ---- the SDEs ----------------------------------------------------------------------------- */

int sde_init_vp(Sde *sde, double bmin, double bmax, double t_eps)
{
    memset(sde, 0, sizeof *sde);
    if (!(bmin > 0.0 && bmax >= bmin && isfinite(bmax)))
        return ERR(ERR_ARG, "VP SDE: need 0 < beta_min <= beta_max, got %g and %g", bmin, bmax);
    if (!(t_eps > 0.0 && t_eps < 1.0))
        return ERR(ERR_ARG, "SDE: t_eps must be in (0, 1), got %g", t_eps);
    sde->kind = SDE_VP;
    sde->bmin = bmin;
    sde->bmax = bmax;
    sde->t_eps = t_eps;
    return ERR_OK;
}

int sde_init_ve(Sde *sde, double smin, double smax, double t_eps)
{
    memset(sde, 0, sizeof *sde);
    if (!(smin > 0.0 && smax > smin && isfinite(smax)))
        return ERR(ERR_ARG, "VE SDE: need 0 < sigma_min < sigma_max, got %g and %g", smin, smax);
    if (!(t_eps >= 0.0 && t_eps < 1.0))
        return ERR(ERR_ARG, "SDE: t_eps must be in [0, 1), got %g", t_eps);
    sde->kind = SDE_VE;
    sde->smin = smin;
    sde->smax = smax;
    sde->t_eps = t_eps;
    return ERR_OK;
}

void sde_marginal(const Sde *sde, double t, double *a, double *s)
{
    if (sde->kind == SDE_VP) {
        sched_vp_linear_cont(t, sde->bmin, sde->bmax, a, s);
    } else {
        *a = 1.0;
        *s = sde->smin * pow(sde->smax / sde->smin, t);
    }
}

void sde_coef(const Sde *sde, double t, double *f, double *g2)
{
    if (sde->kind == SDE_VP) {
        double b = sde->bmin + t * (sde->bmax - sde->bmin);
        *f = -0.5 * b;
        *g2 = b;
    } else {
        double sg = sde->smin * pow(sde->smax / sde->smin, t);
        *f = 0.0;
        *g2 = 2.0 * sg * sg * log(sde->smax / sde->smin);
    }
}

double sde_prior_sd(const Sde *sde) { return sde->kind == SDE_VP ? 1.0 : sde->smax; }

double sde_prior_logp(const Sde *sde, const double *x, size_t D)
{
    double sd = sde_prior_sd(sde), q = 0.0;
    for (size_t i = 0; i < D; i++) q += x[i] * x[i];
    return -0.5 * q / (sd * sd) - (double)D * (log(sd) + 0.5 * LOG_2PI);
}

double sde_ve_time(const Sde *sde, double sigma)
{
    return log(sigma / sde->smin) / log(sde->smax / sde->smin);
}

double sde_sigma_time(const Sde *sde, double sigma)
{
    if (sde->kind == SDE_VE) return sde_ve_time(sde, sigma);
    /* (bmax - bmin)/2 t^2 + bmin t + log(1 - sigma^2) = 0, the positive root */
    double c = -log1p(-sigma * sigma), h = 0.5 * (sde->bmax - sde->bmin);
    if (h <= 0.0) return c / sde->bmin;
    /* t = 2c / (bmin + sqrt(bmin^2 + 4 h c)): no cancellation for small c */
    return 2.0 * c / (sde->bmin + sqrt(sde->bmin * sde->bmin + 4.0 * h * c));
}

void sde_geometric_levels(double smax, double smin, int L, double *sig)
{
    ASSERT(L >= 2);
    double r = log(smin / smax);
    for (int i = 0; i < L; i++) sig[i] = smax * exp(r * (double)i / (double)(L - 1));
    sig[L - 1] = smin;
}

/* ---- denoising score matching ------------------------------------------------------------ */

double sde_dsm_target(const Sde *sde, SdeOut out, SdeWeight wt, double t, const double *eps,
                      double *target, size_t n)
{
    double a, s, f, g2;
    sde_marginal(sde, t, &a, &s);
    sde_coef(sde, t, &f, &g2);
    double lambda = wt == SDE_WEIGHT_SIGMA2 ? s * s : g2;
    if (out == SDE_OUT_EPS) {
        memcpy(target, eps, n * sizeof(double));
        return lambda / (s * s);
    }
    sched_eps_to_score(s, eps, target, n);
    return lambda;
}

/* ---- shared helpers ----------------------------------------------------------------------- */

void sde_sampler_config_default(SdeSamplerConfig *c)
{
    memset(c, 0, sizeof *c);
    c->predictor = SDE_PRED_EM;
    c->steps = 1000;
    c->correctors = 0;
    c->snr = 0.16;
    c->denoise = 0;
    c->seed = 0;
}

static int check_batch(size_t B, size_t D)
{
    if (B == 0 || D == 0) return ERR(ERR_ARG, "SDE sampler: empty batch (B = %zu, D = %zu)", B, D);
    return ERR_OK;
}

/* score (B, D) of the network at state x (B, D), time t for every row. */
static int eval_score(const Sde *sde, SdeOut out, SchedNetFnD net, void *ctx, const double *x,
                      double t, size_t B, size_t D, const int *labels, double *tb, double *score,
                      SdeStats *st)
{
    for (size_t j = 0; j < B; j++) tb[j] = t;
    TRY(net(ctx, x, tb, labels, B, D, score));
    st->nfe++;
    if (out == SDE_OUT_EPS) {
        double a, s;
        sde_marginal(sde, t, &a, &s);
        sched_eps_to_score(s, score, score, B * D);
    }
    return ERR_OK;
}

static void draw(uint64_t seed, const uint64_t *idx, size_t B, size_t D, uint32_t sub, double *z)
{
    for (size_t j = 0; j < B; j++)
        rng_fill_normal_f64(z + j * D, D, seed, rng_stream(RNG_P_SAMPLE_STEP, idx[j]), sub);
}

static int check_finite(const double *x, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            ERR(ERR_NUMERIC, "%s produced a non-finite value at element %zu", what, i);
            err_hint("check the network output (NaN/Inf) and the step sizes");
            return ERR_NUMERIC;
        }
    return ERR_OK;
}

/* ---- reverse SDE and predictor-corrector -------------------------------------------------- */

int sde_reverse_run_d(const SdeSamplerConfig *c, const Sde *sde, SdeOut out, const double *t,
                      size_t N, SchedNetFnD net, void *ctx, const uint64_t *sample_idx, size_t B,
                      size_t D, const int *labels, const double *noise, double *x, SdeStats *st)
{
    TRY(check_batch(B, D));
    if (N < 1) return ERR(ERR_ARG, "SDE sampler: need at least one step");
    if (c->predictor != SDE_PRED_NONE && c->predictor != SDE_PRED_EM &&
        c->predictor != SDE_PRED_REVERSE)
        return ERR(ERR_ARG, "SDE sampler: unknown predictor %d", (int)c->predictor);
    if (c->correctors < 0) return ERR(ERR_ARG, "SDE sampler: correctors must be >= 0");
    if (c->correctors > 0 && !(c->snr > 0.0))
        return ERR(ERR_ARG, "SDE sampler: corrector snr must be > 0, got %g", c->snr);
    if (noise && c->correctors > 0)
        return ERR(ERR_ARG, "SDE sampler: explicit noise is for the predictor alone");
    for (size_t k = 0; k < N; k++)
        if (!(t[k + 1] < t[k]) || !(t[k + 1] > 0.0) || t[k] > 1.0)
            return ERR(ERR_ARG, "SDE sampler: times must decrease inside (0, 1] (entry %zu)",
                       k + 1);
    SdeStats local;
    if (!st) st = &local;
    memset(st, 0, sizeof *st);
    size_t n = B * D;
    double *g = xmalloc(n * sizeof(double)), *z = xmalloc(n * sizeof(double));
    double *tb = xmalloc(B * sizeof(double));
    uint32_t per_step = (uint32_t)c->correctors + 1;
    int rc = ERR_OK;
    for (size_t k = 0; k < N && rc == ERR_OK; k++) {
        double t0 = t[k], t1 = t[k + 1], dt = t0 - t1;
        double a0, s0, a1, s1;
        sde_marginal(sde, t0, &a0, &s0);
        sde_marginal(sde, t1, &a1, &s1);
        if (c->predictor != SDE_PRED_NONE) {
            if ((rc = eval_score(sde, out, net, ctx, x, t0, B, D, labels, tb, g, st)) != ERR_OK)
                break;
            if (noise)
                memcpy(z, noise + k * n, n * sizeof(double));
            else
                draw(c->seed, sample_idx, B, D, (uint32_t)k * per_step, z);
            if (c->predictor == SDE_PRED_EM) {
                double f, g2;
                sde_coef(sde, t0, &f, &g2);
                double sq = sqrt(g2 * dt);
                for (size_t i = 0; i < n; i++) x[i] += -(f * x[i] - g2 * g[i]) * dt + sq * z[i];
            } else if (sde->kind == SDE_VP) {
                double alpha = (a0 / a1) * (a0 / a1), beta = 1.0 - alpha, sa = sqrt(alpha);
                double sb = sqrt(beta);
                for (size_t i = 0; i < n; i++) x[i] = (2.0 - sa) * x[i] + beta * g[i] + sb * z[i];
            } else {
                double G2 = s0 * s0 - s1 * s1, G = sqrt(G2);
                for (size_t i = 0; i < n; i++) x[i] += G2 * g[i] + G * z[i];
            }
        }
        /* Langevin corrector at the new time, step from the signal-to-noise rule per sample */
        double alpha = sde->kind == SDE_VP ? (a0 / a1) * (a0 / a1) : 1.0;
        for (int m = 0; m < c->correctors && rc == ERR_OK; m++) {
            if ((rc = eval_score(sde, out, net, ctx, x, t1, B, D, labels, tb, g, st)) != ERR_OK)
                break;
            draw(c->seed, sample_idx, B, D, (uint32_t)k * per_step + 1u + (uint32_t)m, z);
            for (size_t j = 0; j < B; j++) {
                double gn = 0.0, zn = 0.0;
                for (size_t i = 0; i < D; i++) {
                    gn += g[j * D + i] * g[j * D + i];
                    zn += z[j * D + i] * z[j * D + i];
                }
                double e = gn > 0.0 ? 2.0 * alpha * c->snr * c->snr * zn / gn : 0.0;
                double se = sqrt(2.0 * e);
                for (size_t i = 0; i < D; i++) x[j * D + i] += e * g[j * D + i] + se * z[j * D + i];
            }
        }
    }
    if (rc == ERR_OK && c->denoise) {
        double a, s;
        sde_marginal(sde, t[N], &a, &s);
        rc = eval_score(sde, out, net, ctx, x, t[N], B, D, labels, tb, g, st);
        if (rc == ERR_OK)
            for (size_t i = 0; i < n; i++) x[i] = (x[i] + s * s * g[i]) / a;
    }
    st->nfe_mean = (double)st->nfe;
    if (rc == ERR_OK) rc = check_finite(x, n, "SDE sampler");
    xfree(g);
    xfree(z);
    xfree(tb);
    return rc;
}

int sde_sample_d(const SdeSamplerConfig *c, const Sde *sde, SdeOut out, SchedNetFnD net,
                 void *ctx, const uint64_t *sample_idx, size_t B, size_t D, const int *labels,
                 double *x, SdeStats *st)
{
    TRY(check_batch(B, D));
    if (c->steps < 1) return ERR(ERR_ARG, "SDE sampler: steps must be >= 1, got %d", c->steps);
    size_t N = (size_t)c->steps;
    double *t = xmalloc((N + 1) * sizeof(double));
    for (size_t k = 0; k <= N; k++) t[k] = 1.0 - (double)k * (1.0 - sde->t_eps) / (double)N;
    t[N] = sde->t_eps;
    sched_initial_noise(c->seed, sample_idx, B, D, x);
    double sd = sde_prior_sd(sde);
    for (size_t i = 0; i < B * D; i++) x[i] *= sd;
    int rc = sde_reverse_run_d(c, sde, out, t, N, net, ctx, sample_idx, B, D, labels, NULL, x, st);
    xfree(t);
    return rc;
}

/* ---- annealed Langevin -------------------------------------------------------------------- */

int sde_langevin_sample_d(const LangevinConfig *c, const Sde *sde, SdeOut out, SchedNetFnD net,
                          void *ctx, const uint64_t *sample_idx, size_t B, size_t D,
                          const int *labels, double *x, SdeStats *st)
{
    TRY(check_batch(B, D));
    if (c->levels < 2 || c->steps < 1 || !(c->eps > 0.0))
        return ERR(ERR_ARG, "annealed Langevin: need levels >= 2, steps >= 1, eps > 0");
    double tol = 1e-12, lo, hi, a1;
    if (sde->kind == SDE_VE) {
        lo = sde->smin;
        hi = sde->smax;
    } else {
        sde_marginal(sde, sde->t_eps, &a1, &lo);
        sde_marginal(sde, 1.0, &a1, &hi);
    }
    if (!(c->sigma_min < c->sigma_max) || c->sigma_min < lo * (1 - tol) ||
        c->sigma_max > hi * (1 + tol))
        return ERR(ERR_ARG, "annealed Langevin: levels %g .. %g must lie inside the SDE's "
                            "[%g, %g]", c->sigma_min, c->sigma_max, lo, hi);
    SdeStats local;
    if (!st) st = &local;
    memset(st, 0, sizeof *st);
    size_t n = B * D, L = (size_t)c->levels;
    double *sig = xmalloc(L * sizeof(double)), *g = xmalloc(n * sizeof(double));
    double *z = xmalloc(n * sizeof(double)), *tb = xmalloc(B * sizeof(double));
    sde_geometric_levels(c->sigma_max, c->sigma_min, c->levels, sig);
    sched_initial_noise(c->seed, sample_idx, B, D, x);
    double x_sd = sde->kind == SDE_VE ? sig[0] : sde_prior_sd(sde);
    for (size_t i = 0; i < n; i++) x[i] *= x_sd;
    int rc = ERR_OK;
    double sL2 = sig[L - 1] * sig[L - 1];
    for (size_t l = 0; l < L && rc == ERR_OK; l++) {
        double a = c->eps * sig[l] * sig[l] / sL2, sa = sqrt(a);
        double tl = sde_sigma_time(sde, sig[l]);
        for (int k = 0; k < c->steps; k++) {
            if ((rc = eval_score(sde, out, net, ctx, x, tl, B, D, labels, tb, g, st)) != ERR_OK)
                break;
            draw(c->seed, sample_idx, B, D, (uint32_t)(l * (size_t)c->steps + (size_t)k), z);
            for (size_t i = 0; i < n; i++) x[i] += 0.5 * a * g[i] + sa * z[i];
        }
    }
    if (rc == ERR_OK && c->denoise) {
        double tl = sde_sigma_time(sde, sig[L - 1]), am, sm;
        sde_marginal(sde, tl, &am, &sm);
        rc = eval_score(sde, out, net, ctx, x, tl, B, D, labels, tb, g, st);
        if (rc == ERR_OK) {
            if (sde->kind == SDE_VE)
                for (size_t i = 0; i < n; i++) x[i] += sL2 * g[i];
            else
                for (size_t i = 0; i < n; i++) x[i] = (x[i] + sm * sm * g[i]) / am;
        }
    }
    st->nfe_mean = (double)st->nfe;
    if (rc == ERR_OK) rc = check_finite(x, n, "annealed Langevin");
    xfree(sig);
    xfree(g);
    xfree(z);
    xfree(tb);
    return rc;
}

/* ---- Dormand-Prince 5(4) ------------------------------------------------------------------ */

static const double DP_C[7] = {0.0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1.0, 1.0};
static const double DP_A[7][6] = {
    {0, 0, 0, 0, 0, 0},
    {1.0 / 5, 0, 0, 0, 0, 0},
    {3.0 / 40, 9.0 / 40, 0, 0, 0, 0},
    {44.0 / 45, -56.0 / 15, 32.0 / 9, 0, 0, 0},
    {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729, 0, 0},
    {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656, 0},
    {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84}};
/* fifth-order weights minus the embedded fourth-order ones */
static const double DP_E[7] = {71.0 / 57600,      0.0,         -71.0 / 16695, 71.0 / 1920,
                               -17253.0 / 339200, 22.0 / 525, -1.0 / 40};

typedef struct {
    size_t B, D;
    double *k[7]; /* (B, D) each */
    double *y5, *ys, *tau_s, *dy;
    size_t *rows;
} Rk45Work;

/* Evaluate F at the rows in `act` (nact of them): ys rows gathered, result into out rows. */
static int rk45_eval(OdeFieldFn F, void *ctx, Rk45Work *w, const size_t *act, size_t nact,
                     const double *tau, const double *y, double *out)
{
    size_t D = w->D;
    for (size_t q = 0; q < nact; q++) {
        size_t j = act[q];
        w->rows[q] = j;
        w->tau_s[q] = tau[j];
        memcpy(w->ys + q * D, y + j * D, D * sizeof(double));
    }
    TRY(F(ctx, w->rows, nact, D, w->tau_s, w->ys, w->dy));
    for (size_t q = 0; q < nact; q++) memcpy(out + act[q] * D, w->dy + q * D, D * sizeof(double));
    return ERR_OK;
}

static double rms_scaled(const double *e, const double *y0, const double *y1, size_t D,
                         double rtol, double atol)
{
    double acc = 0.0;
    for (size_t i = 0; i < D; i++) {
        double sc = atol + rtol * fmax(fabs(y0[i]), y1 ? fabs(y1[i]) : 0.0);
        double r = e[i] / sc;
        acc += r * r;
    }
    return sqrt(acc / (double)D);
}

/* The largest and the mean number of network evaluations over the B samples of a batch. */
static void nfe_stats(SdeStats *st, const uint64_t *nfe, size_t B)
{
    uint64_t mx = 0;
    double mean = 0.0;
    for (size_t j = 0; j < B; j++) {
        mx = nfe[j] > mx ? nfe[j] : mx;
        mean += (double)nfe[j] / (double)B;
    }
    st->nfe = mx;
    st->nfe_mean = mean;
}

int ode_rk45_d(const OdeAdaptive *ad, OdeFieldFn F, void *ctx, size_t B, size_t D, double tau0,
               double tau1, double *y, SdeStats *st)
{
    if (B == 0 || D == 0) return ERR(ERR_ARG, "RK45: empty batch");
    if (!(ad->rtol > 0.0) || !(ad->atol > 0.0))
        return ERR(ERR_ARG, "RK45: rtol and atol must be > 0, got %g and %g", ad->rtol, ad->atol);
    if (ad->max_steps < 1) return ERR(ERR_ARG, "RK45: max_steps must be >= 1");
    SdeStats local;
    if (!st) st = &local;
    memset(st, 0, sizeof *st);
    if (tau1 == tau0) return ERR_OK;
    double dir = tau1 > tau0 ? 1.0 : -1.0, span = fabs(tau1 - tau0);
    size_t n = B * D;
    Rk45Work w;
    w.B = B;
    w.D = D;
    for (int s = 0; s < 7; s++) w.k[s] = xcalloc(n, sizeof(double));
    w.y5 = xmalloc(n * sizeof(double));
    w.ys = xmalloc(n * sizeof(double));
    w.dy = xmalloc(n * sizeof(double));
    w.tau_s = xmalloc(B * sizeof(double));
    w.rows = xmalloc(B * sizeof(size_t));
    double *tau = xmalloc(B * sizeof(double)), *h = xmalloc(B * sizeof(double));
    double *tstage = xmalloc(B * sizeof(double)), *ystage = xmalloc(n * sizeof(double));
    size_t *act = xmalloc(B * sizeof(size_t));
    uint64_t *evals = xcalloc(B, sizeof(uint64_t)), *attempts = xcalloc(B, sizeof(uint64_t));
    int rc = ERR_OK;
    for (size_t j = 0; j < B; j++) {
        tau[j] = tau0;
        act[j] = j;
    }
    size_t nact = B;
    /* k1 at the start, then Hairer's initial step (one Euler probe per row) */
    rc = rk45_eval(F, ctx, &w, act, nact, tau, y, w.k[0]);
    if (rc == ERR_OK) {
        for (size_t j = 0; j < B; j++) {
            const double *yj = y + j * D, *fj = w.k[0] + j * D;
            double d0 = rms_scaled(yj, yj, NULL, D, ad->rtol, ad->atol);
            double d1 = rms_scaled(fj, yj, NULL, D, ad->rtol, ad->atol);
            double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
            h[j] = fmin(h0, span);
            for (size_t i = 0; i < D; i++) ystage[j * D + i] = yj[i] + dir * h[j] * fj[i];
            tstage[j] = tau0 + dir * h[j];
        }
        rc = rk45_eval(F, ctx, &w, act, nact, tstage, ystage, w.k[1]);
    }
    if (rc == ERR_OK) {
        for (size_t j = 0; j < B; j++) {
            evals[j] = 2;
            double acc = 0.0;
            for (size_t i = 0; i < D; i++) {
                double sc = ad->atol + ad->rtol * fabs(y[j * D + i]);
                double r = (w.k[1][j * D + i] - w.k[0][j * D + i]) / sc;
                acc += r * r;
            }
            double d1 = rms_scaled(w.k[0] + j * D, y + j * D, NULL, D, ad->rtol, ad->atol);
            double d2 = sqrt(acc / (double)D) / h[j];
            double m = fmax(d1, d2);
            double h1 = m <= 1e-15 ? fmax(1e-6, h[j] * 1e-3) : pow(0.01 / m, 0.2);
            h[j] = fmin(fmin(100.0 * h[j], h1), span);
        }
    }
    while (rc == ERR_OK && nact > 0) {
        /* stages 2..7 for every active row, in lockstep */
        for (int s = 1; s < 7 && rc == ERR_OK; s++) {
            for (size_t q = 0; q < nact; q++) {
                size_t j = act[q];
                double hj = dir * h[j];
                tstage[j] = tau[j] + DP_C[s] * hj;
                for (size_t i = 0; i < D; i++) {
                    double acc = y[j * D + i];
                    for (int r = 0; r < s; r++) acc += hj * DP_A[s][r] * w.k[r][j * D + i];
                    ystage[j * D + i] = acc;
                }
                if (s == 6) { /* the fifth-order solution */
                    memcpy(w.y5 + j * D, ystage + j * D, D * sizeof(double));
                    tstage[j] = h[j] >= fabs(tau1 - tau[j]) ? tau1 : tau[j] + hj;
                }
            }
            rc = rk45_eval(F, ctx, &w, act, nact, tstage, ystage, w.k[s]);
        }
        if (rc != ERR_OK) break;
        size_t keep = 0;
        for (size_t q = 0; q < nact; q++) {
            size_t j = act[q];
            evals[j] += 6;
            attempts[j]++;
            double hj = dir * h[j], acc = 0.0;
            for (size_t i = 0; i < D; i++) {
                double e = 0.0;
                for (int s = 0; s < 7; s++) e += DP_E[s] * w.k[s][j * D + i];
                e *= hj;
                double sc = ad->atol + ad->rtol * fmax(fabs(y[j * D + i]), fabs(w.y5[j * D + i]));
                acc += (e / sc) * (e / sc);
            }
            double err = sqrt(acc / (double)D);
            double fac = err == 0.0 ? 5.0 : 0.9 * pow(err, -0.2);
            if (err <= 1.0) {
                int last = h[j] >= fabs(tau1 - tau[j]);
                memcpy(y + j * D, w.y5 + j * D, D * sizeof(double));
                memcpy(w.k[0] + j * D, w.k[6] + j * D, D * sizeof(double)); /* FSAL */
                tau[j] = last ? tau1 : tau[j] + hj;
                st->accepted++;
                h[j] *= fmin(5.0, fmax(0.2, fac));
                if (last) continue; /* row done */
            } else {
                st->rejected++;
                h[j] *= fmin(1.0, fmax(0.2, fac));
            }
            h[j] = fmin(h[j], fabs(tau1 - tau[j]));
            if (attempts[j] >= (uint64_t)ad->max_steps) {
                rc = ERR(ERR_NUMERIC, "RK45: row %zu needed more than %d steps (at tau %g)", j,
                         ad->max_steps, tau[j]);
                err_hint("raise rtol/atol or max_steps; a stiff or non-finite field also does this");
                break;
            }
            if (!(h[j] > 1e-14 * span)) {
                rc = ERR(ERR_NUMERIC, "RK45: step size underflow on row %zu at tau %g", j, tau[j]);
                break;
            }
            act[keep++] = j;
        }
        nact = keep;
    }
    nfe_stats(st, evals, B);
    for (int s = 0; s < 7; s++) xfree(w.k[s]);
    xfree(w.y5);
    xfree(w.ys);
    xfree(w.dy);
    xfree(w.tau_s);
    xfree(w.rows);
    xfree(tau);
    xfree(h);
    xfree(tstage);
    xfree(ystage);
    xfree(act);
    xfree(evals);
    xfree(attempts);
    if (rc == ERR_OK) rc = check_finite(y, n, "RK45");
    return rc;
}

/* ---- probability-flow ODE as a field in tau ----------------------------------------------- */

/* The PF-ODE seen as dx/dtau on tau in [0, 1], with t = t_hi + tau (t_lo - t_hi): sampling goes
 * t_hi = 1 -> t_lo = t_eps, likelihood t_hi = t_eps -> t_lo = 1. Guidance u + w (c - u) on the
 * network output (affine in it, so it is guidance on F). With div set, rows carry D + 1 values
 * (x, l) and dl/dtau = (t_lo - t_hi) div F. */
typedef struct {
    const Sde *sde;
    SdeOut out;
    int flow;        /* velocity network on the flow path instead of an SDE */
    SchedNetFnD net;
    void *ctx;
    const int *labels;
    double w;        /* guidance */
    double t_hi, t_lo;
    size_t D;        /* data dimension */
    int div;         /* 0 none, else 1 + SdeDiv */
    SchedJvpFnD jvp;
    double fd_h;
    const double *probe; /* (Btot, D) Rademacher, for Hutchinson */
    uint64_t *nfe;   /* per original row */
    uint64_t *njvp;
    /* scratch, grown on demand */
    size_t cap;
    double *x, *t, *o, *o2, *x2, *v, *jv, *xp;
    int *lab, *lab2;
} PfField;

static void pf_grow(PfField *p, size_t B)
{
    if (B <= p->cap) return;
    size_t D = p->D, n = 2 * B * D;
    p->x = xrealloc(p->x, n * sizeof(double));
    p->t = xrealloc(p->t, 2 * B * sizeof(double));
    p->o = xrealloc(p->o, n * sizeof(double));
    p->o2 = xrealloc(p->o2, n * sizeof(double));
    p->x2 = xrealloc(p->x2, n * sizeof(double));
    p->v = xrealloc(p->v, n * sizeof(double));
    p->jv = xrealloc(p->jv, n * sizeof(double));
    p->xp = xrealloc(p->xp, n * sizeof(double));
    p->lab = xrealloc(p->lab, 2 * B * sizeof(int));
    p->lab2 = xrealloc(p->lab2, 2 * B * sizeof(int));
    p->cap = B;
}

static void pf_free(PfField *p)
{
    xfree(p->x);
    xfree(p->t);
    xfree(p->o);
    xfree(p->o2);
    xfree(p->x2);
    xfree(p->v);
    xfree(p->jv);
    xfree(p->xp);
    xfree(p->lab);
    xfree(p->lab2);
}

/* Guided network output o (B, D) at x (B, D), times t (B); labels of the rows in p->lab. */
static int pf_net(PfField *p, const size_t *rows, size_t B, const double *x, const double *t,
                  double *o)
{
    size_t D = p->D, n = B * D;
    const int *lab = p->labels ? p->lab : NULL;
    GuideMode mode = sched_guide_mode(p->labels != NULL, p->w);
    if (mode != GUIDE_BLEND) {
        if (mode == GUIDE_UNCOND) {
            for (size_t q = 0; q < B; q++) p->lab2[q] = -1;
            lab = p->lab2;
        }
        TRY(p->net(p->ctx, x, t, lab, B, D, o));
        for (size_t q = 0; q < B; q++) p->nfe[rows[q]] += 1;
        return ERR_OK;
    }
    memcpy(p->x2, x, n * sizeof(double));
    memcpy(p->x2 + n, x, n * sizeof(double));
    for (size_t q = 0; q < B; q++) {
        p->t[B + q] = t[q];
        p->lab2[q] = p->lab[q];
        p->lab2[B + q] = -1;
    }
    double *tt = p->t;
    if (t != tt) memcpy(tt, t, B * sizeof(double));
    TRY(p->net(p->ctx, p->x2, tt, p->lab2, 2 * B, D, p->o2));
    for (size_t i = 0; i < n; i++) o[i] = p->o2[n + i] + p->w * (p->o2[i] - p->o2[n + i]);
    for (size_t q = 0; q < B; q++) p->nfe[rows[q]] += 2;
    return ERR_OK;
}

/* Directional derivative jv = J v of the network output at x (J of the raw output). */
static int pf_jv(PfField *p, const size_t *rows, size_t B, const double *x, const double *t,
                 const double *v, double *jv)
{
    size_t D = p->D, n = B * D;
    if (p->jvp) {
        TRY(p->jvp(p->ctx, x, t, p->labels ? p->lab : NULL, B, D, v, p->o2, jv));
        for (size_t q = 0; q < B; q++) p->njvp[rows[q]] += 1;
        return ERR_OK;
    }
    double hh = p->fd_h;
    for (size_t i = 0; i < n; i++) p->xp[i] = x[i] + hh * v[i];
    TRY(pf_net(p, rows, B, p->xp, t, jv));
    for (size_t i = 0; i < n; i++) p->xp[i] = x[i] - hh * v[i];
    double *tmp = xmalloc(n * sizeof(double));
    int rc = pf_net(p, rows, B, p->xp, t, tmp);
    if (rc == ERR_OK)
        for (size_t i = 0; i < n; i++) jv[i] = (jv[i] - tmp[i]) / (2.0 * hh);
    xfree(tmp);
    return rc;
}

static int pf_field(void *vctx, const size_t *rows, size_t B, size_t Dy, const double *tau,
                    const double *y, double *dy)
{
    PfField *p = vctx;
    size_t D = p->D;
    ASSERT(Dy == D + (p->div ? 1 : 0));
    pf_grow(p, B);
    double span = p->t_lo - p->t_hi;
    for (size_t q = 0; q < B; q++) {
        memcpy(p->x + q * D, y + q * Dy, D * sizeof(double));
        p->t[q] = p->flow ? tau[q] : p->t_hi + tau[q] * span;
        if (p->labels) p->lab[q] = p->labels[rows[q]];
    }
    /* copy of t: pf_net may reuse p->t for the guided batch */
    double *tq = xmalloc(B * sizeof(double));
    memcpy(tq, p->t, B * sizeof(double));
    int rc = pf_net(p, rows, B, p->x, tq, p->o);
    double *tr = NULL;
    if (rc == ERR_OK && p->div) {
        tr = xcalloc(B, sizeof(double));
        if (p->div - 1 == SDE_DIV_EXACT) {
            for (size_t d = 0; d < D && rc == ERR_OK; d++) {
                memset(p->v, 0, B * D * sizeof(double));
                for (size_t q = 0; q < B; q++) p->v[q * D + d] = 1.0;
                rc = pf_jv(p, rows, B, p->x, tq, p->v, p->jv);
                for (size_t q = 0; q < B && rc == ERR_OK; q++) tr[q] += p->jv[q * D + d];
            }
        } else {
            for (size_t q = 0; q < B; q++)
                memcpy(p->v + q * D, p->probe + rows[q] * D, D * sizeof(double));
            rc = pf_jv(p, rows, B, p->x, tq, p->v, p->jv);
            for (size_t q = 0; q < B && rc == ERR_OK; q++) {
                double acc = 0.0;
                for (size_t i = 0; i < D; i++) acc += p->v[q * D + i] * p->jv[q * D + i];
                tr[q] = acc;
            }
        }
    }
    for (size_t q = 0; q < B && rc == ERR_OK; q++) {
        const double *x = p->x + q * D, *o = p->o + q * D;
        double *d = dy + q * Dy;
        if (p->flow) { /* dx/dtau = v; div v = tr */
            for (size_t i = 0; i < D; i++) d[i] = o[i];
            if (p->div) d[D] = tr[q];
            continue;
        }
        double t = tq[q], a, s, f, g2;
        sde_marginal(p->sde, t, &a, &s);
        sde_coef(p->sde, t, &f, &g2);
        /* F = f x - g2/2 score; score = o (SCORE) or -o/s (EPS) */
        double c = p->out == SDE_OUT_EPS ? 0.5 * g2 / s : -0.5 * g2;
        for (size_t i = 0; i < D; i++) d[i] = span * (f * x[i] + c * o[i]);
        if (p->div) d[D] = span * ((double)D * f + c * tr[q]);
    }
    xfree(tq);
    xfree(tr);
    return rc;
}

int sde_pfode_sample_d(const SamplerConfig *cfg, const OdeAdaptive *ad, const Sde *sde,
                       SdeOut out, SchedNetFnD net, void *ctx, const uint64_t *sample_idx,
                       size_t B, size_t D, const int *labels, double *x, SdeStats *st)
{
    TRY(check_batch(B, D));
    if (!labels && cfg->guidance != 1.0)
        return ERR(ERR_ARG, "PF-ODE: guidance weight %g needs class labels", cfg->guidance);
    SdeStats local;
    if (!st) st = &local;
    memset(st, 0, sizeof *st);
    sched_initial_noise(cfg->seed, sample_idx, B, D, x);
    double sd = sde_prior_sd(sde);
    for (size_t i = 0; i < B * D; i++) x[i] *= sd;
    PfField p;
    memset(&p, 0, sizeof p);
    p.sde = sde;
    p.out = out;
    p.net = net;
    p.ctx = ctx;
    p.labels = labels;
    p.w = cfg->guidance;
    p.t_hi = 1.0;
    p.t_lo = sde->t_eps;
    p.D = D;
    p.nfe = xcalloc(B, sizeof(uint64_t));
    p.njvp = xcalloc(B, sizeof(uint64_t));
    int rc;
    size_t *rows = xmalloc(B * sizeof(size_t));
    for (size_t j = 0; j < B; j++) rows[j] = j;
    if (ad && ad->rk45) {
        rc = ode_rk45_d(ad, pf_field, &p, B, D, 0.0, 1.0, x, st);
    } else {
        /* fixed steps: the flow integrators on tau in [0, 1] */
        if (cfg->kind < SAMPLER_EULER || cfg->kind > SAMPLER_RK4)
            rc = ERR(ERR_ARG, "PF-ODE: fixed-step solver must be euler, midpoint, heun or rk4");
        else if (cfg->steps < 1)
            rc = ERR(ERR_ARG, "PF-ODE: steps must be >= 1");
        else {
            size_t N = (size_t)cfg->steps;
            double *tau = xmalloc((N + 1) * sizeof(double));
            for (size_t k = 0; k <= N; k++) tau[k] = (double)k / (double)N;
            double *k1 = xmalloc(B * D * sizeof(double)), *k2 = xmalloc(B * D * sizeof(double));
            double *k3 = xmalloc(B * D * sizeof(double)), *k4 = xmalloc(B * D * sizeof(double));
            double *xs = xmalloc(B * D * sizeof(double)), *tb = xmalloc(B * sizeof(double));
            rc = ERR_OK;
#define PF_EVAL(X, T, K)                                                                       \
    do {                                                                                       \
        for (size_t j = 0; j < B; j++) tb[j] = (T);                                            \
        if ((rc = pf_field(&p, rows, B, D, tb, (X), (K))) != ERR_OK) goto pf_done;             \
    } while (0)
            for (size_t k = 0; k < N; k++) {
                double t0 = tau[k], h = tau[k + 1] - tau[k], t1 = tau[k + 1];
                size_t n = B * D;
                switch (cfg->kind) {
                case SAMPLER_EULER:
                    PF_EVAL(x, t0, k1);
                    for (size_t i = 0; i < n; i++) x[i] += h * k1[i];
                    break;
                case SAMPLER_MIDPOINT:
                    PF_EVAL(x, t0, k1);
                    for (size_t i = 0; i < n; i++) xs[i] = x[i] + 0.5 * h * k1[i];
                    PF_EVAL(xs, t0 + 0.5 * h, k2);
                    for (size_t i = 0; i < n; i++) x[i] += h * k2[i];
                    break;
                case SAMPLER_HEUN:
                    PF_EVAL(x, t0, k1);
                    for (size_t i = 0; i < n; i++) xs[i] = x[i] + h * k1[i];
                    PF_EVAL(xs, t1, k2);
                    for (size_t i = 0; i < n; i++) x[i] += 0.5 * h * (k1[i] + k2[i]);
                    break;
                default: /* RK4 */
                    PF_EVAL(x, t0, k1);
                    for (size_t i = 0; i < n; i++) xs[i] = x[i] + 0.5 * h * k1[i];
                    PF_EVAL(xs, t0 + 0.5 * h, k2);
                    for (size_t i = 0; i < n; i++) xs[i] = x[i] + 0.5 * h * k2[i];
                    PF_EVAL(xs, t0 + 0.5 * h, k3);
                    for (size_t i = 0; i < n; i++) xs[i] = x[i] + h * k3[i];
                    PF_EVAL(xs, t1, k4);
                    for (size_t i = 0; i < n; i++)
                        x[i] += h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
                    break;
                }
            }
#undef PF_EVAL
        pf_done:
            xfree(tau);
            xfree(k1);
            xfree(k2);
            xfree(k3);
            xfree(k4);
            xfree(xs);
            xfree(tb);
            if (rc == ERR_OK) rc = check_finite(x, B * D, "PF-ODE");
        }
    }
    /* NFE: network evaluations per sample */
    nfe_stats(st, p.nfe, B);
    xfree(rows);
    xfree(p.nfe);
    xfree(p.njvp);
    pf_free(&p);
    return rc;
}

/* ---- log-likelihood ----------------------------------------------------------------------- */

void loglik_config_default(LoglikConfig *c)
{
    memset(c, 0, sizeof *c);
    c->div = SDE_DIV_EXACT;
    c->ode.rk45 = 1;
    c->ode.rtol = 1e-5;
    c->ode.atol = 1e-5;
    c->ode.max_steps = 100000;
    c->jvp = NULL;
    c->fd_h = 1e-4;
    c->seed = 0;
    c->probe = 0;
}

static double *rademacher(uint64_t seed, const uint64_t *idx, uint32_t probe, size_t B, size_t D)
{
    double *v = xmalloc(B * D * sizeof(double));
    for (size_t j = 0; j < B; j++) {
        Rng r;
        rng_init(&r, seed, rng_stream(RNG_P_EVAL, idx[j]), 0x80000000u | probe, 0);
        uint32_t bits = 0;
        for (size_t i = 0; i < D; i++) {
            if (i % 32 == 0) bits = rng_u32(&r);
            v[j * D + i] = (bits >> (i % 32)) & 1u ? 1.0 : -1.0;
        }
    }
    return v;
}

static int loglik_run(const LoglikConfig *c, PfField *p, const uint64_t *idx, size_t B,
                      size_t D, const double *xin, double tau0, double tau1, double *yout,
                      SdeStats *st)
{
    if (c->div != SDE_DIV_EXACT && c->div != SDE_DIV_HUTCHINSON)
        return ERR(ERR_ARG, "log-likelihood: unknown divergence mode %d", (int)c->div);
    if (!c->jvp && !(c->fd_h > 0.0))
        return ERR(ERR_ARG, "log-likelihood: finite-difference step must be > 0");
    size_t Dy = D + 1;
    for (size_t j = 0; j < B; j++) {
        memcpy(yout + j * Dy, xin + j * D, D * sizeof(double));
        yout[j * Dy + D] = 0.0;
    }
    p->D = D;
    p->div = 1 + (int)c->div;
    p->jvp = c->jvp;
    p->fd_h = c->fd_h;
    p->w = 1.0;
    double *probe = c->div == SDE_DIV_HUTCHINSON ? rademacher(c->seed, idx, c->probe, B, D) : NULL;
    p->probe = probe;
    p->nfe = xcalloc(B, sizeof(uint64_t));
    p->njvp = xcalloc(B, sizeof(uint64_t));
    OdeAdaptive ad = c->ode;
    int rc = ode_rk45_d(&ad, pf_field, p, B, Dy, tau0, tau1, yout, st);
    nfe_stats(st, p->nfe, B);
    uint64_t mj = 0;
    for (size_t j = 0; j < B; j++) mj = p->njvp[j] > mj ? p->njvp[j] : mj;
    st->jvp = mj;
    xfree(probe);
    xfree(p->nfe);
    xfree(p->njvp);
    pf_free(p);
    return rc;
}

int sde_loglik_d(const LoglikConfig *c, const Sde *sde, SdeOut out, SchedNetFnD net, void *ctx,
                 const uint64_t *sample_idx, size_t B, size_t D, const int *labels,
                 const double *x0, double *logp, double *x1, double *delta, SdeStats *st)
{
    TRY(check_batch(B, D));
    SdeStats local;
    if (!st) st = &local;
    memset(st, 0, sizeof *st);
    PfField p;
    memset(&p, 0, sizeof p);
    p.sde = sde;
    p.out = out;
    p.net = net;
    p.ctx = ctx;
    p.labels = labels;
    p.t_hi = sde->t_eps; /* tau = 0 at the data, 1 at the prior */
    p.t_lo = 1.0;
    double *y = xmalloc(B * (D + 1) * sizeof(double));
    int rc = loglik_run(c, &p, sample_idx, B, D, x0, 0.0, 1.0, y, st);
    if (rc == ERR_OK)
        for (size_t j = 0; j < B; j++) {
            const double *yj = y + j * (D + 1);
            logp[j] = sde_prior_logp(sde, yj, D) + yj[D];
            if (x1) memcpy(x1 + j * D, yj, D * sizeof(double));
            if (delta) delta[j] = yj[D];
        }
    xfree(y);
    return rc;
}

int flow_loglik_d(const LoglikConfig *c, double sigma_min, SchedNetFnD net, void *ctx,
                  const uint64_t *sample_idx, size_t B, size_t D, const int *labels,
                  const double *x, double *logp, double *x0, double *delta, SdeStats *st)
{
    TRY(check_batch(B, D));
    if (!(sigma_min >= 0.0 && sigma_min < 1.0))
        return ERR(ERR_ARG, "flow log-likelihood: sigma_min must be in [0, 1), got %g", sigma_min);
    SdeStats local;
    if (!st) st = &local;
    memset(st, 0, sizeof *st);
    PfField p;
    memset(&p, 0, sizeof p);
    p.flow = 1;
    p.net = net;
    p.ctx = ctx;
    p.labels = labels;
    double *y = xmalloc(B * (D + 1) * sizeof(double));
    int rc = loglik_run(c, &p, sample_idx, B, D, x, 1.0, 0.0, y, st);
    if (rc == ERR_OK)
        for (size_t j = 0; j < B; j++) {
            const double *yj = y + j * (D + 1);
            double q = 0.0;
            for (size_t i = 0; i < D; i++) q += yj[i] * yj[i];
            /* l(0) = int_1^0 div v = - int_0^1 div v */
            logp[j] = -0.5 * q - 0.5 * (double)D * LOG_2PI + yj[D];
            if (x0) memcpy(x0 + j * D, yj, D * sizeof(double));
            if (delta) delta[j] = yj[D];
        }
    xfree(y);
    return rc;
}

double sched_bits_per_dim(double nll, size_t D, double bin)
{
    return nll / ((double)D * log(2.0)) - log2(bin);
}

/* ---- the sampler registry's continuous-time entries --------------------------------------- */

/* A network with classifier-free guidance folded in: out = u + w (c - u) from one call on
 * [x; x] with [labels; -1] (sched/sampler.h's convention). */
typedef struct {
    SchedNetFnD net;
    void *ctx;
    double w;
    size_t cap;
    double *x2, *t2, *o2;
    int *l2;
} GuidedNet;

static int guided_net(void *vctx, const double *x, const double *t, const int *labels, size_t B,
                      size_t D, double *out)
{
    GuidedNet *g = vctx;
    GuideMode mode = sched_guide_mode(labels != NULL, g->w);
    if (mode == GUIDE_PLAIN) return g->net(g->ctx, x, t, labels, B, D, out);
    size_t n = B * D;
    if (B > g->cap) {
        g->x2 = xrealloc(g->x2, 2 * n * sizeof(double));
        g->o2 = xrealloc(g->o2, 2 * n * sizeof(double));
        g->t2 = xrealloc(g->t2, 2 * B * sizeof(double));
        g->l2 = xrealloc(g->l2, 2 * B * sizeof(int));
        g->cap = B;
    }
    if (mode == GUIDE_UNCOND) {
        for (size_t j = 0; j < B; j++) g->l2[j] = -1;
        return g->net(g->ctx, x, t, g->l2, B, D, out);
    }
    memcpy(g->x2, x, n * sizeof(double));
    memcpy(g->x2 + n, x, n * sizeof(double));
    for (size_t j = 0; j < B; j++) {
        g->t2[j] = g->t2[B + j] = t[j];
        g->l2[j] = labels[j];
        g->l2[B + j] = -1;
    }
    TRY(g->net(g->ctx, g->x2, g->t2, g->l2, 2 * B, D, g->o2));
    for (size_t i = 0; i < n; i++) out[i] = g->o2[n + i] + g->w * (g->o2[i] - g->o2[n + i]);
    return ERR_OK;
}

int sde_sample_sched_d(const SamplerConfig *cfg, const Schedule *s, SchedNetFnD net, void *ctx,
                       const uint64_t *sample_idx, size_t B, size_t D, const int *labels,
                       double *x, SdeStats *st)
{
    TRY(check_batch(B, D));
    if (s->family != SCHED_SDE) return ERR(ERR_ARG, "SDE sampler: the model is not an SDE model");
    if (!labels && cfg->guidance != 1.0)
        return ERR(ERR_ARG, "SDE sampler: guidance weight %g needs class labels", cfg->guidance);
    SdeStats local;
    if (!st) st = &local;
    memset(st, 0, sizeof *st);
    const Sde *sde = &s->sde;
    if (cfg->kind == SAMPLER_RK45 || (cfg->kind >= SAMPLER_EULER && cfg->kind <= SAMPLER_RK4)) {
        OdeAdaptive ad = {.rk45 = cfg->kind == SAMPLER_RK45, .rtol = cfg->rtol,
                          .atol = cfg->atol, .max_steps = 100000};
        return sde_pfode_sample_d(cfg, &ad, sde, s->sde_out, net, ctx, sample_idx, B, D, labels,
                                  x, st);
    }
    GuidedNet g = {.net = net, .ctx = ctx, .w = cfg->guidance};
    int guided = sched_guide_mode(labels != NULL, cfg->guidance) == GUIDE_BLEND, rc;
    if (cfg->kind == SAMPLER_LANGEVIN) {
        double a, lo, hi;
        sde_marginal(sde, sde->t_eps, &a, &lo);
        sde_marginal(sde, 1.0, &a, &hi);
        LangevinConfig lc = {.levels = cfg->steps, .sigma_max = hi, .sigma_min = lo,
                             .eps = cfg->langevin_eps, .steps = cfg->correctors, .denoise = 1,
                             .seed = cfg->seed};
        rc = sde_langevin_sample_d(&lc, sde, s->sde_out, guided_net, &g, sample_idx, B, D,
                                   labels, x, st);
    } else if (cfg->kind == SAMPLER_EM || cfg->kind == SAMPLER_PC) {
        SdeSamplerConfig c;
        sde_sampler_config_default(&c);
        c.steps = cfg->steps;
        c.denoise = 1;
        c.seed = cfg->seed;
        if (cfg->kind == SAMPLER_PC) {
            c.predictor = cfg->predictor_em ? SDE_PRED_EM : SDE_PRED_REVERSE;
            c.correctors = cfg->correctors;
            c.snr = cfg->snr;
        }
        rc = sde_sample_d(&c, sde, s->sde_out, guided_net, &g, sample_idx, B, D, labels, x, st);
    } else {
        rc = ERR(ERR_ARG, "sampler %d does not sample SDE models", (int)cfg->kind);
    }
    if (guided) {
        st->nfe *= 2;
        st->nfe_mean *= 2.0;
    }
    xfree(g.x2);
    xfree(g.t2);
    xfree(g.o2);
    xfree(g.l2);
    return rc;
}

int flow_rk45_sample_d(const SamplerConfig *cfg, double sigma_min, SchedNetFnD net, void *ctx,
                       const uint64_t *sample_idx, size_t B, size_t D, const int *labels,
                       double *x, SdeStats *st)
{
    TRY(check_batch(B, D));
    (void)sigma_min; /* the velocity field already carries the path */
    if (!labels && cfg->guidance != 1.0)
        return ERR(ERR_ARG, "flow rk45: guidance weight %g needs class labels", cfg->guidance);
    SdeStats local;
    if (!st) st = &local;
    memset(st, 0, sizeof *st);
    sched_initial_noise(cfg->seed, sample_idx, B, D, x);
    PfField p;
    memset(&p, 0, sizeof p);
    p.flow = 1;
    p.net = net;
    p.ctx = ctx;
    p.labels = labels;
    p.w = cfg->guidance;
    p.D = D;
    p.nfe = xcalloc(B, sizeof(uint64_t));
    p.njvp = xcalloc(B, sizeof(uint64_t));
    OdeAdaptive ad = {.rk45 = 1, .rtol = cfg->rtol, .atol = cfg->atol, .max_steps = 100000};
    int rc = ode_rk45_d(&ad, pf_field, &p, B, D, 0.0, 1.0, x, st);
    if (rc == ERR_OK) rc = check_finite(x, B * D, "flow rk45");
    nfe_stats(st, p.nfe, B);
    xfree(p.nfe);
    xfree(p.njvp);
    pf_free(&p);
    return rc;
}
