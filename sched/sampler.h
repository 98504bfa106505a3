/* sched/sampler.h - samplers for diffusion and flow models, network-agnostic.
 *
 * The network is a callback; sched/ never sees a model. Samplers:
 *   diffusion (Schedule family SCHED_DISCRETE, any of eps/x0/v prediction):
 *     SAMPLER_DDPM      ancestral (Ho et al. 2020), sigma^2 = beta or beta~; on a sub-sequence
 *                       tau it is respaced DDPM, beta'_i = 1 - abar[tau_i]/abar[tau_{i-1}].
 *     SAMPLER_DDIM      generalised DDIM (Song et al. 2021, eq. 12/16) with eta;
 *                       sigma_i = eta sqrt((1-abar')/(1-abar)) sqrt(1 - abar/abar').
 *     SAMPLER_DPMPP_2M  DPM-Solver++(2M) (Lu et al. 2022), multistep, data prediction; the step
 *                       into abar = 1 (the last one) is first order, i.e. returns x0-hat. Use it
 *                       with trailing or quadratic spacing: with "uniform" spacing the move
 *                       tau = 1 + T/S -> 1 spans a large log-SNR interval and the two-step
 *                       extrapolation loses its advantage over DDIM below about 50 steps.
 *   flow (SCHED_FLOW): SAMPLER_EULER, SAMPLER_MIDPOINT, SAMPLER_HEUN, SAMPLER_RK4 on
 *     dx/dtau = v(x, tau), tau from 0 (noise) to 1 (data) in `steps` equal steps; SAMPLER_RK45
 *     adaptive (Dormand-Prince, per-sample step control with rtol/atol).
 *   SDE (SCHED_SDE, sched/sde.h; network output eps or score, time t from 1 to t_eps):
 *     SAMPLER_EULER..SAMPLER_RK4 and SAMPLER_RK45 integrate the probability-flow ODE;
 *     SAMPLER_EM the reverse SDE by Euler-Maruyama, SAMPLER_PC predictor-corrector, both in
 *     `steps` equal steps and ending with one denoising step x0 = (x + s^2 score) / a;
 *     SAMPLER_LANGEVIN annealed Langevin over `steps` geometric noise levels from s(1) to
 *     s(t_eps), `correctors` moves each, then the denoising step. Their noise is keyed as
 *     sched/sde.h says (initial noise as below, scaled by the prior's sd).
 *
 * Timesteps. Diffusion samplers use the sub-sequence from sched_timesteps(cfg->spacing, T,
 * cfg->steps) (see schedule.h for the exact rules); steps = T with any spacing is the full chain.
 * The network receives tau_i - 1 (0-based). The final step always lands on abar = 1.
 *
 * Noise. Sample j's initial noise is rng_fill_normal(seed, rng_stream(RNG_P_SAMPLE_INIT,
 * sample_idx[j]), sub 0); the noise of loop iteration k (k = 0 is the first, noisiest step) is
 * sub = k of rng_stream(RNG_P_SAMPLE_STEP, sample_idx[j]); the replacement noise for inpainting
 * uses the same stream with sub = k | 2^31, and the known entries of a diffusion sampler's
 * starting state use sub = 2^32 - 1. So a sample depends on its index and the seed only, never
 * on the batch it is computed in or on the rank.
 *
 * Guidance (classifier-free). One convention: out = c + (w - 1)(c - u) = u + w (c - u), where
 * c = network(x, label) and u = network(x, -1): w = 1 is the plain conditional model (neutral),
 * w = 0 the unconditional one. This is the "guidance scale" of Ho & Salimans' code, Stable
 * Diffusion and the flow-matching literature; the paper's weight w' (eps = (1+w')c - w'u, w' = 0
 * neutral) is w' = w - 1. It is applied to the raw network output; every parameterisation is
 * affine in it at fixed x_t, so the same rule holds for eps, x0, v, score or velocity. Guided
 * steps call the network once on a batch of 2B ([x; x] with [labels; -1]) and count 2 NFE;
 * w = 0 evaluates the unconditional branch alone (B rows labelled -1, 1 NFE).
 * labels == NULL means an unconditional model and requires w = 1.
 *
 * Inpainting (replacement). mask (B, D) with 1 = known, 0 = generate (only 0/1 accepted) and
 * known (B, D). After every step that lands on level (a, s), known entries are replaced by
 * a * known + s * noise (a fresh draw of q(x | known)); the returned sample holds the known
 * values exactly.
 *
 * NFE: model evaluations per sample (a guided evaluation counts 2). No global state: every
 * function is re-entrant and safe on every rank and thread.
 */
#ifndef DFM_SCHED_SAMPLER_H
#define DFM_SCHED_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "sched/schedule.h"

/* Network callback, float at the boundary. x (B, D); t (B): diffusion 0-based timestep k as a
 * double, flow tau in [0, 1]; labels (B) or NULL, -1 = null class; out (B, D). Returns ERR_OK or
 * an error code (after ERR()). */
typedef int (*SchedNetFn)(void *ctx, const float *x, const double *t, const int *labels,
                          size_t B, size_t D, float *out);
/* The same in double, used by the internal double path and the exactness tests. */
typedef int (*SchedNetFnD)(void *ctx, const double *x, const double *t, const int *labels,
                           size_t B, size_t D, double *out);

typedef enum {
    SAMPLER_DDPM = 0,
    SAMPLER_DDIM = 1,
    SAMPLER_DPMPP_2M = 2,
    SAMPLER_EULER = 3,
    SAMPLER_MIDPOINT = 4,
    SAMPLER_HEUN = 5,
    SAMPLER_RK4 = 6,
    SAMPLER_RK45 = 7,    /* adaptive Dormand-Prince 5(4): flow ODE or PF-ODE, rtol/atol */
    SAMPLER_EM = 8,      /* SDE: reverse-SDE Euler-Maruyama, then one denoising step */
    SAMPLER_PC = 9,      /* SDE: predictor-corrector (reverse diffusion or EM predictor,
                            Langevin corrector with the signal-to-noise step rule) */
    SAMPLER_LANGEVIN = 10 /* SDE: annealed Langevin dynamics (NCSN) over `steps` levels */
} SamplerKind;

typedef enum {
    SCHED_VAR_BETA = 0,      /* sigma^2 = beta (reference "fixedlarge") */
    SCHED_VAR_BETA_TILDE = 1 /* sigma^2 = beta~ (reference "fixedsmall") */
} SchedVar;

typedef struct {
    SamplerKind kind;
    int steps;            /* diffusion: sub-sequence length S (<= T); flow: number of steps */
    SchedSpacing spacing; /* diffusion only */
    double eta;           /* DDIM: 0 deterministic, 1 = DDPM posterior variance */
    SchedVar var;         /* DDPM */
    int clip_x0;          /* clamp the x0 estimate to [-clip, clip] and re-derive eps from it
                             (DDPM/DDIM/DPM++) */
    double clip;          /* usually 1 */
    double guidance;      /* w, 1 = neutral (see above) */
    int resample;         /* inpainting with DDPM/DDIM and the fixed-step flow samplers: RePaint
                             resampling, each level's step is taken `resample` times, re-noising
                             back with q(x_i | x_{i-1}) in between (the flow path's kernel
                             N((a/a') x, s^2 - (a s'/a')^2) for flows; noise sub =
                             k + (u << 17) | 2^30); 0 or 1 = off, ignored without a mask. Costs
                             `resample` times the NFE per level (sampler_nfe counts a run without
                             a mask) */
    /* continuous-time samplers */
    double rtol, atol;    /* rk45: relative and absolute tolerance of the step control */
    int correctors;       /* pc: corrector moves per predictor step; langevin: moves per level */
    double snr;           /* pc: corrector signal-to-noise ratio r */
    int predictor_em;     /* pc: 1 = Euler-Maruyama predictor, 0 = reverse diffusion */
    double langevin_eps;  /* langevin: step a_i = eps sigma_i^2 / sigma_L^2 */
    uint64_t seed;
} SamplerConfig;

typedef struct {
    uint64_t nfe;       /* model evaluations per sample (adaptive solvers: the most any sample
                           of the batch took) */
    uint64_t net_calls; /* callback invocations */
    int steps;          /* solver steps actually taken (after deduplication) */
    uint64_t nfe_total; /* model evaluations summed over the samples of the batch */
} SampleStats;

/* Defaults: steps = 50 (diffusion) / 100 (flow), uniform spacing, eta 0, beta~, no clipping,
 * guidance 1, rtol = atol = 1e-5, 1 corrector, snr 0.16, reverse-diffusion predictor, Langevin
 * eps 2e-5, seed 0. */
void sampler_config_default(SamplerConfig *c, SamplerKind kind);
/* The sampler's name as job specs spell it (core/names.h): "ddpm", "ddim", "dpmpp2m", ... */
const char *sampler_kind_name(SamplerKind k);
/* How a step evaluates the network under guidance weight w (the convention above), for every
 * sampler: GUIDE_PLAIN one call with the labels as given (no labels, or w = 1), GUIDE_UNCOND one
 * call with every label -1 (w = 0: the unconditional model), GUIDE_BLEND one call on 2B rows and
 * the blend (2 NFE). */
typedef enum { GUIDE_PLAIN, GUIDE_UNCOND, GUIDE_BLEND } GuideMode;
GuideMode sched_guide_mode(int labelled, double w);

/* Model evaluations per sample the sampler will spend (before guidance doubling, GUIDE_BLEND);
 * 0 for rk45,
 * whose count is known only afterwards (SampleStats). */
int sampler_nfe(const SamplerConfig *c, const Schedule *s, uint64_t *nfe);

/* Draw B samples: out (B, D). labels (B) or NULL; mask/known (B, D) or both NULL. stats may
 * be NULL. */
int sched_sample(const SamplerConfig *cfg, const Schedule *s, SchedNetFn net, void *ctx,
                 const uint64_t *sample_idx, size_t B, size_t D, const int *labels,
                 const float *mask, const float *known, float *out, SampleStats *stats);
/* The same from given starting states x_init (B, D) instead of the keyed initial noise: x_T
 * for a diffusion sampler, the tau = 0 state for a flow (sample_idx still keys every later
 * noise). With DDIM at eta = 0 or a flow ODE solver the sample is a deterministic function of
 * x_init, which is what latent interpolation (Song et al. 2021, sec. 5.3) relies on. */
int sched_sample_from(const SamplerConfig *cfg, const Schedule *s, SchedNetFn net, void *ctx,
                      const uint64_t *sample_idx, size_t B, size_t D, const int *labels,
                      const float *mask, const float *known, const float *x_init, float *out,
                      SampleStats *stats);
/* The same with a double network and double output (all arithmetic is double either way). */
int sched_sample_d(const SamplerConfig *cfg, const Schedule *s, SchedNetFnD net, void *ctx,
                   const uint64_t *sample_idx, size_t B, size_t D, const int *labels,
                   const float *mask, const float *known, double *out, SampleStats *stats);

/* Deterministic DDIM inversion (eta = 0) of data x0 (B, D) to latents xT (B, D) on the timesteps
 * of cfg->spacing and cfg->steps (see sched_ddim_invert_d for the first step's rule); decoding
 * the latents with SAMPLER_DDIM, eta = 0 and the same steps reconstructs x0 up to the solver
 * error. cfg->kind is ignored; guidance applies as in sampling. */
int sched_ddim_invert(const SamplerConfig *cfg, const Schedule *s, SchedNetFn net, void *ctx,
                      size_t B, size_t D, const int *labels, const float *x0, float *xT,
                      SampleStats *stats);

/* Initial noise of the given samples, exactly as the samplers draw it: x (B, D). */
void sched_initial_noise(uint64_t seed, const uint64_t *sample_idx, size_t B, size_t D, double *x);

/* ---- lower level: explicit noise levels ----------------------------------------------------
 * A diffusion trajectory is a list of levels i = 0..n, i = 0 the clean end: abar[i]
 * decreasing in i, beta[i] the per-step beta of the move from level i to i-1 (for consecutive
 * timesteps the schedule's beta_t, otherwise 1 - abar[i]/abar[i-1]); tnet[i] the network time
 * input at level i (tnet[0] unused). Arrays are owned. */
typedef struct {
    size_t n;
    double *abar, *beta, *tnet; /* n + 1 entries each */
} SchedLevels;

int sched_levels_from_schedule(const Schedule *s, SchedSpacing sp, int steps, SchedLevels *lv);
/* Levels from arbitrary abar values abar[0..n] (decreasing), tnet[0..n]; copies. */
int sched_levels_from_abar(const double *abar, const double *tnet, size_t n, SchedLevels *lv);
void sched_levels_free(SchedLevels *lv);

/* DDIM's noise scale for the move abar -> abar_prev (abar < abar_prev <= 1):
 * sigma = eta sqrt((1 - abar_prev)/(1 - abar)) sqrt(1 - abar/abar_prev) (eq. 16, linear in eta). */
double sched_ddim_sigma(double eta, double abar, double abar_prev);

/* Run a diffusion sampler (cfg->kind DDPM, DDIM or DPMPP_2M) from level n to level 0.
 * With cfg->clip_x0 the x0 estimate is clipped and the eps estimate re-derived from it,
 * eps = (x - a clip(x0-hat)) / s, so every sampler steps from one consistent pair.
 * x (B, D): in = the state at level n, out = the sample. smin is unused for diffusion preds. */
int sched_diffusion_run_d(const SamplerConfig *cfg, SchedPred pred, const SchedLevels *lv,
                          SchedNetFnD net, void *ctx, const uint64_t *sample_idx, size_t B,
                          size_t D, const int *labels, const float *mask, const float *known,
                          double *x, SampleStats *stats);
/* Deterministic DDIM inversion (encoding) x0 -> x at level n, eta = 0, with increasing levels:
 * x_i = sqrt(abar_i) x0hat + sqrt(1 - abar_i) epshat, the estimates taken at level i-1. The first
 * step (from the clean level 0, where the network is never evaluated) uses the model at the
 * data point with level 1's time: epshat = model(x0, tnet[1]) read with level 1's
 * coefficients. x (B, D): in = data, out = latent. */
int sched_ddim_invert_d(const SamplerConfig *cfg, SchedPred pred, const SchedLevels *lv,
                        SchedNetFnD net, void *ctx, size_t B, size_t D, const int *labels,
                        double *x, SampleStats *stats);
/* Integrate the flow ODE over the grid tau[0] < ... < tau[N] (cfg->kind EULER..RK4); the
 * network time input is tau. x (B, D): in = state at tau[0], out = state at tau[N]. */
int sched_flow_run_d(const SamplerConfig *cfg, double sigma_min, const double *tau, size_t N,
                     SchedNetFnD net, void *ctx, const uint64_t *sample_idx, size_t B, size_t D,
                     const int *labels, const float *mask, const float *known, double *x,
                     SampleStats *stats);

#endif
