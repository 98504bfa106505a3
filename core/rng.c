/* core/rng.c - Philox4x32-10 and the deviates built on it. */
#include "core/rng.h"

#include <math.h>

#define PHILOX_M0 UINT32_C(0xD2511F53)
#define PHILOX_M1 UINT32_C(0xCD9E8D57)
#define PHILOX_W0 UINT32_C(0x9E3779B9)
#define PHILOX_W1 UINT32_C(0xBB67AE85)

void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

void rng_init(Rng *r, uint64_t seed, uint64_t stream, uint32_t sub, uint32_t index)
{
    r->key[0] = (uint32_t)seed;
    r->key[1] = (uint32_t)(seed >> 32);
    r->ctr[0] = index;
    r->ctr[1] = sub;
    r->ctr[2] = (uint32_t)stream;
    r->ctr[3] = (uint32_t)(stream >> 32);
    r->pos = 4;
}

uint32_t rng_u32(Rng *r)
{
    if (r->pos >= 4) {
        philox4x32_10(r->ctr, r->key, r->buf);
        r->ctr[0]++;
        r->pos = 0;
    }
    return r->buf[r->pos++];
}

uint64_t rng_u64(Rng *r)
{
    uint64_t lo = rng_u32(r);
    uint64_t hi = rng_u32(r);
    return (hi << 32) | lo;
}

double rng_uniform(Rng *r)
{
    /* (k + 0.5) / 2^53 with k in [0, 2^53): never 0, never 1. */
    uint64_t k = rng_u64(r) >> 11;
    return ((double)k + 0.5) * (1.0 / 9007199254740992.0);
}

double rng_normal(Rng *r)
{
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    /* One value per pair keeps the mapping "k-th normal = f(words 4k..4k+3)" simple:
     * the k-th deviate of a sequence is a function of its block k alone. */
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint64_t rng_below(Rng *r, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = rng_u64(r); while (x >= limit);
    return x % n;
}

void rng_fill_normal(float *out, size_t n, uint64_t seed, uint64_t stream, uint32_t sub)
{
    Rng r;
    rng_init(&r, seed, stream, sub, 0);
    for (size_t i = 0; i < n; i++) out[i] = (float)rng_normal(&r);
}

void rng_fill_normal_f64(double *out, size_t n, uint64_t seed, uint64_t stream, uint32_t sub)
{
    Rng r;
    rng_init(&r, seed, stream, sub, 0);
    for (size_t i = 0; i < n; i++) out[i] = rng_normal(&r);
}
