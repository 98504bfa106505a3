/* io/loader.h - rank-invariant batches: keyed permutation, global batches, scaling, flips.
 *
 * Order. Epoch e visits the dataset in the order loader_perm(seed, e, N, .), a bijection of
 * [0, N) keyed by (seed, epoch): a Feistel network whose round function is Philox on
 * rng_stream(RNG_P_DATA_PERM, epoch), with cycle walking to stay inside [0, N). It costs O(1)
 * per index and no memory, so any position can be computed directly.
 *
 * Batches. B = batch size (global, over all ranks). Global batch k (k = 0, 1, 2, ... across
 * epochs) is epoch e = k / S, positions [j0, j0 + B) of that epoch's order with
 * j0 = (k mod S) * B, where S = loader_steps_per_epoch(N, B) = floor(N / B).
 * Drop-last: the N mod B examples at the end of each epoch's order are not used in that epoch
 * (the permutation changes each epoch, so over epochs no example is systematically left out).
 * B must satisfy 1 <= B <= N.
 *
 * Ranks. Rank r of P fills items [first, first + count) of global batch k, its contiguous part
 * (dist_shard_range in dist/data.h computes it). Whatever P is, the union over ranks of global
 * batch k is the same list of examples, and the only position to save for resume is k.
 *
 * Values. Images are scaled to [-1, 1] as x/127.5 - 1. With hflip on, an image is mirrored
 * left-right when the first word of Philox(seed, rng_stream(RNG_P_AUGMENT, example index),
 * sub = epoch) is odd: the same example in the same epoch gets the same flip on every rank.
 * Toy (float) data are copied as they are and never flipped.
 *
 * Outputs of loader_fill, for items j = first .. first + count - 1 (row t = j - first):
 *   x_out[t * dim ...]  the example, (C, H, W) or (D), float
 *   labels_out[t]       its label, -1 when the dataset has none (labels_out may be NULL)
 *   sample_idx_out[t]   the global sample counter k * B + j, the key for per-sample noise
 *                       (rng_stream(RNG_P_TRAIN_NOISE, sample)) (may be NULL)
 */
#ifndef DFM_IO_LOADER_H
#define DFM_IO_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "io/dataset.h"

typedef struct {
    uint64_t seed;
    size_t batch; /* B, global */
    int hflip;    /* random horizontal flips for images */
} LoaderConfig;

uint64_t loader_steps_per_epoch(size_t n, size_t batch);

/* Position i (0 <= i < n) of epoch `epoch`'s order: the dataset index visited there. */
uint64_t loader_perm(uint64_t seed, uint64_t epoch, uint64_t n, uint64_t i);

/* Dataset index of item j (0 <= j < B) of global batch k. */
uint64_t loader_global_index(const LoaderConfig *cfg, size_t n, uint64_t k, size_t j);

/* Whether example `index` is flipped in `epoch` (when cfg->hflip). */
int loader_flip(uint64_t seed, uint64_t epoch, uint64_t index);

void loader_fill(const Dataset *ds, const LoaderConfig *cfg, uint64_t k, size_t first,
                 size_t count, float *x_out, int *labels_out, uint64_t *sample_idx_out);

#endif
