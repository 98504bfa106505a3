/* tests/io/fuzz_weights.c - libFuzzer target for the weights reader.
 *
 * Every input is read with weights_read_stream as if it were a weights file. A file that is
 * accepted must satisfy what the reader promises (io/weights.h): tensors tile [0, n) in order,
 * each count is the product of its shape, the shapes are positive ints, and every float of
 * both buffers is readable (AddressSanitizer checks the reads). A rejected file must leave a
 * one-line ERR_FORMAT message and nothing allocated (LeakSanitizer checks the latter).
 * Seeds: tests/io/weights_seeds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "io/weights.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    FILE *f = fmemopen((void *)(uintptr_t)data, size, "rb");
    if (!f) abort();
    Weights w;
    err_clear();
    int rc = weights_read_stream(&w, f, size, "fuzz.bin");
    fclose(f);
    if (rc != ERR_OK) {
        if (rc != ERR_FORMAT) abort();
        if (strchr(err_message(), '\n') != NULL) abort();
        if (w.tensors || w.params || w.ema) abort();
        return 0;
    }
    size_t expect = 0;
    volatile float sink = 0.0f;
    for (size_t i = 0; i < w.n_tensors; i++) {
        const WeightsTensor *t = &w.tensors[i];
        if (t->offset != expect || t->ndim < 1 || t->ndim > 4) abort();
        size_t prod = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 1) abort();
            prod *= (size_t)t->shape[d];
        }
        if (prod != t->count || t->count > w.n - t->offset) abort();
        expect += t->count;
        sink += w.params[t->offset + t->count - 1];
        if (w.ema) sink += w.ema[t->offset + t->count - 1];
    }
    if (expect != w.n) abort();
    (void)sink;
    weights_free(&w);
    return 0;
}
