/* model/sgemm.h - dfm's own single-threaded SGEMM: packed panels, cache blocking and
 * register-blocked microkernels for AVX-512 and AVX2+FMA, chosen at run time from cpuid, with
 * a plain C reference beside them.
 *
 * sgemm_own() has the BLAS argument order (row major): C = alpha * op(A) op(B) + beta * C,
 * op(A) M x K, op(B) K x N, C M x N, transa/transb 0 or 1. The result of every element is
 * defined exactly, whatever the kernel, the blocking or the position of the element:
 *
 *     s = 0;  for k = 0 .. K-1:  s = fma(op(A)[i][k], op(B)[k][j], s)     (in this order)
 *     r = alpha * s
 *     C[i][j] = r                 if beta == 0 (C is not read)
 *               C[i][j] + r       if beta == 1
 *               beta * C[i][j] + r otherwise
 *
 * so the three kernels give the same bits (sgemm_ref is this formula written out), on any CPU,
 * and an element does not depend on M, N (the rows or columns of the batch around it) or on how
 * the call is cut into tiles. The K loop is split into cache blocks, but a block continues the
 * running sums the previous one stored, so the chain above is never broken. Calls from
 * different threads are independent (each thread packs into its own buffer).
 */
#ifndef DFM_MODEL_SGEMM_H
#define DFM_MODEL_SGEMM_H

#include <stddef.h>

typedef enum { SGEMM_REF = 0, SGEMM_AVX2 = 1, SGEMM_AVX512 = 2 } SgemmKernel;

/* The best kernel this CPU (and OS) runs: AVX-512F, else AVX2 with FMA, else the reference. */
SgemmKernel sgemm_kernel_best(void);
/* "avx512 (6x64 microkernel)", ... for reports */
const char *sgemm_kernel_name(SgemmKernel k);

void sgemm_own(SgemmKernel k, int transa, int transb, size_t M, size_t N, size_t K, float alpha,
               const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
               size_t ldc);

/* The formula above, element by element (slow; the tests' oracle and the last fallback). */
void sgemm_ref(int transa, int transb, size_t M, size_t N, size_t K, float alpha, const float *A,
               size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc);

#endif
