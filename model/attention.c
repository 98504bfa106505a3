/* model/attention.c - softmax attention with sgemm per (sample, head). */
#include "model/attention.h"
#include "model/gemm.h"

#include <math.h>
#include <omp.h>

size_t attn_ws_floats(size_t HW, int nthreads)
{
    return (size_t)(nthreads > 0 ? nthreads : 1) * HW * HW;
}

void attn_forward(float *out, float *att, const float *qkv, size_t B, size_t C, size_t HW,
                  size_t NH)
{
    gemm_single_thread();
    const size_t dh = C / NH;
    const float scale = (float)(1.0 / sqrt((double)dh));
#pragma omp parallel for schedule(static)
    for (size_t bh = 0; bh < B * NH; bh++) {
        size_t b = bh / NH, h = bh % NH;
        const float *q = qkv + (b * 3 * C + h * dh) * HW;
        const float *k = q + C * HW, *v = q + 2 * C * HW;
        float *P = att + bh * HW * HW;
        /* S = q^T k * scale: (HW, HW) */
        gemm(1, 0, HW, HW, dh, scale, q, HW, k, HW, 0.0f, P, HW);
        for (size_t i = 0; i < HW; i++) {
            float *r = P + i * HW, mx = r[0];
            for (size_t j = 1; j < HW; j++) mx = r[j] > mx ? r[j] : mx;
            double s = 0.0;
            for (size_t j = 0; j < HW; j++) {
                r[j] = expf(r[j] - mx);
                s += (double)r[j];
            }
            float inv = (float)(1.0 / s);
            for (size_t j = 0; j < HW; j++) r[j] *= inv;
        }
        /* out = v P^T: (dh, HW) */
        gemm(0, 1, dh, HW, HW, 1.0f, v, HW, P, HW, 0.0f, out + (b * C + h * dh) * HW, HW);
    }
}

void attn_backward(float *dqkv, const float *dout, const float *qkv, const float *att, size_t B,
                   size_t C, size_t HW, size_t NH, float *ws)
{
    gemm_single_thread();
    const size_t dh = C / NH;
    const float scale = (float)(1.0 / sqrt((double)dh));
#pragma omp parallel for schedule(static)
    for (size_t bh = 0; bh < B * NH; bh++) {
        size_t b = bh / NH, h = bh % NH;
        const float *q = qkv + (b * 3 * C + h * dh) * HW;
        const float *k = q + C * HW, *v = q + 2 * C * HW;
        float *dq = dqkv + (b * 3 * C + h * dh) * HW;
        float *dk = dq + C * HW, *dv = dq + 2 * C * HW;
        const float *P = att + bh * HW * HW, *dO = dout + (b * C + h * dh) * HW;
        float *dP = ws + (size_t)omp_get_thread_num() * HW * HW;
        /* out = v P^T  =>  dv += dO P,  dP = dO^T v */
        gemm(0, 0, dh, HW, HW, 1.0f, dO, HW, P, HW, 1.0f, dv, HW);
        gemm(1, 0, HW, HW, dh, 1.0f, dO, HW, v, HW, 0.0f, dP, HW);
        /* softmax: dS = P * (dP - sum_j dP P) */
        for (size_t i = 0; i < HW; i++) {
            const float *p = P + i * HW;
            float *d = dP + i * HW;
            double s = 0.0;
            for (size_t j = 0; j < HW; j++) s += (double)d[j] * (double)p[j];
            float sf = (float)s;
            for (size_t j = 0; j < HW; j++) d[j] = p[j] * (d[j] - sf);
        }
        /* S = scale q^T k  =>  dq += scale k dS^T,  dk += scale q dS */
        gemm(0, 1, dh, HW, HW, scale, k, HW, dP, HW, 1.0f, dq, HW);
        gemm(0, 0, dh, HW, HW, scale, q, HW, dP, HW, 1.0f, dk, HW);
    }
}
