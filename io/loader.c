/* io/loader.c - keyed permutation and batch filling. See io/loader.h. */
#include "io/loader.h"

#include <string.h>

#include "core/mem.h"
#include "core/rng.h"

uint64_t loader_steps_per_epoch(size_t n, size_t batch)
{
    ASSERT(batch >= 1 && batch <= n);
    return (uint64_t)(n / batch);
}

/* Feistel round function: Philox keyed by seed on (value, round, stream). */
static uint64_t feistel_f(uint64_t seed, uint64_t stream, uint32_t round, uint64_t v)
{
    uint32_t ctr[4] = {(uint32_t)v, round, (uint32_t)stream, (uint32_t)(stream >> 32)};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t out[4];
    /* v < 2^32 always (half width <= 32 bits) */
    philox4x32_10(ctr, key, out);
    return ((uint64_t)out[1] << 32) | out[0];
}

uint64_t loader_perm(uint64_t seed, uint64_t epoch, uint64_t n, uint64_t i)
{
    ASSERT(i < n);
    if (n <= 1) return 0;
    /* Smallest even bit width 2h with 2^(2h) >= n; cycle walking keeps the result < n and
     * needs fewer than 4 rounds of the whole network on average. */
    unsigned bits = 0;
    while (bits < 64 && (UINT64_C(1) << bits) < n) bits++;
    unsigned h = (bits + 1) / 2;
    ASSERT(h <= 32);
    uint64_t mask = (UINT64_C(1) << h) - 1;
    uint64_t stream = rng_stream(RNG_P_DATA_PERM, epoch);
    uint64_t x = i;
    do {
        uint64_t l = x >> h, r = x & mask;
        for (uint32_t round = 0; round < 6; round++) {
            uint64_t nl = r;
            uint64_t nr = (l ^ feistel_f(seed, stream, round, r)) & mask;
            l = nl;
            r = nr;
        }
        x = (l << h) | r;
    } while (x >= n);
    return x;
}

uint64_t loader_global_index(const LoaderConfig *cfg, size_t n, uint64_t k, size_t j)
{
    ASSERT(j < cfg->batch);
    uint64_t steps = loader_steps_per_epoch(n, cfg->batch);
    uint64_t epoch = k / steps, kk = k % steps;
    return loader_perm(cfg->seed, epoch, n, kk * cfg->batch + j);
}

int loader_flip(uint64_t seed, uint64_t epoch, uint64_t index)
{
    Rng r;
    rng_init(&r, seed, rng_stream(RNG_P_AUGMENT, index), (uint32_t)epoch, 0);
    return (int)(rng_u32(&r) & 1u);
}

void loader_fill(const Dataset *ds, const LoaderConfig *cfg, uint64_t k, size_t first,
                 size_t count, float *x_out, int *labels_out, uint64_t *sample_idx_out)
{
    ASSERT(first + count <= cfg->batch);
    ASSERT(ds->u8 || ds->f32);
    size_t dim = dataset_dim(ds), C = ds->c, H = ds->h, W = ds->w;
    uint64_t steps = loader_steps_per_epoch(ds->n, cfg->batch);
    uint64_t epoch = k / steps, kk = k % steps;
    for (size_t t = 0; t < count; t++) {
        size_t j = first + t;
        uint64_t idx = loader_perm(cfg->seed, epoch, ds->n, kk * cfg->batch + j);
        float *x = x_out + t * dim;
        if (ds->u8) {
            const uint8_t *src = ds->u8 + (size_t)idx * dim;
            int flip = cfg->hflip && W > 1 && loader_flip(cfg->seed, epoch, idx);
            for (size_t c = 0; c < C; c++)
                for (size_t y = 0; y < H; y++) {
                    const uint8_t *row = src + (c * H + y) * W;
                    float *o = x + (c * H + y) * W;
                    if (flip)
                        for (size_t xx = 0; xx < W; xx++) o[xx] = (float)row[W - 1 - xx] / 127.5f - 1.0f;
                    else
                        for (size_t xx = 0; xx < W; xx++) o[xx] = (float)row[xx] / 127.5f - 1.0f;
                }
        } else {
            memcpy(x, ds->f32 + (size_t)idx * dim, dim * sizeof *x);
        }
        if (labels_out) labels_out[t] = ds->labels ? ds->labels[idx] : -1;
        if (sample_idx_out) sample_idx_out[t] = k * cfg->batch + j;
    }
}
