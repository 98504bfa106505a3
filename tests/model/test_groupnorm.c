/* tests/model/test_groupnorm.c - GroupNorm (+ fused SiLU) against a double loop, finite
 * differences, and the zero-mean / unit-variance invariant. */
#include <criterion/criterion.h>

#include "model/groupnorm.h"
#include "model/ops.h"
#include "ref.h"

enum { B = 2, C = 6, HW = 10, G = 3 };

typedef struct {
    double *x, *g, *b, *r, *out;
    int silu;
} GnCtx;

static double gn_loss(void *p)
{
    GnCtx *c = p;
    ref_groupnorm(c->out, c->x, c->g, c->b, B, C, HW, G, (double)GROUPNORM_EPS);
    double l = 0;
    for (size_t i = 0; i < B * C * HW; i++)
        l += c->r[i] * (c->silu ? ref_silu(c->out[i]) : c->out[i]);
    return l;
}

static void check_gn(int silu)
{
    const size_t N = B * C * HW;
    float x[B * C * HW], g[C], b[C], r[B * C * HW], out[B * C * HW], act[B * C * HW];
    float mean[B * G], rstd[B * G], tmp[B * C * HW];
    double gws[2 * B * C]; /* groupnorm_ws_doubles(B, C) */
    float dx[B * C * HW] = {0}, dg[C] = {0}, db[C] = {0};
    fill_uniform(x, N, 2.0f, 11);
    for (size_t i = 0; i < N; i++) x[i] += 0.5f; /* nonzero mean */
    fill_uniform(g, C, 1.0f, 12);
    fill_uniform(b, C, 1.0f, 13);
    fill_uniform(r, N, 1.0f, 14);
    groupnorm_forward(out, silu ? act : NULL, mean, rstd, x, g, b, B, C, HW, G);
    GnCtx c = {to_double(x, N), to_double(g, C), to_double(b, C), to_double(r, N),
               malloc(N * sizeof(double)), silu};
    gn_loss(&c);
    double e = max_rel_err(out, c.out, N, 1.0);
    cr_assert(e < 1e-5, "forward error %g", e);
    if (silu) {
        for (size_t i = 0; i < N; i++)
            cr_assert(fabs((double)act[i] - ref_silu(c.out[i])) < 1e-5, "silu at %zu", i);
        /* the fused forward and the recomputation give the same bits as the unfused forward */
        float act2[B * C * HW], out2[B * C * HW], act3[B * C * HW];
        groupnorm_forward(NULL, act2, mean, rstd, x, g, b, B, C, HW, G);
        groupnorm_apply(out2, act3, x, g, b, mean, rstd, B, C, HW, G);
        cr_assert(memcmp(act2, act, sizeof act2) == 0, "fused SiLU output differs");
        cr_assert(memcmp(out2, out, sizeof out2) == 0 && memcmp(act3, act, sizeof act3) == 0,
                  "groupnorm_apply differs from the forward");
        memcpy(tmp, r, sizeof tmp); /* dact is scratch */
        groupnorm_silu_backward(dx, dg, db, tmp, x, g, b, mean, rstd, B, C, HW, G, gws);
    } else {
        groupnorm_backward(dx, dg, db, r, x, g, mean, rstd, B, C, HW, G, gws);
    }
    double ex = fd_check(gn_loss, &c, c.x, dx, N, 1e-5);
    double eg = fd_check(gn_loss, &c, c.g, dg, C, 1e-5);
    double eb = fd_check(gn_loss, &c, c.b, db, C, 1e-5);
    cr_assert(ex < 1e-4 && eg < 1e-4 && eb < 1e-4, "FD: dx %g dgamma %g dbeta %g", ex, eg, eb);
    free(c.x); free(c.g); free(c.b); free(c.r); free(c.out);
}

Test(groupnorm, forward_backward) { check_gn(0); }
Test(groupnorm, fused_silu_forward_backward) { check_gn(1); }

Test(groupnorm, output_zero_mean_unit_variance_per_group)
{
    const size_t N = B * C * HW;
    float x[B * C * HW], g[C], b[C], out[B * C * HW], mean[B * G], rstd[B * G];
    fill_uniform(x, N, 3.0f, 21);
    for (size_t i = 0; i < N; i++) x[i] = x[i] * 5.0f + 7.0f;
    for (int i = 0; i < C; i++) g[i] = 1.0f, b[i] = 0.0f;
    groupnorm_forward(out, NULL, mean, rstd, x, g, b, B, C, HW, G);
    for (size_t bg = 0; bg < B * G; bg++) {
        const float *o = out + bg * (C / G) * HW;
        double m = 0, v = 0;
        for (size_t i = 0; i < (C / G) * HW; i++) m += (double)o[i];
        m /= (double)((C / G) * HW);
        for (size_t i = 0; i < (C / G) * HW; i++) v += ((double)o[i] - m) * ((double)o[i] - m);
        v /= (double)((C / G) * HW);
        cr_assert(fabs(m) < 1e-5, "group %zu mean %g", bg, m);
        cr_assert(fabs(v - 1.0) < 1e-3, "group %zu variance %g", bg, v);
    }
}
