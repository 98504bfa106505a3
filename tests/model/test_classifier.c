/* tests/model/test_classifier.c - the evaluator network: gradients, determinism, learning. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "core/rng.h"
#include "model/classifier.h"

static ClfConfig tiny(void)
{
    ClfConfig c = {.in_ch = 1, .size = 8, .c1 = 3, .c2 = 4, .c3 = 5, .feat = 6, .num_classes = 3};
    return c;
}

Test(classifier, config_checks_and_table)
{
    ClfConfig c = tiny();
    c.size = 10;
    cr_assert_null(clf_create(&c));
    cr_assert_eq(err_code(), ERR_SPEC);
    c = clf_config_default(1, 28, 10);
    Clf *m = clf_create(&c);
    size_t nt;
    const ParamEntry *t = clf_param_table(m, &nt);
    cr_assert_eq(nt, 10);
    cr_assert_str_eq(t[6].name, "fc1.weight");
    cr_assert_eq(t[6].shape[1], 128 * 7 * 7);
    cr_assert_eq(t[9].offset + t[9].count, clf_num_params(m));
    clf_destroy(&m);
    cr_assert_null(m);
}

/* The loss along params + e v, v a random direction restricted to tensor k. */
static double loss_at(Clf *m, const float *x, const int *y, size_t B, const float *p0,
                      const float *v, double e)
{
    float *p = clf_params(m);
    for (size_t i = 0; i < clf_num_params(m); i++) p[i] = (float)((double)p0[i] + e * (double)v[i]);
    return clf_train_step(m, x, y, B, NULL);
}

Test(classifier, gradient_matches_directional_differences)
{
    ClfConfig c = tiny();
    Clf *m = clf_create(&c);
    clf_init_params(m, 11);
    enum { B = 5 };
    const size_t n = clf_num_params(m), in = 64;
    float x[B * 64];
    int y[B] = {0, 2, 1, 1, 0};
    rng_fill_normal(x, B * in, 2, rng_stream(RNG_P_TEST, 40), 0);
    float *p0 = xmalloc(sizeof(float) * n), *g = xmalloc(sizeof(float) * n);
    float *v = xcalloc(n, sizeof(float));
    /* biases start at zero; give them values so their gradients are generic */
    for (size_t i = 0; i < n; i++) clf_params(m)[i] += 0.05f * (float)((i * 7919) % 13) / 13.0f;
    memcpy(p0, clf_params(m), sizeof(float) * n);
    clf_zero_grad(m);
    clf_train_step(m, x, y, B, NULL);
    memcpy(g, clf_grads(m), sizeof(float) * n);
    size_t nt;
    const ParamEntry *t = clf_param_table(m, &nt);
    for (size_t k = 0; k < nt; k++) {
        memset(v, 0, sizeof(float) * n);
        rng_fill_normal(v + t[k].offset, t[k].count, 3, rng_stream(RNG_P_TEST, 41 + k), 0);
        double gv = 0.0;
        for (size_t i = 0; i < n; i++) gv += (double)g[i] * (double)v[i];
        const double e = 1e-4; /* 1e-3 already crosses ReLU kinks in so small a net */
        double num = (loss_at(m, x, y, B, p0, v, e) - loss_at(m, x, y, B, p0, v, -e)) / (2 * e);
        cr_assert(fabs(num - gv) < 0.02 * fabs(gv) + 2e-4, "%s: analytic %g numeric %g",
                  t[k].name, gv, num);
    }
    xfree(p0);
    xfree(g);
    xfree(v);
    clf_destroy(&m);
}

Test(classifier, features_batch_and_thread_independent)
{
    ClfConfig c = clf_config_default(1, 28, 10);
    Clf *m = clf_create(&c);
    clf_init_params(m, 5);
    enum { B = 7 };
    static float x[B * 784], f_all[B * 128], f_one[128], lg1[B * 10], lg2[B * 10];
    rng_fill_normal(x, B * 784, 6, rng_stream(RNG_P_TEST, 50), 0);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    clf_forward(m, x, B, f_all, lg1);
    omp_set_num_threads(2);
    clf_forward(m, x, B, NULL, lg2);
    omp_set_num_threads(saved);
    cr_assert_eq(memcmp(lg1, lg2, sizeof lg1), 0, "1 vs 2 threads");
    for (int b = 0; b < B; b++) {
        clf_forward(m, x + b * 784, 1, f_one, NULL);
        cr_assert_eq(memcmp(f_one, f_all + b * 128, sizeof f_one), 0, "sample %d alone", b);
    }
    clf_destroy(&m);
}

/* Images of class k have a bright k-th horizontal third. */
static void make_set(uint8_t *img, int32_t *lab, size_t n, uint64_t seed)
{
    Rng r;
    rng_init(&r, seed, rng_stream(RNG_P_TEST, 60), 0, 0);
    for (size_t i = 0; i < n; i++) {
        int k = (int)rng_below(&r, 3);
        lab[i] = k;
        for (int h = 0; h < 12; h++)
            for (int w = 0; w < 12; w++) {
                int v = (int)rng_below(&r, 120) + (h / 4 == k ? 120 : 0);
                img[i * 144 + (size_t)h * 12 + (size_t)w] = (uint8_t)v;
            }
    }
}

Test(classifier, fit_learns_and_is_thread_count_invariant)
{
    enum { N = 192 };
    static uint8_t img[N * 144], timg[N * 144];
    static int32_t lab[N], tlab[N];
    make_set(img, lab, N, 1);
    make_set(timg, tlab, N, 2);
    ClfConfig c = {.in_ch = 1, .size = 12, .c1 = 4, .c2 = 8, .c3 = 8, .feat = 16, .num_classes = 3};
    ClfTrainConfig tc = {.epochs = 6, .batch = 32, .lr = 3e-3f, .flip = 1, .seed = 9};
    Clf *a = clf_create(&c), *b = clf_create(&c);
    clf_init_params(a, 4);
    clf_init_params(b, 4);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    cr_assert_eq(clf_fit(a, img, lab, N, &tc, NULL, NULL), ERR_OK);
    omp_set_num_threads(2);
    cr_assert_eq(clf_fit(b, img, lab, N, &tc, NULL, NULL), ERR_OK);
    omp_set_num_threads(saved);
    cr_assert_eq(memcmp(clf_params(a), clf_params(b), sizeof(float) * clf_num_params(a)), 0);
    double acc = clf_accuracy(a, timg, tlab, N, NULL);
    cr_assert(acc > 0.95, "held-out accuracy %g", acc);
    tc.batch = 1000;
    cr_assert_eq(clf_fit(a, img, lab, N, &tc, NULL, NULL), ERR_ARG);
    clf_destroy(&a);
    clf_destroy(&b);
}
