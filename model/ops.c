/* model/ops.c - elementwise and data-movement layers. */
#include "model/ops.h"
#include "core/rng.h"

#include <string.h>

/* below this many elements a loop runs on the calling thread: a parallel region costs more */
#define PAR_MIN 32768

void silu_forward(float *out, const float *inp, size_t N)
{
#pragma omp parallel for schedule(static) if (N > PAR_MIN)
    for (size_t i = 0; i < N; i++) out[i] = silu_f(inp[i]);
}

void silu_backward(float *dinp, const float *dout, const float *inp, size_t N)
{
#pragma omp parallel for schedule(static) if (N > PAR_MIN)
    for (size_t i = 0; i < N; i++) dinp[i] += dout[i] * silu_grad_f(inp[i]);
}

void upsample2x_forward(float *out, const float *inp, size_t B, size_t C, size_t H, size_t W)
{
    const size_t OW = 2 * W;
#pragma omp parallel for schedule(static) if (B * C * H * W > PAR_MIN / 4)
    for (size_t bc = 0; bc < B * C; bc++) {
        const float *x = inp + bc * H * W;
        float *o = out + bc * 4 * H * W;
        for (size_t h = 0; h < H; h++) {
            float *r0 = o + (2 * h) * OW, *r1 = r0 + OW;
            for (size_t w = 0; w < W; w++) {
                float v = x[h * W + w];
                r0[2 * w] = r0[2 * w + 1] = v;
            }
            memcpy(r1, r0, sizeof(float) * OW);
        }
    }
}

void upsample2x_backward(float *dinp, const float *dout, size_t B, size_t C, size_t H, size_t W)
{
    const size_t OW = 2 * W;
#pragma omp parallel for schedule(static) if (B * C * H * W > PAR_MIN / 4)
    for (size_t bc = 0; bc < B * C; bc++) {
        float *dx = dinp + bc * H * W;
        const float *d = dout + bc * 4 * H * W;
        for (size_t h = 0; h < H; h++) {
            const float *r0 = d + (2 * h) * OW, *r1 = r0 + OW;
            for (size_t w = 0; w < W; w++)
                dx[h * W + w] += (r0[2 * w] + r0[2 * w + 1]) + (r1[2 * w] + r1[2 * w + 1]);
        }
    }
}

void dropout_forward(float *out, float *mask, const float *inp, float p, size_t B, size_t N,
                     uint64_t seed, const uint64_t *sample_idx, uint32_t step, uint32_t rng_block)
{
    /* keep iff u32 >= p * 2^32 */
    const double thr_d = (double)p * 4294967296.0;
    const uint64_t thr = thr_d >= 4294967296.0 ? UINT64_C(4294967296) : (uint64_t)thr_d;
    const float scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (B * N > PAR_MIN)
    for (size_t b = 0; b < B; b++) {
        /* the words of rng_init(seed, rng_stream(RNG_P_DROPOUT, idx), step, rng_block), in
         * order, a 4-word Philox block at a time */
        const uint64_t stream = rng_stream(RNG_P_DROPOUT, sample_idx[b]);
        const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
        uint32_t ctr[4] = {rng_block, step, (uint32_t)stream, (uint32_t)(stream >> 32)};
        float *m = mask + b * N, *o = out + b * N;
        const float *x = inp + b * N;
        for (size_t i = 0; i < N; i += 4) {
            uint32_t w[4];
            philox4x32_10(ctr, key, w);
            ctr[0]++;
            for (size_t k = 0; k < 4 && i + k < N; k++) {
                m[i + k] = (uint64_t)w[k] >= thr ? scale : 0.0f;
                o[i + k] = x[i + k] * m[i + k];
            }
        }
    }
}

void dropout_backward(float *dinp, const float *dout, const float *mask, size_t N)
{
#pragma omp parallel for schedule(static) if (N > PAR_MIN)
    for (size_t i = 0; i < N; i++) dinp[i] += dout[i] * mask[i];
}

void concat_forward(float *out, const float *a, const float *b, size_t B, size_t C1, size_t C2,
                    size_t HW)
{
#pragma omp parallel for schedule(static) if (B * (C1 + C2) * HW > PAR_MIN)
    for (size_t s = 0; s < B; s++) {
        float *o = out + s * (C1 + C2) * HW;
        memcpy(o, a + s * C1 * HW, sizeof(float) * C1 * HW);
        memcpy(o + C1 * HW, b + s * C2 * HW, sizeof(float) * C2 * HW);
    }
}

void concat_backward(float *da, float *db, const float *dout, size_t B, size_t C1, size_t C2,
                     size_t HW)
{
#pragma omp parallel for schedule(static) if (B * (C1 + C2) * HW > PAR_MIN)
    for (size_t s = 0; s < B; s++) {
        const float *d = dout + s * (C1 + C2) * HW;
        float *x = da + s * C1 * HW, *y = db + s * C2 * HW;
        for (size_t i = 0; i < C1 * HW; i++) x[i] += d[i];
        for (size_t i = 0; i < C2 * HW; i++) y[i] += d[C1 * HW + i];
    }
}

void add_forward(float *out, const float *a, const float *b, size_t N)
{
#pragma omp parallel for schedule(static) if (N > PAR_MIN)
    for (size_t i = 0; i < N; i++) out[i] = a[i] + b[i];
}

void add_backward(float *da, const float *dout, size_t N)
{
#pragma omp parallel for schedule(static) if (N > PAR_MIN)
    for (size_t i = 0; i < N; i++) da[i] += dout[i];
}

void chan_add_forward(float *x, const float *v, size_t B, size_t C, size_t HW)
{
#pragma omp parallel for schedule(static) if (B * C * HW > PAR_MIN)
    for (size_t bc = 0; bc < B * C; bc++) {
        float *r = x + bc * HW, a = v[bc];
        for (size_t i = 0; i < HW; i++) r[i] += a;
    }
}

void chan_add_backward(float *dv, const float *dx, size_t B, size_t C, size_t HW)
{
#pragma omp parallel for schedule(static) if (B * C * HW > PAR_MIN)
    for (size_t bc = 0; bc < B * C; bc++) {
        const float *r = dx + bc * HW;
        double s = 0.0;
        for (size_t i = 0; i < HW; i++) s += (double)r[i];
        dv[bc] += (float)s;
    }
}

void temb_sinusoid(float *out, const float *t, size_t B, size_t D)
{
    const size_t half = D / 2;
    const double k = -log(10000.0) / (double)(half - 1);
    for (size_t b = 0; b < B; b++) {
        float *o = out + b * D;
        for (size_t i = 0; i < half; i++) {
            double a = (double)t[b] * exp(k * (double)i);
            o[i] = (float)sin(a);
            o[half + i] = (float)cos(a);
        }
        if (D % 2) o[D - 1] = 0.0f;
    }
}

static size_t embed_row(const int *labels, int null_row, size_t b)
{
    return (size_t)((labels && labels[b] >= 0) ? labels[b] : null_row);
}

void embed_forward(float *out, const float *table, const int *labels, int null_row, size_t B,
                   size_t D)
{
    for (size_t b = 0; b < B; b++) {
        const float *r = table + embed_row(labels, null_row, b) * D;
        for (size_t i = 0; i < D; i++) out[b * D + i] += r[i];
    }
}

void embed_backward(float *dtable, const float *dout, const int *labels, int null_row, size_t B,
                    size_t D)
{
    for (size_t b = 0; b < B; b++) {
        float *r = dtable + embed_row(labels, null_row, b) * D;
        for (size_t i = 0; i < D; i++) r[i] += dout[b * D + i];
    }
}
