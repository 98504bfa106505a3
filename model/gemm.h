/* model/gemm.h - the one place model/ calls BLAS.
 *
 * gemm() has the BLAS argument order (row-major): C = alpha * op(A) op(B) + beta * C with
 * op(A) M x K, op(B) K x N, C M x N. It always runs on the calling thread: gemm_single_thread()
 * pins OpenBLAS to one thread, and the layers parallelise over independent work themselves with
 * OpenMP, splitting it in a way that does not depend on the thread count. That is what makes
 * every result bitwise identical for any number of threads.
 */
#ifndef DFM_MODEL_GEMM_H
#define DFM_MODEL_GEMM_H

#include <stddef.h>

/* Pin BLAS to the calling thread (idempotent, cheap). Every model entry point calls it. */
void gemm_single_thread(void);

void gemm(int transa, int transb, size_t M, size_t N, size_t K, float alpha, const float *A,
          size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc);

#endif
