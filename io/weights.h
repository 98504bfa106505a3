/* io/weights.h - the weights file: a parameter table followed by raw float32 tensors.
 *
 * Layout (little-endian, fixed-width fields):
 *   char[8]  magic "DFMWGHT1"
 *   u32      version (1), u32 endianness tag 0x01020304
 *   u64      number of tensors, u64 floats per buffer n, u32 buffers (1 = params, 2 = + EMA),
 *   u32      reserved (0)
 *   per tensor: u32 name length, name bytes (no NUL), u32 ndim, u32 shape[4], u64 offset,
 *               u64 count
 *   f32[n]   parameters, then f32[n] EMA weights when buffers = 2
 * The table is the model's (model/net.h ParamEntry); io/ keeps its own copy of the shape so it
 * does not depend on model/. Files are written atomically. Readers check magic, version,
 * endianness, that offsets and counts tile [0, n), and the exact file length.
 *
 * The reader treats the file as untrusted: every size is computed with overflow-checked
 * arithmetic (core/ckd.h) and compared with the real file size before anything is allocated;
 * each tensor's count is the exact product of its shape (dimensions in [1, INT32_MAX], unused
 * ones 1), offsets satisfy count <= n - offset, and the tensors tile [0, n) in order without
 * gaps or overlap. tests/io/fuzz_weights.c fuzzes weights_read_stream.
 */
#ifndef DFM_IO_WEIGHTS_H
#define DFM_IO_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    char name[64];
    int ndim;
    int shape[4];
    size_t offset, count;
} WeightsTensor;

typedef struct {
    size_t n_tensors;
    WeightsTensor *tensors; /* owned */
    size_t n;               /* floats per buffer */
    float *params;          /* owned, n floats */
    float *ema;             /* owned, n floats, or NULL */
} Weights;

int weights_write(const char *path, const WeightsTensor *tensors, size_t n_tensors,
                  const float *params, const float *ema, size_t n);
int weights_read(Weights *w, const char *path);
/* The same from an open stream holding exactly `size` bytes; `path` names it in messages. */
int weights_read_stream(Weights *w, FILE *f, uint64_t size, const char *path);
void weights_free(Weights *w);

#endif
