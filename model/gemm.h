/* model/gemm.h - the one place model/ calls a GEMM library.
 *
 * gemm() has the BLAS argument order (row-major): C = alpha * op(A) op(B) + beta * C with
 * op(A) M x K, op(B) K x N, C M x N. It always runs on the calling thread, and the layers
 * parallelise over independent work themselves with OpenMP, splitting it in a way that does
 * not depend on the thread count. That is what makes every result bitwise identical for any
 * number of threads.
 *
 * Engines: dfm's own kernels (model/sgemm.h: AVX-512 or AVX2+FMA microkernels chosen at run
 * time from cpuid; the default wherever one of them runs), OpenBLAS's cblas_sgemm (the default
 * on a CPU without FMA) and oneDNN's dnnl_sgemm. DFM_GEMM=own|openblas|onednn in the environment, or
 * gemm_set_engine, selects one. Each gives results that depend only on the call's arguments
 * (one thread, fixed blocking). The own engine promises more (gemm_exact): every element is one
 * fma chain over k in order, so its bits depend only on its row of op(A), its column of op(B),
 * K, alpha, beta and its old value -- not on M, N, its position or the CPU -- and callers may
 * batch independent products (samples) into one call without changing a bit. oneDNN stays
 * opt-in: about one signalled two-rank training run in twenty ended in a glibc heap-corruption
 * abort inside dnnl_sgemm's free (never with OpenBLAS in 60 runs of the same scenario). The
 * engine must not change between a forward and its backward, nor between runs whose bits are
 * compared.
 */
#ifndef DFM_MODEL_GEMM_H
#define DFM_MODEL_GEMM_H

#include <stddef.h>

typedef enum { GEMM_ONEDNN = 0, GEMM_OPENBLAS = 1, GEMM_OWN = 2 } GemmEngine;

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
/* 1 when the engine is the own one (see above): a product's bits do not depend on the other
 * rows or columns computed in the same call. */
int gemm_exact(void);
/* "dfm avx512 (...)", "oneDNN 2.6.3 (avx512_core_bf16)" or "OpenBLAS (Haswell ...)", for
 * reports */
const char *gemm_engine_name(GemmEngine e);

#endif
