/* sched/sde.h - the continuous-time (score/SDE) view of diffusion: VP and VE SDEs, the reverse
 * SDE, the probability-flow ODE, Langevin dynamics, predictor-corrector sampling, and
 * log-likelihoods through the instantaneous change of variables. Network-agnostic like
 * sched/sampler.h: the network is a SchedNetFnD callback. All arithmetic is double.
 *
 * SDEs (Song et al. 2021), time t in [0, 1], t = 0 data, t = 1 noise: dx = f(t) x dt + g(t) dw,
 * marginal x_t = a(t) x0 + s(t) eps.
 *   VP: beta(t) = bmin + t (bmax - bmin) (0.1 .. 20); f = -beta/2, g^2 = beta,
 *       a = exp(-1/2 int_0^t beta), s = sqrt(1 - a^2) (sched_vp_linear_cont). Prior N(0, I).
 *       With N steps and beta_i = beta(t_i) / N this is DDPM's linear schedule.
 *   VE: sigma(t) = smin (smax/smin)^t (NCSN's geometric noise levels, 0.01 .. 50); f = 0,
 *       g^2 = d sigma^2/dt = 2 sigma^2 ln(smax/smin), a = 1, s = sigma(t). The marginal is
 *       exact for x(0) = data + smin noise (the convention of Song et al.'s code), so likelihoods
 *       under VE are those of the data convolved with N(0, smin^2). Prior N(0, smax^2 I).
 * The network's time input is t itself. It predicts eps (SDE_OUT_EPS) or the score
 * grad log p_t (SDE_OUT_SCORE); score = -eps / s(t) (sched_eps_to_score).
 *
 * Noise. Initial noise: sched_initial_noise (RNG_P_SAMPLE_INIT, sub 0) times the prior's sd.
 * Per-step noise of sample j: rng_stream(RNG_P_SAMPLE_STEP, sample_idx[j]) with sub = the
 * number of noise draws made before it on that sample's chain (predictor and corrector moves in
 * order; Langevin: level * steps_per_level + step). A sample depends on its index and the seed
 * only, never on its batch: step sizes (the corrector's SNR rule, RK45's controller) are per
 * sample.
 *
 * NFE: network evaluations per sample; a directional derivative by central differences costs 2
 * more, one through a supplied Jacobian-vector callback counts 1 in `jvp`.
 */
#ifndef DFM_SCHED_SDE_H
#define DFM_SCHED_SDE_H

#include <stddef.h>
#include <stdint.h>

#include "sched/sampler.h" /* SchedNetFnD, SamplerKind */

/* SdeKind, SdeOut and Sde are declared in sched/schedule.h. */

/* 0 < bmin <= bmax; 0 < smin < smax; 0 < t_eps < 1. */
int sde_init_vp(Sde *sde, double bmin, double bmax, double t_eps);
int sde_init_ve(Sde *sde, double smin, double smax, double t_eps);
/* Marginal coefficients x_t = a x0 + s eps. */
void sde_marginal(const Sde *sde, double t, double *a, double *s);
/* Drift coefficient f(t) and squared diffusion g(t)^2. */
void sde_coef(const Sde *sde, double t, double *f, double *g2);
/* Standard deviation of the prior at t = 1 (VP 1, VE smax). */
double sde_prior_sd(const Sde *sde);
/* log N(x; 0, prior_sd^2 I) of one state (D). */
double sde_prior_logp(const Sde *sde, const double *x, size_t D);
/* VE: the time whose sigma(t) is `sigma`. */
double sde_ve_time(const Sde *sde, double sigma);
/* Either SDE: the time t with s(t) = sigma (VP: the root of the quadratic exponent of
 * 1 - s^2 = exp(-bmin t - (bmax - bmin) t^2 / 2)); sigma inside the SDE's range. */
double sde_sigma_time(const Sde *sde, double sigma);
/* Geometric levels sig[0] = smax > ... > sig[L-1] = smin (L >= 2). */
void sde_geometric_levels(double smax, double smin, int L, double *sig);

/* ---- denoising score matching ------------------------------------------------------------ */

typedef enum {
    SDE_WEIGHT_SIGMA2 = 0, /* lambda(t) = s(t)^2: for eps outputs plain MSE (L_simple) */
    SDE_WEIGHT_G2 = 1      /* lambda(t) = g(t)^2 (= beta(t) for VP): the likelihood weighting */
} SdeWeight;

/* DSM loss lambda(t) ||score_hat - (-eps/s)||^2 = lambda/s^2 ||eps_hat - eps||^2, written as
 * w ||out - target||^2: returns w for the output kind, and the target (n) from eps (n):
 * EPS: target = eps, w = lambda / s^2; SCORE: target = -eps / s, w = lambda. */
double sde_dsm_target(const Sde *sde, SdeOut out, SdeWeight wt, double t, const double *eps,
                      double *target, size_t n);

/* ---- reverse SDE, predictor-corrector, Langevin ------------------------------------------- */

typedef enum {
    SDE_PRED_NONE = 0,      /* corrector only */
    SDE_PRED_EM = 1,        /* Euler-Maruyama on the reverse SDE */
    SDE_PRED_REVERSE = 2    /* reverse diffusion (the discretised SDE run backwards, ancestral) */
} SdePredictor;

typedef struct {
    SdePredictor predictor;
    int steps;      /* N: times t_k = 1 - k (1 - t_eps) / N, k = 0..N */
    int correctors; /* Langevin corrector moves after each predictor step (0 = none) */
    double snr;     /* corrector signal-to-noise ratio r (Song et al.: 0.16 VE, 0.01 VP) */
    int denoise;    /* final x0 estimate at t_eps, (x + s^2 score) / a, no noise */
    uint64_t seed;
} SdeSamplerConfig;

typedef struct {
    uint64_t nfe;      /* network evaluations per sample (max over the batch when adaptive) */
    double nfe_mean;   /* mean over the batch (adaptive solvers) */
    uint64_t jvp;      /* Jacobian-vector callbacks per sample */
    uint64_t accepted; /* adaptive: accepted steps, summed over the batch */
    uint64_t rejected; /* adaptive: rejected steps, summed over the batch */
} SdeStats;

void sde_sampler_config_default(SdeSamplerConfig *c);

/* Draw B samples (predictor-corrector; EM alone is predictor EM with 0 correctors). x (B, D)
 * out. Predictor moves t -> t' = t - dt: EM x += -(f x - g^2 score) dt + g sqrt(dt) z; reverse
 * diffusion VP x = (2 - sqrt(al)) x + (1 - al) score + sqrt(1 - al) z with al = a(t)^2/a(t')^2,
 * VE x += (s^2 - s'^2) score + sqrt(s^2 - s'^2) z. Corrector at t' (Song et al. 2021, Alg. 4/5):
 * z ~ N(0, I), g = score, e = 2 alpha (snr |z| / |g|)^2 with the norms of the sample itself,
 * x += e g + sqrt(2 e) z; alpha = 1 (VE) or al (VP). The per-sample norms keep samples
 * independent of their batch (the reference code averages them over the batch) but make the step
 * depend on the state: it is meant for high-dimensional data, where the norms concentrate (at
 * D = 64 the corrector's invariant variance is about 9% high; in 2-D a small |g| makes single
 * steps large, so toy data want few or no corrector steps). */
int sde_sample_d(const SdeSamplerConfig *c, const Sde *sde, SdeOut out, SchedNetFnD net,
                 void *ctx, const uint64_t *sample_idx, size_t B, size_t D, const int *labels,
                 double *x, SdeStats *st);
/* The same from a given state x (B, D) at t = 1, on an explicit decreasing time grid t[0..N],
 * and with the noise optionally supplied: noise (N, B, D), step k's draw for sample j at
 * noise[(k B + j) D ..] (predictor only: c->correctors must be 0); NULL draws from the streams. */
int sde_reverse_run_d(const SdeSamplerConfig *c, const Sde *sde, SdeOut out, const double *t,
                      size_t N, SchedNetFnD net, void *ctx, const uint64_t *sample_idx, size_t B,
                      size_t D, const int *labels, const double *noise, double *x, SdeStats *st);

/* Annealed Langevin dynamics (Song & Ermon 2019, Alg. 1): levels sigma_i geometric from
 * sigma_max down to sigma_min, step a_i = eps sigma_i^2 / sigma_L^2, `steps` moves
 * x += a_i/2 score(x, t(sigma_i)) + sqrt(a_i) z per level at the time t whose noise level s(t)
 * is sigma_i (sde_sigma_time). VE: the levels lie inside [smin, smax], the start is
 * N(0, sigma_max^2 I) and the optional final denoise x + sigma_L^2 score. VP: the levels lie
 * inside [s(t_eps), s(1)], the start is the prior N(0, I) and the denoise (x + s^2 score) / a;
 * each level's target is the VP marginal p_t, whose score scales like 1 / s^2 as in NCSN. */
typedef struct {
    int levels;
    double sigma_max, sigma_min;
    double eps;
    int steps;
    int denoise;
    uint64_t seed;
} LangevinConfig;

int sde_langevin_sample_d(const LangevinConfig *c, const Sde *ve, SdeOut out, SchedNetFnD net,
                          void *ctx, const uint64_t *sample_idx, size_t B, size_t D,
                          const int *labels, double *x, SdeStats *st);

/* The sampler registry's continuous-time entries (sched/sampler.h), for a SCHED_SDE schedule:
 * cfg->kind EM, PC, LANGEVIN, the fixed-step ODE solvers or RK45 (the PF-ODE), with guidance
 * (a guided evaluation counts 2 NFE). x (B, D) out. */
int sde_sample_sched_d(const SamplerConfig *cfg, const Schedule *s, SchedNetFnD net, void *ctx,
                       const uint64_t *sample_idx, size_t B, size_t D, const int *labels,
                       double *x, SdeStats *st);
/* Flow model sampled by RK45 (cfg->rtol, cfg->atol): dx/dtau = v from the initial noise at
 * tau = 0 to tau = 1, per-sample step control; guidance as in sched_sample. */
int flow_rk45_sample_d(const SamplerConfig *cfg, double sigma_min, SchedNetFnD net, void *ctx,
                       const uint64_t *sample_idx, size_t B, size_t D, const int *labels,
                       double *x, SdeStats *st);

/* ---- probability-flow ODE ----------------------------------------------------------------- */

/* dx/dt = f x - g^2/2 score, from t = 1 to t_eps. Fixed steps: cfg->kind EULER..RK4, cfg->steps
 * equal steps in t, guidance as in sched_sample; adaptive: rk45 = 1 (Dormand-Prince 5(4), per
 * sample step control with rtol/atol, cfg->steps ignored). */
typedef struct {
    int rk45;
    double rtol, atol;
    int max_steps; /* per sample; exceeding it is an error */
} OdeAdaptive;

int sde_pfode_sample_d(const SamplerConfig *cfg, const OdeAdaptive *ad, const Sde *sde,
                       SdeOut out, SchedNetFnD net, void *ctx, const uint64_t *sample_idx,
                       size_t B, size_t D, const int *labels, double *x, SdeStats *st);

/* The adaptive integrator: y' = F(y, tau) for B independent rows of D values from tau0 to tau1
 * (either direction), each row with its own step size; rows still integrating are passed to F
 * compacted, with their original row numbers. */
typedef int (*OdeFieldFn)(void *ctx, const size_t *rows, size_t B, size_t D, const double *tau,
                          const double *y, double *dy);
int ode_rk45_d(const OdeAdaptive *ad, OdeFieldFn F, void *ctx, size_t B, size_t D, double tau0,
               double tau1, double *y, SdeStats *st);

/* ---- log-likelihood ----------------------------------------------------------------------- */

/* out = net(x), jv = J v (J = d out / d x) or J^T v (either gives v.Jv). */
typedef int (*SchedJvpFnD)(void *ctx, const double *x, const double *t, const int *labels,
                           size_t B, size_t D, const double *v, double *out, double *jv);

typedef enum {
    SDE_DIV_EXACT = 0,     /* trace through D directional derivatives (small D) */
    SDE_DIV_HUTCHINSON = 1 /* v.Jv with one Rademacher probe per sample, fixed along the path */
} SdeDiv;

typedef struct {
    SdeDiv div;
    OdeAdaptive ode;
    SchedJvpFnD jvp; /* NULL: central differences of net with step fd_h */
    double fd_h;
    uint64_t seed;   /* probes: rng_stream(RNG_P_EVAL, sample_idx), sub = probe */
    uint32_t probe;
} LoglikConfig;

void loglik_config_default(LoglikConfig *c);

/* PF-ODE log-likelihood (nats) of rows x0 (B, D) at t = t_eps: logp = log p_1(x(1)) + int div F.
 * Optional: x1 (B, D) the end state at t = 1, delta (B) the integral. */
int sde_loglik_d(const LoglikConfig *c, const Sde *sde, SdeOut out, SchedNetFnD net, void *ctx,
                 const uint64_t *sample_idx, size_t B, size_t D, const int *labels,
                 const double *x0, double *logp, double *x1, double *delta, SdeStats *st);
/* Flow matching (velocity network, path of sched_flow_coef): log p_1(x) = log N(x(0); 0, I)
 * - int_0^1 div v dtau, integrating from the data (tau = 1) to the noise (tau = 0). */
int flow_loglik_d(const LoglikConfig *c, double sigma_min, SchedNetFnD net, void *ctx,
                  const uint64_t *sample_idx, size_t B, size_t D, const int *labels,
                  const double *x, double *logp, double *x0, double *delta, SdeStats *st);

/* bits/dim of a continuous negative log-likelihood (nats per example) for data quantised on
 * bins of width `bin` (2/256 for 8-bit data scaled to [-1, 1]): nll/(D ln 2) - log2(bin). */
double sched_bits_per_dim(double nll, size_t D, double bin);

#endif
