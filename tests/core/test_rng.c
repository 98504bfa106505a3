/* tests/core/test_rng.c - Philox4x32-10 against the Random123 known-answer vectors, and the
 * statistical and positional properties the rest of dfm relies on. */
#include <criterion/criterion.h>
#include <math.h>

#include "core/rng.h"

static void check_kat(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1,
                      uint32_t e0, uint32_t e1, uint32_t e2, uint32_t e3)
{
    const uint32_t ctr[4] = {c0, c1, c2, c3}, key[2] = {k0, k1};
    uint32_t out[4];
    philox4x32_10(ctr, key, out);
    cr_assert_eq(out[0], e0, "word 0: %08x != %08x", out[0], e0);
    cr_assert_eq(out[1], e1, "word 1: %08x != %08x", out[1], e1);
    cr_assert_eq(out[2], e2, "word 2: %08x != %08x", out[2], e2);
    cr_assert_eq(out[3], e3, "word 3: %08x != %08x", out[3], e3);
}

Test(rng, philox_known_answer_zero)
{
    check_kat(0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8);
}

Test(rng, philox_known_answer_ones)
{
    check_kat(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
              0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd);
}

Test(rng, philox_known_answer_pi)
{
    check_kat(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
              0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1);
}

Test(rng, cursor_matches_raw_blocks)
{
    Rng r;
    uint64_t seed = 0x0123456789abcdefULL, stream = rng_stream(RNG_P_TEST, 77);
    rng_init(&r, seed, stream, 5, 3);
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (uint32_t blk = 3; blk < 6; blk++) {
        const uint32_t ctr[4] = {blk, 5, (uint32_t)stream, (uint32_t)(stream >> 32)};
        uint32_t out[4];
        philox4x32_10(ctr, key, out);
        for (int w = 0; w < 4; w++) cr_assert_eq(rng_u32(&r), out[w]);
    }
}

Test(rng, normal_moments)
{
    enum { N = 200000 };
    static double x[N];
    rng_fill_normal_f64(x, N, 42, rng_stream(RNG_P_TEST, 1), 0);
    double m = 0, v = 0, k4 = 0;
    for (int i = 0; i < N; i++) m += x[i];
    m /= N;
    for (int i = 0; i < N; i++) {
        double d = x[i] - m;
        v += d * d;
        k4 += d * d * d * d;
    }
    v /= N;
    k4 /= N;
    /* Standard errors: mean 1/sqrt(N) = 0.0022, var sqrt(2/N) = 0.0032, 4th moment ~0.022. */
    cr_assert(fabs(m) < 0.01, "mean %g", m);
    cr_assert(fabs(v - 1.0) < 0.015, "variance %g", v);
    cr_assert(fabs(k4 - 3.0) < 0.1, "fourth moment %g", k4);
}

Test(rng, fill_is_prefix_stable_and_stream_distinct)
{
    float a[64], b[16], c[16];
    rng_fill_normal(a, 64, 7, rng_stream(RNG_P_TEST, 3), 9);
    rng_fill_normal(b, 16, 7, rng_stream(RNG_P_TEST, 3), 9);
    rng_fill_normal(c, 16, 7, rng_stream(RNG_P_TEST, 4), 9);
    int same = 0;
    for (int i = 0; i < 16; i++) {
        cr_assert_eq(a[i], b[i]);
        same += a[i] == c[i];
    }
    cr_assert_lt(same, 2);
}

Test(rng, uniform_open_interval_and_below)
{
    Rng r;
    rng_init(&r, 1, 2, 3, 0);
    int hist[10] = {0};
    for (int i = 0; i < 100000; i++) {
        double u = rng_uniform(&r);
        cr_assert(u > 0.0 && u < 1.0);
        hist[rng_below(&r, 10)]++;
    }
    for (int k = 0; k < 10; k++) cr_assert(abs(hist[k] - 10000) < 500, "bin %d: %d", k, hist[k]);
}
