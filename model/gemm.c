/* model/gemm.c - single-threaded sgemm through dfm's own kernels, OpenBLAS or oneDNN (model/gemm.h). */
#include "model/gemm.h"
#include "model/sgemm.h"
#include "core/log.h"
#include "core/mem.h"

#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int engine = -1;

static SgemmKernel own_kernel(void)
{
    static int k = -1;
    if (k < 0) k = (int)sgemm_kernel_best();
    return (SgemmKernel)k;
}

void gemm_single_thread(void)
{
    static int done;
    if (!done) {
        openblas_set_num_threads(1);
        (void)gemm_engine();
        (void)own_kernel();
        done = 1;
    }
}

/* The own kernels wherever they have a vector kernel: their bits do not depend on the CPU, and
 * they run AVX-512 where OpenBLAS is pinned to its AVX2 (Haswell) kernels. On a Zen 5 core,
 * whose 512-bit FMAs issue at full rate, that made the fmnist-small training step 1.3x faster
 * (tests/bench/bench_model). On a Zen 4 core, which splits them in two, OpenBLAS's own AVX-512
 * (Cooperlake) kernels were about 10% faster until the own ones handled the U-Net's narrow
 * products better (model/sgemm.c); since then the own are about 5% faster there too
 * (DFM_GEMM=openblas|own bench_model 64 1 2, 3 alternating pairs). Without FMA the reference
 * kernel would be slow: OpenBLAS then. */
static GemmEngine engine_default(void)
{
    return own_kernel() == SGEMM_REF ? GEMM_OPENBLAS : GEMM_OWN;
}

GemmEngine gemm_engine(void)
{
    if (engine < 0) {
        const char *e = getenv("DFM_GEMM");
        if (e && !strcmp(e, "onednn"))
            engine = GEMM_ONEDNN;
        else if (e && !strcmp(e, "openblas"))
            engine = GEMM_OPENBLAS;
        else if (e && !strcmp(e, "own"))
            engine = GEMM_OWN;
        else {
            engine = (int)engine_default();
            if (e && *e)
                log_warn("DFM_GEMM=%s is not an engine (own, openblas, onednn): using %s", e,
                         engine == GEMM_OWN ? "own" : "openblas");
        }
    }
    return (GemmEngine)engine;
}

void gemm_set_engine(GemmEngine e) { engine = (int)e; }

int gemm_exact(void) { return gemm_engine() == GEMM_OWN; }

static const char *isa_name(dnnl_cpu_isa_t isa)
{
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    default: return "isa?";
    }
}

const char *gemm_engine_name(GemmEngine e)
{
    static char buf[3][160];
    if (e == GEMM_OPENBLAS) {
        snprintf(buf[1], sizeof buf[1], "OpenBLAS (%s)", openblas_get_config());
        return buf[1];
    }
    if (e == GEMM_OWN) {
        snprintf(buf[2], sizeof buf[2], "dfm %s", sgemm_kernel_name(sgemm_kernel_best()));
        return buf[2];
    }
    const dnnl_version_t *v = dnnl_version();
    snprintf(buf[0], sizeof buf[0], "oneDNN %d.%d.%d (%s)", v->major, v->minor, v->patch,
             isa_name(dnnl_get_effective_cpu_isa()));
    return buf[0];
}

void gemm(int transa, int transb, size_t M, size_t N, size_t K, float alpha, const float *A,
          size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc)
{
    if (M == 0 || N == 0) return;
    GemmEngine e = gemm_engine();
    if (e == GEMM_OWN) {
        sgemm_own(own_kernel(), transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (e == GEMM_OPENBLAS) {
        cblas_sgemm(CblasRowMajor, transa ? CblasTrans : CblasNoTrans,
                    transb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, alpha, A,
                    (int)lda, B, (int)ldb, beta, C, (int)ldc);
        return;
    }
    /* oneDNN splits a GEMM over omp_get_max_threads() threads when it is not called from an
     * active parallel region, and a split over K would change the bits: outside one (or in a
     * team of one), ask for one thread for the duration of the call */
    int outside = !omp_in_parallel(), saved = 0;
    if (outside) {
        saved = omp_get_max_threads();
        omp_set_num_threads(1);
    }
    dnnl_status_t st = dnnl_sgemm(transa ? 'T' : 'N', transb ? 'T' : 'N', (dnnl_dim_t)M,
                                  (dnnl_dim_t)N, (dnnl_dim_t)K, alpha, A, (dnnl_dim_t)lda, B,
                                  (dnnl_dim_t)ldb, beta, C, (dnnl_dim_t)ldc);
    ASSERT(st == dnnl_success);
    if (outside) omp_set_num_threads(saved);
}

void gemm_bench_mt(GemmEngine e, int threads, size_t M, size_t N, size_t K, const float *A,
                   const float *B, float *C)
{
    if (e == GEMM_OWN && threads == 1) {
        sgemm_own(own_kernel(), 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
        return;
    }
    if (e == GEMM_OWN) { /* column blocks of 256 (a multiple of every NR) over the threads */
        const size_t nb = (N + 255) / 256;
#pragma omp parallel for num_threads(threads) schedule(static)
        for (size_t j = 0; j < nb; j++) {
            size_t n = N - j * 256 < 256 ? N - j * 256 : 256;
            sgemm_own(own_kernel(), 0, 0, M, n, K, 1.0f, A, K, B + j * 256, N, 0.0f,
                      C + j * 256, N);
        }
        return;
    }
    if (e == GEMM_OPENBLAS) {
        openblas_set_num_threads(threads);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, A,
                    (int)K, B, (int)N, 0.0f, C, (int)N);
        openblas_set_num_threads(1);
        return;
    }
    int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    dnnl_status_t st = dnnl_sgemm('N', 'N', (dnnl_dim_t)M, (dnnl_dim_t)N, (dnnl_dim_t)K, 1.0f, A,
                                  (dnnl_dim_t)K, B, (dnnl_dim_t)N, 0.0f, C, (dnnl_dim_t)N);
    ASSERT(st == dnnl_success);
    omp_set_num_threads(saved);
}
