/* model/sgemm.c - dfm's own SGEMM (model/sgemm.h): BLIS-style blocking around two
 * register-blocked microkernels.
 *
 * Loops (row major, C = op(A) op(B)): columns in blocks of NC, K in blocks of KC; a KC x NC block
 * of op(B) is packed into column panels of NR (the last one NR/2 wide when that covers it, zero
 * padded) that stay in L2; then for each MR-row strip of op(A), packed k-major (zero padded to
 * MR rows) so that it stays in L1, the microkernel runs over all column panels. The microkernel
 * keeps an MR x NR tile of C in registers: per k it loads NR values of B, broadcasts MR values
 * of A and issues MR*NR/VEC fused multiply-adds. Its first K block starts from zero, the others
 * from the running sums the previous block stored in C, and only the last applies alpha and
 * beta: every element is the one sequential fma chain of model/sgemm.h. When beta != 0 and K
 * needs more than one block, C's old values would be overwritten by running sums, so the
 * product goes to a temporary first.
 *
 * The kernels carry GCC target attributes, so the file builds for any x86-64 and the CPU is
 * asked at run time (__builtin_cpu_supports, which also checks that the OS saves the wide
 * registers) which one may run.
 */
#include "model/sgemm.h"
#include "core/mem.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SGEMM_X86 1
#else
#define SGEMM_X86 0
#endif

#ifndef KC
#define KC 256
#endif
#define NC 512 /* a multiple of every NR */
#define MR512 6 /* the kernels below are instantiated for 1..6 rows and 1..4 vectors */
#define NR512 64
#define NV512 (NR512 / 16)
#define MR256 6
#define NR256 16

/* ---- the reference ------------------------------------------------------------------------ */

static inline float finish(float s, float alpha, float beta, float c)
{
    float r = alpha == 1.0f ? s : alpha * s;
    if (beta == 0.0f) return r;
    if (beta == 1.0f) return c + r;
    return beta * c + r;
}

void sgemm_ref(int transa, int transb, size_t M, size_t N, size_t K, float alpha, const float *A,
               size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc)
{
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) {
            float s = 0.0f;
            for (size_t k = 0; k < K; k++) {
                float a = transa ? A[k * lda + i] : A[i * lda + k];
                float b = transb ? B[j * ldb + k] : B[k * ldb + j];
                s = fmaf(a, b, s);
            }
            float *c = C + i * ldc + j;
            *c = finish(s, alpha, beta, beta == 0.0f ? 0.0f : *c);
        }
}

/* ---- packing ------------------------------------------------------------------------------- */

#if SGEMM_X86
/* dst[r * ldd + c] = src[c * lds + r] for r < 8, c < 8; rows c >= nrows of src read as zero */
__attribute__((target("avx2"))) static inline void tr8x8(const float *src, size_t lds, int nrows,
                                                         float *dst, size_t ldd)
{
    __m256 r[8];
    for (int c = 0; c < 8; c++)
        r[c] = c < nrows ? _mm256_loadu_ps(src + (size_t)c * lds) : _mm256_setzero_ps();
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst + 0 * ldd, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + 1 * ldd, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#endif

static inline size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

/* width of the column panel starting `rem` columns before the end of the block */
static inline size_t panel_width(size_t rem, size_t NR, size_t VEC)
{
    return rem >= NR ? NR : (rem + VEC - 1) / VEC * VEC;
}

/* The KC x NC block of op(B) at (k0, j0) as column panels: the panel at column jr holds
 * bp[jr * kc + k * w + j] = op(B)[k0 + k][j0 + jr + j], zero for columns past nc. */
#if SGEMM_X86
__attribute__((target("avx2"))) /* only the AVX2 and AVX-512 kernels pack */
#endif
static void pack_b(float *restrict bp, const float *B, size_t ldb, int tb, size_t k0, size_t kc,
                   size_t j0, size_t nc, size_t NR, size_t VEC, int vec)
{
    for (size_t jr = 0; jr < nc; ) {
        size_t w = panel_width(nc - jr, NR, VEC), n = nc - jr < w ? nc - jr : w;
        float *p = bp + jr * kc;
        if (!tb) {
            for (size_t k = 0; k < kc; k++) {
                const float *src = B + (k0 + k) * ldb + j0 + jr;
                float *d = p + k * w;
                if (n == 64) { /* fixed sizes: inline vector moves, not a call or rep movs */
                    memcpy(d, src, 64 * sizeof(float));
                } else if (n == 32) {
                    memcpy(d, src, 32 * sizeof(float));
                } else if (n == 16) {
                    memcpy(d, src, 16 * sizeof(float));
                } else {
                    for (size_t j = 0; j < n; j++) d[j] = src[j];
                }
                for (size_t j = n; j < w; j++) d[j] = 0.0f;
            }
        } else {
            size_t jv = 0;
#if SGEMM_X86
            if (vec) { /* 8x8 blocks of (j, k); the k remainder of these columns below */
                for (; jv + 8 <= n; jv += 8) {
                    const float *src = B + (j0 + jr + jv) * ldb + k0;
                    size_t k = 0;
                    for (; k + 8 <= kc; k += 8) tr8x8(src + k, ldb, 8, p + k * w + jv, w);
                    for (size_t j = 0; j < 8; j++)
                        for (size_t kk = k; kk < kc; kk++) p[kk * w + jv + j] = src[j * ldb + kk];
                }
            }
#endif
            for (size_t j = jv; j < n; j++) {
                const float *src = B + (j0 + jr + j) * ldb + k0;
                for (size_t k = 0; k < kc; k++) p[k * w + j] = src[k];
            }
            for (size_t j = n; j < w; j++)
                for (size_t k = 0; k < kc; k++) p[k * w + j] = 0.0f;
        }
        jr += w;
    }
}

/* ---- microkernels -------------------------------------------------------------------------- */
/* A tile of MR rows and nr columns of C, over kc values of k:
 *   op(A)[i][k] = a[i][k * sk], a[i] = a0 + i * sa for the mr (1..MR) rows the instance computes
 *                 (sa = 1 when unit),
 *   op(B)[k][j] = b[k * sb + j], read with masks past column nr,
 * c: the tile's top-left element. first: start from zero (else from the running sums in c);
 * last: apply alpha and beta (else store the running sums). */

#if SGEMM_X86
#define AVX512 __attribute__((target("avx512f"), always_inline)) static inline
#define AVX2 __attribute__((target("avx2,fma"), always_inline)) static inline

AVX512 __mmask16 mask16(int n) { return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

AVX512 void ukr512(const int nv, const int mr, const int unit, size_t kc, const float *a0,
                   size_t sa, size_t sk, const float *b, size_t sb, float *c, size_t ldc, int nr,
                   int first, int last, float alpha, float beta)
{
    __m512 acc[MR512][NV512];
    __mmask16 m[NV512];
    const float *a[MR512];
#pragma GCC unroll 16
    for (int i = 0; i < MR512; i++) a[i] = a0 + (size_t)(i < mr ? i : 0) * (unit ? 1 : sa);
#pragma GCC unroll 4
    for (int v = 0; v < NV512; v++) m[v] = mask16(nr - 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < MR512; i++)
#pragma GCC unroll 4
        for (int v = 0; v < NV512; v++) {
            acc[i][v] = _mm512_setzero_ps();
            if (!first && i < mr && v < nv)
                acc[i][v] = _mm512_maskz_loadu_ps(m[v], c + (size_t)i * ldc + 16 * v);
        }
    const __mmask16 ml = m[nv - 1]; /* only the last vector of a panel may be partial */
    for (size_t k = 0, ka = 0; k < kc; k++, ka += sk) {
        __m512 bv[NV512];
#pragma GCC unroll 4
        for (int v = 0; v < NV512; v++)
            bv[v] = v < nv - 1 ? _mm512_loadu_ps(b + 16 * v)
                    : v == nv - 1 ? _mm512_maskz_loadu_ps(ml, b + 16 * v) : _mm512_setzero_ps();
#pragma GCC unroll 16
        for (int i = 0; i < MR512; i++) {
            if (i >= mr) break;
            const __m512 av = _mm512_set1_ps(a[i][ka]);
#pragma GCC unroll 4
            for (int v = 0; v < NV512; v++)
                if (v < nv) acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
        }
        b += sb;
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
    for (int i = 0; i < MR512; i++) {
        if (i >= mr) break;
#pragma GCC unroll 4
        for (int v = 0; v < NV512; v++) {
            if (v >= nv) break;
            float *cp = c + (size_t)i * ldc + 16 * v;
            __m512 r = acc[i][v];
            if (last) {
                if (alpha != 1.0f) r = _mm512_mul_ps(va, r);
                if (beta == 1.0f)
                    r = _mm512_add_ps(_mm512_maskz_loadu_ps(m[v], cp), r);
                else if (beta != 0.0f)
                    r = _mm512_add_ps(_mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m[v], cp)), r);
            }
            _mm512_mask_storeu_ps(cp, m[v], r);
        }
    }
}

/* One instance per (panel vectors, rows), so that a strip of fewer than MR512 rows (49 = 8 * 6 +
 * 1) costs only its own rows, and per unit or general row stride of op(A): with unit stride (op(A)
 * transposed) the row pointers are one register plus constants, where otherwise the compiler ran
 * out of registers for them (1-vector panels ran at 70% of the 16-wide FMA rate, 80% after). */
#define UKR512(NV, MRc)                                                                            \
    ukr512(NV, MRc, unit, kc, a0, sa, sk, b, sb, c, ldc, nr, first, last, alpha, beta)
/* the instance for the strip's row count: UKR(NV, rows), rows 1 .. 5 or MRMAX (both kernels) */
#define UKR_ROWS(UKR, NV, MRMAX)                                                                   \
    switch (mr) {                                                                                  \
    case 1: UKR(NV, 1); break;                                                                     \
    case 2: UKR(NV, 2); break;                                                                     \
    case 3: UKR(NV, 3); break;                                                                     \
    case 4: UKR(NV, 4); break;                                                                     \
    case 5: UKR(NV, 5); break;                                                                     \
    default: UKR(NV, MRMAX); break;                                                                \
    }
#define UKR512_ROWS(NV) UKR_ROWS(UKR512, NV, MR512)
__attribute__((target("avx512f"))) static void
kernel512(int nv, size_t kc, const float *a0, size_t sa, size_t sk, int mr, const float *b,
          size_t sb, float *c, size_t ldc, int nr, int first, int last, float alpha, float beta)
{
#define UKR512_ALL                                                                                 \
    switch (nv) {                                                                                  \
    case 4: UKR512_ROWS(4); break;                                                                 \
    case 3: UKR512_ROWS(3); break;                                                                 \
    case 2: UKR512_ROWS(2); break;                                                                 \
    default: UKR512_ROWS(1); break;                                                                \
    }
    if (sa == 1) {
        const int unit = 1;
        UKR512_ALL
    } else {
        const int unit = 0;
        UKR512_ALL
    }
}

AVX2 __m256i mask8(int n)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

AVX2 void ukr256(const int nv, const int mr, const int unit, size_t kc, const float *a0, size_t sa,
                 size_t sk, const float *b, size_t sb, float *c, size_t ldc, int nr, int first,
                 int last, float alpha, float beta)
{
    __m256 acc[MR256][2];
    const __m256i m0 = mask8(nr), m1 = mask8(nr - 8);
    const int full0 = nr >= 8, full1 = nr >= 16;
    const float *a[MR256];
#pragma GCC unroll 8
    for (int i = 0; i < MR256; i++) a[i] = a0 + (size_t)(i < mr ? i : 0) * (unit ? 1 : sa);
#pragma GCC unroll 8
    for (int i = 0; i < MR256; i++) {
        acc[i][0] = _mm256_setzero_ps();
        acc[i][1] = _mm256_setzero_ps();
        if (!first && i < mr) {
            acc[i][0] = _mm256_maskload_ps(c + (size_t)i * ldc, m0);
            if (nv == 2) acc[i][1] = _mm256_maskload_ps(c + (size_t)i * ldc + 8, m1);
        }
    }
    for (size_t k = 0, ka = 0; k < kc; k++, ka += sk) {
        const __m256 b0 = full0 ? _mm256_loadu_ps(b) : _mm256_maskload_ps(b, m0);
        const __m256 b1 = nv == 2 ? (full1 ? _mm256_loadu_ps(b + 8) : _mm256_maskload_ps(b + 8, m1)) : b0;
#pragma GCC unroll 8
        for (int i = 0; i < MR256; i++) {
            if (i >= mr) break;
            const __m256 av = _mm256_broadcast_ss(a[i] + ka);
            acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
            if (nv == 2) acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
        }
        b += sb;
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 8
    for (int i = 0; i < MR256; i++) {
        if (i >= mr) break;
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) {
            const __m256i m = v ? m1 : m0;
            float *cp = c + (size_t)i * ldc + 8 * v;
            __m256 r = acc[i][v];
            if (last) {
                if (alpha != 1.0f) r = _mm256_mul_ps(va, r);
                if (beta == 1.0f)
                    r = _mm256_add_ps(_mm256_maskload_ps(cp, m), r);
                else if (beta != 0.0f)
                    r = _mm256_add_ps(_mm256_mul_ps(vb, _mm256_maskload_ps(cp, m)), r);
            }
            _mm256_maskstore_ps(cp, m, r);
        }
    }
}

#define UKR256(NV, MRc)                                                                            \
    ukr256(NV, MRc, unit, kc, a0, sa, sk, b, sb, c, ldc, nr, first, last, alpha, beta)
#define UKR256_ROWS(NV) UKR_ROWS(UKR256, NV, MR256)
__attribute__((target("avx2,fma"))) static void
kernel256(int nv, size_t kc, const float *a0, size_t sa, size_t sk, int mr, const float *b,
          size_t sb, float *c, size_t ldc, int nr, int first, int last, float alpha, float beta)
{
    if (sa == 1) {
        const int unit = 1;
        if (nv == 2) UKR256_ROWS(2) else UKR256_ROWS(1)
    } else {
        const int unit = 0;
        if (nv == 2) UKR256_ROWS(2) else UKR256_ROWS(1)
    }
}
#endif

/* C[i][j] = finish(T[j][i]) for the swapped product (T is N x M): in 8x8 blocks, so that both
 * T and C are read and written along their rows (element by element, the strided reads of T
 * cost about 5% of a training step). The same finish of the same sums: the same bits. */
#if SGEMM_X86
__attribute__((target("avx2"))) static void finish_transposed(size_t M, size_t N, const float *T,
                                                              float alpha, float beta, float *C,
                                                              size_t ldc)
{
    const int plain = alpha == 1.0f && beta == 0.0f;
    float tile[64];
    size_t i = 0;
    for (; i + 8 <= M; i += 8) {
        size_t j = 0;
        for (; j + 8 <= N; j += 8) {
            if (plain) {
                tr8x8(T + j * M + i, M, 8, C + i * ldc + j, ldc);
                continue;
            }
            tr8x8(T + j * M + i, M, 8, tile, 8);
            for (size_t r = 0; r < 8; r++)
                for (size_t c = 0; c < 8; c++) {
                    float *cp = C + (i + r) * ldc + j + c;
                    *cp = finish(tile[r * 8 + c], alpha, beta, beta == 0.0f ? 0.0f : *cp);
                }
        }
        for (size_t r = i; r < i + 8; r++)
            for (size_t jj = j; jj < N; jj++)
                C[r * ldc + jj] = finish(T[jj * M + r], alpha, beta, beta == 0.0f ? 0.0f : C[r * ldc + jj]);
    }
    for (; i < M; i++)
        for (size_t j = 0; j < N; j++)
            C[i * ldc + j] = finish(T[j * M + i], alpha, beta, beta == 0.0f ? 0.0f : C[i * ldc + j]);
}
#else
static void finish_transposed(size_t M, size_t N, const float *T, float alpha, float beta,
                              float *C, size_t ldc)
{
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++)
            C[i * ldc + j] = finish(T[j * M + i], alpha, beta, beta == 0.0f ? 0.0f : C[i * ldc + j]);
}
#endif

/* ---- the driver ---------------------------------------------------------------------------- */

typedef void (*Microkernel)(int nv, size_t kc, const float *a0, size_t sa, size_t sk, int mr,
                            const float *b, size_t sb, float *c, size_t ldc, int nr, int first,
                            int last, float alpha, float beta);

/* Per-thread packing buffer, allocated on a thread's first call and freed when it exits. */
#define WS_FLOATS ((size_t)KC * NC)
static pthread_key_t ws_key;
static pthread_once_t ws_once = PTHREAD_ONCE_INIT;
static _Thread_local float *ws_tls; /* also keeps the buffer reachable for leak checkers */

static void ws_free(void *p) { xfree_aligned(p); }
static void ws_key_make(void) { ASSERT(pthread_key_create(&ws_key, ws_free) == 0); }

static float *workspace(void)
{
    if (!ws_tls) {
        ASSERT(pthread_once(&ws_once, ws_key_make) == 0);
        ws_tls = xalloc_aligned(WS_FLOATS * sizeof(float));
        ASSERT(pthread_setspecific(ws_key, ws_tls) == 0);
    }
    return ws_tls;
}

/* op(A) is read in place (a row strip of it stays in L1 while the kernel sweeps the column
 * panels); op(B) too when it is not transposed and its rows are close (B_DIRECT_LD floats: the
 * per-sample GEMMs of the layers, whose operands are in cache), else it is packed. */
#define B_DIRECT_LD 4096
#define SPLIT_STACK 4096 /* floats: the columns computed transposed fit on the stack up to this */
static void drive(Microkernel ukr, size_t MR, size_t NR, size_t VEC, int ta, int tb, size_t M,
                  size_t N, size_t K, float alpha, const float *A, size_t lda, const float *B,
                  size_t ldb, float beta, float *C, size_t ldc)
{
    const int direct = !tb && ldb <= B_DIRECT_LD;
    float *bp = direct ? NULL : workspace();
    const size_t sa = ta ? 1 : lda, sk = ta ? lda : 1;
    for (size_t jc = 0; jc < N; jc += NC) {
        size_t nc = N - jc < NC ? N - jc : NC;
        for (size_t pc = 0; pc < K; pc += KC) {
            size_t kc = K - pc < KC ? K - pc : KC;
            int first = pc == 0, last = pc + kc == K;
            if (!direct) pack_b(bp, B, ldb, tb, pc, kc, jc, nc, NR, VEC, 1);
            for (size_t ir = 0; ir < M; ir += MR) {
                size_t mr = M - ir < MR ? M - ir : MR;
                const float *a0 = A + ir * sa + pc * sk;
                for (size_t jr = 0; jr < nc; ) {
                    size_t w = panel_width(nc - jr, NR, VEC), nr = nc - jr < w ? nc - jr : w;
                    const float *b = direct ? B + pc * ldb + jc + jr : bp + jr * kc;
                    ukr((int)(w / VEC), kc, a0, sa, sk, (int)mr, b, direct ? ldb : w,
                        C + ir * ldc + jc + jr, ldc, (int)nr, first, last, alpha, beta);
                    jr += w;
                }
            }
        }
    }
}

SgemmKernel sgemm_kernel_best(void)
{
#if SGEMM_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return SGEMM_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SGEMM_AVX2;
#endif
    return SGEMM_REF;
}

const char *sgemm_kernel_name(SgemmKernel k)
{
    switch (k) {
    case SGEMM_AVX512: return "avx512 (6x64 microkernel)";
    case SGEMM_AVX2: return "avx2+fma (6x16 microkernel)";
    default: return "reference (plain C)";
    }
}

void sgemm_own(SgemmKernel k, int transa, int transb, size_t M, size_t N, size_t K, float alpha,
               const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
               size_t ldc)
{
    if (M == 0 || N == 0) return;
    Microkernel ukr = NULL;
    size_t MR = 0, NR = 0, VEC = 0;
#if SGEMM_X86
    if (k == SGEMM_AVX512) ukr = kernel512, MR = MR512, NR = NR512, VEC = 16;
    if (k == SGEMM_AVX2) ukr = kernel256, MR = MR256, NR = NR256, VEC = 8;
#endif
    if (!ukr || K == 0) {
        sgemm_ref(transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* A last partial vector of columns (49 = 3 * 16 + 1) wastes most of its lanes: when op(A)^T
     * can be read in place (transa), those r columns are computed transposed, T = (op(B) of them)^T
     * op(A)^T, whose vectors run along M, and copied in; the others directly. Few columns under
     * many rows otherwise: the whole C^T = op(B)^T op(A)^T into T, then transposed. Either way
     * fma(b, a, s) == fma(a, b, s) in the same order: the same bits. */
    const size_t r = N % VEC, rows_m = round_up(M, VEC) / VEC;
    const size_t plain = M * (round_up(N, VEC) / VEC), split = M * (N / VEC) + r * rows_m;
    if (transa && lda <= B_DIRECT_LD && r && N > VEC && split * 16 < plain * 15 &&
        (beta == 0.0f || K <= KC)) {
        const size_t n0 = N - r;
        float tr[SPLIT_STACK];
        float *T = r * M <= SPLIT_STACK ? tr : xmalloc(r * M * sizeof(float));
        drive(ukr, MR, NR, VEC, transa, transb, M, n0, K, alpha, A, lda, B, ldb, beta, C, ldc);
        drive(ukr, MR, NR, VEC, !transb, 0, r, M, K, 1.0f, transb ? B + n0 * ldb : B + n0, ldb,
              A, lda, 0.0f, T, M);
        finish_transposed(M, r, T, alpha, beta, C + n0, ldc);
        if (T != tr) free(T);
        return;
    }
    const size_t cells = round_up(N, VEC) * round_up(M, MR);
    const size_t cells_t = round_up(M, VEC) * round_up(N, MR);
    const int swap = cells_t * 8 < cells * 7;
    if (!swap && (beta == 0.0f || K <= KC)) {
        drive(ukr, MR, NR, VEC, transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* the sums go to T (transposed when swapping), then C = finish(T): when K needs several
     * blocks, C's old values must survive the running sums */
    float *T = xmalloc(M * N * sizeof(float));
    if (swap) {
        drive(ukr, MR, NR, VEC, !transb, !transa, N, M, K, 1.0f, B, ldb, A, lda, 0.0f, T, M);
        finish_transposed(M, N, T, alpha, beta, C, ldc);
    } else {
        drive(ukr, MR, NR, VEC, transa, transb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, T, N);
        for (size_t i = 0; i < M; i++)
            for (size_t j = 0; j < N; j++)
                C[i * ldc + j] = finish(T[i * N + j], alpha, beta, beta == 0.0f ? 0.0f : C[i * ldc + j]);
    }
    free(T);
}
