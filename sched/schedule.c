/* sched/schedule.c - see schedule.h. Everything here is double precision. */
#include "sched/schedule.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h" /* ERR */
#include "core/names.h" /* DFM_PRED_NAMES, DFM_SPACING_NAMES */
#include "core/mem.h" /* xcalloc, xfree */

static const double PI = 3.14159265358979323846;

/* ---- construction ------------------------------------------------------------------------ */

static void alloc_arrays(Schedule *s, int T)
{
    size_t n = (size_t)T + 1;
    s->beta = xcalloc(n, sizeof(double));
    s->alpha = xcalloc(n, sizeof(double));
    s->abar = xcalloc(n, sizeof(double));
    s->abar_prev = xcalloc(n, sizeof(double));
    s->sqrt_abar = xcalloc(n, sizeof(double));
    s->sqrt_1m_abar = xcalloc(n, sizeof(double));
    s->sqrt_recip_abar = xcalloc(n, sizeof(double));
    s->sqrt_recipm1_abar = xcalloc(n, sizeof(double));
    s->post_var = xcalloc(n, sizeof(double));
    s->post_logvar_clipped = xcalloc(n, sizeof(double));
    s->post_coef1 = xcalloc(n, sizeof(double));
    s->post_coef2 = xcalloc(n, sizeof(double));
    s->eps_coef = xcalloc(n, sizeof(double));
}

/* Given beta[1..T], fill every derived array. */
static void derive(Schedule *s)
{
    int T = s->T;
    s->beta[0] = 0.0;
    s->alpha[0] = 1.0;
    s->abar[0] = 1.0;
    s->abar_prev[0] = 1.0;
    for (int t = 1; t <= T; t++) {
        s->alpha[t] = 1.0 - s->beta[t];
        s->abar[t] = s->abar[t - 1] * s->alpha[t];
        s->abar_prev[t] = s->abar[t - 1];
    }
    for (int t = 0; t <= T; t++) {
        double ab = s->abar[t], abp = s->abar_prev[t];
        s->sqrt_abar[t] = sqrt(ab);
        s->sqrt_1m_abar[t] = sqrt(1.0 - ab);
        s->sqrt_recip_abar[t] = 1.0 / sqrt(ab);
        s->sqrt_recipm1_abar[t] = sqrt(1.0 / ab - 1.0);
        if (t == 0) continue; /* clean end: posterior terms stay 0 */
        s->post_var[t] = s->beta[t] * (1.0 - abp) / (1.0 - ab);
        s->post_coef1[t] = s->beta[t] * sqrt(abp) / (1.0 - ab);
        s->post_coef2[t] = sqrt(s->alpha[t]) * (1.0 - abp) / (1.0 - ab);
        s->eps_coef[t] = s->beta[t] / sqrt(1.0 - ab);
    }
    /* beta~_1 = 0: the reference code clips the log variance at t = 1 to log beta~_2. */
    for (int t = 2; t <= T; t++) s->post_logvar_clipped[t] = log(s->post_var[t]);
    s->post_logvar_clipped[1] = s->post_logvar_clipped[2];
    s->post_logvar_clipped[0] = s->post_logvar_clipped[2];
}

static int check_pred_discrete(SchedPred pred)
{
    if (pred != SCHED_PRED_EPS && pred != SCHED_PRED_X0 && pred != SCHED_PRED_V)
        return ERR(ERR_ARG, "diffusion schedules take eps, x0 or v prediction, not %s",
                   sched_pred_name(pred));
    return ERR_OK;
}

int sched_init_linear(Schedule *s, int T, double beta_1, double beta_T, SchedPred pred)
{
    memset(s, 0, sizeof *s);
    if (T < 2) return ERR(ERR_ARG, "linear schedule: T must be at least 2, got %d", T);
    if (!(beta_1 > 0.0 && beta_T < 1.0 && beta_1 <= beta_T))
        return ERR(ERR_ARG, "linear schedule: need 0 < beta_1 <= beta_T < 1, got %g and %g",
                   beta_1, beta_T);
    TRY(check_pred_discrete(pred));
    s->family = SCHED_DISCRETE;
    s->pred = pred;
    s->beta_kind = SCHED_BETA_LINEAR;
    s->T = T;
    s->beta_1 = beta_1;
    s->beta_T = beta_T;
    alloc_arrays(s, T);
    /* numpy.linspace(beta_1, beta_T, T): start + i*step, last entry exactly beta_T */
    double step = (beta_T - beta_1) / (double)(T - 1);
    for (int t = 1; t <= T; t++) s->beta[t] = beta_1 + (double)(t - 1) * step;
    s->beta[T] = beta_T;
    derive(s);
    return ERR_OK;
}

static double cosine_f(double u, double offset)
{
    double c = cos((u + offset) / (1.0 + offset) * PI / 2.0);
    return c * c;
}

int sched_init_cosine(Schedule *s, int T, double offset, double max_beta, SchedPred pred)
{
    memset(s, 0, sizeof *s);
    if (T < 2) return ERR(ERR_ARG, "cosine schedule: T must be at least 2, got %d", T);
    if (!(offset >= 0.0) || !(max_beta > 0.0 && max_beta < 1.0))
        return ERR(ERR_ARG, "cosine schedule: need offset >= 0 and 0 < max_beta < 1, got %g, %g",
                   offset, max_beta);
    TRY(check_pred_discrete(pred));
    s->family = SCHED_DISCRETE;
    s->pred = pred;
    s->beta_kind = SCHED_BETA_COSINE;
    s->T = T;
    s->cosine_s = offset;
    s->max_beta = max_beta;
    alloc_arrays(s, T);
    /* improved-diffusion betas_for_alpha_bar: t1 = i/T, t2 = (i+1)/T, 1 - f(t2)/f(t1) */
    for (int t = 1; t <= T; t++) {
        double b = 1.0 - cosine_f((double)t / T, offset) / cosine_f((double)(t - 1) / T, offset);
        s->beta[t] = b < max_beta ? b : max_beta;
    }
    derive(s);
    return ERR_OK;
}

int sched_init_flow(Schedule *s, double sigma_min)
{
    memset(s, 0, sizeof *s);
    if (!(sigma_min >= 0.0 && sigma_min < 1.0))
        return ERR(ERR_ARG, "flow path: sigma_min must be in [0, 1), got %g", sigma_min);
    s->family = SCHED_FLOW;
    s->pred = SCHED_PRED_VELOCITY;
    s->sigma_min = sigma_min;
    return ERR_OK;
}

int sched_init_sde(Schedule *s, const Sde *sde, SdeOut out)
{
    memset(s, 0, sizeof *s);
    if (sde->kind != SDE_VP && sde->kind != SDE_VE)
        return ERR(ERR_ARG, "SDE schedule: unknown SDE kind %d", (int)sde->kind);
    if (out != SDE_OUT_EPS && out != SDE_OUT_SCORE)
        return ERR(ERR_ARG, "SDE schedule: unknown network output %d", (int)out);
    s->family = SCHED_SDE;
    s->pred = SCHED_PRED_EPS;
    s->sde = *sde;
    s->sde_out = out;
    return ERR_OK;
}

void sched_free(Schedule *s)
{
    if (!s) return;
    xfree(s->beta);
    xfree(s->alpha);
    xfree(s->abar);
    xfree(s->abar_prev);
    xfree(s->sqrt_abar);
    xfree(s->sqrt_1m_abar);
    xfree(s->sqrt_recip_abar);
    xfree(s->sqrt_recipm1_abar);
    xfree(s->post_var);
    xfree(s->post_logvar_clipped);
    xfree(s->post_coef1);
    xfree(s->post_coef2);
    xfree(s->eps_coef);
    memset(s, 0, sizeof *s);
}

/* ---- continuous-time forms ---------------------------------------------------------------- */

void sched_vp_linear_cont(double u, double bmin, double bmax, double *a, double *s)
{
    double integral = bmin * u + 0.5 * u * u * (bmax - bmin); /* int_0^u beta */
    *a = exp(-0.5 * integral);
    *s = sqrt(-expm1(-integral));
}

void sched_cosine_cont(double u, double offset, double *a, double *s)
{
    double ab = cosine_f(u, offset) / cosine_f(0.0, offset);
    if (ab > 1.0) ab = 1.0;
    if (ab < 0.0) ab = 0.0;
    *a = sqrt(ab);
    *s = sqrt(1.0 - ab);
}

void sched_flow_coef(double tau, double sigma_min, double *a, double *s)
{
    *a = tau;
    *s = 1.0 - (1.0 - sigma_min) * tau;
}

double sched_flow_time_from_vp(double a, double s) { return a / (a + s); }

void sched_vp_from_flow_time(double tau, double *a, double *s)
{
    double r = sqrt(tau * tau + (1.0 - tau) * (1.0 - tau));
    *a = tau / r;
    *s = (1.0 - tau) / r;
}

/* ---- timestep sub-sequences --------------------------------------------------------------- */

static int cmp_int(const void *x, const void *y)
{
    int a = *(const int *)x, b = *(const int *)y;
    return (a > b) - (a < b);
}

int sched_timesteps(SchedSpacing sp, int T, int S, int *tau, int *n)
{
    if (T < 1 || S < 1 || S > T)
        return ERR(ERR_ARG, "timesteps: need 1 <= S <= T, got S = %d, T = %d", S, T);
    int *k = tau + 1; /* 0-based k values, written in place then shifted to 1-based */
    switch (sp) {
    case SCHED_SPACING_UNIFORM: {
        int c = T / S;
        for (int i = 0; i < S; i++) k[i] = i * c;
        break;
    }
    case SCHED_SPACING_QUADRATIC: {
        double stop = sqrt((double)T * 0.8);
        double step = S > 1 ? stop / (double)(S - 1) : 0.0;
        for (int i = 0; i < S; i++) {
            double y = (i == S - 1 && S > 1) ? stop : (double)i * step;
            k[i] = (int)(y * y); /* python int(): truncation toward zero */
        }
        break;
    }
    case SCHED_SPACING_TRAILING: {
        double step = -((double)T / (double)S);
        for (int j = 0; j < S; j++) k[j] = (int)nearbyint((double)T + (double)j * step) - 1;
        break;
    }
    default:
        return ERR(ERR_ARG, "timesteps: unknown spacing %d", (int)sp);
    }
    qsort(k, (size_t)S, sizeof(int), cmp_int);
    int m = 0;
    for (int i = 0; i < S; i++) {
        if (k[i] < 0 || k[i] >= T) return ERR(ERR_ARG, "timesteps: internal range error");
        if (m == 0 || k[i] != k[m - 1]) k[m++] = k[i];
    }
    tau[0] = 0;
    for (int i = 1; i <= m; i++) tau[i] = tau[i] + 1;
    *n = m;
    return ERR_OK;
}

static const char *const SPACING_NAMES[] = {DFM_SPACING_NAMES};
_Static_assert(sizeof SPACING_NAMES / sizeof SPACING_NAMES[0] == SCHED_SPACING_TRAILING + 1,
               "core/names.h lists the spacings in SchedSpacing order");

const char *sched_spacing_name(SchedSpacing sp)
{
    return (int)sp >= 0 && sp <= SCHED_SPACING_TRAILING ? SPACING_NAMES[sp] : "?";
}

/* ---- conversions -------------------------------------------------------------------------- */

void sched_pred_to_x0_eps(SchedPred pred, double a, double s, double smin, const double *x,
                          const double *out, double *x0, double *eps, size_t n)
{
    switch (pred) {
    case SCHED_PRED_EPS:
        for (size_t i = 0; i < n; i++) {
            double e = out[i];
            if (x0) x0[i] = (x[i] - s * e) / a;
            if (eps) eps[i] = e;
        }
        break;
    case SCHED_PRED_X0:
        for (size_t i = 0; i < n; i++) {
            double d = out[i];
            if (eps) eps[i] = (x[i] - a * d) / s;
            if (x0) x0[i] = d;
        }
        break;
    case SCHED_PRED_V: {
        double r = a * a + s * s;
        for (size_t i = 0; i < n; i++) {
            double v = out[i], xi = x[i];
            if (x0) x0[i] = (a * xi - s * v) / r;
            if (eps) eps[i] = (s * xi + a * v) / r;
        }
        break;
    }
    case SCHED_PRED_VELOCITY:
        for (size_t i = 0; i < n; i++) {
            double v = out[i];
            double e = x[i] - a * v; /* a = tau */
            if (x0) x0[i] = v + (1.0 - smin) * e;
            if (eps) eps[i] = e;
        }
        break;
    }
}

void sched_target_from_x0_eps(SchedPred pred, double a, double s, double smin, const double *x0,
                              const double *eps, double *target, size_t n)
{
    switch (pred) {
    case SCHED_PRED_EPS:
        for (size_t i = 0; i < n; i++) target[i] = eps[i];
        break;
    case SCHED_PRED_X0:
        for (size_t i = 0; i < n; i++) target[i] = x0[i];
        break;
    case SCHED_PRED_V:
        for (size_t i = 0; i < n; i++) target[i] = a * eps[i] - s * x0[i];
        break;
    case SCHED_PRED_VELOCITY:
        for (size_t i = 0; i < n; i++) target[i] = x0[i] - (1.0 - smin) * eps[i];
        break;
    }
}

void sched_eps_to_score(double s, const double *eps, double *score, size_t n)
{
    for (size_t i = 0; i < n; i++) score[i] = -eps[i] / s;
}

void sched_score_to_eps(double s, const double *score, double *eps, size_t n)
{
    for (size_t i = 0; i < n; i++) eps[i] = -s * score[i];
}

static const char *const PRED_NAMES[] = {DFM_PRED_NAMES};
_Static_assert(sizeof PRED_NAMES / sizeof PRED_NAMES[0] == SCHED_PRED_VELOCITY + 1,
               "core/names.h lists the predictions in SchedPred order");

const char *sched_pred_name(SchedPred p)
{
    return (int)p >= 0 && p <= SCHED_PRED_VELOCITY ? PRED_NAMES[p] : "?";
}
