/* sched/targets.h - training inputs and targets per micro-batch, and the MSE loss.
 *
 * For global sample indices idx (B) at optimizer step `step`, sched_train_targets draws, per
 * example and independently of batch composition and rank:
 *   - the time: diffusion t ~ U{1..T} (paper index), network input t - 1 (0-based);
 *               flow tau ~ U(0, 1) or logit-normal sigmoid(m + s N(0,1)) (SD3), input tau;
 *     from rng_stream(RNG_P_TRAIN_T, idx), sub = step, first value;
 *   - the noise (D values): rng_fill_normal(seed, rng_stream(RNG_P_TRAIN_NOISE, idx), sub = step);
 *   - the label dropout (classifier-free guidance training): u from
 *     rng_stream(RNG_P_LABEL_DROP, idx), sub = step; the label becomes -1 (null class) when
 *     u < p_uncond;
 * then builds
 *   diffusion: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, target eps | x0 | v
 *              (v = sqrt(abar) eps - sqrt(1 - abar) x0);
 *   flow:      x_tau = tau x1 + (1 - (1 - sigma_min) tau) n, target x1 - (1 - sigma_min) n
 *              (x1 = the data row, n = the noise).
 * DDPM's L_simple is the eps target with sched_loss_mse.
 *
 * The loss is the mean squared error over all elements of the GLOBAL batch: each micro-batch
 * passes norm = (global batch size) * D, so the micro-batch losses and gradients sum to the
 * global mean (the reference code's mean over pixels, then over the batch).
 */
#ifndef DFM_SCHED_TARGETS_H
#define DFM_SCHED_TARGETS_H

#include <stddef.h>
#include <stdint.h>

#include "sched/schedule.h"
#include "sched/sde.h" /* Sde, SdeOut, SdeWeight */

typedef enum {
    SCHED_TIME_UNIFORM = 0,    /* flow: tau ~ U(0, 1) (open interval) */
    SCHED_TIME_LOGIT_NORMAL = 1 /* flow: tau = sigmoid(m + s z), z ~ N(0, 1) */
} SchedTimeDist;

typedef struct {
    uint64_t seed;
    double p_uncond;      /* label dropout probability in [0, 1]; 0 = never */
    SchedTimeDist tdist;  /* flow only */
    double ln_mean, ln_std; /* logit-normal parameters (SD3 uses 0 and 1) */
    SdeWeight sde_weight;   /* SDE schedules: the score-matching weighting lambda(t) */
} TrainTargetConfig;

void train_target_config_default(TrainTargetConfig *c);

/* x0: (B, D) data rows; labels_in (B) or NULL. Outputs: xt (B, D) network input, tnet (B)
 * network time input, target (B, D), labels_out (B) (may be NULL when labels_in is NULL),
 * noise_out (B, D) optional (the drawn eps / n), tpaper (B) optional (diffusion: the paper t
 * in 1..T; flow: tau). step must be < 2^32. */
int sched_train_targets(const TrainTargetConfig *cfg, const Schedule *s, uint64_t step,
                        const uint64_t *idx, size_t B, size_t D, const float *x0,
                        const int *labels_in, float *xt, double *tnet, float *target,
                        int *labels_out, float *noise_out, double *tpaper);

/* Continuous-time denoising score matching (sched/sde.h): per example t ~ U(t_eps, 1) (the first
 * value of rng_stream(RNG_P_TRAIN_T, idx), sub = step), eps as above, x_t = a(t) x0 + s(t) eps,
 * network time input t, target eps (SDE_OUT_EPS) or the score -eps / s (SDE_OUT_SCORE), and
 * weight (B) such that the loss is sum_j weight[j] |out_j - target_j|^2 / norm: the weighting
 * lambda(t) = s^2 (SDE_WEIGHT_SIGMA2, plain MSE for eps outputs) or g^2 (SDE_WEIGHT_G2, the
 * likelihood weighting; beta(t) for VP). Label dropout as in sched_train_targets. */
int sched_sde_train_targets(const TrainTargetConfig *cfg, const Sde *sde, SdeOut out,
                            SdeWeight wt, uint64_t step, const uint64_t *idx, size_t B, size_t D,
                            const float *x0, const int *labels_in, float *xt, double *tnet,
                            float *target, double *weight, int *labels_out);
/* The same MSE with a weight per example: sum_j w_j sum_i (out - target)^2 / norm; dout as in
 * sched_loss_mse (scaled by w_j); per_sample (B), if not NULL, each example's weighted mean
 * squared error w_j sum_i (out - target)^2 / D. */
double sched_loss_mse_weighted(const float *out, const float *target, const double *w, size_t B,
                               size_t D, double norm, float *dout, double *per_sample);

/* loss = sum over the B*D elements of (out - target)^2, divided by norm (> 0); returned in
 * double. dout (B, D), if not NULL, is SET to d loss / d out = 2 (out - target) / norm.
 * per_sample (B), if not NULL, receives each example's mean squared error over D (for per-t
 * reporting). */
double sched_loss_mse(const float *out, const float *target, size_t B, size_t D, double norm,
                      float *dout, double *per_sample);

/* Quartile 0..3 of a network time input: diffusion k in [0, T) -> floor(4 k / T);
 * flow tau in [0, 1] -> floor(4 tau), with tau = 1 in quartile 3. */
int sched_time_quartile(const Schedule *s, double tnet);

#endif
