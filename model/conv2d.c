/* model/conv2d.c - im2col + sgemm convolution with thread-count-independent work splits. */
#include "model/conv2d.h"
#include "model/gemm.h"
#include "model/groupnorm.h"
#include "model/ops.h"
#include "core/mem.h"

#include <omp.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define WINO_X86 1
#else
#define WINO_X86 0
#endif

/* rows of the weight gradient handled by one task with engines other than the own (fixed,
 * independent of the thread count) */
#define DW_ROW_CHUNK 32

static int use_winograd(const Conv2dShape *s);
static size_t wino_tiles(const Conv2dShape *s);
static int wino4_use(int H, int W);
static size_t wino4_tiles(int H, int W);
static size_t wino_dw_samples(size_t T);
static size_t wino_dw_chains(size_t B, size_t SUB);

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
    const size_t KK = (size_t)s->IC * s->K * s->K, OHW = (size_t)s->OH * s->OW;
    const size_t g = B < CONV2D_DW_GROUP ? B : CONV2D_DW_GROUP;
    const size_t nt = (size_t)(nthreads > 0 ? nthreads : 1);
    if (is_pointwise(s)) return 0;
    if (use_winograd(s)) {
        /* the transformed weights, then per thread (forward, input gradient) or per sample of a
         * GEMM's few (weight gradient) the transformed input and output */
        const int f4 = wino4_use(s->H, s->W);
        const size_t NE = f4 ? 36 : 16, T = f4 ? wino4_tiles(s->H, s->W) : wino_tiles(s);
        const size_t gs = wino_dw_samples(T), nU = NE * (size_t)s->OC * s->IC;
        const size_t tiles = NE * T * (size_t)(s->IC + s->OC); /* one sample transformed */
        const size_t fw = nU + nt * tiles, dw = wino_dw_chains(B, gs) * nU + nt * gs * tiles;
        return fw > dw ? fw : dw;
    }
    const size_t dw = g * OHW * (KK + (size_t)s->OC), fw = nt * KK * OHW; /* im2col */
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


/* ---- Winograd F(2x2, 3x3) (Lavin & Gray 2016) ------------------------------------------------
 * For 3x3, stride 1, pad 1 convolutions on maps of at least WINO_MIN_HW pixels: per sample,
 * 2x2 output tiles, 16 GEMMs of (OC x IC) (IC x tiles) in the transformed domain, 2.25x fewer
 * multiplications than im2col. Same per-sample structure (no dependence on the batch or the
 * thread count). From 7x7 maps up (16 tiles of a zero-padded 8x8): there the 16 GEMMs of
 * (OC x IC) (IC x 16) do 0.58x the multiplications of im2col's (OC x 9 IC) (9 IC x 49) at about
 * the same GFLOP/s, and the map is not copied nine times; smaller maps stay with im2col. */
#define WINO_MIN_HW 49
#define WINO_MAX_W 1024

static int use_winograd(const Conv2dShape *s)
{
    return s->K == 3 && s->stride == 1 && s->pad_t == 1 && s->pad_l == 1 && s->OH == s->H &&
           s->OW == s->W && s->H * s->W >= WINO_MIN_HW && s->W <= WINO_MAX_W;
}

static size_t wino2_tiles(int H, int W) { return (size_t)((H + 1) / 2) * (size_t)((W + 1) / 2); }

static size_t wino_tiles(const Conv2dShape *s) { return wino2_tiles(s->H, s->W); }

/* U[e][o][i] (16, O, I) = G g G^T of g = w[o][i] (3x3), or U[e][i][o] (16, I, O) with tr;
 * flip: use w[i][o] rotated 180 degrees (the kernel of the input gradient), w then being
 * (I, O, 3, 3). Sixteen i at a time: their kernels copied into lanes, the transform on whole
 * rows of lanes (vectorised), each U[e] row stored contiguously (a column, with tr). */
#define WINO_WL 16

__attribute__((target_clones("default", "arch=x86-64-v3", "avx512f"))) static void
wino_weights_row(float *U, const float *w, size_t O, size_t I, size_t o, int flip, int tr)
{
    for (size_t i0 = 0; i0 < I; i0 += WINO_WL) {
        const size_t n = I - i0 < WINO_WL ? I - i0 : WINO_WL;
        float g[9][WINO_WL] = {{0}}, t[12][WINO_WL], u[16][WINO_WL];
        for (size_t l = 0; l < n; l++) {
            const size_t i = i0 + l;
            const float *src = flip ? w + (i * O + o) * 9 : w + (o * I + i) * 9;
            for (int k = 0; k < 9; k++) g[k][l] = flip ? src[8 - k] : src[k];
        }
        for (int c = 0; c < 3; c++) /* t = G g: (4, 3) */
            for (int l = 0; l < WINO_WL; l++) {
                float g0 = g[c][l], g1 = g[3 + c][l], g2 = g[6 + c][l];
                t[c][l] = g0;
                t[3 + c][l] = 0.5f * (g0 + g1 + g2);
                t[6 + c][l] = 0.5f * (g0 - g1 + g2);
                t[9 + c][l] = g2;
            }
        for (int r = 0; r < 4; r++) /* u = t G^T: (4, 4) */
            for (int l = 0; l < WINO_WL; l++) {
                float a = t[3 * r][l], b = t[3 * r + 1][l], c = t[3 * r + 2][l];
                u[4 * r][l] = a;
                u[4 * r + 1][l] = 0.5f * (a + b + c);
                u[4 * r + 2][l] = 0.5f * (a - b + c);
                u[4 * r + 3][l] = c;
            }
        for (int e = 0; e < 16; e++) {
            if (tr) {
                for (size_t l = 0; l < n; l++) U[((size_t)e * I + i0 + l) * O + o] = u[e][l];
                continue;
            }
            float *dst = U + ((size_t)e * O + o) * I + i0;
            for (size_t l = 0; l < n; l++) dst[l] = u[e][l];
        }
    }
}

static void wino_weights(float *U, const float *w, size_t O, size_t I, int flip, int tr)
{
#pragma omp parallel for schedule(static)
    for (size_t o = 0; o < O; o++) wino_weights_row(U, w, O, I, o, flip, tr);
}

/* GroupNorm + SiLU applied while the input is read (conv2d_forward_gn_silu): the statistics of
 * one sample, (G) each, and the affine parameters (C); channel c is in group c / CG. NULL: the
 * input is read as it is. */
typedef struct {
    const float *mean, *rstd, *gamma, *beta;
    size_t CG;
} WinoAct;

/* channel c's scale and shift (groupnorm_coef, as the GroupNorm forward forms them) */
static inline void wino_act_coef(const WinoAct *a, size_t c, float *sc, float *sh)
{
    size_t g = c / a->CG;
    groupnorm_coef(a->mean[g], a->rstd[g], a->gamma[c], a->beta[c], sc, sh);
}

/* V[e][c][tile] = B^T d B for the 4x4 input patch of each 2x2 output tile (zero outside).
 * One row of tiles at a time: its 4 input rows, zero-padded, are split into even and odd
 * columns (tile tx starts at padded column 2 tx, i.e. at even[tx]), the vertical transform
 * t = B^T d runs along whole rows and the horizontal one per tile over contiguous arrays, so
 * both loops vectorise; the operations per value are those of the textbook order (columns, then
 * rows). With act, GroupNorm + SiLU are applied as the rows are split. */
__attribute__((target_clones("default", "arch=x86-64-v3", "avx512f"))) static void
wino_input_c(float *V, const float *x, size_t C, int H, int W, size_t ld, size_t st, const WinoAct *act)
{
    const int TW = (W + 1) / 2, TH = (H + 1) / 2, NE = TW + 1; /* even/odd columns per row */
    const size_t ST = st; /* distance between consecutive e */
    float ev[4][WINO_MAX_W / 2 + 2], od[4][WINO_MAX_W / 2 + 2];
    float te[4][WINO_MAX_W / 2 + 2], to[4][WINO_MAX_W / 2 + 2];
    ASSERT(W <= WINO_MAX_W);
    for (size_t c = 0; c < C; c++) {
        const float *xc = x + c * (size_t)H * W;
        for (int ty = 0; ty < TH; ty++) {
            for (int r = 0; r < 4; r++) { /* padded column q holds x[q - 1] */
                int yy = 2 * ty - 1 + r;
                float *e = ev[r], *o = od[r];
                if (yy < 0 || yy >= H) {
                    for (int j = 0; j < NE; j++) e[j] = o[j] = 0.0f;
                    continue;
                }
                const float *row = xc + (size_t)yy * W;
                const int ne = W / 2; /* e[1 .. ne] and o[0 .. TW-1] lie inside the row */
                e[0] = 0.0f;
                if (act) { /* silu(x * sc + sh), the expression of gn_apply_group */
                    float sc, sh;
                    wino_act_coef(act, c, &sc, &sh);
                    for (int j = 1; j <= ne; j++) e[j] = silu_f(row[2 * j - 1] * sc + sh);
                    for (int j = 0; j < TW; j++) o[j] = silu_f(row[2 * j] * sc + sh);
                } else {
                    for (int j = 1; j <= ne; j++) e[j] = row[2 * j - 1];
                    for (int j = 0; j < TW; j++) o[j] = row[2 * j];
                }
                for (int j = ne + 1; j < NE; j++) e[j] = 0.0f;
                o[TW] = 0.0f;
            }
            for (int j = 0; j < NE; j++) { /* t = B^T d along the rows */
                te[0][j] = ev[0][j] - ev[2][j];
                te[1][j] = ev[1][j] + ev[2][j];
                te[2][j] = ev[2][j] - ev[1][j];
                te[3][j] = ev[1][j] - ev[3][j];
                to[0][j] = od[0][j] - od[2][j];
                to[1][j] = od[1][j] + od[2][j];
                to[2][j] = od[2][j] - od[1][j];
                to[3][j] = od[1][j] - od[3][j];
            }
            float *v = V + c * ld + (size_t)ty * TW;
            for (int k = 0; k < 4; k++) { /* V = t B: columns 2tx .. 2tx+3 = e[tx], o[tx], e[tx+1], o[tx+1] */
                const float *e = te[k], *o = to[k];
                float *v0 = v + (size_t)(4 * k) * ST, *v1 = v0 + ST, *v2 = v1 + ST, *v3 = v2 + ST;
                for (int tx = 0; tx < TW; tx++) {
                    v0[tx] = e[tx] - e[tx + 1];
                    v1[tx] = o[tx] + e[tx + 1];
                    v2[tx] = e[tx + 1] - o[tx];
                    v3[tx] = o[tx] - o[tx + 1];
                }
            }
        }
    }
}

/* out (O, H, W) (+)= A^T M A (+ bias) for each tile; M: (16, O, T). One row of tiles at a
 * time, over contiguous tile arrays (vectorised), then the 2x2 results interleaved into the
 * two output rows. */
__attribute__((target_clones("default", "arch=x86-64-v3", "avx512f"))) static void wino_output_c(float *out, const float *M, const float *bias, size_t O, int H, int W,
                        size_t T, int accumulate)
{
    const int TW = (W + 1) / 2, TH = (H + 1) / 2;
    const size_t SE = O * T; /* distance between consecutive e */
    float y[4][WINO_MAX_W / 2 + 1];
    for (size_t o = 0; o < O; o++) {
        float *oc = out + o * (size_t)H * W;
        const float bv = bias ? bias[o] : 0.0f;
        for (int ty = 0; ty < TH; ty++) {
            const float *m = M + o * T + (size_t)ty * TW;
            for (int tx = 0; tx < TW; tx++) {
                float t[8];
                for (int q = 0; q < 4; q++) { /* t = A^T m: (2, 4) */
                    float m0 = m[(size_t)q * SE + tx], m1 = m[(size_t)(4 + q) * SE + tx],
                          m2 = m[(size_t)(8 + q) * SE + tx], m3 = m[(size_t)(12 + q) * SE + tx];
                    t[q] = m0 + m1 + m2;
                    t[4 + q] = m1 - m2 - m3;
                }
                for (int r = 0; r < 2; r++) { /* y = t A: (2, 2) */
                    y[2 * r][tx] = t[4 * r] + t[4 * r + 1] + t[4 * r + 2] + bv;
                    y[2 * r + 1][tx] = t[4 * r + 1] - t[4 * r + 2] - t[4 * r + 3] + bv;
                }
            }
            for (int r = 0; r < 2; r++) {
                int yy = 2 * ty + r;
                if (yy >= H) break;
                float *dst = oc + (size_t)yy * W;
                const float *y0 = y[2 * r], *y1 = y[2 * r + 1];
                const int full = W / 2; /* tiles whose both columns are inside */
                if (accumulate) {
                    for (int tx = 0; tx < full; tx++) {
                        dst[2 * tx] += y0[tx];
                        dst[2 * tx + 1] += y1[tx];
                    }
                    if (W & 1) dst[W - 1] += y0[full];
                } else {
                    for (int tx = 0; tx < full; tx++) {
                        dst[2 * tx] = y0[tx];
                        dst[2 * tx + 1] = y1[tx];
                    }
                    if (W & 1) dst[W - 1] = y0[full];
                }
            }
        }
    }
}

#if WINO_X86
/* The same two transforms in AVX-512, 16 tiles per instruction with masked ends, so the short
 * rows of 28x28 and 14x14 maps (14 and 7 tiles) take one vector each instead of a scalar tail.
 * Exactly the operations of wino_input_c / wino_output_c per value: the same bits. */
#define WINO_V 16
#define WINO_ROW (WINO_MAX_W / 2 + 2 * WINO_V)

__attribute__((target("avx512f"))) static inline __mmask16 wino_mask(int n)
{
    return n >= WINO_V ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

/* silu_f of model/ops.h on 16 lanes: the same operations in the same order (exp_f's clamps,
 * round-to-nearest by adding 1.5 * 2^23, two-step range reduction, degree-6 Horner polynomial,
 * 2^n from the exponent bits, NaN passed through), so every lane has the scalar function's bits */
__attribute__((target("avx512f"))) static inline __m512 wino_silu(__m512 x)
{
    const __m512 big = _mm512_set1_ps(EXP_F_ROUND), lo = _mm512_set1_ps(EXP_F_LO),
                 hi = _mm512_set1_ps(EXP_F_HI);
    __m512 t = _mm512_castsi512_ps(
        _mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u))); /* -x */
    __m512 xc = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(t, lo, _CMP_GT_OQ), lo, t);
    xc = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(xc, hi, _CMP_LT_OQ), hi, xc);
    __m512 n = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(xc, _mm512_set1_ps(EXP_F_LOG2E)), big),
                             big);
    __m512 r = _mm512_sub_ps(xc, _mm512_mul_ps(n, _mm512_set1_ps(EXP_F_LN2_HI)));
    r = _mm512_sub_ps(r, _mm512_mul_ps(n, _mm512_set1_ps(EXP_F_LN2_LO)));
    __m512 p = _mm512_set1_ps(EXP_F_C6);
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(EXP_F_C5));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(EXP_F_C4));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(EXP_F_C3));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(EXP_F_C2));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f));
    __m512 sc = _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(n), _mm512_set1_epi32(127)), 23));
    __m512 e = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(t, t, _CMP_EQ_OQ), t, _mm512_mul_ps(p, sc));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

/* silu(v * sc + sh) on the lanes of m, zero elsewhere (the padding stays zero) */
__attribute__((target("avx512f"))) static inline __m512 wino_act_v(__m512 v, __mmask16 m, __m512 sc,
                                                                   __m512 sh)
{
    return _mm512_maskz_mov_ps(m, wino_silu(_mm512_add_ps(_mm512_mul_ps(v, sc), sh)));
}

/* The same row of the next channel, before it is needed: each channel's plane starts on a page
 * the hardware prefetcher has not reached */
static inline void wino_prefetch_row(const float *row, int W)
{
    for (int k = 0; k < W; k += WINO_V) _mm_prefetch((const char *)(row + k), _MM_HINT_T0);
}

/* wino_input_avx512 for rows of at most 14 columns (a 14x14 map's 7 tiles, a 7x7 map's 4): a
 * row's split, t and V take 8 lanes, so two channels share each vector, channel c in lanes 0..7
 * and c + 1 in lanes 8..15 (an odd last channel is paired with itself and stored twice), and the
 * rows stay in registers. Every lane sees the operations of wino_input_avx512, so the same bits;
 * lane 8 of a shifted row is column 15 of channel c, zero as past the row's end. The transform's
 * own time in a 1-thread training step on a Zen 4 core: 18% less (perf samples, 3 alternating
 * pairs: 3850-3896 against 4558-4945). */
#define WINO_PAIR_MAX_W 14
__attribute__((target("avx512f"))) static void wino_input_pairs(float *V, const float *x,
                                                                size_t C, int H, int W,
                                                                size_t ld, size_t st,
                                                                const WinoAct *act)
{
    const int TW = (W + 1) / 2, TH = (H + 1) / 2;
    const size_t ST = st, HW = (size_t)H * W;
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512 zero = _mm512_setzero_ps();
    const __mmask16 mrow = wino_mask(W), mt = wino_mask(TW);
    ASSERT(W <= WINO_PAIR_MAX_W);
    for (size_t c = 0; c < C; c += 2) {
        const size_t c1 = c + 1 < C ? c + 1 : c;
        const float *x0 = x + c * HW, *x1 = x + c1 * HW;
        __m512 sc0 = zero, sh0 = zero, sc1 = zero, sh1 = zero;
        if (act) {
            float sc, sh;
            wino_act_coef(act, c, &sc, &sh);
            sc0 = _mm512_set1_ps(sc), sh0 = _mm512_set1_ps(sh);
            wino_act_coef(act, c1, &sc, &sh);
            sc1 = _mm512_set1_ps(sc), sh1 = _mm512_set1_ps(sh);
        }
        __m512 ev[4], od[4]; /* the 4-row window, as in wino_input_avx512 */
        for (int ty = 0; ty < TH; ty++) {
            if (ty > 0)
                ev[0] = ev[2], od[0] = od[2], ev[1] = ev[3], od[1] = od[3];
            for (int r = ty > 0 ? 2 : 0; r < 4; r++) {
                const int yy = 2 * ty - 1 + r;
                if (yy < 0 || yy >= H) {
                    ev[r] = od[r] = zero;
                    continue;
                }
                const float *r0 = x0 + (size_t)yy * W, *r1 = x1 + (size_t)yy * W;
                if (c + 2 < C) {
                    _mm_prefetch((const char *)(r0 + 2 * HW), _MM_HINT_T0);
                    _mm_prefetch((const char *)(r1 + 2 * HW), _MM_HINT_T0);
                }
                __m512 lo = _mm512_maskz_loadu_ps(mrow, r0), hi = _mm512_maskz_loadu_ps(mrow, r1);
                if (act) {
                    lo = wino_act_v(lo, mrow, sc0, sh0);
                    hi = wino_act_v(hi, mrow, sc1, sh1);
                }
                od[r] = _mm512_permutex2var_ps(lo, ie, hi);
                ev[r] = _mm512_castsi512_ps(_mm512_alignr_epi32(
                    _mm512_castps_si512(_mm512_permutex2var_ps(lo, io, hi)),
                    _mm512_castps_si512(zero), 15));
            }
            const __m512 te[4] = {_mm512_sub_ps(ev[0], ev[2]), _mm512_add_ps(ev[1], ev[2]),
                                  _mm512_sub_ps(ev[2], ev[1]), _mm512_sub_ps(ev[1], ev[3])};
            const __m512 to[4] = {_mm512_sub_ps(od[0], od[2]), _mm512_add_ps(od[1], od[2]),
                                  _mm512_sub_ps(od[2], od[1]), _mm512_sub_ps(od[1], od[3])};
            float *v = V + c * ld + (size_t)ty * TW, *w = V + c1 * ld + (size_t)ty * TW;
            for (int k = 0; k < 4; k++) { /* V = t B */
                const __m512 e0 = te[k], o0 = to[k];
                const __m512 e1 = _mm512_castsi512_ps(_mm512_alignr_epi32(
                    _mm512_castps_si512(zero), _mm512_castps_si512(e0), 1));
                const __m512 o1 = _mm512_castsi512_ps(_mm512_alignr_epi32(
                    _mm512_castps_si512(zero), _mm512_castps_si512(o0), 1));
                const __m512 y[4] = {_mm512_sub_ps(e0, e1), _mm512_add_ps(o0, e1),
                                     _mm512_sub_ps(e1, o0), _mm512_sub_ps(o0, o1)};
                for (int q = 0; q < 4; q++) {
                    const size_t off = (size_t)(4 * k + q) * ST;
                    _mm512_mask_storeu_ps(v + off, mt, y[q]);
                    _mm512_mask_storeu_ps(w + off, mt, _mm512_shuffle_f32x4(y[q], y[q], 0xEE));
                }
            }
        }
    }
}

/* Every split row and every row of t is stored and read back as whole aligned vectors, and the
 * shifts by one column are made in registers (valignd): a load that straddles two recent stores
 * waits until both retire (no store-to-load forwarding), and the first version, which stored the
 * even columns one float off and read t one float off, stalled there on most of its loads. */
__attribute__((target("avx512f"))) static void wino_input_avx512(float *V, const float *x, size_t C,
                                                                 int H, int W, size_t ld,
                                                                 size_t st, const WinoAct *act)
{
    if (W <= WINO_PAIR_MAX_W) {
        wino_input_pairs(V, x, C, H, W, ld, st, act);
        return;
    }
    const int TW = (W + 1) / 2, TH = (H + 1) / 2, NE = TW + 1;
    const size_t ST = st;
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512 zero = _mm512_setzero_ps();
    /* lanes past a row's end are computed and never stored, and the vector past the last is
     * read as the next one of a shift: zeroed once so they are defined */
    float evs[4][WINO_ROW] __attribute__((aligned(64))) = {{0}};
    float ods[4][WINO_ROW] __attribute__((aligned(64))) = {{0}};
    float te[4][WINO_ROW] __attribute__((aligned(64))) = {{0}};
    float to[4][WINO_ROW] __attribute__((aligned(64))) = {{0}};
    ASSERT(W <= WINO_MAX_W);
    for (size_t c = 0; c < C; c++) {
        const float *xc = x + c * (size_t)H * W;
        /* the 4-row window moves down by 2 rows per row of tiles: its last two split rows are
         * the next window's first two, so each input row is split once */
        float *ev[4] = {evs[0], evs[1], evs[2], evs[3]}, *od[4] = {ods[0], ods[1], ods[2], ods[3]};
        __m512 asc = zero, ash = zero;
        if (act) {
            float sc, sh;
            wino_act_coef(act, c, &sc, &sh);
            asc = _mm512_set1_ps(sc);
            ash = _mm512_set1_ps(sh);
        }
        for (int ty = 0; ty < TH; ty++) {
            if (ty > 0)
                for (int r = 0; r < 2; r++) {
                    float *e = ev[r], *o = od[r];
                    ev[r] = ev[r + 2], od[r] = od[r + 2];
                    ev[r + 2] = e, od[r + 2] = o;
                }
            for (int r = ty > 0 ? 2 : 0; r < 4; r++) { /* od[j] = row[2j], ev[j] = row[2j - 1], zero outside */
                int yy = 2 * ty - 1 + r;
                if (yy < 0 || yy >= H) {
                    for (int j = 0; j < NE; j += WINO_V) {
                        _mm512_store_ps(ev[r] + j, zero);
                        _mm512_store_ps(od[r] + j, zero);
                    }
                    continue;
                }
                const float *row = xc + (size_t)yy * W;
                if (c + 1 < C) wino_prefetch_row(row + (size_t)H * W, W);
                __m512 prev = zero; /* row[2j + 1] of the previous 16 j */
                for (int j = 0; j < NE; j += WINO_V) {
                    __mmask16 ml = wino_mask(W - 2 * j), mh = wino_mask(W - 2 * j - WINO_V);
                    __m512 lo = _mm512_maskz_loadu_ps(ml, row + 2 * j);
                    __m512 hi = _mm512_maskz_loadu_ps(mh, row + 2 * j + WINO_V);
                    if (act) {
                        lo = wino_act_v(lo, ml, asc, ash);
                        if (mh) hi = wino_act_v(hi, mh, asc, ash); /* past the row: stays zero */
                    }
                    __m512 odd = _mm512_permutex2var_ps(lo, io, hi);
                    _mm512_store_ps(od[r] + j, _mm512_permutex2var_ps(lo, ie, hi));
                    _mm512_store_ps(ev[r] + j, _mm512_castsi512_ps(_mm512_alignr_epi32(
                                                   _mm512_castps_si512(odd),
                                                   _mm512_castps_si512(prev), 15)));
                    prev = odd;
                }
            }
            for (int j = 0; j < NE; j += WINO_V) { /* t = B^T d along the rows */
                __m512 e0 = _mm512_load_ps(ev[0] + j), e1 = _mm512_load_ps(ev[1] + j),
                       e2 = _mm512_load_ps(ev[2] + j), e3 = _mm512_load_ps(ev[3] + j);
                __m512 o0 = _mm512_load_ps(od[0] + j), o1 = _mm512_load_ps(od[1] + j),
                       o2 = _mm512_load_ps(od[2] + j), o3 = _mm512_load_ps(od[3] + j);
                _mm512_store_ps(te[0] + j, _mm512_sub_ps(e0, e2));
                _mm512_store_ps(te[1] + j, _mm512_add_ps(e1, e2));
                _mm512_store_ps(te[2] + j, _mm512_sub_ps(e2, e1));
                _mm512_store_ps(te[3] + j, _mm512_sub_ps(e1, e3));
                _mm512_store_ps(to[0] + j, _mm512_sub_ps(o0, o2));
                _mm512_store_ps(to[1] + j, _mm512_add_ps(o1, o2));
                _mm512_store_ps(to[2] + j, _mm512_sub_ps(o2, o1));
                _mm512_store_ps(to[3] + j, _mm512_sub_ps(o1, o3));
            }
            float *v = V + c * ld + (size_t)ty * TW;
            for (int k = 0; k < 4; k++) { /* V = t B */
                float *v0 = v + (size_t)(4 * k) * ST, *v1 = v0 + ST, *v2 = v1 + ST, *v3 = v2 + ST;
                for (int tx = 0; tx < TW; tx += WINO_V) {
                    __mmask16 m = wino_mask(TW - tx);
                    __m512 e0 = _mm512_load_ps(te[k] + tx), o0 = _mm512_load_ps(to[k] + tx);
                    __m512 e1 = _mm512_castsi512_ps(_mm512_alignr_epi32(
                        _mm512_castps_si512(_mm512_load_ps(te[k] + tx + WINO_V)),
                        _mm512_castps_si512(e0), 1));
                    __m512 o1 = _mm512_castsi512_ps(_mm512_alignr_epi32(
                        _mm512_castps_si512(_mm512_load_ps(to[k] + tx + WINO_V)),
                        _mm512_castps_si512(o0), 1));
                    _mm512_mask_storeu_ps(v0 + tx, m, _mm512_sub_ps(e0, e1));
                    _mm512_mask_storeu_ps(v1 + tx, m, _mm512_add_ps(o0, e1));
                    _mm512_mask_storeu_ps(v2 + tx, m, _mm512_sub_ps(e1, o0));
                    _mm512_mask_storeu_ps(v3 + tx, m, _mm512_sub_ps(o0, o1));
                }
            }
        }
    }
}

__attribute__((target("avx512f"))) static void wino_output_avx512(float *out, const float *M,
                                                                  const float *bias, size_t O,
                                                                  int H, int W, size_t T,
                                                                  int accumulate)
{
    const int TW = (W + 1) / 2, TH = (H + 1) / 2;
    const size_t SE = O * T;
    const __m512i il = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i ih = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    for (size_t o = 0; o < O; o++) {
        float *oc = out + o * (size_t)H * W;
        const __m512 bv = _mm512_set1_ps(bias ? bias[o] : 0.0f);
        for (int ty = 0; ty < TH; ty++) {
            const float *m = M + o * T + (size_t)ty * TW;
            for (int tx = 0; tx < TW; tx += WINO_V) {
                __mmask16 mk = wino_mask(TW - tx);
                __m512 t[8];
                for (int q = 0; q < 4; q++) { /* t = A^T m */
                    __m512 m0 = _mm512_maskz_loadu_ps(mk, m + (size_t)q * SE + tx);
                    __m512 m1 = _mm512_maskz_loadu_ps(mk, m + (size_t)(4 + q) * SE + tx);
                    __m512 m2 = _mm512_maskz_loadu_ps(mk, m + (size_t)(8 + q) * SE + tx);
                    __m512 m3 = _mm512_maskz_loadu_ps(mk, m + (size_t)(12 + q) * SE + tx);
                    t[q] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                    t[4 + q] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
                }
                for (int r = 0; r < 2; r++) { /* y = t A (+ bias), two output columns per tile */
                    int yy = 2 * ty + r;
                    if (yy >= H) break;
                    __m512 y0 = _mm512_add_ps(
                        _mm512_add_ps(_mm512_add_ps(t[4 * r], t[4 * r + 1]), t[4 * r + 2]), bv);
                    __m512 y1 = _mm512_add_ps(
                        _mm512_sub_ps(_mm512_sub_ps(t[4 * r + 1], t[4 * r + 2]), t[4 * r + 3]), bv);
                    __m512 lo = _mm512_permutex2var_ps(y0, il, y1), hi = _mm512_permutex2var_ps(y0, ih, y1);
                    float *dst = oc + (size_t)yy * W + 2 * tx;
                    __mmask16 ml = wino_mask(W - 2 * tx), mh = wino_mask(W - 2 * tx - WINO_V);
                    if (accumulate) {
                        lo = _mm512_add_ps(_mm512_maskz_loadu_ps(ml, dst), lo);
                        hi = _mm512_add_ps(_mm512_maskz_loadu_ps(mh, dst + WINO_V), hi);
                    }
                    _mm512_mask_storeu_ps(dst, ml, lo);
                    _mm512_mask_storeu_ps(dst + WINO_V, mh, hi);
                }
            }
        }
    }
}

#endif

static int g_allow_avx512 = 1;

void conv2d_allow_avx512(int on) { g_allow_avx512 = on != 0; }

static int wino_has_avx512(void)
{
#if WINO_X86
    static int has = -1; /* the same answer on every thread: a benign race */
    if (has < 0) {
        __builtin_cpu_init();
        has = __builtin_cpu_supports("avx512f") != 0;
    }
    return has && g_allow_avx512;
#else
    return 0;
#endif
}


/* ---- Winograd F(4x4, 3x3) for the forward and both gradients ---------------------------------
 * 4x4 output tiles from 6x6 input patches (interpolation points 0, 1, -1, 2, -2 and infinity):
 * 36 GEMMs of (OC x IC) (IC x tiles), 4x fewer multiplications than im2col where F(2x2) has
 * 2.25x, and transformed arrays (36 values per 16 outputs) of 0.56x F(2x2)'s size. Its rounding
 * error is larger (the transforms carry factors up to 8 and 1/24) but within the tests' bounds
 * for the weight gradient too (sums over a whole batch of tiles). Used where both sides are at least
 * WINO4_MIN: on fmnist-small's 28x28 maps it takes about 5% off the forward; on 14x14 maps
 * (padded to 16x16, GEMMs of 16 tiles) it was slower than F(2x2). The same per-sample structure
 * as F(2x2): nothing depends on the batch or the thread count. */
#define WINO4_MIN 24
#define WINO4_MAX_W 256
#define WINO4_NE (WINO4_MAX_W / 4 + 1)

static int wino4_use(int H, int W) { return H >= WINO4_MIN && W >= WINO4_MIN && W <= WINO4_MAX_W; }

static size_t wino4_tiles(int H, int W) { return (size_t)((H + 3) / 4) * (size_t)((W + 3) / 4); }

/* y = G (a, b, c)^T, y[k * st] */
static inline void wino4_g(float a, float b, float c, float *y, int st)
{
    const float s6 = 1.0f / 6.0f, s12 = 1.0f / 12.0f, s24 = 1.0f / 24.0f;
    y[0] = 0.25f * a;
    y[st] = -s6 * (a + b + c);
    y[2 * st] = -s6 * (a - b + c);
    y[3 * st] = s24 * a + s12 * b + s6 * c;
    y[4 * st] = s24 * a - s12 * b + s6 * c;
    y[5 * st] = c;
}

/* U[e][o][i] (36, O, I) = G g G^T of g = w[o][i] (U[e][i][o] with tr); flip as for
 * wino_weights */
static void wino4_weights(float *U, const float *w, size_t O, size_t I, int flip, int tr)
{
#pragma omp parallel for schedule(static)
    for (size_t o = 0; o < O; o++) {
        for (size_t i = 0; i < I; i++) {
            float g[9], t[18], u[36];
            const float *src = flip ? w + (i * O + o) * 9 : w + (o * I + i) * 9;
            for (int k = 0; k < 9; k++) g[k] = flip ? src[8 - k] : src[k];
            for (int c = 0; c < 3; c++) wino4_g(g[c], g[3 + c], g[6 + c], t + c, 3); /* (6, 3) */
            for (int r = 0; r < 6; r++) wino4_g(t[3 * r], t[3 * r + 1], t[3 * r + 2], u + 6 * r, 1);
            for (int e = 0; e < 36; e++)
                U[tr ? ((size_t)e * I + i) * O + o : ((size_t)e * O + o) * I + i] = u[e];
        }
    }
}

/* (y0..y5) = B^T (a0..a5) */
#define WINO4_BT(y0, y1, y2, y3, y4, y5, a0, a1, a2, a3, a4, a5) \
    do {                                                         \
        y0 = 4.0f * a0 - 5.0f * a2 + a4;                         \
        y1 = a3 + a4 - 4.0f * (a1 + a2);                         \
        y2 = a4 - a3 + 4.0f * (a1 - a2);                         \
        y3 = a4 - a2 + 2.0f * (a3 - a1);                         \
        y4 = a4 - a2 + 2.0f * (a1 - a3);                         \
        y5 = 4.0f * a1 - 5.0f * a3 + a5;                         \
    } while (0)

/* V[e][c][tile] = B^T d B for the 6x6 input patch of each 4x4 output tile (zero outside). Each
 * padded input row (column p holding x[p - 1]) is read once, GroupNorm + SiLU applied (with
 * act), and kept split by p mod 4 in a ring of six rows, so that tile tx's columns 4tx .. 4tx+5
 * are [0][tx], [1][tx], [2][tx], [3][tx], [0][tx+1], [1][tx+1]: both transforms run over
 * contiguous arrays. */
__attribute__((target_clones("default", "arch=x86-64-v3", "avx512f"))) static void
wino4_input_c(float *V, const float *x, size_t C, int H, int W, size_t ld, size_t st, const WinoAct *act)
{
    const int TW = (W + 3) / 4, TH = (H + 3) / 4, NE = TW + 1, NP = 4 * NE;
    const size_t ST = st;
    float ring[6][4 * WINO4_NE], t[6][4 * WINO4_NE];
    ASSERT(W <= WINO4_MAX_W);
    for (size_t c = 0; c < C; c++) {
        const float *xc = x + c * (size_t)H * W;
        float sc = 1.0f, sh = 0.0f;
        if (act) wino_act_coef(act, c, &sc, &sh);
        int next = 0; /* the next padded row to read */
        for (int ty = 0; ty < TH; ty++) {
            for (; next <= 4 * ty + 5; next++) {
                float *d = ring[next % 6];
                const int yy = next - 1;
                if (yy < 0 || yy >= H) {
                    for (int k = 0; k < NP; k++) d[k] = 0.0f;
                    continue;
                }
                const float *row = xc + (size_t)yy * W;
                for (int q = 0; q < 4; q++) { /* d[q][m] = x[4m + q - 1] */
                    float *dq = d + q * NE;
                    const int lo = q == 0 ? 1 : 0, hi = (W - q) / 4 + 1;
                    for (int m = 0; m < lo; m++) dq[m] = 0.0f;
                    if (act) /* silu(x * sc + sh), the expression of gn_apply_group */
                        for (int m = lo; m < hi; m++) dq[m] = silu_f(row[4 * m + q - 1] * sc + sh);
                    else
                        for (int m = lo; m < hi; m++) dq[m] = row[4 * m + q - 1];
                    for (int m = hi; m < NE; m++) dq[m] = 0.0f;
                }
            }
            const float *d0 = ring[(4 * ty) % 6], *d1 = ring[(4 * ty + 1) % 6],
                        *d2 = ring[(4 * ty + 2) % 6], *d3 = ring[(4 * ty + 3) % 6],
                        *d4 = ring[(4 * ty + 4) % 6], *d5 = ring[(4 * ty + 5) % 6];
            for (int k = 0; k < NP; k++) /* t = B^T d down the columns */
                WINO4_BT(t[0][k], t[1][k], t[2][k], t[3][k], t[4][k], t[5][k], d0[k], d1[k],
                         d2[k], d3[k], d4[k], d5[k]);
            float *v = V + c * ld + (size_t)ty * TW;
            for (int i = 0; i < 6; i++) { /* V = t B along the rows */
                const float *p0 = t[i], *p1 = p0 + NE, *p2 = p1 + NE, *p3 = p2 + NE;
                float *v0 = v + (size_t)(6 * i) * ST, *v1 = v0 + ST, *v2 = v1 + ST, *v3 = v2 + ST,
                      *v4 = v3 + ST, *v5 = v4 + ST;
                for (int tx = 0; tx < TW; tx++)
                    WINO4_BT(v0[tx], v1[tx], v2[tx], v3[tx], v4[tx], v5[tx], p0[tx], p1[tx],
                             p2[tx], p3[tx], p0[tx + 1], p1[tx + 1]);
            }
        }
    }
}

/* (y0..y3) = A^T (a0..a5) */
#define WINO4_AT(y0, y1, y2, y3, a0, a1, a2, a3, a4, a5) \
    do {                                                 \
        y0 = a0 + a1 + a2 + a3 + a4;                     \
        y1 = a1 - a2 + 2.0f * (a3 - a4);                 \
        y2 = a1 + a2 + 4.0f * (a3 + a4);                 \
        y3 = a1 - a2 + 8.0f * (a3 - a4) + a5;            \
    } while (0)

/* out (O, H, W) (+)= A^T M A (+ bias) for each tile; M: (36, O, T). One row of tiles at a time
 * over contiguous tile arrays, then the 4x4 results interleaved into the four output rows. */
__attribute__((target_clones("default", "arch=x86-64-v3", "avx512f"))) static void
wino4_output_c(float *out, const float *M, const float *bias, size_t O, int H, int W, size_t T,
             int accumulate)
{
    const int TW = (W + 3) / 4, TH = (H + 3) / 4;
    const size_t SE = O * T;
    float y[4][4][WINO4_NE]; /* y[r][q][tx]: row 4ty + r, column 4tx + q */
    for (size_t o = 0; o < O; o++) {
        float *oc = out + o * (size_t)H * W;
        const float bv = bias ? bias[o] : 0.0f;
        for (int ty = 0; ty < TH; ty++) {
            const float *m = M + o * T + (size_t)ty * TW;
            for (int tx = 0; tx < TW; tx++) {
                float u[4][6];
                for (int j = 0; j < 6; j++) /* u = A^T m: (4, 6) */
                    WINO4_AT(u[0][j], u[1][j], u[2][j], u[3][j], m[(size_t)j * SE + tx],
                             m[(size_t)(6 + j) * SE + tx], m[(size_t)(12 + j) * SE + tx],
                             m[(size_t)(18 + j) * SE + tx], m[(size_t)(24 + j) * SE + tx],
                             m[(size_t)(30 + j) * SE + tx]);
                for (int r = 0; r < 4; r++) { /* y = u A: (4, 4) */
                    float z0, z1, z2, z3;
                    WINO4_AT(z0, z1, z2, z3, u[r][0], u[r][1], u[r][2], u[r][3], u[r][4],
                             u[r][5]);
                    y[r][0][tx] = z0 + bv;
                    y[r][1][tx] = z1 + bv;
                    y[r][2][tx] = z2 + bv;
                    y[r][3][tx] = z3 + bv;
                }
            }
            for (int r = 0; r < 4; r++) {
                const int yy = 4 * ty + r;
                if (yy >= H) break;
                float *dst = oc + (size_t)yy * W;
                if (accumulate)
                    for (int xx = 0; xx < W; xx++) dst[xx] += y[r][xx & 3][xx >> 2];
                else
                    for (int xx = 0; xx < W; xx++) dst[xx] = y[r][xx & 3][xx >> 2];
            }
        }
    }
}

#if WINO_X86
/* The F(4x4) transforms in AVX-512: 16 tiles per instruction with masked ends (a 28x28 map's
 * row of tiles is 7). WINO4_BT and WINO4_AT are the portable code's expressions, here on
 * vectors (GCC's vector arithmetic, no contraction into FMA): every value has its bits. The
 * split of a row by column mod 4 and the interleaving of the 4x4 results are permutes. */

/* As for F(2x2): every array is read only in whole aligned vectors that were stored as such,
 * and the shifts (by one column in the split, by one tile along t) are made in registers. */
#define WINO4_NB (WINO4_NE / WINO_V + 1)    /* vectors of tiles per row, at most */
#define WINO4_PAIR_MAX_W 28                 /* rows of two channels per vector, up to this */
#define WINO4_NEP ((WINO4_NB + 1) * WINO_V) /* one more, zero, for the shift */

__attribute__((target("avx512f"))) static void wino4_input_avx512(float *V, const float *x,
                                                                  size_t C, int H, int W,
                                                                  size_t ld, size_t st,
                                                                  const WinoAct *act)
{
    const int TW = (W + 3) / 4, TH = (H + 3) / 4, NE = TW + 1;
    const int NB = (NE + WINO_V - 1) / WINO_V, NEP = (NB + 1) * WINO_V, NP = 4 * NEP;
    const size_t ST = st;
    /* ring[r][q * NEP + m] = padded column 4m + q of a row (x[4m + q - 1]); lanes past a row's
     * end are computed and never stored, and the block past the last is zero: zeroed once */
    float ring[6][4 * WINO4_NEP] __attribute__((aligned(64))) = {{0}};
    float t[6][4 * WINO4_NEP] __attribute__((aligned(64))) = {{0}};
    /* lanes 0..7 pick every fourth of two vectors (32 values) from offset q, lanes 8..15 repeat */
    const __m512i stride4 =
        _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
    const __m512 zero = _mm512_setzero_ps();
    /* A row of at most 28 columns (7 tiles) fills lanes 0..7 of col[q] from a[0], a[1]: a[2] and
     * a[3] then take the same row of channel c + 1, whose values land in lanes 8..15 of every
     * array, and the two channels are stored from the two halves (an odd last channel is paired
     * with itself). Lane 8 of the shifted column is column 30 of channel c, zero as past the
     * row's end; tile 7 (lane 7), which reads lane 8, is never stored. The same operations on
     * every lane: the same bits. */
    const int pair = NB == 1 && W <= WINO4_PAIR_MAX_W;
    const size_t HW = (size_t)H * W;
    ASSERT(W <= WINO4_MAX_W);
    for (size_t c = 0; c < C; c += pair ? 2 : 1) {
        const size_t c1 = pair && c + 1 < C ? c + 1 : c;
        const float *xc = x + c * HW, *xc1 = x + c1 * HW;
        __m512 asc = zero, ash = zero, asc1 = zero, ash1 = zero;
        if (act) {
            float sc, sh;
            wino_act_coef(act, c, &sc, &sh);
            asc = _mm512_set1_ps(sc);
            ash = _mm512_set1_ps(sh);
            wino_act_coef(act, c1, &sc, &sh);
            asc1 = _mm512_set1_ps(sc);
            ash1 = _mm512_set1_ps(sh);
        }
        int next = 0; /* the next padded row to read */
        for (int ty = 0; ty < TH; ty++) {
            for (; next <= 4 * ty + 5; next++) {
                float *d = ring[next % 6];
                const int yy = next - 1;
                if (yy < 0 || yy >= H) {
                    for (int k = 0; k < NP; k += WINO_V) _mm512_store_ps(d + k, zero);
                    continue;
                }
                const float *row = xc + (size_t)yy * W, *row1 = xc1 + (size_t)yy * W;
                if (pair && c + 2 < C) {
                    wino_prefetch_row(row + 2 * HW, W);
                    wino_prefetch_row(row1 + 2 * HW, W);
                } else if (!pair && c + 1 < C) {
                    wino_prefetch_row(row + HW, W);
                }
                __m512 prev3 = zero; /* x[4m + 2] of the previous 16 m: padded column 4m + 3 */
                for (int mb = 0; mb < NB; mb++) { /* 16 m at a time: x[64 mb .. 64 mb + 63] */
                    __m512 a[4];
                    for (int k = 0; k < 4; k++) {
                        const int second = pair && k >= 2;
                        const int s0 = second ? WINO_V * (k - 2) : 64 * mb + WINO_V * k;
                        __mmask16 m = wino_mask(W - s0);
                        a[k] = _mm512_maskz_loadu_ps(m, (second ? row1 : row) + s0);
                        if (act && m) /* else zero */
                            a[k] = wino_act_v(a[k], m, second ? asc1 : asc, second ? ash1 : ash);
                    }
                    __m512 col[4]; /* col[q] lane l = x[64 mb + 4 l + q] */
                    for (int q = 0; q < 4; q++) {
                        const __m512i iq = _mm512_add_epi32(stride4, _mm512_set1_epi32(q));
                        __m512 lo = _mm512_permutex2var_ps(a[0], iq, a[1]),
                               hi = _mm512_permutex2var_ps(a[2], iq, a[3]);
                        col[q] = _mm512_shuffle_f32x4(lo, hi, 0x44);
                    }
                    /* padded column 4m + q + 1 is x[4m + q]; column 4m is x[4m - 1] */
                    const int o = WINO_V * mb;
                    _mm512_store_ps(d + o, _mm512_castsi512_ps(_mm512_alignr_epi32(
                                               _mm512_castps_si512(col[3]),
                                               _mm512_castps_si512(prev3), 15)));
                    _mm512_store_ps(d + NEP + o, col[0]);
                    _mm512_store_ps(d + 2 * NEP + o, col[1]);
                    _mm512_store_ps(d + 3 * NEP + o, col[2]);
                    prev3 = col[3];
                }
            }
            const float *d0 = ring[(4 * ty) % 6], *d1 = ring[(4 * ty + 1) % 6],
                        *d2 = ring[(4 * ty + 2) % 6], *d3 = ring[(4 * ty + 3) % 6],
                        *d4 = ring[(4 * ty + 4) % 6], *d5 = ring[(4 * ty + 5) % 6];
            for (int k = 0; k < NP; k += WINO_V) { /* t = B^T d down the columns */
                if (k % NEP == NB * WINO_V) continue; /* each q's zero block stays zero */
                __m512 y0, y1, y2, y3, y4, y5;
                __m512 a0 = _mm512_load_ps(d0 + k), a1 = _mm512_load_ps(d1 + k),
                       a2 = _mm512_load_ps(d2 + k), a3 = _mm512_load_ps(d3 + k),
                       a4 = _mm512_load_ps(d4 + k), a5 = _mm512_load_ps(d5 + k);
                WINO4_BT(y0, y1, y2, y3, y4, y5, a0, a1, a2, a3, a4, a5);
                _mm512_store_ps(t[0] + k, y0);
                _mm512_store_ps(t[1] + k, y1);
                _mm512_store_ps(t[2] + k, y2);
                _mm512_store_ps(t[3] + k, y3);
                _mm512_store_ps(t[4] + k, y4);
                _mm512_store_ps(t[5] + k, y5);
            }
            float *v = V + c * ld + (size_t)ty * TW, *v1 = V + c1 * ld + (size_t)ty * TW;
            for (int i = 0; i < 6; i++) { /* V = t B along the rows */
                const float *p0 = t[i], *p1 = p0 + NEP, *p2 = p1 + NEP, *p3 = p2 + NEP;
                float *v0 = v + (size_t)(6 * i) * ST;
                for (int tx = 0; tx < TW; tx += WINO_V) {
                    __mmask16 m = wino_mask(TW - tx);
                    __m512 y0, y1, y2, y3, y4, y5;
                    __m512 a0 = _mm512_load_ps(p0 + tx), a1 = _mm512_load_ps(p1 + tx),
                           a2 = _mm512_load_ps(p2 + tx), a3 = _mm512_load_ps(p3 + tx);
                    __m512 a4 = _mm512_castsi512_ps(_mm512_alignr_epi32(
                        _mm512_castps_si512(_mm512_load_ps(p0 + tx + WINO_V)),
                        _mm512_castps_si512(a0), 1));
                    __m512 a5 = _mm512_castsi512_ps(_mm512_alignr_epi32(
                        _mm512_castps_si512(_mm512_load_ps(p1 + tx + WINO_V)),
                        _mm512_castps_si512(a1), 1));
                    WINO4_BT(y0, y1, y2, y3, y4, y5, a0, a1, a2, a3, a4, a5);
                    _mm512_mask_storeu_ps(v0 + tx, m, y0);
                    _mm512_mask_storeu_ps(v0 + ST + tx, m, y1);
                    _mm512_mask_storeu_ps(v0 + 2 * ST + tx, m, y2);
                    _mm512_mask_storeu_ps(v0 + 3 * ST + tx, m, y3);
                    _mm512_mask_storeu_ps(v0 + 4 * ST + tx, m, y4);
                    _mm512_mask_storeu_ps(v0 + 5 * ST + tx, m, y5);
                    if (pair) { /* tx is 0: channel c1 from lanes 8..15 */
                        float *w0 = v1 + (size_t)(6 * i) * ST;
                        const __m512 y[6] = {y0, y1, y2, y3, y4, y5};
                        for (int q = 0; q < 6; q++)
                            _mm512_mask_storeu_ps(w0 + (size_t)q * ST, m,
                                                  _mm512_shuffle_f32x4(y[q], y[q], 0xEE));
                    }
                }
            }
        }
    }
}

__attribute__((target("avx512f"))) static void wino4_output_avx512(float *out, const float *M,
                                                                   const float *bias, size_t O,
                                                                   int H, int W, size_t T,
                                                                   int accumulate)
{
    const int TW = (W + 3) / 4, TH = (H + 3) / 4;
    const size_t SE = O * T;
    float y[4][4][WINO4_NE + WINO_V]; /* y[r][q][tx]: row 4ty + r, column 4tx + q */
    /* (a, b) -> a0 b0 a1 b1 ... (first and second 8 lanes); then pairs of two such vectors */
    const __m512i zip_lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23),
                  zip_hi =
                      _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31),
                  pair_lo =
                      _mm512_setr_epi32(0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23),
                  pair_hi =
                      _mm512_setr_epi32(8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
    for (size_t o = 0; o < O; o++) {
        float *oc = out + o * (size_t)H * W;
        const __m512 bv = _mm512_set1_ps(bias ? bias[o] : 0.0f);
        for (int ty = 0; ty < TH; ty++) {
            const float *m = M + o * T + (size_t)ty * TW;
            for (int tx = 0; tx < TW; tx += WINO_V) {
                const __mmask16 k = wino_mask(TW - tx);
                __m512 u[4][6];
                for (int j = 0; j < 6; j++) /* u = A^T m: (4, 6) */
                    WINO4_AT(u[0][j], u[1][j], u[2][j], u[3][j],
                             _mm512_maskz_loadu_ps(k, m + (size_t)j * SE + tx),
                             _mm512_maskz_loadu_ps(k, m + (size_t)(6 + j) * SE + tx),
                             _mm512_maskz_loadu_ps(k, m + (size_t)(12 + j) * SE + tx),
                             _mm512_maskz_loadu_ps(k, m + (size_t)(18 + j) * SE + tx),
                             _mm512_maskz_loadu_ps(k, m + (size_t)(24 + j) * SE + tx),
                             _mm512_maskz_loadu_ps(k, m + (size_t)(30 + j) * SE + tx));
                for (int r = 0; r < 4; r++) { /* y = u A: (4, 4) */
                    __m512 z0, z1, z2, z3;
                    WINO4_AT(z0, z1, z2, z3, u[r][0], u[r][1], u[r][2], u[r][3], u[r][4],
                             u[r][5]);
                    _mm512_storeu_ps(y[r][0] + tx, z0 + bv);
                    _mm512_storeu_ps(y[r][1] + tx, z1 + bv);
                    _mm512_storeu_ps(y[r][2] + tx, z2 + bv);
                    _mm512_storeu_ps(y[r][3] + tx, z3 + bv);
                }
            }
            for (int r = 0; r < 4; r++) { /* dst[4tx + q] = y[r][q][tx], 16 tiles at a time */
                const int yy = 4 * ty + r;
                if (yy >= H) break;
                float *dst = oc + (size_t)yy * W;
                for (int tx = 0; tx < TW; tx += WINO_V) {
                    __m512 q0 = _mm512_loadu_ps(y[r][0] + tx), q1 = _mm512_loadu_ps(y[r][1] + tx),
                           q2 = _mm512_loadu_ps(y[r][2] + tx), q3 = _mm512_loadu_ps(y[r][3] + tx);
                    __m512 lo01 = _mm512_permutex2var_ps(q0, zip_lo, q1),
                           hi01 = _mm512_permutex2var_ps(q0, zip_hi, q1),
                           lo23 = _mm512_permutex2var_ps(q2, zip_lo, q3),
                           hi23 = _mm512_permutex2var_ps(q2, zip_hi, q3);
                    __m512 v[4] = {_mm512_permutex2var_ps(lo01, pair_lo, lo23),
                                   _mm512_permutex2var_ps(lo01, pair_hi, lo23),
                                   _mm512_permutex2var_ps(hi01, pair_lo, hi23),
                                   _mm512_permutex2var_ps(hi01, pair_hi, hi23)};
                    for (int k = 0; k < 4; k++) {
                        const int x0 = 4 * tx + 16 * k;
                        const __mmask16 mk = wino_mask(W - x0);
                        if (!mk) break;
                        __m512 val = v[k];
                        if (accumulate) val = _mm512_maskz_loadu_ps(mk, dst + x0) + val;
                        _mm512_mask_storeu_ps(dst + x0, mk, val);
                    }
                }
            }
        }
    }
}
#endif

/* V[e][c][...]: channels ld apart (T for one sample alone; the weight gradient puts a few
 * samples side by side), e planes st apart (at least C * ld: a call may do some channels) */
typedef void (*WinoInFn)(float *V, const float *x, size_t C, int H, int W, size_t ld,
                         size_t st, const WinoAct *act);
typedef void (*WinoOutFn)(float *out, const float *M, const float *bias, size_t O, int H, int W,
                          size_t T, int accumulate);
/* Mg[e][o][...] of dout (O, H, W) for the weight gradient, laid out as V */
typedef void (*WinoDoutFn)(float *Mg, const float *dy, size_t O, int H, int W, size_t ld,
                           size_t st);

/* the input and output transforms of F(2x2) (f4 = 0) or F(4x4): AVX-512 where the CPU has it
 * (out may be NULL) */
static void wino_pick(int f4, WinoInFn *in, WinoOutFn *out)
{
#if WINO_X86
    if (wino_has_avx512()) {
        *in = f4 ? wino4_input_avx512 : wino_input_avx512;
        if (out) *out = f4 ? wino4_output_avx512 : wino_output_avx512;
        return;
    }
#endif
    *in = f4 ? wino4_input_c : wino_input_c;
    if (out) *out = f4 ? wino4_output_c : wino_output_c;
}

/* out (B, O, H, W) (+)= conv3x3(inp (B, I, H, W)) with the weights w (O, I, 3, 3), or with flip
 * w (I, O, 3, 3) rotated (the input gradient): F(4x4) or F(2x2) as wino4_use says, the weights
 * transformed into the workspace first, (NE, O, I), then the samples */
static void wino_conv(float *out, const float *inp, const Conv2dGnSilu *gn, const float *w,
                      int flip, const float *bias, size_t O, size_t I, int H, int W, size_t B,
                      int accumulate, float *ws)
{
    const int f4 = wino4_use(H, W);
    const size_t NE = f4 ? 36 : 16, HW = (size_t)H * W;
    const size_t T = f4 ? wino4_tiles(H, W) : wino2_tiles(H, W);
    const size_t per = NE * T * (I + O);
    float *U = ws;
    /* The own engine computes these narrow products (49 or 16 columns) transposed
     * (model/sgemm.c), reading op(A)^T along its rows: stored as (NE, I, O), the weights are
     * read in place, where as (NE, O, I) the kernels packed them again for every sample (about
     * 5% of a 1-thread training step). The same products in the same order: the same bits. */
    const int tr = gemm_exact();
    (f4 ? wino4_weights : wino_weights)(U, w, O, I, flip, tr);
    ws += NE * O * I;
    WinoInFn tin;
    WinoOutFn tout;
    wino_pick(f4, &tin, &tout);
#pragma omp parallel for schedule(dynamic)
    for (size_t b = 0; b < B; b++) {
        float *V = ws + (size_t)omp_get_thread_num() * per, *M = V + NE * T * I;
        WinoAct a;
        if (gn) {
            const size_t G = (size_t)gn->G;
            a = (WinoAct){gn->mean + b * G, gn->rstd + b * G, gn->gamma, gn->beta, I / G};
        }
        tin(V, inp + b * I * HW, I, H, W, T, I * T, gn ? &a : NULL);
        for (size_t e = 0; e < NE; e++)
            gemm(tr, 0, O, T, I, 1.0f, U + e * O * I, tr ? O : I, V + e * I * T, T, 0.0f,
                 M + e * O * T, T);
        tout(out + b * O * HW, M, bias, O, H, W, T, accumulate);
    }
}


/* Mg[e][o][tile] = A dy A^T of each 2x2 tile dy of dout (O, H, W) (zero outside), tile rows
 * ld apart. Per row of tiles, its two rows split into even and odd columns (E, O): t = A dy
 * gives the rows (E0, O0), (E0 + E1, O0 + O1), (E0 - E1, O0 - O1), (-E1, -O1), and each row
 * (a, b) of t becomes (a, a + b, a - b, -b). */
__attribute__((target_clones("default", "arch=x86-64-v3", "avx512f"))) static void
wino_dout_c(float *Mg, const float *dy, size_t O, int H, int W, size_t ld, size_t st)
{
    const int TW = (W + 1) / 2, TH = (H + 1) / 2;
    const size_t ST = st;
    float ev[2][WINO_MAX_W / 2 + 1], od[2][WINO_MAX_W / 2 + 1];
    ASSERT(W <= WINO_MAX_W);
    for (size_t o = 0; o < O; o++) {
        const float *d = dy + o * (size_t)H * W;
        for (int ty = 0; ty < TH; ty++) {
            for (int r = 0; r < 2; r++) {
                const int yy = 2 * ty + r;
                for (int tx = 0; tx < TW; tx++) {
                    ev[r][tx] = yy < H ? d[(size_t)yy * W + 2 * tx] : 0.0f;
                    od[r][tx] = yy < H && 2 * tx + 1 < W ? d[(size_t)yy * W + 2 * tx + 1] : 0.0f;
                }
            }
            float *m = Mg + o * ld + (size_t)ty * TW;
            for (int tx = 0; tx < TW; tx++) {
                const float e0 = ev[0][tx], e1 = ev[1][tx], o0 = od[0][tx], o1 = od[1][tx];
                const float a[4] = {e0, e0 + e1, e0 - e1, -e1}, b[4] = {o0, o0 + o1, o0 - o1, -o1};
                for (int r = 0; r < 4; r++) {
                    m[(size_t)(4 * r) * ST + tx] = a[r];
                    m[(size_t)(4 * r + 1) * ST + tx] = a[r] + b[r];
                    m[(size_t)(4 * r + 2) * ST + tx] = a[r] - b[r];
                    m[(size_t)(4 * r + 3) * ST + tx] = -b[r];
                }
            }
        }
    }
}

#if WINO_X86
/* wino_dout_c in AVX-512, 16 tiles at a time: the same operations, the same bits */
__attribute__((target("avx512f"))) static void wino_dout_avx512(float *Mg, const float *dy,
                                                                size_t O, int H, int W, size_t ld, size_t st)
{
    const int TW = (W + 1) / 2, TH = (H + 1) / 2;
    const size_t ST = st;
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512 zero = _mm512_setzero_ps();
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u); /* -x flips the sign bit, as in C */
#define WINO_NEG(x) _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), sign))
    for (size_t o = 0; o < O; o++) {
        const float *d = dy + o * (size_t)H * W;
        for (int ty = 0; ty < TH; ty++) {
            float *m = Mg + o * ld + (size_t)ty * TW;
            for (int tx = 0; tx < TW; tx += WINO_V) {
                const __mmask16 ml = wino_mask(W - 2 * tx), mh = wino_mask(W - 2 * tx - WINO_V);
                __m512 e[2], od[2];
                for (int r = 0; r < 2; r++) {
                    const int yy = 2 * ty + r;
                    if (yy >= H) {
                        e[r] = od[r] = zero;
                        continue;
                    }
                    const float *row = d + (size_t)yy * W + 2 * tx;
                    __m512 lo = _mm512_maskz_loadu_ps(ml, row), hi = _mm512_maskz_loadu_ps(mh, row + WINO_V);
                    e[r] = _mm512_permutex2var_ps(lo, ie, hi);
                    od[r] = _mm512_permutex2var_ps(lo, io, hi);
                }
                const __mmask16 mk = wino_mask(TW - tx);
                const __m512 a[4] = {e[0], _mm512_add_ps(e[0], e[1]), _mm512_sub_ps(e[0], e[1]),
                                     WINO_NEG(e[1])};
                const __m512 b[4] = {od[0], _mm512_add_ps(od[0], od[1]),
                                     _mm512_sub_ps(od[0], od[1]), WINO_NEG(od[1])};
                for (int r = 0; r < 4; r++) {
                    _mm512_mask_storeu_ps(m + (size_t)(4 * r) * ST + tx, mk, a[r]);
                    _mm512_mask_storeu_ps(m + (size_t)(4 * r + 1) * ST + tx, mk, _mm512_add_ps(a[r], b[r]));
                    _mm512_mask_storeu_ps(m + (size_t)(4 * r + 2) * ST + tx, mk, _mm512_sub_ps(a[r], b[r]));
                    _mm512_mask_storeu_ps(m + (size_t)(4 * r + 3) * ST + tx, mk, WINO_NEG(b[r]));
                }
            }
        }
    }
#undef WINO_NEG
}
#endif

/* dw (O, I, 3, 3) += G^T dU G, dU: (16, O, I) */
static void wino_dweights(float *dw, const float *dU, size_t O, size_t I)
{
#pragma omp parallel for schedule(static)
    for (size_t o = 0; o < O; o++) {
        for (size_t i = 0; i < I; i++) {
            float u[16], t[12];
            for (int e = 0; e < 16; e++) u[e] = dU[((size_t)e * O + o) * I + i];
            for (int q = 0; q < 4; q++) { /* t = G^T u: (3, 4) */
                float u0 = u[q], u1 = u[4 + q], u2 = u[8 + q], u3 = u[12 + q];
                t[q] = u0 + 0.5f * (u1 + u2);
                t[4 + q] = 0.5f * (u1 - u2);
                t[8 + q] = 0.5f * (u1 + u2) + u3;
            }
            float *g = dw + (o * I + i) * 9;
            for (int r = 0; r < 3; r++) { /* g += t G: (3, 3) */
                float a = t[4 * r], b = t[4 * r + 1], c = t[4 * r + 2], d = t[4 * r + 3];
                g[3 * r] += a + 0.5f * (b + c);
                g[3 * r + 1] += 0.5f * (b - c);
                g[3 * r + 2] += 0.5f * (b + c) + d;
            }
        }
    }
}

/* (y0..y5) = A (a0..a3), A = (A^T)^T of WINO4_AT: the transform of an output-gradient tile */
#define WINO4_A(y0, y1, y2, y3, y4, y5, a0, a1, a2, a3) \
    do {                                                \
        y0 = a0;                                        \
        y1 = a0 + a1 + a2 + a3;                         \
        y2 = a0 - a1 + a2 - a3;                         \
        y3 = a0 + 2.0f * a1 + 4.0f * a2 + 8.0f * a3;    \
        y4 = a0 - 2.0f * a1 + 4.0f * a2 - 8.0f * a3;    \
        y5 = a3;                                        \
    } while (0)

/* Mg[e][o][tile] = A dy A^T of each 4x4 tile dy of dout (O, H, W) (zero outside), tile rows ld
 * apart: each row of tiles' four rows split by column mod 4, A down the columns, then along the
 * rows (the order of wino4_dout_avx512) */
__attribute__((target_clones("default", "arch=x86-64-v3", "avx512f"))) static void
wino4_dout_c(float *Mg, const float *dy, size_t O, int H, int W, size_t ld, size_t st)
{
    const int TW = (W + 3) / 4, TH = (H + 3) / 4;
    const size_t ST = st;
    float d[4][4][WINO4_NE], t[6][4][WINO4_NE]; /* [row][column mod 4][tx] */
    ASSERT(W <= WINO4_MAX_W);
    for (size_t o = 0; o < O; o++) {
        const float *dc = dy + o * (size_t)H * W;
        for (int ty = 0; ty < TH; ty++) {
            for (int r = 0; r < 4; r++)
                for (int q = 0; q < 4; q++)
                    for (int tx = 0; tx < TW; tx++) {
                        const int yy = 4 * ty + r, xx = 4 * tx + q;
                        d[r][q][tx] = yy < H && xx < W ? dc[(size_t)yy * W + xx] : 0.0f;
                    }
            for (int q = 0; q < 4; q++)
                for (int tx = 0; tx < TW; tx++)
                    WINO4_A(t[0][q][tx], t[1][q][tx], t[2][q][tx], t[3][q][tx], t[4][q][tx],
                            t[5][q][tx], d[0][q][tx], d[1][q][tx], d[2][q][tx], d[3][q][tx]);
            float *m = Mg + o * ld + (size_t)ty * TW;
            for (int k = 0; k < 6; k++) {
                float *m0 = m + (size_t)(6 * k) * ST, *m1 = m0 + ST, *m2 = m1 + ST, *m3 = m2 + ST,
                      *m4 = m3 + ST, *m5 = m4 + ST;
                for (int tx = 0; tx < TW; tx++)
                    WINO4_A(m0[tx], m1[tx], m2[tx], m3[tx], m4[tx], m5[tx], t[k][0][tx],
                            t[k][1][tx], t[k][2][tx], t[k][3][tx]);
            }
        }
    }
}

#if WINO_X86
/* wino4_dout_c in AVX-512, 16 tiles at a time (WINO4_A on vectors): the same bits */
__attribute__((target("avx512f"))) static void wino4_dout_avx512(float *Mg, const float *dy,
                                                                 size_t O, int H, int W, size_t ld, size_t st)
{
    const int TW = (W + 3) / 4, TH = (H + 3) / 4;
    const size_t ST = st;
    /* lane l of four vectors of 16 (64 columns) holds column 4l + q for q = 0..3 */
    const __m512i p01 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
    const __m512i p23 = _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
    const __m512i lo8 = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    const __m512i hi8 = _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    const __m512 zero = _mm512_setzero_ps();
    for (size_t o = 0; o < O; o++) {
        const float *dc = dy + o * (size_t)H * W;
        for (int ty = 0; ty < TH; ty++) {
            float *m = Mg + o * ld + (size_t)ty * TW;
            for (int tx = 0; tx < TW; tx += WINO_V) {
                __m512 d[4][4]; /* [row][column mod 4], 16 tiles */
                for (int r = 0; r < 4; r++) {
                    const int yy = 4 * ty + r;
                    if (yy >= H) {
                        for (int q = 0; q < 4; q++) d[r][q] = zero;
                        continue;
                    }
                    const float *row = dc + (size_t)yy * W + 4 * tx;
                    __m512 v[4];
                    for (int k = 0; k < 4; k++)
                        v[k] = _mm512_maskz_loadu_ps(wino_mask(W - 4 * tx - WINO_V * k), row + WINO_V * k);
                    /* a = (c0 of v0,v1 | c1 of v0,v1), b = (c0 of v2,v3 | c1 of v2,v3), ... */
                    __m512 a01 = _mm512_permutex2var_ps(v[0], p01, v[1]);
                    __m512 a23 = _mm512_permutex2var_ps(v[0], p23, v[1]);
                    __m512 b01 = _mm512_permutex2var_ps(v[2], p01, v[3]);
                    __m512 b23 = _mm512_permutex2var_ps(v[2], p23, v[3]);
                    d[r][0] = _mm512_permutex2var_ps(a01, lo8, b01);
                    d[r][1] = _mm512_permutex2var_ps(a01, hi8, b01);
                    d[r][2] = _mm512_permutex2var_ps(a23, lo8, b23);
                    d[r][3] = _mm512_permutex2var_ps(a23, hi8, b23);
                }
                __m512 t[6][4];
                for (int q = 0; q < 4; q++)
                    WINO4_A(t[0][q], t[1][q], t[2][q], t[3][q], t[4][q], t[5][q], d[0][q], d[1][q],
                            d[2][q], d[3][q]);
                const __mmask16 mk = wino_mask(TW - tx);
                for (int k = 0; k < 6; k++) {
                    __m512 y0, y1, y2, y3, y4, y5;
                    WINO4_A(y0, y1, y2, y3, y4, y5, t[k][0], t[k][1], t[k][2], t[k][3]);
                    float *mk0 = m + (size_t)(6 * k) * ST + tx;
                    _mm512_mask_storeu_ps(mk0, mk, y0);
                    _mm512_mask_storeu_ps(mk0 + ST, mk, y1);
                    _mm512_mask_storeu_ps(mk0 + 2 * ST, mk, y2);
                    _mm512_mask_storeu_ps(mk0 + 3 * ST, mk, y3);
                    _mm512_mask_storeu_ps(mk0 + 4 * ST, mk, y4);
                    _mm512_mask_storeu_ps(mk0 + 5 * ST, mk, y5);
                }
            }
        }
    }
}
#endif

/* (y0, y1, y2) = G^T (a0..a5), G of wino4_g */
#define WINO4_GT(y0, y1, y2, a0, a1, a2, a3, a4, a5)                                     \
    do {                                                                                 \
        const float s6_ = 1.0f / 6.0f, s12_ = 1.0f / 12.0f, s24_ = 1.0f / 24.0f;         \
        y0 = 0.25f * a0 - s6_ * (a1 + a2) + s24_ * (a3 + a4);                            \
        y1 = s6_ * (a2 - a1) + s12_ * (a3 - a4);                                         \
        y2 = s6_ * (a3 + a4) - s6_ * (a1 + a2) + a5;                                     \
    } while (0)

/* dw (O, I, 3, 3) += G^T dU G, dU: (36, O, I) */
static void wino4_dweights(float *dw, const float *dU, size_t O, size_t I)
{
#pragma omp parallel for schedule(static)
    for (size_t o = 0; o < O; o++) {
        for (size_t i = 0; i < I; i++) {
            float u[36], t[18];
            for (int e = 0; e < 36; e++) u[e] = dU[((size_t)e * O + o) * I + i];
            for (int q = 0; q < 6; q++) /* t = G^T u: (3, 6) */
                WINO4_GT(t[q], t[6 + q], t[12 + q], u[q], u[6 + q], u[12 + q], u[18 + q],
                         u[24 + q], u[30 + q]);
            float *g = dw + (o * I + i) * 9;
            for (int r = 0; r < 3; r++) { /* g += t G: (3, 3) */
                float y0, y1, y2;
                const float *a = t + 6 * r;
                WINO4_GT(y0, y1, y2, a[0], a[1], a[2], a[3], a[4], a[5]);
                g[3 * r] += y0;
                g[3 * r + 1] += y1;
                g[3 * r + 2] += y2;
            }
        }
    }
}

/* Samples per weight-gradient GEMM: enough for a sum of at least WINO_DW_K tiles, so that the
 * GEMM runs at speed, and no more, so that the transformed arrays (NE x g x T x (IC + OC)) stay
 * in cache between the transforms and the GEMM. Measured on fmnist-small's shapes (batch 64, one
 * thread, bench_conv-style loop): 28x28x64 19.6 ms with 2 samples per GEMM against 32.9 ms with
 * 32; 14x14x128 21.7 against 30.0; 7x7x128 10.3 with 6 against 10.8 with 32. A function of the
 * shape only, so the order of the sums never depends on the thread count. */
#define WINO_DW_K 96
#define WINO_DW_CH 16 /* channels per transform task */

static size_t wino_dw_samples(size_t T)
{
    size_t g = (WINO_DW_K + T - 1) / T;
    return g < CONV2D_DW_GROUP ? g : CONV2D_DW_GROUP;
}

/* Chains of the weight gradient: group k of wino_dw_samples samples is summed into chain
 * k mod nch, each chain in group order, and the chains are added in chain order at the end
 * (wino_dweights). nch depends on the batch and the shape alone, so the sums do not depend on
 * the thread count. Why chains: one thread runs a whole chain, its transforms into its own
 * buffer and its GEMMs into its own dU, so nothing it writes is read by another thread until the
 * end; when the two vCPUs of this kind of VM sit on different last-level caches, the old split
 * (each group's transforms, then its GEMMs, over all threads) moved every transformed tile
 * between them and took twice as long (28x28x64 at batch 64, 2 threads: 25.5 ms against 13.0 ms
 * on shared caches). */
#define WINO_DW_CHAINS 8

static size_t wino_dw_chains(size_t B, size_t SUB)
{
    const size_t ng = (B + SUB - 1) / SUB;
    return ng < WINO_DW_CHAINS ? ng : WINO_DW_CHAINS;
}

/* dU (n floats) += each of the chains 1..nch-1 that follow it, n apart, in chain order */
static void wino_dw_chain_sum(float *dU, size_t nch, size_t n)
{
    const size_t blk = 4096, nb = (n + blk - 1) / blk;
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < nb; k++) {
        float *d = dU + k * blk;
        const size_t m = n - k * blk < blk ? n - k * blk : blk;
        for (size_t c = 1; c < nch; c++) {
            const float *x = d + c * n;
            for (size_t i = 0; i < m; i++) d[i] += x[i];
        }
    }
}

/* one group of the weight gradient (samples b0..b0+g-1 of inp and dout) into dU: the transforms
 * into buf, then the GEMMs, dU = (beta ? dU : 0) + Mg V^T per e; `inner` splits the transforms
 * (over sample and block of channels) and the GEMMs (over e) among the threads, else the calling
 * thread does it all. The same GEMM calls either way, so the same bits. */
static void wino_dw_group(float *dU, float *buf, const float *dout, const float *inp,
                          const Conv2dShape *s, size_t b0, size_t g, float beta, int inner)
{
    const int f4 = wino4_use(s->H, s->W);
    const size_t NE = f4 ? 36 : 16, O = (size_t)s->OC, I = (size_t)s->IC;
    const size_t T = f4 ? wino4_tiles(s->H, s->W) : wino2_tiles(s->H, s->W);
    const size_t HW = (size_t)s->H * s->W, ld = g * T;
    const size_t nci = (I + WINO_DW_CH - 1) / WINO_DW_CH, nco = (O + WINO_DW_CH - 1) / WINO_DW_CH;
    float *V = buf, *Mg = buf + NE * I * ld; /* (NE, I, g*T), (NE, O, g*T) */
    WinoInFn tin;
    wino_pick(f4, &tin, NULL);
    WinoDoutFn tdout = f4 ? wino4_dout_c : wino_dout_c;
#if WINO_X86
    if (wino_has_avx512()) tdout = f4 ? wino4_dout_avx512 : wino_dout_avx512;
#endif
#pragma omp parallel for schedule(dynamic) if (inner)
    for (size_t task = 0; task < g * (nci + nco); task++) {
        const size_t j = task / (nci + nco), k = task % (nci + nco);
        if (k < nci) {
            const size_t c0 = k * WINO_DW_CH, nc = I - c0 < WINO_DW_CH ? I - c0 : WINO_DW_CH;
            tin(V + c0 * ld + j * T, inp + ((b0 + j) * I + c0) * HW, nc, s->H, s->W, ld, I * ld,
                NULL);
        } else {
            const size_t c0 = (k - nci) * WINO_DW_CH;
            const size_t nc = O - c0 < WINO_DW_CH ? O - c0 : WINO_DW_CH;
            tdout(Mg + c0 * ld + j * T, dout + ((b0 + j) * O + c0) * HW, nc, s->H, s->W, ld,
                  O * ld);
        }
    }
#pragma omp parallel for schedule(dynamic) if (inner)
    for (size_t e = 0; e < NE; e++)
        gemm(0, 1, O, I, ld, 1.0f, Mg + e * O * ld, ld, V + e * I * ld, ld, beta, dU + e * O * I,
             I);
}

/* weight gradient in the Winograd domain: dU[e] = sum over the batch of Mg[e] V[e]^T, a few
 * samples (wino_dw_samples) per GEMM with their tiles side by side along the sum, the groups
 * summed in chains (wino_dw_chains). With at least as many chains as threads, the chains are the
 * tasks; with fewer, the chains run one after another and each group splits among the threads. */
static void wino_conv_dw(float *dw, const float *dout, const float *inp, const Conv2dShape *s,
                         size_t B, float *ws)
{
    const int f4 = wino4_use(s->H, s->W);
    const size_t NE = f4 ? 36 : 16, O = (size_t)s->OC, I = (size_t)s->IC;
    const size_t T = f4 ? wino4_tiles(s->H, s->W) : wino2_tiles(s->H, s->W);
    const size_t SUB = wino_dw_samples(T), ng = (B + SUB - 1) / SUB;
    const size_t nch = wino_dw_chains(B, SUB), nU = NE * O * I, gbuf = NE * SUB * T * (I + O);
    const int inner = (size_t)omp_get_max_threads() > nch;
    float *dU = ws, *bufs = ws + nch * nU;
    if (!nch) return; /* no samples: dw unchanged */
#pragma omp parallel for schedule(dynamic) if (!inner)
    for (size_t c = 0; c < nch; c++) {
        float *buf = bufs + (inner ? 0 : (size_t)omp_get_thread_num() * gbuf);
        for (size_t k = c; k < ng; k += nch) {
            const size_t b0 = k * SUB, g = B - b0 < SUB ? B - b0 : SUB;
            wino_dw_group(dU + c * nU, buf, dout, inp, s, b0, g, k == c ? 0.0f : 1.0f, inner);
        }
    }
    wino_dw_chain_sum(dU, nch, nU);
    (f4 ? wino4_dweights : wino_dweights)(dw, dU, O, I);
}

/* The Winograd forward */
static void wino_forward(float *out, const float *inp, const Conv2dGnSilu *gn, const float *w,
                         const float *bias, const Conv2dShape *s, size_t B, float *ws)
{
    wino_conv(out, inp, gn, w, 0, bias, (size_t)s->OC, (size_t)s->IC, s->H, s->W, B, 0, ws);
}

void conv2d_forward(float *out, const float *inp, const float *w, const float *bias,
                    const Conv2dShape *s, size_t B, float *ws)
{
    gemm_single_thread();
    const size_t KK = (size_t)s->IC * s->K * s->K, OHW = (size_t)s->OH * s->OW;
    const size_t HW = (size_t)s->H * s->W;
    const int pw = is_pointwise(s);
    if (use_winograd(s)) {
        wino_forward(out, inp, NULL, w, bias, s, B, ws);
        return;
    }
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

int conv2d_fuses_gn_silu(const Conv2dShape *s) { return use_winograd(s); }

void conv2d_forward_gn_silu(float *out, const float *x, const Conv2dGnSilu *gn, const float *w,
                            const float *bias, const Conv2dShape *s, size_t B, float *ws)
{
    ASSERT(use_winograd(s) && gn->G > 0 && s->IC % gn->G == 0);
    gemm_single_thread();
    wino_forward(out, x, gn, w, bias, s, B, ws);
}

void conv2d_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                     const float *w, const Conv2dShape *s, size_t B, float *ws)
{
    gemm_single_thread();
    const size_t KK = (size_t)s->IC * s->K * s->K, OHW = (size_t)s->OH * s->OW;
    const size_t HW = (size_t)s->H * s->W, OC = (size_t)s->OC;
    const int pw = is_pointwise(s);
    /* The weight gradient's rows in chunks, one per thread: each chunk's product packs the
     * transposed input again (a 1x1 layer of 128 outputs packed it 4 times per sample in chunks
     * of 32, 1% of a 1-thread training step). With the own engine every element is the same fma
     * chain whatever M (model/sgemm.h), so the chunks follow the thread count; other engines keep
     * fixed chunks of DW_ROW_CHUNK rows, which keep their bits independent of it. */
    size_t rows = DW_ROW_CHUNK;
    if (gemm_exact()) {
        const size_t nt = (size_t)omp_get_max_threads();
        rows = ((OC + nt - 1) / nt + 7) / 8 * 8;
    }
    const size_t nchunk = (OC + rows - 1) / rows;

    /* bias gradient: per output channel, samples in order, in double */
    if (dbias) {
#pragma omp parallel for schedule(static)
        for (size_t oc = 0; oc < OC; oc++) {
            double acc = 0.0;
            for (size_t b = 0; b < B; b++) acc += sum8_f64(dout + (b * OC + oc) * OHW, OHW, 0.0, 0);
            dbias[oc] += (float)acc;
        }
    }

    /* weight gradient: dw (OC, KK) += sum_b dout_b (OC, OHW) col_b^T */
    if (dw && use_winograd(s)) {
        wino_conv_dw(dw, dout, inp, s, B, ws);
    } else if (dw && pw) {
        /* col_b is the input itself: accumulate sample by sample, rows split in chunks */
#pragma omp parallel for schedule(static)
        for (size_t ch = 0; ch < nchunk; ch++) {
            size_t r0 = ch * rows, nr = OC - r0 < rows ? OC - r0 : rows;
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
                size_t r0 = ch * rows, nr = OC - r0 < rows ? OC - r0 : rows;
                gemm(0, 1, nr, KK, ld, 1.0f, dt + r0 * ld, ld, col, ld, 1.0f, dw + r0 * KK, KK);
            }
        }
    }

    /* input gradient of a 3x3 'same' convolution: the convolution of dout with the flipped,
     * transposed kernel */
    if (dinp && use_winograd(s)) {
        wino_conv(dinp, dout, NULL, w, 1, NULL, (size_t)s->IC, (size_t)s->OC, s->H, s->W, B, 1,
                  ws);
        return;
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
