/* core/rng.h - counter-based random numbers (Philox4x32-10, Salmon et al. 2011).
 *
 * Every random number in dfm is a pure function of (seed, stream, sub, index): no generator state
 * is carried between calls, so a sample's noise is the same whatever rank, batch or thread
 * computes it, and nothing needs saving in a checkpoint beyond the seed and the step.
 *
 * Mapping onto Philox: key = seed (two 32-bit words, low first); counter = {index, sub,
 * stream low, stream high}. `stream` names what the numbers are for and for which item
 * (rng_stream(RNG_P_TRAIN_NOISE, global_sample_index)); `sub` is a second coordinate, usually
 * the training or sampling step; `index` walks through the 4-word blocks of one sequence
 * (2^32 blocks = 16 GiB of output per (seed, stream, sub)).
 *
 * Rng is a cursor over one such sequence: it starts at a block, hands out words in order and
 * can be re-created at any position, so nothing about it is tied to a thread or a rank.
 */
#ifndef DFM_CORE_RNG_H
#define DFM_CORE_RNG_H

#include <stddef.h>
#include <stdint.h>

/* One Philox4x32-10 block: out = philox(ctr, key). The Random123 known-answer vectors hold. */
void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* Purposes, the top 8 bits of a stream id. Append only: changing a value changes every run. */
typedef enum {
    RNG_P_INIT = 1,        /* weight initialisation: item = parameter tensor index */
    RNG_P_DATA_PERM = 2,   /* dataset permutation: item = epoch */
    RNG_P_AUGMENT = 3,     /* flips and other augmentation: item = dataset example index */
    RNG_P_TRAIN_T = 4,     /* training timestep / flow time: item = global sample index */
    RNG_P_TRAIN_NOISE = 5, /* training noise epsilon / x0 of the flow path: item = global sample */
    RNG_P_LABEL_DROP = 6,  /* classifier-free guidance label dropout: item = global sample index */
    RNG_P_DROPOUT = 7,     /* dropout masks: item = global sample index */
    RNG_P_SAMPLE_INIT = 8, /* sampler initial noise x_T: item = sample index */
    RNG_P_SAMPLE_STEP = 9, /* sampler per-step noise: item = sample index, sub = step */
    RNG_P_TOY = 10,        /* toy 2-D data: item = example index */
    RNG_P_EVAL = 11,       /* evaluation (projections, subsets): item = purpose specific */
    RNG_P_TEST = 255       /* tests only */
} RngPurpose;

static inline uint64_t rng_stream(RngPurpose purpose, uint64_t item)
{
    return ((uint64_t)purpose << 56) | (item & ((UINT64_C(1) << 56) - 1));
}

typedef struct {
    uint32_t key[2];
    uint32_t ctr[4];
    uint32_t buf[4];
    int pos; /* next unused word in buf; 4 = empty */
} Rng;

/* Position a cursor at block `index` of sequence (seed, stream, sub). */
void rng_init(Rng *r, uint64_t seed, uint64_t stream, uint32_t sub, uint32_t index);

uint32_t rng_u32(Rng *r);
uint64_t rng_u64(Rng *r);
/* Uniform in the open interval (0, 1), 53 random bits. */
double rng_uniform(Rng *r);
/* Standard normal (Box-Muller over two uniforms; both outputs are used in order). */
double rng_normal(Rng *r);
/* Uniform integer in [0, n), unbiased (rejection). n > 0. */
uint64_t rng_below(Rng *r, uint64_t n);

/* Fill out[0..n) with N(0,1) floats of sequence (seed, stream, sub) from its start: the same n
 * values whoever calls it. */
void rng_fill_normal(float *out, size_t n, uint64_t seed, uint64_t stream, uint32_t sub);
void rng_fill_normal_f64(double *out, size_t n, uint64_t seed, uint64_t stream, uint32_t sub);

#endif
