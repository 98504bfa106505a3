/* model/linear.h - fully connected layer, PyTorch weight layout.
 *
 *   out[b, o] = bias[o] + sum_i w[o, i] * inp[b, i]
 *
 * The forward and the input gradient run one product per sample (the same call whatever the
 * batch, so a sample's result never depends on the others); the weight gradient sums over the
 * batch in one sgemm per fixed chunk of rows.
 * Backward accumulates (+=); dinp, dw, dbias may be NULL.
 */
#ifndef DFM_MODEL_LINEAR_H
#define DFM_MODEL_LINEAR_H

#include <stddef.h>

/* out: (B, OUT); inp: (B, IN); w: (OUT, IN); bias: (OUT) or NULL */
void linear_forward(float *out, const float *inp, const float *w, const float *bias, size_t B,
                    size_t IN, size_t OUT);
void linear_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                     const float *w, size_t B, size_t IN, size_t OUT);

#endif
