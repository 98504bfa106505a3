/* model/classifier.h - the small image classifier whose penultimate features drive FD-FMNIST.
 *
 * A convolutional network built from dfm's own layers (model/conv2d.h, model/linear.h), for
 * C x S x S images in [-1, 1] (the range the diffusion models produce), S divisible by 4:
 *
 *   conv1  3x3 stride 1, C -> c1, ReLU            S x S
 *   conv2  3x3 stride 2, c1 -> c2, ReLU           S/2 x S/2
 *   conv3  3x3 stride 2, c2 -> c3, ReLU           S/4 x S/4
 *   fc1    c3 (S/4)^2 -> feat, ReLU               the features (penultimate layer)
 *   fc2    feat -> num_classes                    logits
 *
 * (convolutions with PyTorch padding 1). Parameters are one flat buffer in this order, PyTorch
 * layouts, names conv1.weight, conv1.bias, ..., fc2.bias (ParamEntry table, as model/net.h).
 *
 * Training: clf_train_step runs forward, softmax cross-entropy (mean over the batch, in double)
 * and backward, accumulating into the gradient buffer; the caller steps the optimizer
 * (model/optim.h). Everything is bitwise identical for any thread count, and a sample's features
 * do not depend on its batch (the layers' guarantees), so features computed on any rank in any
 * chunk are the same bytes.
 */
#ifndef DFM_MODEL_CLASSIFIER_H
#define DFM_MODEL_CLASSIFIER_H

#include <stddef.h>
#include <stdint.h>

#include "model/net.h"

typedef struct {
    int in_ch, size;  /* image channels and side */
    int c1, c2, c3;   /* convolution widths */
    int feat;         /* feature (penultimate) width */
    int num_classes;
} ClfConfig;

typedef struct Clf Clf;

/* The configuration dfm's shipped evaluators use for C x S x S images with K classes. */
ClfConfig clf_config_default(int in_ch, int size, int num_classes);
/* ERR_SPEC naming the field when a value is out of range. */
int clf_config_check(const ClfConfig *cfg);

Clf *clf_create(const ClfConfig *cfg); /* NULL + ERR_SPEC on a bad config */
void clf_destroy(Clf **c);             /* NULL-safe */

const ClfConfig *clf_config(const Clf *c);
const ParamEntry *clf_param_table(const Clf *c, size_t *n_tensors);
size_t clf_num_params(const Clf *c);
float *clf_params(Clf *c);
float *clf_grads(Clf *c);
void clf_zero_grad(Clf *c);

/* He-uniform weights (bound sqrt(6 / fan_in)), zero biases; tensor i from
 * rng_stream(RNG_P_INIT, i). */
void clf_init_params(Clf *c, uint64_t seed);

/* Inference: x (B, C, S, S) in [-1, 1]; feat (B, feat) and/or logits (B, K), either may be NULL.
 * Any B (processed in pieces of the arena's size). */
void clf_forward(Clf *c, const float *x, size_t B, float *feat, float *logits);
/* Class with the largest logit, ties to the smaller index. */
int clf_argmax(const float *logits, int K);

/* One training forward + backward on (x, labels), B <= the largest batch the arena has seen or
 * any B (grown). Adds d(mean cross-entropy)/d params into the gradients. Returns the mean loss;
 * *correct (may be NULL) gets the number of samples whose argmax equals the label. */
double clf_train_step(Clf *c, const float *x, const int *labels, size_t B, size_t *correct);

/* Training on a labelled image set with Adam (model/optim.h), batch `batch`, learning rate
 * lr * 0.5 (1 + cos(pi k / K)) at step k of K (cosine to zero), examples visited in the order
 * of a Philox permutation per epoch (rng_stream(RNG_P_DATA_PERM, epoch)), each example flipped
 * left-right when flip is set and rng_stream(RNG_P_AUGMENT, index) with sub = epoch says so.
 * The result depends only on the data, the config and the seed: bitwise the same for any
 * thread count. progress (may be NULL) is called after every step. */
typedef struct {
    int epochs;
    int batch;
    float lr;
    int flip;
    uint64_t seed;
} ClfTrainConfig;
typedef void (*ClfProgressFn)(void *ctx, int epoch, size_t step, size_t steps, double loss,
                              double acc);
int clf_fit(Clf *c, const uint8_t *images, const int32_t *labels, size_t n,
            const ClfTrainConfig *tc, ClfProgressFn progress, void *ctx);
/* Top-1 accuracy on uint8 images, and (pred may be NULL) the predicted classes (n). */
double clf_accuracy(Clf *c, const uint8_t *images, const int32_t *labels, size_t n, int *pred);

/* Images (n, C, S, S) as uint8 -> float in [-1, 1]: v / 127.5 - 1, the diffusion models' range. */
void clf_u8_to_float(float *out, const uint8_t *in, size_t n);

#endif
