/* sched/sampler.c - see sampler.h. All state arithmetic is double. */
#include "sched/sampler.h"

#include <math.h>
#include <string.h>

#include "core/err.h" /* ERR, TRY */
#include "core/names.h" /* DFM_SAMPLER_NAMES */
#include "core/mem.h" /* xmalloc, xfree, ASSERT */
#include "core/rng.h" /* rng_fill_normal_f64, rng_stream */
#include "sched/sde.h" /* sde_sample_sched_d, flow_rk45_sample_d */

#define INPAINT_SUB_BIT 0x80000000u
#define RENOISE_SUB_BIT 0x40000000u

/* ---- configuration ------------------------------------------------------------------------ */

void sampler_config_default(SamplerConfig *c, SamplerKind kind)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->steps = kind >= SAMPLER_EULER ? 100 : 50;
    c->spacing = SCHED_SPACING_UNIFORM;
    c->eta = 0.0;
    c->var = SCHED_VAR_BETA_TILDE;
    c->clip_x0 = 0;
    c->clip = 1.0;
    c->guidance = 1.0;
    c->rtol = 1e-5;
    c->atol = 1e-5;
    c->correctors = 1;
    c->snr = 0.16;
    c->predictor_em = 0;
    c->langevin_eps = 2e-5;
    c->seed = 0;
}

static const char *const KIND_NAMES[] = {DFM_SAMPLER_NAMES};
_Static_assert(sizeof KIND_NAMES / sizeof KIND_NAMES[0] == SAMPLER_LANGEVIN + 1 &&
                   SAMPLER_EULER == DFM_SAMPLER_FIRST_FLOW && SAMPLER_EM == DFM_SAMPLER_FIRST_SDE &&
                   DFM_SAMPLER_COUNT == SAMPLER_LANGEVIN + 1,
               "core/names.h lists the samplers in SamplerKind order");

const char *sampler_kind_name(SamplerKind k)
{
    if ((int)k < 0 || (int)k > SAMPLER_LANGEVIN) return "?";
    return KIND_NAMES[k];
}

/* The fixed-step ODE integrators (flow models, and the PF-ODE of SDE models). */
static int is_flow_kind(SamplerKind k) { return k >= SAMPLER_EULER && k <= SAMPLER_RK4; }
static int is_ode_kind(SamplerKind k) { return is_flow_kind(k) || k == SAMPLER_RK45; }
static int is_sde_kind(SamplerKind k) { return k >= SAMPLER_EM && k <= SAMPLER_LANGEVIN; }
static int is_diffusion_kind(SamplerKind k) { return k >= SAMPLER_DDPM && k <= SAMPLER_DPMPP_2M; }

static int evals_per_flow_step(SamplerKind k)
{
    switch (k) {
    case SAMPLER_EULER: return 1;
    case SAMPLER_MIDPOINT: return 2;
    case SAMPLER_HEUN: return 2;
    case SAMPLER_RK4: return 4;
    default: return 1;
    }
}

static int check_config(const SamplerConfig *c, const Schedule *s)
{
    if ((int)c->kind < 0 || (int)c->kind > SAMPLER_LANGEVIN)
        return ERR(ERR_ARG, "sampler: unknown kind %d", (int)c->kind);
    if (c->steps < 1) return ERR(ERR_ARG, "sampler: steps must be >= 1, got %d", c->steps);
    if (!isfinite(c->guidance))
        return ERR(ERR_ARG, "sampler: guidance weight must be finite");
    if (s) {
        if (s->family == SCHED_FLOW && !is_ode_kind(c->kind)) {
            ERR(ERR_ARG, "sampler '%s' needs a %s, the model is a flow model",
                sampler_kind_name(c->kind),
                is_sde_kind(c->kind) ? "score (SDE) model" : "diffusion schedule");
            err_hint("use euler, midpoint, heun, rk4 or rk45 for flow-matching models");
            return ERR_ARG;
        }
        if (s->family == SCHED_DISCRETE && !is_diffusion_kind(c->kind)) {
            ERR(ERR_ARG, "sampler '%s' is for %s models, the model is a diffusion model",
                sampler_kind_name(c->kind), is_sde_kind(c->kind) ? "SDE" : "flow and SDE");
            err_hint("use ddpm, ddim or dpmpp2m for diffusion models");
            return ERR_ARG;
        }
        if (s->family == SCHED_SDE && is_diffusion_kind(c->kind)) {
            ERR(ERR_ARG, "sampler '%s' needs a discrete diffusion schedule, the model is an SDE "
                "model", sampler_kind_name(c->kind));
            err_hint("use em, pc, langevin, or an ODE solver (euler, heun, rk4, rk45) for SDE "
                     "models");
            return ERR_ARG;
        }
        if (s->family == SCHED_DISCRETE && c->steps > s->T)
            return ERR(ERR_ARG, "sampler: %d steps exceed the schedule's T = %d", c->steps, s->T);
    }
    if (c->kind == SAMPLER_RK45 &&
        !(c->rtol > 0.0 && c->rtol < 1.0 && c->atol > 0.0 && c->atol < 1.0))
        return ERR(ERR_ARG, "sampler rk45: rtol and atol must be in (0, 1), got %g and %g",
                   c->rtol, c->atol);
    if (c->kind == SAMPLER_PC && (c->correctors < 0 || !(c->snr > 0.0) || !isfinite(c->snr)))
        return ERR(ERR_ARG, "sampler pc: need correctors >= 0 and snr > 0, got %d and %g",
                   c->correctors, c->snr);
    if (c->kind == SAMPLER_LANGEVIN &&
        (c->steps < 2 || c->correctors < 1 || !(c->langevin_eps > 0.0)))
        return ERR(ERR_ARG, "sampler langevin: need steps (levels) >= 2, correctors (moves per "
                   "level) >= 1 and eps > 0, got %d, %d and %g", c->steps, c->correctors,
                   c->langevin_eps);
    if (is_diffusion_kind(c->kind)) {
        if (c->spacing != SCHED_SPACING_UNIFORM && c->spacing != SCHED_SPACING_QUADRATIC &&
            c->spacing != SCHED_SPACING_TRAILING)
            return ERR(ERR_ARG, "sampler: unknown timestep spacing %d", (int)c->spacing);
        if (!(c->eta >= 0.0) || !isfinite(c->eta))
            return ERR(ERR_ARG, "sampler: eta must be >= 0, got %g", c->eta);
        if (c->var != SCHED_VAR_BETA && c->var != SCHED_VAR_BETA_TILDE)
            return ERR(ERR_ARG, "sampler: unknown variance choice %d", (int)c->var);
        if (c->clip_x0 && !(c->clip > 0.0))
            return ERR(ERR_ARG, "sampler: clip must be > 0, got %g", c->clip);
    } else if (c->clip_x0) {
        return ERR(ERR_ARG, "sampler: x0 clipping applies to diffusion samplers only");
    }
    return ERR_OK;
}

int sampler_nfe(const SamplerConfig *c, const Schedule *s, uint64_t *nfe)
{
    TRY(check_config(c, s));
    uint64_t S = (uint64_t)c->steps;
    switch (c->kind) {
    case SAMPLER_RK45: *nfe = 0; return ERR_OK; /* adaptive: known afterwards */
    case SAMPLER_EM: *nfe = S + 1; return ERR_OK; /* + the denoising step */
    case SAMPLER_PC: *nfe = S * (1 + (uint64_t)c->correctors) + 1; return ERR_OK;
    case SAMPLER_LANGEVIN: *nfe = S * (uint64_t)c->correctors + 1; return ERR_OK;
    default: break;
    }
    if (is_flow_kind(c->kind)) {
        *nfe = S * (uint64_t)evals_per_flow_step(c->kind);
        return ERR_OK;
    }
    int *tau = xmalloc(((size_t)c->steps + 1) * sizeof(int)), n = 0;
    int rc = sched_timesteps(c->spacing, s->T, c->steps, tau, &n);
    xfree(tau);
    TRY(rc);
    *nfe = (uint64_t)n;
    return ERR_OK;
}

static int check_io(size_t B, size_t D, const int *labels, double w, const float *mask,
                    const float *known)
{
    if (B == 0 || D == 0) return ERR(ERR_ARG, "sampler: empty batch (B = %zu, D = %zu)", B, D);
    if (!labels && w != 1.0) {
        ERR(ERR_ARG, "sampler: guidance weight %g needs class labels", w);
        err_hint("pass labels, or set guidance to 1 (no guidance) for an unconditional model");
        return ERR_ARG;
    }
    if ((mask == NULL) != (known == NULL))
        return ERR(ERR_ARG, "sampler: inpainting needs both a mask and the known values");
    if (mask) {
        size_t n = B * D;
        for (size_t i = 0; i < n; i++)
            if (mask[i] != 0.0f && mask[i] != 1.0f)
                return ERR(ERR_ARG, "sampler: mask entries must be 0 or 1 (entry %zu is %g)", i,
                           (double)mask[i]);
    }
    return ERR_OK;
}

/* ---- model evaluation with optional guidance ---------------------------------------------- */

typedef struct {
    SchedNetFnD net;
    void *ctx;
    size_t B, D;
    const int *labels;
    double w;
    GuideMode mode;
    double *t;      /* (2B) */
    double *x2;     /* (2B, D) for GUIDE_BLEND */
    double *out2;   /* (2B, D) for GUIDE_BLEND */
    int *lab2;      /* (2B) for GUIDE_BLEND: [labels; -1]; (B) of -1 for GUIDE_UNCOND */
    SampleStats *st;
} Eval;

GuideMode sched_guide_mode(int labelled, double w)
{
    if (!labelled || w == 1.0) return GUIDE_PLAIN;
    return w == 0.0 ? GUIDE_UNCOND : GUIDE_BLEND;
}

static void eval_init(Eval *e, SchedNetFnD net, void *ctx, size_t B, size_t D, const int *labels,
                      double w, SampleStats *st)
{
    memset(e, 0, sizeof *e);
    e->net = net;
    e->ctx = ctx;
    e->B = B;
    e->D = D;
    e->labels = labels;
    e->w = w;
    e->mode = sched_guide_mode(labels != NULL, w);
    e->st = st;
    e->t = xmalloc(2 * B * sizeof(double));
    if (e->mode == GUIDE_UNCOND) {
        e->lab2 = xmalloc(B * sizeof(int));
        for (size_t j = 0; j < B; j++) e->lab2[j] = -1;
    } else if (e->mode == GUIDE_BLEND) {
        e->x2 = xmalloc(2 * B * D * sizeof(double));
        e->out2 = xmalloc(2 * B * D * sizeof(double));
        e->lab2 = xmalloc(2 * B * sizeof(int));
        for (size_t j = 0; j < B; j++) {
            e->lab2[j] = labels[j];
            e->lab2[B + j] = -1;
        }
    }
}

static void eval_free(Eval *e)
{
    xfree(e->t);
    xfree(e->x2);
    xfree(e->out2);
    xfree(e->lab2);
}

/* out (B, D) = guided model output at state x (B, D) and network time tn. */
static int eval_model(Eval *e, const double *x, double tn, double *out)
{
    size_t B = e->B, D = e->D, n = B * D;
    if (e->mode != GUIDE_BLEND) {
        for (size_t j = 0; j < B; j++) e->t[j] = tn;
        TRY(e->net(e->ctx, x, e->t, e->mode == GUIDE_UNCOND ? e->lab2 : e->labels, B, D, out));
        e->st->nfe += 1;
        e->st->net_calls += 1;
        return ERR_OK;
    }
    for (size_t j = 0; j < 2 * B; j++) e->t[j] = tn;
    memcpy(e->x2, x, n * sizeof(double));
    memcpy(e->x2 + n, x, n * sizeof(double));
    TRY(e->net(e->ctx, e->x2, e->t, e->lab2, 2 * B, D, e->out2));
    double wm1 = e->w - 1.0;
    for (size_t i = 0; i < n; i++) {
        double c = e->out2[i], u = e->out2[n + i];
        out[i] = c + wm1 * (c - u);
    }
    e->st->nfe += 2;
    e->st->net_calls += 1;
    return ERR_OK;
}

/* ---- noise -------------------------------------------------------------------------------- */

void sched_initial_noise(uint64_t seed, const uint64_t *sample_idx, size_t B, size_t D, double *x)
{
#pragma omp parallel for schedule(static) if (B * D >= 65536)
    for (size_t j = 0; j < B; j++)
        rng_fill_normal_f64(x + j * D, D, seed, rng_stream(RNG_P_SAMPLE_INIT, sample_idx[j]), 0);
}

static void step_noise(uint64_t seed, const uint64_t *sample_idx, size_t B, size_t D, uint32_t sub,
                       double *z)
{
#pragma omp parallel for schedule(static) if (B * D >= 65536)
    for (size_t j = 0; j < B; j++)
        rng_fill_normal_f64(z + j * D, D, seed, rng_stream(RNG_P_SAMPLE_STEP, sample_idx[j]), sub);
}

/* Known entries of x <- a * known + s * fresh noise (sub = k | 2^31); s = 0 draws nothing. */
static void replace_known(uint64_t seed, const uint64_t *sample_idx, size_t B, size_t D,
                          uint32_t k, double a, double s, const float *mask, const float *known,
                          double *x, double *z)
{
    size_t n = B * D;
    if (s > 0.0) step_noise(seed, sample_idx, B, D, k | INPAINT_SUB_BIT, z);
    for (size_t i = 0; i < n; i++)
        if (mask[i] == 1.0f) x[i] = a * (double)known[i] + (s > 0.0 ? s * z[i] : 0.0);
}

static void copy_known(size_t n, const float *mask, const float *known, double *x)
{
    for (size_t i = 0; i < n; i++)
        if (mask[i] == 1.0f) x[i] = (double)known[i];
}

static int check_finite(const double *x, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            ERR(ERR_NUMERIC, "%s produced a non-finite value at element %zu", what, i);
            err_hint("check the network output (NaN/Inf) and the guidance weight");
            return ERR_NUMERIC;
        }
    return ERR_OK;
}

/* ---- levels ------------------------------------------------------------------------------- */

static void levels_alloc(SchedLevels *lv, size_t n)
{
    lv->n = n;
    lv->abar = xcalloc(n + 1, sizeof(double));
    lv->beta = xcalloc(n + 1, sizeof(double));
    lv->tnet = xcalloc(n + 1, sizeof(double));
}

int sched_levels_from_schedule(const Schedule *s, SchedSpacing sp, int steps, SchedLevels *lv)
{
    memset(lv, 0, sizeof *lv);
    if (s->family != SCHED_DISCRETE)
        return ERR(ERR_ARG, "noise levels need a diffusion (discrete) schedule");
    int *tau = xmalloc(((size_t)steps + 1) * sizeof(int)), n = 0;
    int rc = sched_timesteps(sp, s->T, steps, tau, &n);
    if (rc != ERR_OK) {
        xfree(tau);
        TRY(rc);
    }
    levels_alloc(lv, (size_t)n);
    lv->abar[0] = 1.0;
    for (int i = 1; i <= n; i++) {
        int t = tau[i], tp = tau[i - 1];
        lv->abar[i] = s->abar[t];
        lv->beta[i] = (tp == t - 1) ? s->beta[t] : 1.0 - s->abar[t] / s->abar[tp];
        lv->tnet[i] = (double)(t - 1);
    }
    xfree(tau);
    return ERR_OK;
}

int sched_levels_from_abar(const double *abar, const double *tnet, size_t n, SchedLevels *lv)
{
    memset(lv, 0, sizeof *lv);
    if (n < 1) return ERR(ERR_ARG, "noise levels: need at least one step");
    for (size_t i = 0; i <= n; i++)
        if (!(abar[i] > 0.0 && abar[i] <= 1.0) || (i > 0 && !(abar[i] < abar[i - 1])))
            return ERR(ERR_ARG, "noise levels: abar must be in (0, 1] and strictly decreasing "
                                "(entry %zu is %g)", i, abar[i]);
    levels_alloc(lv, n);
    for (size_t i = 0; i <= n; i++) {
        lv->abar[i] = abar[i];
        lv->tnet[i] = tnet[i];
        if (i > 0) lv->beta[i] = 1.0 - abar[i] / abar[i - 1];
    }
    return ERR_OK;
}

void sched_levels_free(SchedLevels *lv)
{
    if (!lv) return;
    xfree(lv->abar);
    xfree(lv->beta);
    xfree(lv->tnet);
    memset(lv, 0, sizeof *lv);
}

/* ---- diffusion samplers ------------------------------------------------------------------- */

double sched_ddim_sigma(double eta, double abar, double abar_prev)
{
    return eta * sqrt((1.0 - abar_prev) / (1.0 - abar)) * sqrt(1.0 - abar / abar_prev);
}

int sched_diffusion_run_d(const SamplerConfig *cfg, SchedPred pred, const SchedLevels *lv,
                          SchedNetFnD net, void *ctx, const uint64_t *sample_idx, size_t B,
                          size_t D, const int *labels, const float *mask, const float *known,
                          double *x, SampleStats *stats)
{
    TRY(check_config(cfg, NULL));
    if (is_flow_kind(cfg->kind))
        return ERR(ERR_ARG, "sampler '%s' is a flow sampler", sampler_kind_name(cfg->kind));
    if (pred == SCHED_PRED_VELOCITY)
        return ERR(ERR_ARG, "diffusion samplers need eps, x0 or v prediction");
    TRY(check_io(B, D, labels, cfg->guidance, mask, known));
    SampleStats local = {0, 0, 0, 0};
    SampleStats *st = stats ? stats : &local;
    memset(st, 0, sizeof *st);

    size_t n = B * D;
    double *out = xmalloc(n * sizeof(double));
    double *x0h = xmalloc(n * sizeof(double));
    double *eps = xmalloc(n * sizeof(double));
    double *z = xmalloc(n * sizeof(double));
    double *dprev = cfg->kind == SAMPLER_DPMPP_2M ? xmalloc(n * sizeof(double)) : NULL;
    double h_prev = 0.0;
    int have_prev = 0;
    Eval ev;
    eval_init(&ev, net, ctx, B, D, labels, cfg->guidance, st);
    int rc = ERR_OK;

    int U = mask && cfg->resample > 1 ? cfg->resample : 1;
    if (U > 1 && cfg->kind == SAMPLER_DPMPP_2M) {
        ERR(ERR_ARG, "resampling is for the ddpm and ddim samplers (dpmpp-2m is multistep)");
        rc = ERR_ARG;
        U = 0;
    }
    uint32_t k = 0;
    for (size_t i = lv->n; i >= 1; i--, k++) {
        /* RePaint resampling (inpainting only): after a step to level i-1, re-noise back to
         * level i with q(x_i | x_{i-1}) and step again, `resample` times in all */
        for (int u = 0; u < U && rc == ERR_OK; u++) {
            uint32_t kk = k + ((uint32_t)u << 17);
            if (u > 0) { /* back to level i: x = sqrt(r) x + sqrt(1 - r) z, r = abar_i/abar_{i-1} */
                double r = lv->abar[i] / lv->abar[i - 1];
                step_noise(cfg->seed, sample_idx, B, D, kk | RENOISE_SUB_BIT, z);
                for (size_t q = 0; q < n; q++) x[q] = sqrt(r) * x[q] + sqrt(1.0 - r) * z[q];
            }
            double ab = lv->abar[i], abp = lv->abar[i - 1];
            double a = sqrt(ab), s = sqrt(1.0 - ab), ap = sqrt(abp), sp = sqrt(1.0 - abp);
            rc = eval_model(&ev, x, lv->tnet[i], out);
            if (rc != ERR_OK) break;
            sched_pred_to_x0_eps(pred, a, s, 0.0, x, out, x0h, eps, n);
            if (cfg->clip_x0) {
                /* clip x0-hat, then re-derive eps from it so that x_i = a x0-hat + s eps-hat still
                 * holds: the step then moves along the trajectory of the x0 it commits to (as
                 * improved/guided-diffusion do), and DDIM(eta = 1) stays DDPM(beta~) */
                double c = cfg->clip;
                for (size_t q = 0; q < n; q++) {
                    x0h[q] = x0h[q] > c ? c : (x0h[q] < -c ? -c : x0h[q]);
                    eps[q] = (x[q] - a * x0h[q]) / s;
                }
            }
            switch (cfg->kind) {
            case SAMPLER_DDPM: {
                /* posterior q(x_{i-1} | x_i, x0h) of the (respaced) chain */
                double b = lv->beta[i];
                double c1 = b * ap / (1.0 - ab);
                double c2 = sqrt(1.0 - b) * (1.0 - abp) / (1.0 - ab);
                double var = cfg->var == SCHED_VAR_BETA ? b : b * (1.0 - abp) / (1.0 - ab);
                int noisy = i > 1 && var > 0.0; /* no noise on the last step */
                if (noisy) step_noise(cfg->seed, sample_idx, B, D, kk, z);
                double sd = sqrt(var);
                for (size_t q = 0; q < n; q++)
                    x[q] = c1 * x0h[q] + c2 * x[q] + (noisy ? sd * z[q] : 0.0);
                break;
            }
            case SAMPLER_DDIM: {
                double sig = sched_ddim_sigma(cfg->eta, ab, abp);
                double r = 1.0 - abp - sig * sig;
                double dir = r > 0.0 ? sqrt(r) : 0.0;
                int noisy = sig > 0.0;
                if (noisy) step_noise(cfg->seed, sample_idx, B, D, kk, z);
                for (size_t q = 0; q < n; q++)
                    x[q] = ap * x0h[q] + dir * eps[q] + (noisy ? sig * z[q] : 0.0);
                break;
            }
            case SAMPLER_DPMPP_2M: {
                if (abp >= 1.0) { /* lambda = +inf: the first-order step is x0-hat itself */
                    memcpy(x, x0h, n * sizeof(double));
                    break;
                }
                double h = log(ap / sp) - log(a / s);
                double ratio = sp / s, coef = -ap * expm1(-h); /* -a_t (e^{-h} - 1) */
                if (have_prev) {
                    double r = h_prev / h, c0 = 1.0 + 1.0 / (2.0 * r), cm = 1.0 / (2.0 * r);
                    for (size_t q = 0; q < n; q++)
                        x[q] = ratio * x[q] + coef * (c0 * x0h[q] - cm * dprev[q]);
                } else {
                    for (size_t q = 0; q < n; q++) x[q] = ratio * x[q] + coef * x0h[q];
                }
                memcpy(dprev, x0h, n * sizeof(double));
                h_prev = h;
                have_prev = 1;
                break;
            }
            default:
                ASSERT(0);
            }
            if (mask) replace_known(cfg->seed, sample_idx, B, D, kk, ap, sp, mask, known, x, z);
            st->steps++;
        }
        if (rc != ERR_OK) break;
    }
    if (rc == ERR_OK && mask) copy_known(n, mask, known, x);
    if (rc == ERR_OK) rc = check_finite(x, n, sampler_kind_name(cfg->kind));
    eval_free(&ev);
    xfree(out);
    xfree(x0h);
    xfree(eps);
    xfree(z);
    xfree(dprev);
    return rc;
}

int sched_ddim_invert_d(const SamplerConfig *cfg, SchedPred pred, const SchedLevels *lv,
                        SchedNetFnD net, void *ctx, size_t B, size_t D, const int *labels,
                        double *x, SampleStats *stats)
{
    if (pred == SCHED_PRED_VELOCITY)
        return ERR(ERR_ARG, "DDIM inversion needs eps, x0 or v prediction");
    TRY(check_io(B, D, labels, cfg->guidance, NULL, NULL));
    SampleStats local = {0, 0, 0, 0};
    SampleStats *st = stats ? stats : &local;
    memset(st, 0, sizeof *st);
    size_t n = B * D;
    double *out = xmalloc(n * sizeof(double));
    double *x0h = xmalloc(n * sizeof(double));
    double *eps = xmalloc(n * sizeof(double));
    Eval ev;
    eval_init(&ev, net, ctx, B, D, labels, cfg->guidance, st);
    int rc = ERR_OK;
    for (size_t i = 1; i <= lv->n; i++) {
        size_t j = i == 1 ? 1 : i - 1; /* level whose time and coefficients read the model */
        double aj = sqrt(lv->abar[j]), sj = sqrt(1.0 - lv->abar[j]);
        rc = eval_model(&ev, x, lv->tnet[j], out);
        if (rc != ERR_OK) break;
        sched_pred_to_x0_eps(pred, aj, sj, 0.0, x, out, x0h, eps, n);
        if (i == 1) memcpy(x0h, x, n * sizeof(double)); /* level 0 is clean: x0-hat = x */
        double ai = sqrt(lv->abar[i]), si = sqrt(1.0 - lv->abar[i]);
        for (size_t q = 0; q < n; q++) x[q] = ai * x0h[q] + si * eps[q];
        st->steps++;
    }
    if (rc == ERR_OK) rc = check_finite(x, n, "DDIM inversion");
    eval_free(&ev);
    xfree(out);
    xfree(x0h);
    xfree(eps);
    return rc;
}

/* ---- flow samplers ------------------------------------------------------------------------ */

int sched_flow_run_d(const SamplerConfig *cfg, double sigma_min, const double *tau, size_t N,
                     SchedNetFnD net, void *ctx, const uint64_t *sample_idx, size_t B, size_t D,
                     const int *labels, const float *mask, const float *known, double *x,
                     SampleStats *stats)
{
    TRY(check_config(cfg, NULL));
    if (!is_flow_kind(cfg->kind))
        return ERR(ERR_ARG, "sampler '%s' is not a flow sampler", sampler_kind_name(cfg->kind));
    TRY(check_io(B, D, labels, cfg->guidance, mask, known));
    if (N < 1) return ERR(ERR_ARG, "flow sampler: need at least one step");
    for (size_t k = 0; k < N; k++)
        if (!(tau[k + 1] > tau[k]))
            return ERR(ERR_ARG, "flow sampler: time grid must increase (entry %zu)", k + 1);
    SampleStats local = {0, 0, 0, 0};
    SampleStats *st = stats ? stats : &local;
    memset(st, 0, sizeof *st);

    size_t n = B * D;
    double *k1 = xmalloc(n * sizeof(double)), *k2 = xmalloc(n * sizeof(double));
    double *k3 = xmalloc(n * sizeof(double)), *k4 = xmalloc(n * sizeof(double));
    double *xs = xmalloc(n * sizeof(double));
    Eval ev;
    eval_init(&ev, net, ctx, B, D, labels, cfg->guidance, st);
    int rc = ERR_OK;
    int U = mask && cfg->resample > 1 ? cfg->resample : 1;
    for (size_t k = 0; k < N && rc == ERR_OK; k++) {
        double t0 = tau[k], t1 = tau[k + 1], h = t1 - t0;
        /* RePaint resampling (inpainting only): after the step to tau[k+1] and the replacement,
         * re-noise back to tau[k] with the path's kernel q(x_tau[k] | x_tau[k+1]) =
         * N((a/a') x, s^2 - (a s'/a')^2) and step again, `resample` times in all */
        for (int u = 0; u < U && rc == ERR_OK; u++) {
            uint32_t kk = (uint32_t)k + ((uint32_t)u << 17);
            if (u > 0) {
                double a0, s0, a1, s1;
                sched_flow_coef(t0, sigma_min, &a0, &s0);
                sched_flow_coef(t1, sigma_min, &a1, &s1);
                double r = a0 / a1, v = s0 * s0 - r * r * s1 * s1;
                step_noise(cfg->seed, sample_idx, B, D, kk | RENOISE_SUB_BIT, xs);
                for (size_t q = 0; q < n; q++) x[q] = r * x[q] + sqrt(v > 0.0 ? v : 0.0) * xs[q];
            }
            switch (cfg->kind) {
            case SAMPLER_EULER:
                if ((rc = eval_model(&ev, x, t0, k1)) != ERR_OK) break;
                for (size_t q = 0; q < n; q++) x[q] += h * k1[q];
                break;
            case SAMPLER_MIDPOINT:
                if ((rc = eval_model(&ev, x, t0, k1)) != ERR_OK) break;
                for (size_t q = 0; q < n; q++) xs[q] = x[q] + 0.5 * h * k1[q];
                if ((rc = eval_model(&ev, xs, t0 + 0.5 * h, k2)) != ERR_OK) break;
                for (size_t q = 0; q < n; q++) x[q] += h * k2[q];
                break;
            case SAMPLER_HEUN:
                if ((rc = eval_model(&ev, x, t0, k1)) != ERR_OK) break;
                for (size_t q = 0; q < n; q++) xs[q] = x[q] + h * k1[q];
                if ((rc = eval_model(&ev, xs, t1, k2)) != ERR_OK) break;
                for (size_t q = 0; q < n; q++) x[q] += 0.5 * h * (k1[q] + k2[q]);
                break;
            case SAMPLER_RK4:
                if ((rc = eval_model(&ev, x, t0, k1)) != ERR_OK) break;
                for (size_t q = 0; q < n; q++) xs[q] = x[q] + 0.5 * h * k1[q];
                if ((rc = eval_model(&ev, xs, t0 + 0.5 * h, k2)) != ERR_OK) break;
                for (size_t q = 0; q < n; q++) xs[q] = x[q] + 0.5 * h * k2[q];
                if ((rc = eval_model(&ev, xs, t0 + 0.5 * h, k3)) != ERR_OK) break;
                for (size_t q = 0; q < n; q++) xs[q] = x[q] + h * k3[q];
                if ((rc = eval_model(&ev, xs, t1, k4)) != ERR_OK) break;
                for (size_t q = 0; q < n; q++)
                    x[q] += h / 6.0 * (k1[q] + 2.0 * k2[q] + 2.0 * k3[q] + k4[q]);
                break;
            default:
                ASSERT(0);
            }
            if (rc != ERR_OK) break;
            if (mask) {
                double a, s;
                sched_flow_coef(t1, sigma_min, &a, &s);
                replace_known(cfg->seed, sample_idx, B, D, kk, a, s, mask, known, x, xs);
            }
        }
        st->steps++;
    }
    if (rc == ERR_OK && mask) copy_known(n, mask, known, x);
    if (rc == ERR_OK) rc = check_finite(x, n, sampler_kind_name(cfg->kind));
    eval_free(&ev);
    xfree(k1);
    xfree(k2);
    xfree(k3);
    xfree(k4);
    xfree(xs);
    return rc;
}

/* ---- public entry points ------------------------------------------------------------------ */

/* x_init (B, D): the starting states, or NULL for the keyed initial noise. */
static int sample_from_d(const SamplerConfig *cfg, const Schedule *s, SchedNetFnD net, void *ctx,
                         const uint64_t *sample_idx, size_t B, size_t D, const int *labels,
                         const float *mask, const float *known, const float *x_init, double *out,
                         SampleStats *stats)
{
    TRY(check_config(cfg, s));
    TRY(check_io(B, D, labels, cfg->guidance, mask, known));
    if (s->family == SCHED_SDE || cfg->kind == SAMPLER_RK45) {
        if (x_init) {
            ERR(ERR_ARG, "sampler '%s': a given initial state is taken by the ddpm, ddim, "
                "dpmpp2m and fixed-step flow samplers", sampler_kind_name(cfg->kind));
            return ERR_ARG;
        }
        if (mask) {
            ERR(ERR_ARG, "sampler '%s': inpainting is done by the ddpm, ddim and fixed-step flow "
                "samplers", sampler_kind_name(cfg->kind));
            return ERR_ARG;
        }
        SdeStats ss;
        int rc = s->family == SCHED_SDE
                     ? sde_sample_sched_d(cfg, s, net, ctx, sample_idx, B, D, labels, out, &ss)
                     : flow_rk45_sample_d(cfg, s->sigma_min, net, ctx, sample_idx, B, D, labels,
                                          out, &ss);
        if (stats) {
            memset(stats, 0, sizeof *stats);
            stats->nfe = ss.nfe;
            stats->nfe_total = (uint64_t)llround(ss.nfe_mean * (double)B);
            stats->steps = cfg->steps;
        }
        return rc;
    }
    if (x_init) {
        for (size_t i = 0; i < B * D; i++) out[i] = (double)x_init[i];
        TRY(check_finite(out, B * D, "the initial state"));
    } else {
        sched_initial_noise(cfg->seed, sample_idx, B, D, out);
    }
    if (s->family == SCHED_FLOW) {
        size_t N = (size_t)cfg->steps;
        double *tau = xmalloc((N + 1) * sizeof(double));
        for (size_t k = 0; k <= N; k++) tau[k] = (double)k / (double)N;
        int rc = sched_flow_run_d(cfg, s->sigma_min, tau, N, net, ctx, sample_idx, B, D, labels,
                                  mask, known, out, stats);
        xfree(tau);
        if (stats) stats->nfe_total = stats->nfe * (uint64_t)B;
        return rc;
    }
    SchedLevels lv;
    TRY(sched_levels_from_schedule(s, cfg->spacing, cfg->steps, &lv));
    if (mask) {
        /* the starting state's known part is a draw of q(x_start | known), like every later one */
        double ab = lv.abar[lv.n];
        double *z = xmalloc(B * D * sizeof(double));
        step_noise(cfg->seed, sample_idx, B, D, 0xffffffffu, z);
        for (size_t i = 0; i < B * D; i++)
            if (mask[i] == 1.0f) out[i] = sqrt(ab) * (double)known[i] + sqrt(1.0 - ab) * z[i];
        xfree(z);
    }
    int rc = sched_diffusion_run_d(cfg, s->pred, &lv, net, ctx, sample_idx, B, D, labels, mask,
                                   known, out, stats);
    sched_levels_free(&lv);
    if (stats) stats->nfe_total = stats->nfe * (uint64_t)B;
    return rc;
}

int sched_sample_d(const SamplerConfig *cfg, const Schedule *s, SchedNetFnD net, void *ctx,
                   const uint64_t *sample_idx, size_t B, size_t D, const int *labels,
                   const float *mask, const float *known, double *out, SampleStats *stats)
{
    return sample_from_d(cfg, s, net, ctx, sample_idx, B, D, labels, mask, known, NULL, out,
                         stats);
}

/* Adapter: a float network seen as a double one. */
typedef struct {
    SchedNetFn net;
    void *ctx;
    float *xf, *of;
    size_t cap;
} FloatNet;

static int float_net_call(void *vctx, const double *x, const double *t, const int *labels,
                          size_t B, size_t D, double *out)
{
    FloatNet *f = vctx;
    size_t n = B * D;
    if (n > f->cap) {
        f->xf = xrealloc(f->xf, n * sizeof(float));
        f->of = xrealloc(f->of, n * sizeof(float));
        f->cap = n;
    }
    for (size_t i = 0; i < n; i++) f->xf[i] = (float)x[i];
    TRY(f->net(f->ctx, f->xf, t, labels, B, D, f->of));
    for (size_t i = 0; i < n; i++) out[i] = (double)f->of[i];
    return ERR_OK;
}

int sched_sample(const SamplerConfig *cfg, const Schedule *s, SchedNetFn net, void *ctx,
                 const uint64_t *sample_idx, size_t B, size_t D, const int *labels,
                 const float *mask, const float *known, float *out, SampleStats *stats)
{
    return sched_sample_from(cfg, s, net, ctx, sample_idx, B, D, labels, mask, known, NULL, out,
                             stats);
}

int sched_sample_from(const SamplerConfig *cfg, const Schedule *s, SchedNetFn net, void *ctx,
                      const uint64_t *sample_idx, size_t B, size_t D, const int *labels,
                      const float *mask, const float *known, const float *x_init, float *out,
                      SampleStats *stats)
{
    FloatNet f = {net, ctx, NULL, NULL, 0};
    double *xd = xmalloc(B * D * sizeof(double));
    int rc = sample_from_d(cfg, s, float_net_call, &f, sample_idx, B, D, labels, mask, known,
                           x_init, xd, stats);
    if (rc == ERR_OK)
        for (size_t i = 0; i < B * D; i++) out[i] = (float)xd[i];
    xfree(xd);
    xfree(f.xf);
    xfree(f.of);
    return rc;
}

int sched_ddim_invert(const SamplerConfig *cfg, const Schedule *s, SchedNetFn net, void *ctx,
                      size_t B, size_t D, const int *labels, const float *x0, float *xT,
                      SampleStats *stats)
{
    if (s->family != SCHED_DISCRETE)
        return ERR(ERR_ARG, "DDIM inversion needs a diffusion schedule, the model is a flow model");
    SamplerConfig c = *cfg;
    c.kind = SAMPLER_DDIM;
    c.eta = 0.0;
    TRY(check_config(&c, s));
    TRY(check_io(B, D, labels, c.guidance, NULL, NULL));
    SchedLevels lv;
    TRY(sched_levels_from_schedule(s, c.spacing, c.steps, &lv));
    FloatNet f = {net, ctx, NULL, NULL, 0};
    double *xd = xmalloc(B * D * sizeof(double));
    for (size_t i = 0; i < B * D; i++) xd[i] = (double)x0[i];
    int rc = sched_ddim_invert_d(&c, s->pred, &lv, float_net_call, &f, B, D, labels, xd, stats);
    if (rc == ERR_OK)
        for (size_t i = 0; i < B * D; i++) xT[i] = (float)xd[i];
    xfree(xd);
    xfree(f.xf);
    xfree(f.of);
    sched_levels_free(&lv);
    return rc;
}
