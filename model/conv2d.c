/* model/conv2d.c - im2col + sgemm convolution with thread-count-independent work splits. */
#include "model/conv2d.h"
#include "model/gemm.h"
#include "core/mem.h"

#include <omp.h>
#include <string.h>

/* rows of the weight gradient handled by one task (fixed, independent of the thread count) */
#define DW_ROW_CHUNK 32

Conv2dShape conv2d_shape(int IC, int OC, int K, int stride, int pad, int H, int W)
{
    Conv2dShape s = {IC, OC, K, stride, pad, pad, H, W, 0, 0};
    s.OH = (H + 2 * pad - K) / stride + 1;
    s.OW = (W + 2 * pad - K) / stride + 1;
    return s;
}

Conv2dShape conv2d_shape_same(int IC, int OC, int K, int stride, int H, int W)
{
    Conv2dShape s = {IC, OC, K, stride, 0, 0, H, W, 0, 0};
    s.OH = (H + stride - 1) / stride;
    s.OW = (W + stride - 1) / stride;
    int ph = (s.OH - 1) * stride + K - H, pw = (s.OW - 1) * stride + K - W;
    s.pad_t = ph > 0 ? ph / 2 : 0;
    s.pad_l = pw > 0 ? pw / 2 : 0;
    return s;
}

static int is_pointwise(const Conv2dShape *s)
{
    return s->K == 1 && s->stride == 1 && s->pad_t == 0 && s->pad_l == 0 && s->OH == s->H &&
           s->OW == s->W;
}

size_t conv2d_ws_floats(const Conv2dShape *s, size_t B, int nthreads)
{
    size_t KK = (size_t)s->IC * s->K * s->K, OHW = (size_t)s->OH * s->OW;
    size_t g = B < CONV2D_DW_GROUP ? B : CONV2D_DW_GROUP;
    size_t per_thread = KK * OHW;
    size_t dw = g * OHW * (KK + (size_t)s->OC);
    size_t fw = (size_t)(nthreads > 0 ? nthreads : 1) * per_thread;
    if (is_pointwise(s)) return 0;
    return fw > dw ? fw : dw;
}

double conv2d_macs(const Conv2dShape *s)
{
    return (double)s->OC * s->IC * s->K * s->K * s->OH * s->OW;
}

/* col: (IC*K*K, ld) with the sample's OH*OW columns starting at col; x: (IC, H, W) */
static void im2col(float *col, size_t ld, const float *x, const Conv2dShape *s)
{
    const int K = s->K, st = s->stride, OH = s->OH, OW = s->OW, H = s->H, W = s->W;
    for (int ic = 0; ic < s->IC; ic++) {
        const float *xc = x + (size_t)ic * H * W;
        for (int kh = 0; kh < K; kh++) {
            for (int kw = 0; kw < K; kw++) {
                float *row = col + ((size_t)(ic * K + kh) * K + kw) * ld;
                for (int oh = 0; oh < OH; oh++) {
                    int ih = oh * st - s->pad_t + kh;
                    float *r = row + (size_t)oh * OW;
                    if (ih < 0 || ih >= H) {
                        memset(r, 0, sizeof(float) * (size_t)OW);
                        continue;
                    }
                    const float *xr = xc + (size_t)ih * W;
                    if (st == 1) {
                        int off = kw - s->pad_l;
                        int lo = off < 0 ? -off : 0;
                        int hi = W - off < OW ? W - off : OW;
                        if (hi < lo) hi = lo;
                        for (int ow = 0; ow < lo; ow++) r[ow] = 0.0f;
                        memcpy(r + lo, xr + lo + off, sizeof(float) * (size_t)(hi - lo));
                        for (int ow = hi; ow < OW; ow++) r[ow] = 0.0f;
                    } else {
                        for (int ow = 0; ow < OW; ow++) {
                            int iw = ow * st - s->pad_l + kw;
                            r[ow] = (iw >= 0 && iw < W) ? xr[iw] : 0.0f;
                        }
                    }
                }
            }
        }
    }
}

/* dx (IC, H, W) += col2im(dcol (IC*K*K, OH*OW)) */
static void col2im_add(float *dx, const float *dcol, const Conv2dShape *s)
{
    const int K = s->K, st = s->stride, OH = s->OH, OW = s->OW, H = s->H, W = s->W;
    const size_t OHW = (size_t)OH * OW;
    for (int ic = 0; ic < s->IC; ic++) {
        float *xc = dx + (size_t)ic * H * W;
        for (int kh = 0; kh < K; kh++) {
            for (int kw = 0; kw < K; kw++) {
                const float *row = dcol + ((size_t)(ic * K + kh) * K + kw) * OHW;
                for (int oh = 0; oh < OH; oh++) {
                    int ih = oh * st - s->pad_t + kh;
                    if (ih < 0 || ih >= H) continue;
                    float *xr = xc + (size_t)ih * W;
                    const float *r = row + (size_t)oh * OW;
                    if (st == 1) {
                        int off = kw - s->pad_l;
                        int lo = off < 0 ? -off : 0;
                        int hi = W - off < OW ? W - off : OW;
                        for (int ow = lo; ow < hi; ow++) xr[ow + off] += r[ow];
                    } else {
                        for (int ow = 0; ow < OW; ow++) {
                            int iw = ow * st - s->pad_l + kw;
                            if (iw >= 0 && iw < W) xr[iw] += r[ow];
                        }
                    }
                }
            }
        }
    }
}

void conv2d_forward(float *out, const float *inp, const float *w, const float *bias,
                    const Conv2dShape *s, size_t B, float *ws)
{
    gemm_single_thread();
    const size_t KK = (size_t)s->IC * s->K * s->K, OHW = (size_t)s->OH * s->OW;
    const size_t HW = (size_t)s->H * s->W;
    const int pw = is_pointwise(s);
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < B; b++) {
        const float *col = inp + b * s->IC * HW;
        if (!pw) {
            float *c = ws + (size_t)omp_get_thread_num() * KK * OHW;
            im2col(c, OHW, inp + b * s->IC * HW, s);
            col = c;
        }
        float *o = out + b * s->OC * OHW;
        gemm(0, 0, (size_t)s->OC, OHW, KK, 1.0f, w, KK, col, OHW, 0.0f, o, OHW);
        if (bias) {
            for (int oc = 0; oc < s->OC; oc++) {
                float bv = bias[oc], *r = o + (size_t)oc * OHW;
                for (size_t i = 0; i < OHW; i++) r[i] += bv;
            }
        }
    }
}

void conv2d_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                     const float *w, const Conv2dShape *s, size_t B, float *ws)
{
    gemm_single_thread();
    const size_t KK = (size_t)s->IC * s->K * s->K, OHW = (size_t)s->OH * s->OW;
    const size_t HW = (size_t)s->H * s->W, OC = (size_t)s->OC;
    const int pw = is_pointwise(s);
    const size_t nchunk = (OC + DW_ROW_CHUNK - 1) / DW_ROW_CHUNK;

    /* bias gradient: per output channel, samples in order, in double */
    if (dbias) {
#pragma omp parallel for schedule(static)
        for (size_t oc = 0; oc < OC; oc++) {
            double acc = 0.0;
            for (size_t b = 0; b < B; b++) {
                const float *r = dout + (b * OC + oc) * OHW;
                for (size_t i = 0; i < OHW; i++) acc += (double)r[i];
            }
            dbias[oc] += (float)acc;
        }
    }

    /* weight gradient: dw (OC, KK) += sum_b dout_b (OC, OHW) col_b^T */
    if (dw && pw) {
        /* col_b is the input itself: accumulate sample by sample, rows split in fixed chunks */
#pragma omp parallel for schedule(static)
        for (size_t ch = 0; ch < nchunk; ch++) {
            size_t r0 = ch * DW_ROW_CHUNK, nr = OC - r0 < DW_ROW_CHUNK ? OC - r0 : DW_ROW_CHUNK;
            for (size_t b = 0; b < B; b++)
                gemm(0, 1, nr, KK, OHW, 1.0f, dout + (b * OC + r0) * OHW, OHW,
                     inp + b * s->IC * HW, HW, 1.0f, dw + r0 * KK, KK);
        }
    } else if (dw) {
        /* groups of G samples: col (KK, G*OHW) and dout transposed to (OC, G*OHW) */
        for (size_t b0 = 0; b0 < B; b0 += CONV2D_DW_GROUP) {
            size_t g = B - b0 < CONV2D_DW_GROUP ? B - b0 : CONV2D_DW_GROUP;
            size_t ld = g * OHW;
            float *col = ws, *dt = ws + KK * ld;
#pragma omp parallel for schedule(static)
            for (size_t j = 0; j < g; j++) {
                im2col(col + j * OHW, ld, inp + (b0 + j) * s->IC * HW, s);
                for (size_t oc = 0; oc < OC; oc++)
                    memcpy(dt + oc * ld + j * OHW, dout + ((b0 + j) * OC + oc) * OHW,
                           sizeof(float) * OHW);
            }
#pragma omp parallel for schedule(static)
            for (size_t ch = 0; ch < nchunk; ch++) {
                size_t r0 = ch * DW_ROW_CHUNK, nr = OC - r0 < DW_ROW_CHUNK ? OC - r0 : DW_ROW_CHUNK;
                gemm(0, 1, nr, KK, ld, 1.0f, dt + r0 * ld, ld, col, ld, 1.0f, dw + r0 * KK, KK);
            }
        }
    }

    /* input gradient: dcol_b = w^T dout_b, scattered back per sample */
    if (dinp) {
#pragma omp parallel for schedule(static)
        for (size_t b = 0; b < B; b++) {
            const float *d = dout + b * OC * OHW;
            float *dx = dinp + b * s->IC * HW;
            if (pw) {
                gemm(1, 0, KK, OHW, OC, 1.0f, w, KK, d, OHW, 1.0f, dx, OHW);
            } else {
                float *dc = ws + (size_t)omp_get_thread_num() * KK * OHW;
                gemm(1, 0, KK, OHW, OC, 1.0f, w, KK, d, OHW, 0.0f, dc, OHW);
                col2im_add(dx, dc, s);
            }
        }
    }
}
