/* tests/model/test_conv2d.c - convolution forward against a naive double loop, backward against
 * central finite differences of that loop, for 3x3/1x1 kernels, stride 1 and 2, and padding. */
#include <criterion/criterion.h>
#include <omp.h>

#include "model/conv2d.h"
#include "model/groupnorm.h"
#include "core/mem.h"
#include "ref.h"

typedef struct {
    Conv2dShape s;
    size_t B;
    double *x, *w, *b, *r, *out;
} ConvCtx;

static double conv_loss(void *p)
{
    ConvCtx *c = p;
    size_t n = c->B * (size_t)c->s.OC * c->s.OH * c->s.OW;
    ref_conv2d(c->out, c->x, c->w, c->b, &c->s, c->B);
    double l = 0;
    for (size_t i = 0; i < n; i++) l += c->r[i] * c->out[i];
    return l;
}

static void check_conv(Conv2dShape s, size_t B)
{
    size_t nx = B * (size_t)s.IC * s.H * s.W, nw = (size_t)s.OC * s.IC * s.K * s.K;
    size_t no = B * (size_t)s.OC * s.OH * s.OW;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc((size_t)s.OC * 4);
    float *r = malloc(no * 4), *out = malloc(no * 4);
    float *dx = calloc(nx, 4), *dw = calloc(nw, 4), *db = calloc((size_t)s.OC, 4);
    fill_uniform(x, nx, 1.0f, 1);
    fill_uniform(w, nw, 0.5f, 2);
    fill_uniform(b, (size_t)s.OC, 0.5f, 3);
    fill_uniform(r, no, 1.0f, 4);
    float *ws = xalloc_aligned((conv2d_ws_floats(&s, B, omp_get_max_threads()) + 1) * 4);

    conv2d_forward(out, x, w, b, &s, B, ws);
    ConvCtx c = {s, B, to_double(x, nx), to_double(w, nw), to_double(b, (size_t)s.OC),
                 to_double(r, no), malloc(no * sizeof(double))};
    conv_loss(&c);
    double e = max_rel_err(out, c.out, no, max_abs(c.out, no));
    cr_assert(e < 1e-5, "forward: relative error %g (IC %d OC %d K %d stride %d H %d)", e, s.IC,
              s.OC, s.K, s.stride, s.H);

    conv2d_backward(dx, dw, db, r, x, w, &s, B, ws);
    double ex = fd_check(conv_loss, &c, c.x, dx, nx, 1e-4);
    double ew = fd_check(conv_loss, &c, c.w, dw, nw, 1e-4);
    double eb = fd_check(conv_loss, &c, c.b, db, (size_t)s.OC, 1e-4);
    cr_assert(ex < 1e-4 && ew < 1e-4 && eb < 1e-4, "backward vs FD: dx %g dw %g db %g", ex, ew,
              eb);

    /* backward accumulates: a second call doubles every gradient */
    float *dx2 = malloc(nx * 4), *dw2 = malloc(nw * 4);
    memcpy(dx2, dx, nx * 4);
    memcpy(dw2, dw, nw * 4);
    conv2d_backward(dx, dw, NULL, r, x, w, &s, B, ws);
    for (size_t i = 0; i < nx; i++)
        cr_assert_float_eq(dx[i], 2.0f * dx2[i], 1e-5f * (1.0f + fabsf(dx2[i])));
    for (size_t i = 0; i < nw; i++)
        cr_assert_float_eq(dw[i], 2.0f * dw2[i], 1e-5f * (1.0f + fabsf(dw2[i])));

    free(x); free(w); free(b); free(r); free(out); free(dx); free(dw); free(db);
    free(dx2); free(dw2);
    free(c.x); free(c.w); free(c.b); free(c.r); free(c.out);
    xfree_aligned(ws);
}

Test(conv2d, k3_stride1_pad1) { check_conv(conv2d_shape(3, 5, 3, 1, 1, 6, 6), 2); }
Test(conv2d, k1_pointwise) { check_conv(conv2d_shape(6, 4, 1, 1, 0, 5, 5), 3); }
Test(conv2d, k3_stride2_same_even) { check_conv(conv2d_shape_same(3, 4, 3, 2, 8, 8), 2); }
Test(conv2d, k3_stride2_same_odd) { check_conv(conv2d_shape_same(2, 3, 3, 2, 7, 7), 2); }
Test(conv2d, k3_stride1_nopad) { check_conv(conv2d_shape(2, 3, 3, 1, 0, 6, 6), 2); }
/* more samples than one weight-gradient group, and more rows than one chunk */
Test(conv2d, large_batch_many_channels) { check_conv(conv2d_shape(2, 40, 3, 1, 1, 4, 4), 35); }

Test(conv2d, same_padding_matches_tensorflow)
{
    Conv2dShape e = conv2d_shape_same(1, 1, 3, 2, 28, 28);
    cr_assert(e.OH == 14 && e.pad_t == 0 && e.pad_l == 0, "even: OH %d pad %d", e.OH, e.pad_t);
    Conv2dShape o = conv2d_shape_same(1, 1, 3, 2, 7, 7);
    cr_assert(o.OH == 4 && o.pad_t == 1, "odd: OH %d pad %d", o.OH, o.pad_t);
}

/* shapes on the Winograd path (3x3, stride 1, pad 1, >= 49 pixels), odd and even sizes */
Test(conv2d, winograd_even) { check_conv(conv2d_shape(3, 4, 3, 1, 1, 10, 10), 2); }
Test(conv2d, winograd_7x7) { check_conv(conv2d_shape(5, 4, 3, 1, 1, 7, 7), 2); }
Test(conv2d, winograd_odd_rect) { check_conv(conv2d_shape(2, 3, 3, 1, 1, 11, 13), 2); }
/* F(4x4, 3x3) for the forward and the input gradient (both sides >= 24): a whole number of
 * tiles, partial tiles on both sides, and more channels (longer sums in the transformed domain) */
Test(conv2d, winograd4_even) { check_conv(conv2d_shape(3, 4, 3, 1, 1, 24, 24), 2); }
Test(conv2d, winograd4_odd_rect) { check_conv(conv2d_shape(2, 3, 3, 1, 1, 25, 30), 2); }
Test(conv2d, winograd4_28x28_many_channels) { check_conv(conv2d_shape(24, 16, 3, 1, 1, 28, 28), 2); }
/* Winograd weight gradient over more than one group of samples */
Test(conv2d, winograd_many_samples) { check_conv(conv2d_shape(3, 5, 3, 1, 1, 10, 10), 34); }

/* forward and all gradients bitwise identical for 1 and nt threads (isa = 0), or with and
 * without the AVX-512 Winograd transforms (isa = 1, 1 thread), over several sample groups */
static void conv_compare(Conv2dShape s, size_t B, int isa, int nt)
{
    size_t nx = B * (size_t)s.IC * s.H * s.W, nw = (size_t)s.OC * s.IC * s.K * s.K;
    size_t no = B * (size_t)s.OC * s.OH * s.OW;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc((size_t)s.OC * 4);
    float *r = malloc(no * 4), *out[2], *dx[2], *dw[2], *db[2];
    fill_uniform(x, nx, 1.0f, 5);
    fill_uniform(w, nw, 0.5f, 6);
    fill_uniform(b, (size_t)s.OC, 0.5f, 7);
    fill_uniform(r, no, 1.0f, 8);
    float *ws = xalloc_aligned((conv2d_ws_floats(&s, B, nt) + 1) * 4);
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(isa || t == 0 ? 1 : nt);
        conv2d_allow_avx512(isa ? t : 1);
        out[t] = malloc(no * 4);
        dx[t] = calloc(nx, 4), dw[t] = calloc(nw, 4), db[t] = calloc((size_t)s.OC, 4);
        conv2d_forward(out[t], x, w, b, &s, B, ws);
        conv2d_backward(dx[t], dw[t], db[t], r, x, w, &s, B, ws);
    }
    conv2d_allow_avx512(1);
    cr_assert(memcmp(out[0], out[1], no * 4) == 0, "forward");
    cr_assert(memcmp(dx[0], dx[1], nx * 4) == 0, "input gradient");
    cr_assert(memcmp(dw[0], dw[1], nw * 4) == 0, "weight gradient");
    cr_assert(memcmp(db[0], db[1], (size_t)s.OC * 4) == 0, "bias gradient");
    for (int t = 0; t < 2; t++) free(out[t]), free(dx[t]), free(dw[t]), free(db[t]);
    free(x); free(w); free(b); free(r);
    xfree_aligned(ws);
}

static void conv_threads(Conv2dShape s, size_t B) { conv_compare(s, B, 0, 2); }

Test(conv2d, bitwise_identical_for_1_and_2_threads)
{
    conv_threads(conv2d_shape(4, 6, 3, 1, 1, 12, 12), 37);   /* Winograd */
    conv_threads(conv2d_shape(3, 5, 3, 1, 1, 25, 30), 37);   /* Winograd F(4x4) */
    conv_threads(conv2d_shape(4, 40, 3, 1, 1, 5, 5), 37);    /* im2col */
    conv_threads(conv2d_shape_same(4, 6, 3, 2, 12, 12), 37); /* stride 2 */
    conv_threads(conv2d_shape(6, 40, 1, 1, 0, 5, 5), 37);    /* pointwise */
}

/* The Winograd weight gradient runs its chains of groups as the threads' tasks when there are at
 * least as many chains as threads, else one chain after another, each group split among the
 * threads: the same sums either way. 12x12 (3 samples per group) at batch 3 has one chain, at
 * batch 6 two, at batch 9 three; 25x30 F(4x4) (2 per group) at batch 5 three. */
Test(conv2d, bitwise_identical_with_fewer_weight_gradient_chains_than_threads)
{
    conv_compare(conv2d_shape(4, 6, 3, 1, 1, 12, 12), 3, 0, 2);
    conv_compare(conv2d_shape(4, 6, 3, 1, 1, 12, 12), 6, 0, 3);
    conv_compare(conv2d_shape(4, 6, 3, 1, 1, 12, 12), 9, 0, 2);
    conv_compare(conv2d_shape(3, 5, 3, 1, 1, 25, 30), 5, 0, 4);
}

/* The AVX-512 Winograd transforms (where the CPU has them) give the portable code's bits: rows
 * of one vector with a masked end (14, 7 tiles), of several vectors (37 columns), odd sizes, maps
 * of at most 14 (F(2x2)) or 28 (F(4x4)) columns, whose input transforms take two channels per
 * vector, with odd channel counts. A
 * mixed cluster therefore trains the same weights on every node. */
Test(conv2d, winograd_avx512_transforms_equal_the_portable_ones)
{
    conv_compare(conv2d_shape(3, 5, 3, 1, 1, 28, 28), 3, 1, 1);
    conv_compare(conv2d_shape(2, 3, 3, 1, 1, 25, 70), 2, 1, 1);
    conv_compare(conv2d_shape(4, 6, 3, 1, 1, 14, 14), 3, 1, 1);
    conv_compare(conv2d_shape(3, 5, 3, 1, 1, 7, 7), 2, 1, 1); /* odd channel counts, paired */
    conv_compare(conv2d_shape(3, 5, 3, 1, 1, 24, 27), 2, 1, 1); /* the same with F(4x4) */
    conv_compare(conv2d_shape(2, 3, 3, 1, 1, 11, 13), 2, 1, 1);
    conv_compare(conv2d_shape(2, 3, 3, 1, 1, 9, 37), 2, 1, 1);
    conv_compare(conv2d_shape(2, 3, 3, 1, 1, 4, 70), 2, 1, 1);
}
/* The weight gradient summed over a whole batch of tiles (40 samples: twenty groups of two in
 * eight chains, 64 channels, 28x28: F(4x4), and 14x14: F(2x2)) against the exact sum in double. Measured when written:
 * 6.7e-6 for F(4x4), 6.5e-7 for F(2x2), relative to the largest entry. */
static void dw_accuracy(int C, int HW, size_t B)
{
    Conv2dShape s = conv2d_shape(C, C, 3, 1, 1, HW, HW);
    size_t nx = B * (size_t)C * HW * HW, nw = (size_t)C * C * 9;
    float *x = malloc(nx * 4), *r = malloc(nx * 4), *dw = calloc(nw, 4);
    double *ref = calloc(nw, sizeof(double));
    fill_uniform(x, nx, 1.0f, 11);
    fill_uniform(r, nx, 1.0f, 12);
    float *ws = xalloc_aligned((conv2d_ws_floats(&s, B, omp_get_max_threads()) + 1) * 4);
    conv2d_backward(NULL, dw, NULL, r, x, NULL, &s, B, ws);
    for (size_t b = 0; b < B; b++)
        for (int o = 0; o < C; o++)
            for (int i = 0; i < C; i++)
                for (int k = 0; k < 9; k++) {
                    const int kh = k / 3 - 1, kw = k % 3 - 1;
                    const float *ro = r + (b * C + o) * HW * HW, *xi = x + (b * C + i) * HW * HW;
                    double acc = 0.0;
                    for (int y = 0; y < HW; y++)
                        for (int z = 0; z < HW; z++) {
                            const int yy = y + kh, zz = z + kw;
                            if (yy >= 0 && yy < HW && zz >= 0 && zz < HW)
                                acc += (double)ro[y * HW + z] * (double)xi[yy * HW + zz];
                        }
                    ref[((size_t)o * C + i) * 9 + k] += acc;
                }
    double e = max_rel_err(dw, ref, nw, max_abs(ref, nw));
    cr_assert(e < 2e-5, "weight gradient %dx%d, %d channels, batch %zu: relative error %g", HW, HW,
              C, B, e);
    free(x); free(r); free(dw); free(ref);
    xfree_aligned(ws);
}

Test(conv2d, winograd_weight_gradient_over_a_batch)
{
    dw_accuracy(64, 28, 40);
    dw_accuracy(64, 14, 40);
}

/* a batch of no samples adds nothing to the weight gradient (Winograd and im2col paths) */
Test(conv2d, empty_batch_leaves_the_weight_gradient_unchanged)
{
    const Conv2dShape sh[2] = {conv2d_shape(3, 4, 3, 1, 1, 10, 10),
                               conv2d_shape(3, 4, 3, 2, 1, 10, 10)};
    for (int k = 0; k < 2; k++) {
        const size_t nw = 4 * 3 * 9;
        float w[4 * 3 * 9], dw[4 * 3 * 9], x[1] = {0}, r[1] = {0};
        fill_uniform(w, nw, 0.5f, 13);
        memcpy(dw, w, sizeof dw);
        const size_t nws = conv2d_ws_floats(&sh[k], 1, omp_get_max_threads()) + 1;
        float *ws = xalloc_aligned(nws * 4);
        for (size_t i = 0; i < nws; i++) ws[i] = 1.0f; /* a workspace left dirty by others */
        conv2d_backward(NULL, dw, NULL, r, x, w, &sh[k], 0, ws);
        cr_assert(memcmp(dw, w, sizeof dw) == 0, "shape %d: weight gradient changed", k);
        xfree_aligned(ws);
    }
}

/* the same shapes against the direct convolution */
Test(conv2d, winograd_wide_rows) { check_conv(conv2d_shape(2, 3, 3, 1, 1, 9, 37), 2); }

/* GroupNorm + SiLU read on the fly by the convolution: the bits of groupnorm_forward's act
 * followed by conv2d_forward, with the AVX-512 and the portable transforms; gamma up to 60 puts
 * normalised values past exp's clamps (-87, 88) on both sides */
static void gn_fused(Conv2dShape s, size_t B, int G)
{
    size_t HW = (size_t)s.H * s.W, nx = B * (size_t)s.IC * HW, nw = (size_t)s.OC * s.IC * 9;
    size_t no = B * (size_t)s.OC * HW;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc((size_t)s.OC * 4);
    float *gamma = malloc((size_t)s.IC * 4), *beta = malloc((size_t)s.IC * 4), *act = malloc(nx * 4);
    float *mean = malloc(B * (size_t)G * 4), *rstd = malloc(B * (size_t)G * 4);
    float *ref = malloc(no * 4), *got = malloc(no * 4);
    fill_uniform(x, nx, 2.0f, 11);
    fill_uniform(w, nw, 0.5f, 12);
    fill_uniform(b, (size_t)s.OC, 0.5f, 13);
    fill_uniform(gamma, (size_t)s.IC, 60.0f, 14);
    fill_uniform(beta, (size_t)s.IC, 3.0f, 15);
    float *ws = xalloc_aligned((conv2d_ws_floats(&s, B, 1) + 1) * 4);
    cr_assert(conv2d_fuses_gn_silu(&s));
    omp_set_num_threads(1);
    groupnorm_forward(NULL, act, mean, rstd, x, gamma, beta, B, (size_t)s.IC, HW, (size_t)G);
    conv2d_forward(ref, act, w, b, &s, B, ws);
    Conv2dGnSilu gn = {mean, rstd, gamma, beta, G};
    for (int isa = 0; isa < 2; isa++) {
        conv2d_allow_avx512(isa);
        memset(got, 0xFF, no * 4);
        conv2d_forward_gn_silu(got, x, &gn, w, b, &s, B, ws);
        conv2d_allow_avx512(1);
        cr_assert(memcmp(ref, got, no * 4) == 0, "fused GroupNorm+SiLU differs (%dx%d, avx512 %d)",
                  s.H, s.W, isa);
    }
    free(x); free(w); free(b); free(gamma); free(beta); free(act); free(mean); free(rstd);
    free(ref); free(got);
    xfree_aligned(ws);
}

Test(conv2d, groupnorm_silu_fused_into_the_winograd_input)
{
    gn_fused(conv2d_shape(8, 5, 3, 1, 1, 28, 28), 2, 4);
    gn_fused(conv2d_shape(4, 3, 3, 1, 1, 25, 30), 2, 2);
    gn_fused(conv2d_shape(6, 4, 3, 1, 1, 14, 14), 3, 3);
    gn_fused(conv2d_shape(5, 3, 3, 1, 1, 7, 7), 2, 5);
    gn_fused(conv2d_shape(3, 4, 3, 1, 1, 26, 24), 2, 3);
    gn_fused(conv2d_shape(4, 3, 3, 1, 1, 11, 13), 2, 2);
    gn_fused(conv2d_shape(2, 3, 3, 1, 1, 9, 37), 2, 1);
}
