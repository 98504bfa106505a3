/* model/attention.h - multi-head self-attention over the H*W grid (the core of an AttnBlock;
 * the GroupNorm, the q/k/v and output 1x1 convolutions and the residual are separate layers).
 *
 * qkv: (B, 3C, HW) holds q = rows [0, C), k = [C, 2C), v = [2C, 3C). Head h owns channels
 * [h*dh, (h+1)*dh), dh = C / NH. For every sample and head:
 *   P[i, j] = softmax_j( sum_d q[d, i] k[d, j] / sqrt(dh) )     (max-subtracted, sum in double)
 *   out[d, i] = sum_j P[i, j] v[d, j]
 * P (B, NH, HW, HW) is cached for backward. Work is split over (sample, head) pairs; backward
 * accumulates (+=) into dqkv. Workspace: attn_ws_floats() floats.
 */
#ifndef DFM_MODEL_ATTENTION_H
#define DFM_MODEL_ATTENTION_H

#include <stddef.h>

size_t attn_ws_floats(size_t HW, int nthreads);

/* out: (B, C, HW); att: (B, NH, HW, HW); qkv: (B, 3C, HW) */
void attn_forward(float *out, float *att, const float *qkv, size_t B, size_t C, size_t HW,
                  size_t NH);
void attn_backward(float *dqkv, const float *dout, const float *qkv, const float *att, size_t B,
                   size_t C, size_t HW, size_t NH, float *ws);

#endif
