/* model/conv2d.h - 2-D convolution (any square kernel, stride, asymmetric zero padding), NCHW.
 *
 *   out[b, oc, oh, ow] = bias[oc] + sum_{ic, kh, kw} w[oc, ic, kh, kw] *
 *                        inp[b, ic, oh*stride - pad_t + kh, ow*stride - pad_l + kw]
 * (taps outside the input read zero). Weights use PyTorch's layout (OC, IC, K, K).
 *
 * Algorithms: 3x3 stride-1 'same' convolutions on maps of >= 49 pixels use Winograd: the
 * forward, the input gradient and the weight gradient F(4x4, 3x3) when both sides are >= 24 (4x
 * fewer multiplications), F(2x2, 3x3) otherwise (2.25x fewer); the others use per-sample im2col
 * + one sgemm (1x1 stride-1 convolutions skip the im2col). The forward and the input gradient
 * are parallel over samples. The weight gradient is summed over the batch in pieces fixed by the
 * shape and the batch size: on the im2col path groups of CONV2D_DW_GROUP samples in sample order;
 * on the Winograd path a few samples per GEMM, group k added into chain k mod 8 (each chain in
 * group order, one thread per chain), the chains added in order at the end. No split depends on
 * the thread count, so results are bitwise identical for any number of threads, and a sample's
 * output never depends on the other samples in the batch.
 *
 * Backward accumulates (+=) into dinp, dw and dbias; any of them may be NULL to skip it.
 * Every call needs a workspace of conv2d_ws_floats() floats (caller-owned, reused).
 */
#ifndef DFM_MODEL_CONV2D_H
#define DFM_MODEL_CONV2D_H

#include <stddef.h>

#define CONV2D_DW_GROUP 32

typedef struct {
    int IC, OC, K, stride;
    int pad_t, pad_l; /* top/left zero padding; bottom/right follow from OH, OW */
    int H, W, OH, OW;
} Conv2dShape;

/* Shape with PyTorch-style symmetric padding: OH = (H + 2 pad - K) / stride + 1. */
Conv2dShape conv2d_shape(int IC, int OC, int K, int stride, int pad, int H, int W);
/* Shape with TensorFlow 'SAME' padding: OH = ceil(H / stride), extra padding bottom/right. */
Conv2dShape conv2d_shape_same(int IC, int OC, int K, int stride, int H, int W);

/* Workspace (floats) for a forward or backward call with batch B and nthreads threads. */
size_t conv2d_ws_floats(const Conv2dShape *s, size_t B, int nthreads);

/* The Winograd transforms use AVX-512 where the CPU has it (same bits as the portable code);
 * 0 forces the portable code, 1 (the default) allows AVX-512 again. For tests. */
void conv2d_allow_avx512(int on);
/* Multiply-adds per sample. */
double conv2d_macs(const Conv2dShape *s);

/* out: (B, OC, OH, OW); inp: (B, IC, H, W); w: (OC, IC, K, K); bias: (OC) or NULL */
void conv2d_forward(float *out, const float *inp, const float *w, const float *bias,
                    const Conv2dShape *s, size_t B, float *ws);
/* GroupNorm + SiLU applied to the input on the fly: the convolution reads
 * silu((x - mean) * rstd * gamma + beta) computed exactly as model/groupnorm.c's forward does
 * (scale rstd * gamma[c], shift beta[c] - mean * scale, then silu_f), so the result has the bits
 * of groupnorm_forward's act followed by conv2d_forward, without writing act. mean, rstd: (B, G)
 * as groupnorm_forward saved them; gamma, beta: (IC). Only for shapes where
 * conv2d_fuses_gn_silu() is 1 (the Winograd path). */
typedef struct {
    const float *mean, *rstd, *gamma, *beta;
    int G;
} Conv2dGnSilu;
int conv2d_fuses_gn_silu(const Conv2dShape *s);
void conv2d_forward_gn_silu(float *out, const float *x, const Conv2dGnSilu *gn, const float *w,
                            const float *bias, const Conv2dShape *s, size_t B, float *ws);
/* dinp: (B, IC, H, W); dw, dbias like w, bias; dout like out */
void conv2d_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                     const float *w, const Conv2dShape *s, size_t B, float *ws);

#endif
