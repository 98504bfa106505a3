/* tests/model/test_ops.c - SiLU, upsampling, dropout, concatenation, broadcast add, the
 * sinusoidal time embedding and the class embedding. */
#include <criterion/criterion.h>

#include "model/ops.h"
#include "ref.h"

Test(ops, silu_forward_backward)
{
    enum { N = 41 };
    float x[N], y[N], d[N] = {0}, r[N];
    for (int i = 0; i < N; i++) x[i] = -10.0f + 0.5f * (float)i, r[i] = 1.0f;
    silu_forward(y, x, N);
    silu_backward(d, r, x, N);
    for (int i = 0; i < N; i++) {
        double xd = (double)x[i], h = 1e-6;
        cr_assert(fabs((double)y[i] - ref_silu(xd)) < 1e-6, "silu(%g)", xd);
        double fd = (ref_silu(xd + h) - ref_silu(xd - h)) / (2 * h);
        cr_assert(fabs((double)d[i] - fd) < 1e-5, "silu'(%g) = %g, FD %g", xd, (double)d[i], fd);
    }
}

Test(ops, upsample_nearest_and_adjoint)
{
    enum { B = 2, C = 3, H = 3, W = 4 };
    float x[B * C * H * W], y[B * C * 4 * H * W], r[B * C * 4 * H * W], dx[B * C * H * W] = {0};
    fill_uniform(x, sizeof x / 4, 1.0f, 51);
    fill_uniform(r, sizeof r / 4, 1.0f, 52);
    upsample2x_forward(y, x, B, C, H, W);
    for (int bc = 0; bc < B * C; bc++)
        for (int i = 0; i < 2 * H; i++)
            for (int j = 0; j < 2 * W; j++)
                cr_assert_eq(y[(bc * 2 * H + i) * 2 * W + j], x[(bc * H + i / 2) * W + j / 2]);
    /* <r, U x> = <U^T r, x> */
    upsample2x_backward(dx, r, B, C, H, W);
    double a = 0, b = 0;
    for (size_t i = 0; i < sizeof y / 4; i++) a += (double)r[i] * (double)y[i];
    for (size_t i = 0; i < sizeof x / 4; i++) b += (double)dx[i] * (double)x[i];
    cr_assert(fabs(a - b) < 1e-5, "adjoint %g vs %g", a, b);
}

Test(ops, dropout_mask_rate_scale_and_keying)
{
    enum { B = 3, N = 20000 };
    static float x[B * N], y[B * N], m[B * N], y2[N], m2[N];
    for (size_t i = 0; i < B * N; i++) x[i] = 1.0f;
    uint64_t idx[B] = {7, 100, 5};
    dropout_forward(y, m, x, 0.25f, B, N, 42, idx, 3, 0);
    for (int b = 0; b < B; b++) {
        size_t kept = 0;
        for (size_t i = 0; i < N; i++) {
            float v = m[b * N + i];
            cr_assert(v == 0.0f || fabsf(v - 1.0f / 0.75f) < 1e-6f, "mask value %g", (double)v);
            kept += v != 0.0f;
        }
        double rate = 1.0 - (double)kept / N;
        cr_assert(fabs(rate - 0.25) < 0.015, "sample %d drop rate %g", b, rate);
    }
    /* the mask of global sample 100 does not depend on its position in the batch */
    uint64_t one = 100;
    dropout_forward(y2, m2, x, 0.25f, 1, N, 42, &one, 3, 0);
    cr_assert(memcmp(m2, m + N, sizeof m2) == 0, "mask depends on batch position");
    /* a different step or layer offset gives a different mask */
    dropout_forward(y2, m2, x, 0.25f, 1, N, 42, &one, 4, 0);
    cr_assert(memcmp(m2, m + N, sizeof m2) != 0, "mask ignores the step");
    dropout_forward(y2, m2, x, 0.25f, 1, N, 42, &one, 3, dropout_rng_blocks(N));
    cr_assert(memcmp(m2, m + N, sizeof m2) != 0, "mask ignores the layer offset");
    float d[N] = {0};
    dropout_backward(d, x, m, N);
    for (size_t i = 0; i < N; i++) cr_assert_eq(d[i], m[i]);
}

Test(ops, concat_and_split)
{
    enum { B = 2, C1 = 2, C2 = 3, HW = 4 };
    float a[B * C1 * HW], b[B * C2 * HW], o[B * (C1 + C2) * HW];
    float da[B * C1 * HW] = {0}, db[B * C2 * HW] = {0};
    fill_uniform(a, sizeof a / 4, 1.0f, 61);
    fill_uniform(b, sizeof b / 4, 1.0f, 62);
    concat_forward(o, a, b, B, C1, C2, HW);
    for (int s = 0; s < B; s++)
        for (int c = 0; c < C1 + C2; c++)
            for (int i = 0; i < HW; i++) {
                float want = c < C1 ? a[(s * C1 + c) * HW + i] : b[(s * C2 + c - C1) * HW + i];
                cr_assert_eq(o[(s * (C1 + C2) + c) * HW + i], want);
            }
    concat_backward(da, db, o, B, C1, C2, HW);
    cr_assert(memcmp(da, a, sizeof a) == 0 && memcmp(db, b, sizeof b) == 0);
}

Test(ops, channel_broadcast_add)
{
    enum { B = 2, C = 3, HW = 5 };
    float x[B * C * HW] = {0}, v[B * C], dv[B * C] = {0};
    fill_uniform(v, B * C, 1.0f, 71);
    chan_add_forward(x, v, B, C, HW);
    for (int i = 0; i < B * C * HW; i++) cr_assert_eq(x[i], v[i / HW]);
    for (int i = 0; i < B * C * HW; i++) x[i] = 1.0f;
    chan_add_backward(dv, x, B, C, HW);
    for (int i = 0; i < B * C; i++) cr_assert_float_eq(dv[i], (float)HW, 1e-6f);
}

Test(ops, sinusoid_matches_ddpm_formula)
{
    enum { D = 8 };
    float t[3] = {0.0f, 1.0f, 999.0f}, e[3 * D], e2[3 * (D + 1)];
    temb_sinusoid(e, t, 3, D);
    for (int b = 0; b < 3; b++)
        for (int i = 0; i < D / 2; i++) {
            double f = exp(-log(10000.0) * i / (D / 2 - 1));
            cr_assert(fabs((double)e[b * D + i] - sin((double)t[b] * f)) < 1e-6, "sin b %d i %d", b, i);
            cr_assert(fabs((double)e[b * D + D / 2 + i] - cos((double)t[b] * f)) < 1e-6, "cos b %d i %d", b, i);
        }
    /* odd width: last column zero; continuous t allowed */
    float tc[3] = {0.25f, 0.5f, 0.75f};
    temb_sinusoid(e2, tc, 3, D + 1);
    for (int b = 0; b < 3; b++) {
        cr_assert_eq(e2[b * (D + 1) + D], 0.0f);
        cr_assert(fabs((double)e2[b * (D + 1)] - sin((double)tc[b])) < 1e-6);
    }
}

Test(ops, class_embedding_with_null_row)
{
    enum { K = 3, D = 4, B = 4 };
    float table[(K + 1) * D], out[B * D] = {0}, dt[(K + 1) * D] = {0}, d[B * D];
    fill_uniform(table, sizeof table / 4, 1.0f, 81);
    int labels[B] = {2, -1, 0, 2};
    embed_forward(out, table, labels, K, B, D);
    for (int b = 0; b < B; b++) {
        int row = labels[b] < 0 ? K : labels[b];
        for (int i = 0; i < D; i++) cr_assert_eq(out[b * D + i], table[row * D + i]);
    }
    for (int i = 0; i < B * D; i++) d[i] = 1.0f;
    embed_backward(dt, d, labels, K, B, D);
    for (int i = 0; i < D; i++) {
        cr_assert_eq(dt[2 * D + i], 2.0f);
        cr_assert_eq(dt[K * D + i], 1.0f);
        cr_assert_eq(dt[1 * D + i], 0.0f);
    }
}

/* every word in order, for 10 values (a part block) and for 3 x 64 + 10 (the vector path, where
 * the CPU has one, then the scalar tail); rates 0.5 and 0.1, and a block counter that wraps */
static void dropout_words(size_t N, float p, uint32_t block)
{
    float *x = calloc(N, 4), *y = calloc(N, 4), *m = calloc(N, 4);
    for (size_t i = 0; i < N; i++) x[i] = 1.0f + (float)i;
    uint64_t idx = 5;
    dropout_forward(y, m, x, p, 1, N, 9, &idx, 2, block);
    Rng r;
    rng_init(&r, 9, rng_stream(RNG_P_DROPOUT, 5), 2, block);
    const uint32_t thr = (uint32_t)((double)p * 4294967296.0);
    for (size_t i = 0; i < N; i++) {
        float want = rng_u32(&r) >= thr ? 1.0f / (1.0f - p) : 0.0f;
        cr_assert_eq(m[i], want, "word %zu of %zu", i, N);
        cr_assert_eq(y[i], x[i] * want, "value %zu of %zu", i, N);
    }
    free(x); free(y); free(m);
}

Test(ops, dropout_words_follow_the_rng_cursor)
{
    dropout_words(10, 0.5f, 3);
    dropout_words(3 * 64 + 10, 0.5f, 3);
    dropout_words(3 * 64 + 10, 0.1f, 0xFFFFFFF8u);
}
