/* model/linear.c - dense layer over sgemm with thread-count-independent splits. */
#include "model/linear.h"
#include "model/gemm.h"

#define DW_ROW_CHUNK 32
/* below this many multiply-adds a loop runs on the calling thread */
#define PAR_MIN_MACS 262144

void linear_forward(float *out, const float *inp, const float *w, const float *bias, size_t B,
                    size_t IN, size_t OUT)
{
    gemm_single_thread();
    /* one product per sample: a row's result never depends on its neighbours */
#pragma omp parallel for schedule(static) if (B * IN * OUT > PAR_MIN_MACS)
    for (size_t b = 0; b < B; b++) {
        float *o = out + b * OUT;
        gemm(0, 1, 1, OUT, IN, 1.0f, inp + b * IN, IN, w, IN, 0.0f, o, OUT);
        if (bias)
            for (size_t j = 0; j < OUT; j++) o[j] += bias[j];
    }
}

void linear_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                     const float *w, size_t B, size_t IN, size_t OUT)
{
    gemm_single_thread();
    if (dbias) {
#pragma omp parallel for schedule(static) if (B * IN * OUT > PAR_MIN_MACS)
        for (size_t j = 0; j < OUT; j++) {
            double s = 0.0;
            for (size_t b = 0; b < B; b++) s += (double)dout[b * OUT + j];
            dbias[j] += (float)s;
        }
    }
    if (dw) {
        /* dw (OUT, IN) += dout^T (OUT, B) inp (B, IN) */
        const size_t nchunk = (OUT + DW_ROW_CHUNK - 1) / DW_ROW_CHUNK;
#pragma omp parallel for schedule(static) if (B * IN * OUT > PAR_MIN_MACS)
        for (size_t ch = 0; ch < nchunk; ch++) {
            size_t r0 = ch * DW_ROW_CHUNK, nr = OUT - r0 < DW_ROW_CHUNK ? OUT - r0 : DW_ROW_CHUNK;
            gemm(1, 0, nr, IN, B, 1.0f, dout + r0, OUT, inp, IN, 1.0f, dw + r0 * IN, IN);
        }
    }
    if (dinp) {
#pragma omp parallel for schedule(static) if (B * IN * OUT > PAR_MIN_MACS)
        for (size_t b = 0; b < B; b++)
            gemm(0, 0, 1, IN, OUT, 1.0f, dout + b * OUT, OUT, w, IN, 1.0f, dinp + b * IN, IN);
    }
}
