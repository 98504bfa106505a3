/* model/ops.h - the small layers: SiLU, nearest 2x upsampling, dropout, channel concatenation,
 * per-channel broadcast add, sinusoidal time embedding and class-embedding lookup.
 *
 * Shapes use the project legend: B batch, C channels, HW = H*W positions, D embedding width.
 * Backward functions accumulate (+=) into every gradient they write. Per-sample work is split
 * over samples; sums over the batch (parameter gradients) run in sample order. Nothing depends
 * on the thread count.
 */
#ifndef DFM_MODEL_OPS_H
#define DFM_MODEL_OPS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* e^x in float, within 2 ulp of expf on [-87, 88] (saturating outside, NaN kept): range
 * reduction x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial for e^r and 2^n put together from
 * bits. Written without branches or calls so loops over it vectorise; the same operations in
 * the same order on every call, so results are the same for any thread count. */
/* exp_f's constants, shared with vector copies of it (model/conv2d.c), which must use the same */
#define EXP_F_LO (-87.0f)
#define EXP_F_HI 88.0f
#define EXP_F_LOG2E 1.44269504088896341f
#define EXP_F_ROUND 12582912.0f /* 1.5 * 2^23: adding and subtracting it rounds to an integer */
#define EXP_F_LN2_HI 0.693145751953125f
#define EXP_F_LN2_LO 1.428606765330187045e-6f
#define EXP_F_C6 (1.0f / 720.0f)
#define EXP_F_C5 (1.0f / 120.0f)
#define EXP_F_C4 (1.0f / 24.0f)
#define EXP_F_C3 (1.0f / 6.0f)
#define EXP_F_C2 0.5f

static inline float exp_f(float x)
{
    float xc = x > EXP_F_LO ? x : EXP_F_LO; /* also maps NaN to -87 for the integer conversion */
    xc = xc < EXP_F_HI ? xc : EXP_F_HI;
    float n = (xc * EXP_F_LOG2E + EXP_F_ROUND) - EXP_F_ROUND; /* round to nearest */
    float r = xc - n * EXP_F_LN2_HI;
    r = r - n * EXP_F_LN2_LO;
    float p = EXP_F_C6;
    p = p * r + EXP_F_C5;
    p = p * r + EXP_F_C4;
    p = p * r + EXP_F_C3;
    p = p * r + EXP_F_C2;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union { uint32_t u; float f; } sc = {.u = (uint32_t)((int32_t)n + 127) << 23};
    return x == x ? p * sc.f : x;
}

static inline float silu_f(float x) { return x / (1.0f + exp_f(-x)); }
/* d silu / dx = s + x s (1 - s), s = sigmoid(x) */
static inline float silu_grad_f(float x)
{
    float s = 1.0f / (1.0f + exp_f(-x));
    return s * (1.0f + x * (1.0f - s));
}

/* out, inp: (N) */
/* Sum in double of x[i] (sq = 0) or of (x[i] - m)^2 (sq = 1), i < n, over eight interleaved
 * accumulators combined in a fixed order: the same bits in every build and for any thread
 * count (GroupNorm statistics, bias gradients). */
double sum8_f64(const float *x, size_t n, double m, int sq);

void silu_forward(float *out, const float *inp, size_t N);
void silu_backward(float *dinp, const float *dout, const float *inp, size_t N);

/* out: (B, C, 2H, 2W); inp: (B, C, H, W); nearest neighbour */
void upsample2x_forward(float *out, const float *inp, size_t B, size_t C, size_t H, size_t W);
void upsample2x_backward(float *dinp, const float *dout, size_t B, size_t C, size_t H, size_t W);

/* Inverted dropout with rate p: mask[b, i] = (u >= p) / (1 - p), out = inp * mask. The uniform
 * words come from rng_stream(RNG_P_DROPOUT, sample_idx[b]), sub = step, starting at block
 * rng_block, so a sample's mask depends only on (seed, its global index, step, layer).
 * out, mask, inp: (B, N) */
void dropout_forward(float *out, float *mask, const float *inp, float p, size_t B, size_t N,
                     uint64_t seed, const uint64_t *sample_idx, uint32_t step, uint32_t rng_block);
void dropout_backward(float *dinp, const float *dout, const float *mask, size_t N);
/* RNG blocks (4 words) one dropout layer of N values per sample consumes */
static inline uint32_t dropout_rng_blocks(size_t N) { return (uint32_t)((N + 3) / 4); }

/* out: (B, C1 + C2, HW) = [a, b] along channels; a: (B, C1, HW); b: (B, C2, HW) */
void concat_forward(float *out, const float *a, const float *b, size_t B, size_t C1, size_t C2,
                    size_t HW);
void concat_backward(float *da, float *db, const float *dout, size_t B, size_t C1, size_t C2,
                     size_t HW);

/* out = a + b, (N) */
void add_forward(float *out, const float *a, const float *b, size_t N);
/* da += dout, (N) */
void add_backward(float *da, const float *dout, size_t N);

/* x: (B, C, HW) += v: (B, C) broadcast over HW */
void chan_add_forward(float *x, const float *v, size_t B, size_t C, size_t HW);
/* dv (B, C) += sum over HW of dx (B, C, HW), in double */
void chan_add_backward(float *dv, const float *dx, size_t B, size_t C, size_t HW);

/* DDPM sinusoidal embedding of float times t: (B) -> out (B, D): half = D / 2,
 * freq_i = exp(-ln(10000) i / (half - 1)), out = [sin(t freq), cos(t freq)] (+ a zero column if
 * D is odd). Computed in double, rounded to float once. D >= 4. */
void temb_sinusoid(float *out, const float *t, size_t B, size_t D);

/* out (B, D) += table[row_b], row_b = labels[b] if labels and labels[b] >= 0, else null_row */
void embed_forward(float *out, const float *table, const int *labels, int null_row, size_t B,
                   size_t D);
/* dtable[row_b] += dout[b], samples in order */
void embed_backward(float *dtable, const float *dout, const int *labels, int null_row, size_t B,
                    size_t D);

#endif
