/* model/gemm.h - the one place model/ calls a GEMM library.
 *
 * gemm() has the BLAS argument order (row-major): C = alpha * op(A) op(B) + beta * C with
 * op(A) M x K, op(B) K x N, C M x N. It always runs on the calling thread, and the layers
 * parallelise over independent work themselves with OpenMP, splitting it in a way that does
 * not depend on the thread count. That is what makes every result bitwise identical for any
 * number of threads.
 *
 * Engines: OpenBLAS's cblas_sgemm (the default) and oneDNN's dnnl_sgemm (it dispatches at run
 * time to the best kernel of the CPU, AVX-512 where there is one, whatever OPENBLAS_CORETYPE
 * says). Either gives results that depend only on the call's arguments (one thread, fixed
 * blocking), never on the batch a sample is in. DFM_GEMM=onednn in the environment, or
 * gemm_set_engine, selects oneDNN. It is not the default: about one signalled two-rank training
 * run in twenty ended in a glibc heap-corruption abort inside dnnl_sgemm's free (never with
 * OpenBLAS in 60 runs of the same scenario), and on this project's 2-core test machine it was
 * not measurably faster. The engine must not change between a
 * forward and its backward, nor between runs whose bits are compared.
 */
#ifndef DFM_MODEL_GEMM_H
#define DFM_MODEL_GEMM_H

#include <stddef.h>

typedef enum { GEMM_ONEDNN = 0, GEMM_OPENBLAS = 1 } GemmEngine;

/* Pin the libraries to the calling thread (idempotent, cheap). Every model entry point calls
 * it. */
void gemm_single_thread(void);

void gemm(int transa, int transb, size_t M, size_t N, size_t K, float alpha, const float *A,
          size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc);

/* For benchmarks only (the bits depend on the thread count): C (M x N) = A (M x K) B (K x N),
 * row major, on `threads` threads of engine e. */
void gemm_bench_mt(GemmEngine e, int threads, size_t M, size_t N, size_t K, const float *A,
                   const float *B, float *C);

/* The engine gemm() uses (first call: DFM_GEMM or the default), and a switch for benchmarks. */
GemmEngine gemm_engine(void);
void gemm_set_engine(GemmEngine e);
/* "oneDNN 2.6.3 (avx512_core_bf16)" or "OpenBLAS (Haswell ...)", for reports */
const char *gemm_engine_name(GemmEngine e);

#endif
