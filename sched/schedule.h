/* sched/schedule.h - noise schedules, their derived coefficient arrays, the continuous-time
 * paths, timestep sub-sequences, and exact conversions between model parameterisations.
 *
 * Conventions (fixed project-wide; a checkpoint is only valid under the same ones):
 *
 *   Discrete diffusion (DDPM/DDIM). Paper indexing t = 1..T, x_0 = data, x_T ~ N(0, I).
 *   Every array has T+1 entries indexed by t, and index 0 is the clean end: abar[0] = 1,
 *   beta[0] = 0, sqrt_1m_abar[0] = 0. All arrays are computed in double.
 *   The NETWORK TIME INPUT for diffusion is the 0-based index k = t - 1 in 0..T-1, as a double
 *   (what the DDPM and DDIM reference code feeds its timestep embedding). Training draws t
 *   uniformly from {1..T} and feeds t - 1; samplers feed tau_i - 1.
 *
 *   Flow matching (conditional OT path, Lipman et al. 2023; torchcfm convention). FM time
 *   tau in [0, 1] runs from NOISE (tau = 0) to DATA (tau = 1):
 *       x_tau = tau * x1 + (1 - (1 - sigma_min) * tau) * n,   x1 = data, n ~ N(0, I),
 *       target velocity u = x1 - (1 - sigma_min) * n.
 *   sigma_min = 0 is rectified flow. The network time input is tau itself (a model that wants
 *   a larger range, e.g. 1000 * tau for a sinusoidal embedding, scales it internally).
 *
 *   Every Gaussian path is x = a * x0 + s * eps (a = signal coefficient, s = noise coefficient):
 *   VP discrete a = sqrt(abar[t]), s = sqrt(1 - abar[t]); FM a = tau, s = 1 - (1 - sigma_min) tau.
 *
 * Ownership: sched_init_* allocate the arrays; sched_free releases them (NULL/zeroed safe).
 */
#ifndef DFM_SCHED_SCHEDULE_H
#define DFM_SCHED_SCHEDULE_H

#include <stddef.h>

typedef enum {
    SCHED_DISCRETE = 0, /* DDPM/DDIM: beta_1..beta_T */
    SCHED_FLOW = 1,     /* conditional flow matching on the OT path */
    SCHED_SDE = 2       /* continuous-time VP or VE SDE (sched/sde.h), time t in [t_eps, 1] */
} SchedFamily;

/* The continuous-time SDEs (their functions are in sched/sde.h; the types live here so that a
 * Schedule can carry one). */
typedef enum { SDE_VP = 0, SDE_VE = 1 } SdeKind;
typedef enum { SDE_OUT_EPS = 0, SDE_OUT_SCORE = 1 } SdeOut;

typedef struct {
    SdeKind kind;
    double bmin, bmax; /* VP */
    double smin, smax; /* VE */
    double t_eps;      /* smallest time: sampling ends there, likelihoods start there */
} Sde;

typedef enum {
    SCHED_BETA_LINEAR = 0, /* beta_t = beta_1 + (beta_T - beta_1)(t-1)/(T-1) (numpy linspace) */
    SCHED_BETA_COSINE = 1  /* Nichol & Dhariwal 2021, offset s, beta clipped at max_beta */
} SchedBeta;

/* What the network outputs. Diffusion: EPS, X0 or V (v = a*eps - s*x0, Salimans & Ho 2022).
 * Flow: VELOCITY (the only valid choice for SCHED_FLOW). */
typedef enum {
    SCHED_PRED_EPS = 0,
    SCHED_PRED_X0 = 1,
    SCHED_PRED_V = 2,
    SCHED_PRED_VELOCITY = 3
} SchedPred;

typedef struct {
    SchedFamily family;
    SchedPred pred;
    /* discrete family; all arrays have T+1 entries (index 0 = clean end), owned */
    SchedBeta beta_kind;
    int T;
    double *beta;                /* beta_t; beta[0] = 0 */
    double *alpha;               /* 1 - beta_t */
    double *abar;                /* prod_{i<=t} alpha_i; abar[0] = 1 */
    double *abar_prev;           /* abar[t-1]; abar_prev[0] = 1 */
    double *sqrt_abar;           /* sqrt(abar) */
    double *sqrt_1m_abar;        /* sqrt(1 - abar) */
    double *sqrt_recip_abar;     /* 1/sqrt(abar) */
    double *sqrt_recipm1_abar;   /* sqrt(1/abar - 1) */
    double *post_var;            /* beta~_t = beta_t (1 - abar[t-1]) / (1 - abar[t]); [1] = 0 */
    double *post_logvar_clipped; /* log beta~_t, with t = 1 (and 0) using log beta~_2 */
    double *post_coef1;          /* beta_t sqrt(abar[t-1]) / (1 - abar[t])   (times x0) */
    double *post_coef2;          /* sqrt(alpha_t) (1 - abar[t-1]) / (1 - abar[t]) (times x_t) */
    double *eps_coef;            /* beta_t / sqrt(1 - abar[t]) (eps-form posterior mean) */
    /* parameters the arrays were built from (recorded for checkpoints) */
    double beta_1, beta_T;       /* linear */
    double cosine_s, max_beta;   /* cosine */
    /* flow family */
    double sigma_min;
    /* SDE family: the SDE and what the network outputs (eps or the score); pred is
       SCHED_PRED_EPS for both */
    Sde sde;
    SdeOut sde_out;
} Schedule;

/* Linear betas (Ho et al. 2020: T = 1000, beta_1 = 1e-4, beta_T = 0.02). T >= 2. */
int sched_init_linear(Schedule *s, int T, double beta_1, double beta_T, SchedPred pred);
/* Cosine (Nichol & Dhariwal 2021: s = 0.008, max_beta = 0.999):
 * beta_t = min(1 - f(t/T)/f((t-1)/T), max_beta), f(u) = cos^2((u + s)/(1 + s) * pi/2);
 * abar is the cumulative product of the clipped alphas, so beta, alpha and abar agree. */
int sched_init_cosine(Schedule *s, int T, double offset, double max_beta, SchedPred pred);
/* Flow matching on the OT path; 0 <= sigma_min < 1. pred is SCHED_PRED_VELOCITY. */
int sched_init_flow(Schedule *s, double sigma_min);
/* A continuous-time SDE (initialised with sde_init_vp / sde_init_ve) as a schedule; the
 * network's time input is t. No arrays. */
int sched_init_sde(Schedule *s, const Sde *sde, SdeOut out);
void sched_free(Schedule *s);

/* ---- continuous-time forms ---------------------------------------------------------------- */

/* VP SDE with linear beta(u) = bmin + u (bmax - bmin), u in [0, 1] (Song et al. 2021: 0.1, 20):
 * a(u) = exp(-1/2 int_0^u beta), s(u) = sqrt(1 - a^2) (computed with expm1, no cancellation). */
void sched_vp_linear_cont(double u, double bmin, double bmax, double *a, double *s);
/* Continuous cosine path: abar(u) = f(u)/f(0), u in [0, 1]; a = sqrt(abar), s = sqrt(1 - abar). */
void sched_cosine_cont(double u, double offset, double *a, double *s);
/* FM OT path coefficients at FM time tau: a = tau, s = 1 - (1 - sigma_min) tau. */
void sched_flow_coef(double tau, double sigma_min, double *a, double *s);
/* Time change between the VP path and the rectified-flow path (sigma_min = 0) with equal SNR:
 * tau = a / (a + s), and the states are related by x_flow = x_vp / (a + s). */
double sched_flow_time_from_vp(double a, double s);
void sched_vp_from_flow_time(double tau, double *a, double *s);

/* ---- timestep sub-sequences (DDIM, DPM-Solver, respaced DDPM) ------------------------------ */

typedef enum {
    /* k_i = i * (T / S) (integer division), i = 0..S-1. The DDIM reference code's
     * range(0, T, T // S) truncated to S entries; diffusers "leading" with steps_offset = 0.
     * Last step starts at k = (S-1)(T/S), e.g. t = 981 for T = 1000, S = 50. */
    SCHED_SPACING_UNIFORM = 0,
    /* DDIM reference "quad": k_i = int((i * sqrt(0.8 T)/(S-1))^2), numpy linspace (last entry
     * exactly sqrt(0.8 T)), truncation toward zero; DUPLICATES REMOVED, so fewer than S steps
     * may remain (T = 1000, S = 50 gives 49). */
    SCHED_SPACING_QUADRATIC = 1,
    /* diffusers "trailing": k = round(T - j T / S) - 1, j = 0..S-1, round half to even
     * (numpy round); exactly S entries; always starts at k = T - 1. */
    SCHED_SPACING_TRAILING = 2
} SchedSpacing;

/* Fill tau[0..*n] with tau[0] = 0 and the 1-based timesteps tau[1] < ... < tau[*n] (tau = k + 1),
 * deduplicated. tau needs room for S + 1 ints. 1 <= S <= T. */
int sched_timesteps(SchedSpacing sp, int T, int S, int *tau, int *n);
const char *sched_spacing_name(SchedSpacing sp); /* "uniform", "quadratic", "trailing" */

/* ---- parameterisation conversions (exact, at a fixed state x = a x0 + s eps) ------------- */

/* Model output `out` of kind pred at state x with path coefficients (a, s) -> estimates of x0
 * (data) and eps (noise); either output may be NULL. Formulas:
 *   EPS: x0 = (x - s out)/a                      X0: eps = (x - a out)/s
 *   V  : x0 = (a x - s out)/(a^2+s^2), eps = (s x + a out)/(a^2+s^2)   (v = a eps - s x0)
 *   VELOCITY (FM, a = tau, s = 1-(1-smin)tau): eps = x - tau out,
 *            x0 = out + (1 - smin) eps; needs sigma_min (passed as smin). */
void sched_pred_to_x0_eps(SchedPred pred, double a, double s, double smin, const double *x,
                          const double *out, double *x0, double *eps, size_t n);
/* The training target of kind pred for data x0 and noise eps on the path (a, s, smin). */
void sched_target_from_x0_eps(SchedPred pred, double a, double s, double smin, const double *x0,
                              const double *eps, double *target, size_t n);
/* Score of q(x_t) from an eps estimate and back: score = -eps / s. */
void sched_eps_to_score(double s, const double *eps, double *score, size_t n);
void sched_score_to_eps(double s, const double *score, double *eps, size_t n);

/* Names as job specs spell them (core/names.h): "eps", "x0", "v", "velocity". */
const char *sched_pred_name(SchedPred p);

#endif
