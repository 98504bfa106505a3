/* model/ops.c - elementwise and data-movement layers. */
#include "model/ops.h"
#include "core/rng.h"

#include <string.h>

/* below this many elements a loop runs on the calling thread: a parallel region costs more */
#define PAR_MIN 32768

/* Sum of x[i] (sq = 0) or of (x[i] - m)^2 (sq = 1) in double over eight interleaved
 * accumulators combined in a fixed order: the same bits whatever the thread count, and eight
 * independent dependency chains the compiler can vectorise. */
__attribute__((target_clones("default", "arch=x86-64-v3", "avx512f"))) double
sum8_f64(const float *x, size_t n, double m, int sq)
{
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    if (sq) {
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) {
                double d = (double)x[i + (size_t)k] - m;
                acc[k] += d * d;
            }
        for (; i < n; i++) {
            double d = (double)x[i] - m;
            acc[i & 7] += d * d;
        }
    } else {
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) acc[k] += (double)x[i + (size_t)k];
        for (; i < n; i++) acc[i & 7] += (double)x[i];
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

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

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DROPOUT_X86 1
#else
#define DROPOUT_X86 0
#endif

#if DROPOUT_X86
/* 32x32 -> 64-bit products of the 16 lanes of a with m: high and low halves */
__attribute__((target("avx512f"))) static inline void mulhilo16(__m512i a, __m512i m, __m512i *hi,
                                                               __m512i *lo)
{
    __m512i pe = _mm512_mul_epu32(a, m), po = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
    *hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(pe, 32), po);
    *lo = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
}

/* dropout_forward's loop over one sample, 16 Philox blocks (64 values) at a time: the counters
 * ctr[0] .. ctr[0] + 15 in the lanes, core/rng.c's rounds on vectors, the 4 words of each block
 * put back in order by a transpose. The words, hence the masks, are the scalar loop's. Returns
 * the values done (a multiple of 64) and advances ctr[0] past their blocks. */
__attribute__((target("avx512f"))) static size_t dropout_avx512(float *m, float *o, const float *x,
                                                                size_t N, uint32_t ctr[4],
                                                                const uint32_t key[2],
                                                                uint64_t thr, float scale)
{
    const __m512i M0 = _mm512_set1_epi32((int)0xD2511F53u), M1 = _mm512_set1_epi32((int)0xCD9E8D57u);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i th = _mm512_set1_epi32((int)(uint32_t)(thr > 0xFFFFFFFFu ? 0 : thr));
    const int none = thr > 0xFFFFFFFFu; /* p = 1: nothing is kept */
    const __m512 sc = _mm512_set1_ps(scale);
    size_t i = 0;
    for (; i + 64 <= N; i += 64) {
        __m512i c0 = _mm512_add_epi32(_mm512_set1_epi32((int)ctr[0]), lane);
        __m512i c1 = _mm512_set1_epi32((int)ctr[1]), c2 = _mm512_set1_epi32((int)ctr[2]),
                c3 = _mm512_set1_epi32((int)ctr[3]);
        uint32_t k0 = key[0], k1 = key[1];
        for (int round = 0; round < 10; round++) {
            __m512i hi0, lo0, hi1, lo1;
            mulhilo16(c0, M0, &hi0, &lo0);
            mulhilo16(c2, M1, &hi1, &lo1);
            c0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), _mm512_set1_epi32((int)k0));
            c1 = lo1;
            c2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), _mm512_set1_epi32((int)k1));
            c3 = lo0;
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        ctr[0] += 16;
        /* c_k lane l = word k of block l; value 4l + k: transpose 4 x 16 into order */
        __m512i t0 = _mm512_unpacklo_epi32(c0, c1), t1 = _mm512_unpackhi_epi32(c0, c1);
        __m512i t2 = _mm512_unpacklo_epi32(c2, c3), t3 = _mm512_unpackhi_epi32(c2, c3);
        __m512i u0 = _mm512_unpacklo_epi64(t0, t2), u1 = _mm512_unpackhi_epi64(t0, t2);
        __m512i u2 = _mm512_unpacklo_epi64(t1, t3), u3 = _mm512_unpackhi_epi64(t1, t3);
        /* u_a's 128-bit lane L is block 4L + a; vector j takes blocks 4j .. 4j + 3 */
        __m512i v0 = _mm512_shuffle_i32x4(u0, u1, 0x44), v1 = _mm512_shuffle_i32x4(u2, u3, 0x44);
        __m512i v2 = _mm512_shuffle_i32x4(u0, u1, 0xEE), v3 = _mm512_shuffle_i32x4(u2, u3, 0xEE);
        __m512i w[4] = {_mm512_shuffle_i32x4(v0, v1, 0x88), _mm512_shuffle_i32x4(v0, v1, 0xDD),
                        _mm512_shuffle_i32x4(v2, v3, 0x88), _mm512_shuffle_i32x4(v2, v3, 0xDD)};
        for (int j = 0; j < 4; j++) {
            __mmask16 keep = none ? 0 : _mm512_cmpge_epu32_mask(w[j], th);
            __m512 mv = _mm512_maskz_mov_ps(keep, sc);
            _mm512_storeu_ps(m + i + 16 * j, mv);
            _mm512_storeu_ps(o + i + 16 * j, _mm512_mul_ps(_mm512_loadu_ps(x + i + 16 * j), mv));
        }
    }
    return i;
}

static int dropout_has_avx512(void)
{
    static int has = -1; /* the same answer on every thread: a benign race */
    if (has < 0) {
        __builtin_cpu_init();
        has = __builtin_cpu_supports("avx512f") != 0;
    }
    return has;
}
#endif

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
        size_t i = 0;
#if DROPOUT_X86
        if (dropout_has_avx512()) i = dropout_avx512(m, o, x, N, ctr, key, thr, scale);
#endif
        for (; i < N; i += 4) {
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
