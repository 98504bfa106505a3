/* tests/model/test_sgemm.c - dfm's own SGEMM kernels against their reference, bit for bit.
 *
 * sgemm_ref is the definition (model/sgemm.h: one fma chain per element, then alpha and beta);
 * it is itself checked against a double-precision product. Every kernel this CPU runs must give
 * exactly its bits for odd sizes, the transposes and the alpha/beta the layers use, K spanning
 * several cache blocks (with and without an old C to keep), N spanning several column blocks,
 * leading dimensions wider than the matrices, and must not write outside C's M x N window. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "model/gemm.h"
#include "model/sgemm.h"
#include "ref.h"

typedef struct {
    size_t M, N, K;
} Dims;

/* small odd shapes, M = 1 (the dense layers), K over several KC blocks, N over several NC
 * blocks, the widths of the U-Net's 7x7 level, few columns under many rows (computed
 * transposed), and a last partial vector of columns (49 = 3 * 16 + 1, 67 = 4 * 16 + 3: with
 * op(A) transposed those columns are computed apart, transposed; 1400 of them take the heap) */
static const Dims SHAPES[] = {{1, 1, 1},     {7, 5, 3},     {1, 300, 257}, {13, 67, 259},
                              {37, 600, 70}, {65, 49, 513}, {6, 64, 9},    {17, 33, 600},
                              {128, 49, 37}, {100, 9, 300}, {64, 49, 64},  {1400, 35, 20}};
static const float AB[][2] = {{1.0f, 0.0f}, {1.0f, 1.0f}, {0.37f, -0.5f}};

static int kernel_runs(SgemmKernel k) { return k <= sgemm_kernel_best(); }

static void run_case(SgemmKernel k, int ta, int tb, Dims d, float alpha, float beta, uint64_t seed)
{
    const size_t pad = 3;
    size_t lda = (ta ? d.M : d.K) + pad, ldb = (tb ? d.K : d.N) + pad, ldc = d.N + pad;
    size_t na = (ta ? d.K : d.M) * lda, nb = (tb ? d.N : d.K) * ldb, nc = d.M * ldc;
    float *A = malloc(na * sizeof(float)), *B = malloc(nb * sizeof(float));
    float *C = malloc(nc * sizeof(float)), *R = malloc(nc * sizeof(float));
    fill_uniform(A, na, 1.0f, seed);
    fill_uniform(B, nb, 1.0f, seed + 1);
    fill_uniform(C, nc, 1.0f, seed + 2);
    if (beta == 0.0f) /* C must not be read */
        for (size_t i = 0; i < d.M; i++)
            for (size_t j = 0; j < d.N; j++) C[i * ldc + j] = NAN;
    memcpy(R, C, nc * sizeof(float));
    sgemm_ref(ta, tb, d.M, d.N, d.K, alpha, A, lda, B, ldb, beta, R, ldc);
    sgemm_own(k, ta, tb, d.M, d.N, d.K, alpha, A, lda, B, ldb, beta, C, ldc);
    size_t bad = nc;
    for (size_t i = 0; i < nc && bad == nc; i++)
        if (memcmp(C + i, R + i, sizeof(float))) bad = i;
    cr_assert(bad == nc,
              "%s: op %d%d M %zu N %zu K %zu alpha %g beta %g: C[%zu][%zu] = %.9g, reference %.9g",
              sgemm_kernel_name(k), ta, tb, d.M, d.N, d.K, (double)alpha, (double)beta,
              bad / ldc, bad % ldc, (double)C[bad], (double)R[bad]);
    free(A);
    free(B);
    free(C);
    free(R);
}

static void check_kernel(SgemmKernel k)
{
    if (!kernel_runs(k)) {
        cr_log_info("%s: not supported by this CPU, skipped", sgemm_kernel_name(k));
        return;
    }
    uint64_t seed = 100;
    for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++)
        for (int t = 0; t < 4; t++)
            for (size_t ab = 0; ab < sizeof AB / sizeof AB[0]; ab++, seed += 3)
                run_case(k, t >> 1, t & 1, SHAPES[s], AB[ab][0], AB[ab][1], seed);
}

Test(sgemm, avx512_matches_reference_bitwise) { check_kernel(SGEMM_AVX512); }
Test(sgemm, avx2_matches_reference_bitwise) { check_kernel(SGEMM_AVX2); }

Test(sgemm, reference_is_a_product)
{
    const size_t M = 9, N = 11, K = 300;
    float *A = malloc(M * K * 4), *B = malloc(K * N * 4), *C = malloc(M * N * 4);
    fill_uniform(A, M * K, 1.0f, 7);
    fill_uniform(B, K * N, 1.0f, 8);
    for (size_t i = 0; i < M * N; i++) C[i] = (float)i;
    sgemm_ref(0, 1, M, N, K, 0.5f, A, K, B, K, 2.0f, C, N); /* B read as (N, K) */
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) {
            double s = 0.0;
            for (size_t k = 0; k < K; k++) s += (double)A[i * K + k] * (double)B[j * K + k];
            double want = 0.5 * s + 2.0 * (double)(i * N + j);
            cr_assert(fabs((double)C[i * N + j] - want) < 1e-4 * (1.0 + fabs(want)),
                      "C[%zu][%zu] = %g, want %g", i, j, (double)C[i * N + j], want);
        }
    free(A);
    free(B);
    free(C);
}

/* The promise the layers rely on to batch samples: a block of rows and columns computed alone
 * (different M, N, position in the tiles) has the bits it has inside the larger product. */
Test(sgemm, element_independent_of_the_rest_of_the_call)
{
    const size_t M = 23, N = 150, K = 300, i0 = 5, i1 = 18, j0 = 33, j1 = 101;
    float *A = malloc(M * K * 4), *B = malloc(K * N * 4);
    float *C = malloc(M * N * 4), *S = malloc(M * N * 4);
    fill_uniform(A, M * K, 1.0f, 9);
    fill_uniform(B, K * N, 1.0f, 10);
    for (int k = SGEMM_AVX2; k <= SGEMM_AVX512; k++) {
        if (!kernel_runs((SgemmKernel)k)) continue;
        sgemm_own((SgemmKernel)k, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
        sgemm_own((SgemmKernel)k, 0, 0, i1 - i0, j1 - j0, K, 1.0f, A + i0 * K, K, B + j0, N, 0.0f,
                  S, N);
        for (size_t i = i0; i < i1; i++)
            cr_assert(!memcmp(S + (i - i0) * N, C + i * N + j0, (j1 - j0) * sizeof(float)),
                      "%s: row %zu differs", sgemm_kernel_name((SgemmKernel)k), i);
    }
    free(A);
    free(B);
    free(C);
    free(S);
}

/* Without DFM_GEMM the layers use the own kernels wherever a vector kernel runs (their bits do
 * not depend on the CPU), OpenBLAS where only the slow reference would */
Test(sgemm, default_engine_is_own_where_a_vector_kernel_runs)
{
    unsetenv("DFM_GEMM");
    GemmEngine want = sgemm_kernel_best() == SGEMM_REF ? GEMM_OPENBLAS : GEMM_OWN;
    cr_assert_eq(gemm_engine(), want);
    cr_assert_eq(gemm_exact(), want == GEMM_OWN);
}

/* gemm() with the own engine is sgemm_own with the CPU's best kernel, and that engine says
 * it is exact */
Test(sgemm, engine_own_routes_to_the_kernels)
{
    gemm_set_engine(GEMM_OWN);
    cr_assert(gemm_exact());
    const size_t M = 10, N = 70, K = 40;
    float *A = malloc(M * K * 4), *B = malloc(K * N * 4), *C = malloc(M * N * 4),
          *R = malloc(M * N * 4);
    fill_uniform(A, M * K, 1.0f, 11);
    fill_uniform(B, K * N, 1.0f, 12);
    fill_uniform(C, M * N, 1.0f, 13);
    memcpy(R, C, M * N * 4);
    gemm(1, 0, M, N, K, 1.0f, A, M, B, N, 1.0f, C, N);
    sgemm_ref(1, 0, M, N, K, 1.0f, A, M, B, N, 1.0f, R, N);
    cr_assert(!memcmp(C, R, M * N * 4));
    gemm_set_engine(GEMM_OPENBLAS);
    cr_assert(!gemm_exact());
    free(A);
    free(B);
    free(C);
    free(R);
}
