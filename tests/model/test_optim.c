/* tests/model/test_optim.c - Adam/AdamW against hand-computed steps, clipping, EMA warmup and
 * range splitting (ZeRO-1 style). */
#include <criterion/criterion.h>

#include "model/optim.h"
#include "core/err.h"
#include "ref.h"

/* Two Adam steps on one scalar, written out by hand (double). */
Test(optim, adam_matches_hand_computed_steps)
{
    OptimConfig c = optim_config_default();
    c.weight_decay = 0.1f; /* Adam: L2 added to the gradient */
    Optim o;
    float p[1] = {1.0f}, g[1] = {0.5f};
    optim_init(&o, &c, 1, p);
    optim_step(&o, p, g, 0.01f);
    /* step 1: g' = 0.5 + 0.1 * 1 = 0.6; m = 0.06; v = 0.00036; mhat = 0.6, vhat = 0.36 */
    double want = 1.0 - 0.01 * 0.6 / (sqrt(0.36) + 1e-8);
    cr_assert(fabs((double)p[0] - want) < 1e-7, "step 1: %.9g vs %.9g", (double)p[0], want);
    g[0] = -0.2f;
    optim_step(&o, p, g, 0.01f);
    double gp = -0.2 + 0.1 * want;
    double m = 0.9 * 0.06 + 0.1 * gp, v = 0.999 * 0.00036 + 0.001 * gp * gp;
    double want2 = want - 0.01 / (1 - 0.81) * m / (sqrt(v) / sqrt(1 - 0.999 * 0.999) + 1e-8);
    cr_assert(fabs((double)p[0] - want2) < 1e-6, "step 2: %.9g vs %.9g", (double)p[0], want2);
    optim_free(&o);
}

Test(optim, adamw_decays_decoupled)
{
    OptimConfig c = optim_config_default();
    c.kind = OPTIM_ADAMW;
    c.weight_decay = 0.1f;
    Optim o;
    float p[1] = {2.0f}, g[1] = {0.5f};
    optim_init(&o, &c, 1, p);
    optim_step(&o, p, g, 0.01f);
    /* p = 2 (1 - 0.001) - 0.01 * 1 (mhat / sqrt(vhat) = 1) */
    double want = 2.0 * (1.0 - 0.001) - 0.01 * 0.5 / (0.5 + 1e-8);
    cr_assert(fabs((double)p[0] - want) < 1e-6, "%.9g vs %.9g", (double)p[0], want);
    optim_free(&o);
}

Test(optim, global_norm_clipping)
{
    OptimConfig c = optim_config_default();
    c.grad_clip = 1.0f;
    float g[2] = {3.0f, 4.0f};
    double norm = sqrt(optim_grad_sumsq(g, 0, 2));
    cr_assert(fabs(norm - 5.0) < 1e-12);
    cr_assert(fabs((double)optim_clip_scale(norm, 1.0f) - 1.0 / (5.0 + 1e-6)) < 1e-7);
    cr_assert_eq(optim_clip_scale(0.5, 1.0f), 1.0f);
    cr_assert_eq(optim_clip_scale(50.0, 0.0f), 1.0f);
    /* clipping scales the gradient seen by Adam: with tiny lr the moments show it */
    Optim o;
    float p[2] = {0, 0};
    optim_init(&o, &c, 2, p);
    double n = optim_step(&o, p, g, 1e-3f);
    cr_assert(fabs(n - 5.0) < 1e-9);
    cr_assert(fabs((double)o.m[0] - 0.1 * 3.0 / 5.0) < 1e-6, "m0 %g", (double)o.m[0]);
    cr_assert(fabs((double)o.m[1] - 0.1 * 4.0 / 5.0) < 1e-6, "m1 %g", (double)o.m[1]);
    optim_free(&o);
}

Test(optim, ema_with_and_without_warmup)
{
    OptimConfig c = optim_config_default();
    c.ema_decay = 0.999f;
    cr_assert(fabs(optim_ema_decay(&c, 0) - (double)0.999f) < 1e-12);
    c.ema_warmup = 1;
    cr_assert(fabs(optim_ema_decay(&c, 0) - 0.1) < 1e-12);
    cr_assert(fabs(optim_ema_decay(&c, 10) - 11.0 / 20.0) < 1e-12);
    cr_assert(fabs(optim_ema_decay(&c, 100000) - (double)0.999f) < 1e-12);
    Optim o;
    float p[1] = {1.0f}, g[1] = {1.0f};
    optim_init(&o, &c, 1, p);
    cr_assert_eq(o.ema[0], 1.0f);
    optim_step(&o, p, g, 0.1f); /* p -> 0.9 (Adam first step moves by lr) */
    double want = 0.1 * 1.0 + 0.9 * (double)p[0];
    cr_assert(fabs((double)o.ema[0] - want) < 1e-6, "ema %g vs %g", (double)o.ema[0], want);
    optim_free(&o);
}

Test(optim, update_by_ranges_equals_whole)
{
    enum { N = 1000 };
    OptimConfig c = optim_config_default();
    c.kind = OPTIM_ADAMW;
    c.weight_decay = 0.01f;
    float p1[N], p2[N], g[N], m1[N] = {0}, v1[N] = {0}, m2[N] = {0}, v2[N] = {0};
    fill_uniform(p1, N, 1.0f, 1);
    memcpy(p2, p1, sizeof p1);
    for (uint64_t t = 1; t <= 3; t++) {
        fill_uniform(g, N, 1.0f, 10 + t);
        adam_update_range(&c, p1, g, m1, v1, 1e-3f, 0.7f, t, 0, N);
        adam_update_range(&c, p2, g, m2, v2, 1e-3f, 0.7f, t, 0, 333);
        adam_update_range(&c, p2, g, m2, v2, 1e-3f, 0.7f, t, 333, 334);
        adam_update_range(&c, p2, g, m2, v2, 1e-3f, 0.7f, t, 334, N);
    }
    cr_assert(memcmp(p1, p2, sizeof p1) == 0 && memcmp(m1, m2, sizeof m1) == 0 &&
              memcmp(v1, v2, sizeof v1) == 0);
}

Test(optim, config_errors)
{
    OptimConfig c = optim_config_default();
    cr_assert_eq(optim_config_check(&c), ERR_OK);
    c.beta2 = 1.0f;
    cr_assert_eq(optim_config_check(&c), ERR_SPEC);
    c = optim_config_default();
    c.ema_decay = -0.1f;
    cr_assert_eq(optim_config_check(&c), ERR_SPEC);
}
