/* model/optim.h - Adam / AdamW over flat parameter buffers, global-norm clipping, EMA.
 *
 * State is three flat buffers in the parameter table's layout (m, v: Adam moments; ema: the
 * exponential moving average of the weights), owned by Optim, so checkpoints can write them and
 * ZeRO-1 sharding can update one contiguous slice [lo, hi) per rank. The update follows PyTorch's
 * torch.optim.Adam / AdamW (bias-corrected, eps added after the square root):
 *   g  = grad * grad_scale  (+ weight_decay * p for ADAM: L2 in the gradient)
 *   m  = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p  = p * (1 - lr weight_decay)                          (ADAMW only: decoupled decay)
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)     t = 1, 2, ...
 * Clipping: scale = min(1, clip / (norm + 1e-6)) with norm the global L2 norm of the gradient,
 * accumulated in double in index order (optim_grad_sumsq), as torch.nn.utils.clip_grad_norm_.
 * EMA: ema = d ema + (1 - d) p with d = decay, or min(decay, (1 + k) / (10 + k)) with warmup,
 * k = number of EMA updates before this one.
 * Gradient accumulation: run several backward passes (they add into grads) before one step.
 */
#ifndef DFM_MODEL_OPTIM_H
#define DFM_MODEL_OPTIM_H

#include <stddef.h>
#include <stdint.h>

typedef enum { OPTIM_ADAM = 0, OPTIM_ADAMW = 1 } OptimKind;

typedef struct {
    OptimKind kind;
    float beta1, beta2, eps;
    float weight_decay;
    float grad_clip;  /* max global norm; 0 = no clipping */
    float ema_decay;  /* 0 = no EMA buffer */
    int ema_warmup;   /* 1: decay_eff = min(decay, (1 + k) / (10 + k)) */
} OptimConfig;

typedef struct {
    OptimConfig cfg;
    size_t n;
    float *m, *v, *ema; /* flat, 64-byte aligned; ema: n floats, NULL without EMA */
    size_t mlo, mhi;    /* m and v hold values [mlo, mhi) of the flat layout: m[i - mlo]
                           ([0, n) unless optim_shard_moments narrowed them) */
    uint64_t step;      /* optimizer steps taken (t of the bias correction) */
    uint64_t ema_updates;
} Optim;

/* Defaults: Adam, beta1 0.9, beta2 0.999, eps 1e-8, no decay, no clipping, no EMA. */
OptimConfig optim_config_default(void);
/* Validate hyperparameters (ERR_SPEC with a message). */
int optim_config_check(const OptimConfig *cfg);

/* Allocates zeroed moments; the EMA starts as a copy of params (may be NULL: zeros). */
void optim_init(Optim *o, const OptimConfig *cfg, size_t n, const float *params);
void optim_free(Optim *o); /* zeroed or freed Optim accepted */
/* ZeRO-1: keep Adam moments for [lo, hi) only (reallocated, zeroed): a rank then holds
 * 2 (hi - lo) floats of moments instead of 2 n. Update them with
 * adam_update_range(cfg, params + lo, grads + lo, o->m, o->v, ..., a - lo, b - lo). */
void optim_shard_moments(Optim *o, size_t lo, size_t hi);

/* Sum of squares of g[lo, hi) in double, index order. */
double optim_grad_sumsq(const float *g, size_t lo, size_t hi);
/* Gradient multiplier from the global norm: min(1, clip / (norm + 1e-6)), 1 when clip <= 0. */
float optim_clip_scale(double norm, float clip);
/* EMA decay for update number k (0-based). */
double optim_ema_decay(const OptimConfig *cfg, uint64_t k);

/* Adam(W) on [lo, hi) for step t (1-based) with learning rate lr; grads are multiplied by
 * grad_scale first. Elementwise, so any split of [0, n) gives the same bytes. */
void adam_update_range(const OptimConfig *cfg, float *params, const float *grads, float *m,
                       float *v, float lr, float grad_scale, uint64_t t, size_t lo, size_t hi);
/* ema[lo, hi) = d ema + (1 - d) params */
void ema_update_range(float *ema, const float *params, double decay, size_t lo, size_t hi);

/* One whole step on one process: global norm, clip, Adam(W) over [0, n), EMA. Increments step
 * (and ema_updates). Returns the gradient norm before clipping. */
double optim_step(Optim *o, float *params, const float *grads, float lr);

#endif
