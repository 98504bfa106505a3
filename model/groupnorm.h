/* model/groupnorm.h - group normalisation (Wu & He 2018) over (B, C, HW), optional fused SiLU.
 *
 *   mean, var over the C/G channels x HW positions of each (sample, group), biased variance;
 *   out = (inp - mean) * rstd * gamma[c] + beta[c],  rstd = 1 / sqrt(var + eps).
 * Statistics are accumulated in double. With act != NULL the forward also writes
 * act = silu(out) (GroupNorm + SiLU in one pass, as every ResBlock uses them).
 *
 * Backward accumulates (+=) into dinp, dgamma, dbeta, with a caller-owned workspace of
 * groupnorm_ws_doubles() doubles (two row sums per sample and channel). groupnorm_silu_backward
 * takes the gradient with respect to act (the SiLU output) and recomputes the GroupNorm output
 * it needs.
 * Parallel over (sample, group) for dinp and over channels for dgamma/dbeta (samples in order):
 * thread-count independent.
 */
#ifndef DFM_MODEL_GROUPNORM_H
#define DFM_MODEL_GROUPNORM_H

#include <stddef.h>

#define GROUPNORM_EPS 1e-6f

/* Channel c's normalisation as one multiply-add, out = x * sc + sh: sc = rstd * gamma[c],
 * sh = beta[c] - mean * sc. Formed here only, so the forward, the backward's recomputation and
 * a convolution that applies the normalisation itself (conv2d_forward_gn_silu) get the same
 * bits. */
static inline void groupnorm_coef(float mean, float rstd, float gamma, float beta, float *sc,
                                  float *sh)
{
    *sc = rstd * gamma;
    *sh = beta - mean * *sc;
}

/* out, act, inp: (B, C, HW); gamma, beta: (C); mean, rstd: (B, G) cached for backward;
 * act may be NULL; out may be NULL when act is not (only silu(out) is written, the same bits);
 * with both NULL only the statistics are computed (for a consumer that applies them itself,
 * conv2d_forward_gn_silu) */
void groupnorm_forward(float *out, float *act, float *mean, float *rstd, const float *inp,
                       const float *gamma, const float *beta, size_t B, size_t C, size_t HW,
                       size_t G);
/* doubles of workspace a backward over (B, C, *) needs */
static inline size_t groupnorm_ws_doubles(size_t B, size_t C) { return 2 * B * C; }
/* dout: gradient w.r.t. out */
void groupnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                        const float *inp, const float *gamma, const float *mean, const float *rstd,
                        size_t B, size_t C, size_t HW, size_t G, double *ws);
/* The forward's out and/or act from the statistics it saved (mean, rstd), the same bits: for
 * a backward that recomputes them instead of keeping them. */
void groupnorm_apply(float *out, float *act, const float *inp, const float *gamma,
                     const float *beta, const float *mean, const float *rstd, size_t B, size_t C,
                     size_t HW, size_t G);
/* dact: gradient w.r.t. act = silu(out), used as scratch (overwritten); out is recomputed from
 * inp and the saved statistics, so nothing but inp and (mean, rstd) is kept from the forward */
void groupnorm_silu_backward(float *dinp, float *dgamma, float *dbeta, float *dact,
                             const float *inp, const float *gamma, const float *beta,
                             const float *mean, const float *rstd, size_t B, size_t C, size_t HW,
                             size_t G, double *ws);

#endif
