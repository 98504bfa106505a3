/* tests/model/test_net.c - the whole networks: parameter counts of the reference configs,
 * parameter table layout, deterministic init, whole-network gradient checks (U-Net and MLP),
 * bitwise thread-count independence, batch independence and gradient accumulation. */
#include <criterion/criterion.h>
#include <omp.h>

#include "model/net.h"
#include "core/err.h"
#include "ref.h"

static UNetConfig cifar10_config(void)
{
    UNetConfig c = {3, 32, 128, {1, 2, 2, 2}, 4, 2, {16}, 1, 1, 0.1f, 32, 128, 512, 0};
    return c;
}

static UNetConfig fmnist_small_config(void)
{
    UNetConfig c = {1, 28, 64, {1, 2, 2}, 3, 2, {7}, 1, 1, 0.1f, 32, 64, 256, 0};
    return c;
}

/* 8x8 input, ch 8, mults (1,2), 1 res block, attention at 4, groups 4, 3 classes */
static UNetConfig tiny_config(void)
{
    UNetConfig c = {2, 8, 8, {1, 2}, 2, 1, {4}, 1, 2, 0.1f, 4, 8, 16, 3};
    return c;
}

Test(net, cifar10_ddpm_has_35746307_parameters)
{
    UNetConfig c = cifar10_config();
    cr_assert_eq(unet_count_params(&c), (size_t)35746307);
}

Test(net, fmnist_small_has_6469889_parameters_and_2_2_gflop)
{
    UNetConfig c = fmnist_small_config();
    cr_assert_eq(unet_count_params(&c), (size_t)6469889);
    double f = unet_flops_per_sample(&c);
    cr_assert(f > 2.1e9 && f < 2.3e9, "forward GFLOP per image %g", f / 1e9);
    NetConfig nc = {NET_UNET, c, {0}};
    cr_assert_eq(net_count_params(&nc), (size_t)6469889);
}

Test(net, bad_configs_are_spec_errors)
{
    UNetConfig c = fmnist_small_config();
    c.groups = 5;
    cr_assert_null(net_create_unet(&c));
    cr_assert_eq(err_code(), ERR_SPEC);
    cr_assert(strstr(err_message(), "groups") != NULL, "message: %s", err_message());
    c = fmnist_small_config();
    c.img_size = 30; /* not divisible by 4 */
    cr_assert_eq(unet_config_check(&c), ERR_SPEC);
    c = fmnist_small_config();
    c.attn_res[0] = 8;
    cr_assert_eq(unet_config_check(&c), ERR_SPEC);
    c = fmnist_small_config();
    c.dropout = 1.0f;
    cr_assert_eq(unet_config_check(&c), ERR_SPEC);
    MLPConfig m = {2, 0, 3, 16, 32, 0};
    cr_assert_null(net_create_mlp(&m));
    cr_assert_eq(unet_count_params(&c), (size_t)0);
}

Test(net, param_table_is_contiguous_and_named)
{
    UNetConfig c = tiny_config();
    Net *n = net_create_unet(&c);
    cr_assert_not_null(n);
    size_t nt;
    const ParamEntry *t = net_param_table(n, &nt);
    size_t off = 0;
    for (size_t i = 0; i < nt; i++) {
        cr_assert_eq(t[i].offset, off, "tensor %s", t[i].name);
        size_t cnt = 1;
        for (int d = 0; d < t[i].ndim; d++) cnt *= (size_t)t[i].shape[d];
        cr_assert_eq(cnt, t[i].count);
        off += t[i].count;
        for (size_t j = 0; j < i; j++) cr_assert(strcmp(t[i].name, t[j].name), "dup %s", t[i].name);
    }
    cr_assert_eq(off, net_num_params(n));
    cr_assert_str_eq(t[0].name, "temb.dense0.weight");
    cr_assert_str_eq(t[nt - 1].name, "conv_out.bias");
    cr_assert_eq(((uintptr_t)net_params(n)) % 64, 0);
    cr_assert_eq(((uintptr_t)net_grads(n)) % 64, 0);
    net_destroy(&n);
    cr_assert_null(n);
}

Test(net, init_is_deterministic_and_zeroes_output_layers)
{
    UNetConfig c = tiny_config();
    Net *a = net_create_unet(&c), *b = net_create_unet(&c);
    net_set_threads(b, 2);
    net_init_params(a, 5);
    net_init_params(b, 5);
    size_t np = net_num_params(a), nt;
    cr_assert(memcmp(net_params(a), net_params(b), np * 4) == 0);
    net_init_params(b, 6);
    cr_assert(memcmp(net_params(a), net_params(b), np * 4) != 0);
    const ParamEntry *t = net_param_table(a, &nt);
    for (size_t i = 0; i < nt; i++) {
        int zero = strstr(t[i].name, "conv2.weight") || strstr(t[i].name, "proj_out.weight") ||
                   !strcmp(t[i].name, "conv_out.weight") || strstr(t[i].name, ".bias");
        const float *p = net_params(a) + t[i].offset;
        int allzero = 1;
        for (size_t k = 0; k < t[i].count; k++) allzero &= p[k] == 0.0f;
        if (strstr(t[i].name, "norm") && strstr(t[i].name, ".weight")) {
            for (size_t k = 0; k < t[i].count; k++) cr_assert_eq(p[k], 1.0f);
        } else {
            cr_assert_eq(allzero, zero, "tensor %s: zero %d", t[i].name, allzero);
        }
    }
    /* zero-initialised output layer: the initial prediction is exactly zero */
    float x[2 * 128], out[2 * 128], t2[2] = {10.0f, 500.0f};
    fill_uniform(x, 256, 1.0f, 3);
    int labels[2] = {1, -1};
    net_infer(a, x, t2, labels, 2, out);
    for (int i = 0; i < 256; i++) cr_assert_eq(out[i], 0.0f);
    net_destroy(&a);
    net_destroy(&b);
}

/* random, non-degenerate parameters: every path carries gradient */
static void randomize(Net *n, uint64_t seed)
{
    net_init_params(n, seed);
    size_t np = net_num_params(n);
    float *noise = malloc(np * 4);
    fill_uniform(noise, np, 0.15f, seed + 100);
    for (size_t i = 0; i < np; i++) net_params(n)[i] += noise[i];
    free(noise);
}

typedef struct {
    Net *n;
    const float *x, *t, *r;
    const int *labels;
    const uint64_t *idx;
    size_t B, per;
    float *out;
    int training;
} NetCtx;

static double net_loss(NetCtx *c)
{
    NetTrainOpts fo = {.labels = c->labels, .sample_idx = c->idx, .seed = 99, .step = 7,
                       .dropout = c->training};
    net_forward(c->n, c->x, c->t, c->B, &fo, c->out);
    double l = 0;
    for (size_t i = 0; i < c->B * c->per; i++) l += (double)c->r[i] * (double)c->out[i];
    return l;
}

/* directional derivative along a random direction restricted to [lo, hi) of the parameters */
static void check_direction(NetCtx *c, const float *g, size_t lo, size_t hi, const char *what,
                            double tol)
{
    float *p = net_params(c->n);
    size_t m = hi - lo;
    float *v = malloc(m * 4), *p0 = malloc(m * 4);
    fill_uniform(v, m, 1.0f, lo + 17);
    memcpy(p0, p + lo, m * 4);
    double an = 0, vn = 0;
    for (size_t i = 0; i < m; i++) an += (double)g[lo + i] * (double)v[i], vn += (double)v[i] * (double)v[i];
    /* Richardson-extrapolated central differences: O(h^4) truncation error */
    double h = 1e-2 / sqrt(vn / (double)m), fd[2];
    for (int k = 0; k < 2; k++) {
        double hk = k ? h / 2 : h;
        for (size_t i = 0; i < m; i++) p[lo + i] = (float)((double)p0[i] + hk * (double)v[i]);
        double lp = net_loss(c);
        for (size_t i = 0; i < m; i++) p[lo + i] = (float)((double)p0[i] - hk * (double)v[i]);
        double lm = net_loss(c);
        fd[k] = (lp - lm) / (2 * hk);
    }
    memcpy(p + lo, p0, m * 4);
    double est = (4 * fd[1] - fd[0]) / 3;
    cr_assert(fabs(est - an) <= tol * fabs(est) + 5e-4, "%s: analytic %.6g vs FD %.6g", what, an,
              est);
    free(v);
    free(p0);
}

Test(net, tiny_unet_whole_network_gradient_check)
{
    UNetConfig c = tiny_config();
    Net *n = net_create_unet(&c);
    randomize(n, 11);
    enum { B = 3 };
    const size_t per = 2 * 8 * 8;
    float x[B * 128], r[B * 128], out[B * 128], t[B] = {3.0f, 250.5f, 900.0f};
    int labels[B] = {0, -1, 2};
    uint64_t idx[B] = {10, 11, 12};
    fill_uniform(x, B * per, 1.0f, 21);
    fill_uniform(r, B * per, 1.0f, 22);
    NetCtx ctx = {n, x, t, r, labels, idx, B, per, out, 1};
    net_loss(&ctx);
    net_zero_grad(n);
    net_backward(n, r);
    size_t np = net_num_params(n), nt;
    float *g = malloc(np * 4);
    memcpy(g, net_grads(n), np * 4);
    const ParamEntry *tab = net_param_table(n, &nt);
    for (size_t i = 0; i < nt; i++) {
        /* the null-class row and rows of labels not in the batch get exactly zero */
        check_direction(&ctx, g, tab[i].offset, tab[i].offset + tab[i].count, tab[i].name, 2e-2);
    }
    check_direction(&ctx, g, 0, np, "all parameters", 1e-2);
    free(g);
    net_destroy(&n);
}

Test(net, input_gradient_matches_finite_differences)
{
    UNetConfig c = tiny_config();
    c.dropout = 0.0f;
    Net *n = net_create_unet(&c);
    randomize(n, 12);
    enum { B = 2 };
    float x[B * 128], r[B * 128], out[B * 128], t[B] = {5.0f, 40.0f}, dx[B * 128];
    fill_uniform(x, B * 128, 1.0f, 31);
    fill_uniform(r, B * 128, 1.0f, 32);
    NetCtx ctx = {n, x, t, r, NULL, NULL, B, 128, out, 0};
    net_loss(&ctx);
    net_backward(n, r);
    memcpy(dx, net_input_grad(n), sizeof dx);
    for (int k = 0; k < B * 128; k += 37) {
        float x0 = x[k];
        x[k] = x0 + 1e-2f;
        double lp = net_loss(&ctx);
        x[k] = x0 - 1e-2f;
        double lm = net_loss(&ctx);
        x[k] = x0;
        double fd = (lp - lm) / (2e-2 * (double)1.0f);
        cr_assert(fabs(fd - (double)dx[k]) < 2e-2 * (fabs(fd) + 1e-2), "x[%d]: %g vs FD %g", k,
                  (double)dx[k], fd);
    }
    net_destroy(&n);
}

static void run_once(Net *n, int threads, const float *x, const float *t, const int *labels,
                     const uint64_t *idx, const float *r, size_t B, size_t per, float *out,
                     float *grads)
{
    net_set_threads(n, threads);
    net_zero_grad(n);
    NetTrainOpts fo = {.labels = labels, .sample_idx = idx, .seed = 1234, .step = 5, .dropout = 1};
    net_forward(n, x, t, B, &fo, out);
    net_backward(n, r);
    memcpy(grads, net_grads(n), net_num_params(n) * 4);
    (void)per;
}

Test(net, bitwise_identical_for_1_and_2_threads)
{
    UNetConfig c = {3, 16, 32, {1, 2}, 2, 1, {8}, 1, 2, 0.1f, 8, 32, 64, 4};
    Net *n = net_create_unet(&c);
    randomize(n, 13);
    enum { B = 5 };
    const size_t per = 3 * 16 * 16, np = net_num_params(n);
    float *x = malloc(B * per * 4), *r = malloc(B * per * 4), t[B] = {1, 2, 3, 400, 999};
    float *o1 = malloc(B * per * 4), *o2 = malloc(B * per * 4);
    float *g1 = malloc(np * 4), *g2 = malloc(np * 4);
    int labels[B] = {0, 1, -1, 3, 2};
    uint64_t idx[B] = {100, 101, 102, 103, 104};
    fill_uniform(x, B * per, 1.0f, 41);
    fill_uniform(r, B * per, 1.0f, 42);
    run_once(n, 1, x, t, labels, idx, r, B, per, o1, g1);
    run_once(n, 2, x, t, labels, idx, r, B, per, o2, g2);
    cr_assert(memcmp(o1, o2, B * per * 4) == 0, "forward differs between 1 and 2 threads");
    cr_assert(memcmp(g1, g2, np * 4) == 0, "gradients differ between 1 and 2 threads");
    float *d1 = malloc(B * per * 4);
    run_once(n, 1, x, t, labels, idx, r, B, per, o1, g1);
    memcpy(d1, net_input_grad(n), B * per * 4);
    run_once(n, 2, x, t, labels, idx, r, B, per, o2, g2);
    cr_assert(memcmp(d1, net_input_grad(n), B * per * 4) == 0, "input gradient differs");
    free(x); free(r); free(o1); free(o2); free(g1); free(g2); free(d1);
    net_destroy(&n);
}

Test(net, sample_output_does_not_depend_on_the_batch)
{
    UNetConfig c = {3, 16, 32, {1, 2}, 2, 1, {8}, 1, 2, 0.1f, 8, 32, 64, 4};
    Net *n = net_create_unet(&c);
    randomize(n, 14);
    enum { B = 4 };
    const size_t per = 3 * 16 * 16;
    float *x = malloc(B * per * 4), *o = malloc(B * per * 4), *o1 = malloc(per * 4);
    float t[B] = {7, 70, 700, 0.5f};
    int labels[B] = {3, -1, 0, 1};
    uint64_t idx[B] = {40, 41, 42, 43};
    fill_uniform(x, B * per, 1.0f, 51);
    net_set_threads(n, 2);
    NetTrainOpts fo = {.labels = labels, .sample_idx = idx, .seed = 77, .step = 9, .dropout = 1};
    net_forward(n, x, t, B, &fo, o);
    for (int b = 0; b < B; b++) {
        NetTrainOpts f1 = {.labels = labels + b, .sample_idx = idx + b, .seed = 77, .step = 9,
                           .dropout = 1};
        net_forward(n, x + b * per, t + b, 1, &f1, o1);
        cr_assert(memcmp(o1, o + b * per, per * 4) == 0, "sample %d differs alone vs in batch", b);
    }
    free(x); free(o); free(o1);
    net_destroy(&n);
}

/* net_infer: the same bits as the training forward without dropout, for 1 and 2 threads and
 * whatever batch a sample is in, in less memory; the training pass after it is unaffected. */
Test(net, infer_equals_training_forward_and_needs_less_memory)
{
    UNetConfig c = {3, 16, 32, {1, 2}, 2, 1, {8}, 1, 2, 0.1f, 8, 32, 64, 4};
    Net *n = net_create_unet(&c), *m = net_create_unet(&c);
    randomize(n, 18);
    memcpy(net_params(m), net_params(n), net_num_params(n) * 4);
    enum { B = 5 };
    const size_t per = 3 * 16 * 16;
    float *x = malloc(B * per * 4), *ref = malloc(B * per * 4), *o = malloc(B * per * 4);
    float t[B] = {1, 30, 300, 999, 0.25f};
    int labels[B] = {0, -1, 3, 1, 2};
    fill_uniform(x, B * per, 1.0f, 91);
    NetTrainOpts fo = {.labels = labels};
    net_set_threads(n, 1);
    net_forward(n, x, t, B, &fo, ref);
    size_t train_bytes = net_activation_bytes(n);
    for (int th = 1; th <= 2; th++) {
        net_set_threads(m, th);
        net_infer(m, x, t, labels, B, o);
        cr_assert(memcmp(o, ref, B * per * 4) == 0, "infer differs from forward (%d threads)", th);
        for (int b = 0; b < B; b++) {
            net_infer(m, x + b * per, t + b, labels + b, 1, o);
            cr_assert(memcmp(o, ref + b * per, per * 4) == 0, "sample %d alone differs", b);
        }
        net_infer(m, x + per, t + 1, labels + 1, 3, o);
        cr_assert(memcmp(o, ref + per, 3 * per * 4) == 0, "samples 1-3 as a batch differ");
    }
    size_t infer_bytes = net_activation_bytes(m);
    cr_assert(infer_bytes * 3 < train_bytes * 2, "inference holds %zu bytes, training %zu",
              infer_bytes, train_bytes);
    /* a training step after inference: same output and gradients as on a fresh network */
    float *r = malloc(B * per * 4), *g = malloc(net_num_params(n) * 4);
    fill_uniform(r, B * per, 1.0f, 92);
    net_zero_grad(n);
    net_forward(n, x, t, B, &fo, ref);
    net_backward(n, r);
    memcpy(g, net_grads(n), net_num_params(n) * 4);
    net_set_threads(m, 1);
    net_zero_grad(m);
    net_forward(m, x, t, B, &fo, o);
    net_backward(m, r);
    cr_assert(memcmp(o, ref, B * per * 4) == 0);
    cr_assert(memcmp(g, net_grads(m), net_num_params(n) * 4) == 0);
    net_infer(m, x, t, labels, B, o);
    cr_assert_null(net_input_grad(m), "the input gradient is gone after net_infer");
    free(x); free(ref); free(o); free(r); free(g);
    net_destroy(&n);
    net_destroy(&m);
}

Test(net, gradient_accumulation_over_micro_batches)
{
    UNetConfig c = tiny_config();
    Net *n = net_create_unet(&c);
    randomize(n, 15);
    enum { B = 4 };
    const size_t per = 128, np = net_num_params(n);
    float x[B * 128], r[B * 128], out[B * 128], t[B] = {1, 20, 300, 999};
    int labels[B] = {0, 1, 2, -1};
    uint64_t idx[B] = {0, 1, 2, 3};
    fill_uniform(x, B * per, 1.0f, 61);
    fill_uniform(r, B * per, 1.0f, 62);
    net_zero_grad(n);
    NetTrainOpts fo = {.labels = labels, .sample_idx = idx, .seed = 5, .step = 1, .dropout = 1};
    net_forward(n, x, t, B, &fo, out);
    net_backward(n, r);
    float *full = malloc(np * 4);
    memcpy(full, net_grads(n), np * 4);
    net_zero_grad(n);
    for (int h = 0; h < 2; h++) {
        NetTrainOpts fh = {.labels = labels + 2 * h, .sample_idx = idx + 2 * h, .seed = 5,
                           .step = 1, .dropout = 1};
        net_forward(n, x + h * 2 * per, t + 2 * h, 2, &fh, out);
        net_backward(n, r + h * 2 * per);
    }
    double worst = 0, scale = 0;
    for (size_t i = 0; i < np; i++) scale = fmax(scale, fabs((double)full[i]));
    for (size_t i = 0; i < np; i++)
        worst = fmax(worst, fabs((double)full[i] - (double)net_grads(n)[i]));
    cr_assert(worst < 1e-5 * scale, "accumulated vs full batch: %g (scale %g)", worst, scale);
    free(full);
    net_destroy(&n);
}

Test(net, null_labels_mean_null_class)
{
    UNetConfig c = tiny_config();
    c.dropout = 0.0f;
    Net *n = net_create_unet(&c);
    randomize(n, 16);
    float x[2 * 128], a[2 * 128], b[2 * 128], t[2] = {3, 4};
    int nul[2] = {-1, -1}, lab[2] = {0, 0};
    fill_uniform(x, 256, 1.0f, 71);
    net_infer(n, x, t, NULL, 2, a);
    net_infer(n, x, t, nul, 2, b);
    cr_assert(memcmp(a, b, sizeof a) == 0);
    net_infer(n, x, t, lab, 2, b);
    cr_assert(memcmp(a, b, sizeof a) != 0, "class label has no effect");
    net_destroy(&n);
}

Test(net, mlp_counts_and_gradient_check)
{
    MLPConfig m = {2, 32, 3, 16, 32, 4};
    /* temb 16*32+32 + 32*32+32; class 5*32; layers (2*32+32 + 32*32+32) + 2 x (32*32+32 +
     * 32*32+32); out 32*2+2 */
    size_t want = (16 * 32 + 32) + (32 * 32 + 32) + 5 * 32 + (2 * 32 + 32 + 32 * 32 + 32) +
                  2 * (2 * (32 * 32 + 32)) + (32 * 2 + 2);
    cr_assert_eq(mlp_count_params(&m), want);
    Net *n = net_create_mlp(&m);
    randomize(n, 17);
    enum { B = 20 };
    float x[B * 2], r[B * 2], out[B * 2], t[B];
    int labels[B];
    for (int i = 0; i < B; i++) t[i] = (float)(50 * i), labels[i] = i % 5 - 1;
    fill_uniform(x, B * 2, 2.0f, 81);
    fill_uniform(r, B * 2, 1.0f, 82);
    NetCtx ctx = {n, x, t, r, labels, NULL, B, 2, out, 0};
    net_loss(&ctx);
    net_zero_grad(n);
    net_backward(n, r);
    size_t np = net_num_params(n), nt;
    float *g = malloc(np * 4);
    memcpy(g, net_grads(n), np * 4);
    const ParamEntry *tab = net_param_table(n, &nt);
    for (size_t i = 0; i < nt; i++)
        check_direction(&ctx, g, tab[i].offset, tab[i].offset + tab[i].count, tab[i].name, 2e-2);
    /* per-sample independence and thread invariance for the MLP too */
    float o1[2], o2[B * 2];
    net_set_threads(n, 2);
    net_infer(n, x, t, labels, B, o2);
    for (int b = 0; b < B; b++) {
        net_set_threads(n, 1);
        net_infer(n, x + 2 * b, t + b, labels + b, 1, o1);
        cr_assert(memcmp(o1, o2 + 2 * b, sizeof o1) == 0, "MLP sample %d depends on batch", b);
    }
    NetTrainOpts fo = {.labels = labels};
    net_forward(n, x, t, B, &fo, out);
    cr_assert(memcmp(out, o2, sizeof out) == 0, "MLP inference differs from the forward");
    free(g);
    net_destroy(&n);
}

/* The MLP's input gradient (the vector-Jacobian product J^T r that the likelihood's divergence
 * uses on 2-D data) against central differences, and the same after a second backward (it is
 * recomputed, not accumulated across backwards). */
Test(net, mlp_input_gradient_matches_finite_differences)
{
    MLPConfig m = {2, 32, 3, 16, 32, 0};
    Net *n = net_create_mlp(&m);
    randomize(n, 18);
    enum { B = 6 };
    float x[B * 2], r[B * 2], out[B * 2], t[B], dx[B * 2];
    for (int i = 0; i < B; i++) t[i] = (float)(150 * i);
    fill_uniform(x, B * 2, 2.0f, 83);
    fill_uniform(r, B * 2, 1.0f, 84);
    NetCtx ctx = {n, x, t, r, NULL, NULL, B, 2, out, 0};
    for (int rep = 0; rep < 2; rep++) {
        net_loss(&ctx);
        net_backward(n, r);
        memcpy(dx, net_input_grad(n), sizeof dx);
        for (int k = 0; k < B * 2; k++) {
            float x0 = x[k];
            x[k] = x0 + 1e-2f;
            double lp = net_loss(&ctx);
            x[k] = x0 - 1e-2f;
            double lm = net_loss(&ctx);
            x[k] = x0;
            double fd = (lp - lm) / 2e-2;
            cr_assert(fabs(fd - (double)dx[k]) < 1e-2 * (fabs(fd) + 1e-2), "x[%d]: %g vs FD %g", k,
                      (double)dx[k], fd);
        }
    }
    net_destroy(&n);
}

/* The gradient-ready listener: disjoint descending ranges covering every parameter once, each
 * reported only when its gradient is final. */
typedef struct {
    Net *net;
    float *snap;
    size_t last_lo, covered;
    int calls, order_ok;
} ReadyLog;

static void on_ready(void *ctx, size_t lo, size_t hi)
{
    ReadyLog *r = ctx;
    if (hi > r->last_lo || lo >= hi) r->order_ok = 0;
    r->last_lo = lo;
    r->covered += hi - lo;
    r->calls++;
    memcpy(r->snap + lo, net_grads(r->net) + lo, (hi - lo) * sizeof(float));
}

Test(net, grad_ready_listener_reports_final_ranges)
{
    UNetConfig c = tiny_config();
    Net *n = net_create_unet(&c);
    randomize(n, 17);
    enum { B = 2 };
    const size_t per = 128, np = net_num_params(n);
    float x[B * 128], r[B * 128], out[B * 128], t[B] = {3, 700};
    int labels[B] = {1, -1};
    uint64_t idx[B] = {4, 5};
    fill_uniform(x, B * per, 1.0f, 71);
    fill_uniform(r, B * per, 1.0f, 72);
    ReadyLog log = {.net = n, .snap = calloc(np, sizeof(float)), .last_lo = np, .order_ok = 1};
    net_set_grad_ready(n, on_ready, &log);
    net_zero_grad(n);
    NetTrainOpts fo = {.labels = labels, .sample_idx = idx, .seed = 5, .step = 1, .dropout = 1};
    net_forward(n, x, t, B, &fo, out);
    net_backward(n, r);
    cr_assert(log.order_ok, "ranges not disjoint and descending");
    cr_assert_eq(log.covered, np, "covered %zu of %zu", log.covered, np);
    cr_assert_eq(log.last_lo, 0);
    cr_assert_gt(log.calls, 4, "only %d ranges: nothing to overlap", log.calls);
    cr_assert(memcmp(log.snap, net_grads(n), np * sizeof(float)) == 0,
              "a range was reported before its gradient was final");
    free(log.snap);
    net_destroy(&n);
}

/* 64x64 RGB input (four levels, attention at 16x16): builds, runs forward and backward, and
 * gives finite outputs and gradients; its size is what the table says. */
Test(net, unet_64x64_runs)
{
    UNetConfig c = {3, 64, 8, {1, 2, 2, 2}, 4, 1, {16}, 1, 2, 0.0f, 4, 8, 32, 0};
    Net *n = net_create_unet(&c);
    cr_assert_not_null(n, "%s", err_message());
    cr_assert_eq(net_num_params(n), unet_count_params(&c));
    net_init_params(n, 3);
    randomize(n, 19);
    enum { B = 2 };
    const size_t per = 3 * 64 * 64, np = net_num_params(n);
    cr_assert_eq(net_sample_floats(n), per);
    float *x = malloc(B * per * 4), *out = malloc(B * per * 4), t[B] = {5, 900};
    uint64_t idx[B] = {0, 1};
    fill_uniform(x, B * per, 1.0f, 81);
    net_zero_grad(n);
    net_forward(n, x, t, B, &(NetTrainOpts){.sample_idx = idx, .seed = 1, .dropout = 1}, out);
    for (size_t i = 0; i < B * per; i++) cr_assert(isfinite(out[i]));
    net_backward(n, x);
    double g2 = 0;
    for (size_t i = 0; i < np; i++) {
        cr_assert(isfinite(net_grads(n)[i]));
        g2 += (double)net_grads(n)[i] * (double)net_grads(n)[i];
    }
    cr_assert_gt(g2, 0.0);
    free(x);
    free(out);
    net_destroy(&n);
}

/* The byte budget by category is what the arena allocates: the estimate (no buffers) equals a
 * network's activation bytes after a training pass at the same micro-batch and threads. */
Test(net, memory_estimate_matches_the_arena)
{
    UNetConfig c = tiny_config();
    NetConfig nc = {.kind = NET_UNET, .unet = c};
    NetMemory m;
    cr_assert_eq(net_memory_estimate(&nc, 3, 2, 1, &m), ERR_OK);
    Net *n = net_create_unet(&c);
    net_set_threads(n, 2);
    net_init_params(n, 1);
    enum { B = 3 };
    float x[B * 128], out[B * 128], t[B] = {1, 2, 3};
    uint64_t idx[B] = {0, 1, 2};
    fill_uniform(x, B * 128, 1.0f, 5);
    NetTrainOpts fo = {.sample_idx = idx, .dropout = 1};
    net_forward(n, x, t, B, &fo, out);
    cr_assert_eq(m.activations + m.workspace, net_activation_bytes(n));
    cr_assert_eq(m.params, 2 * net_num_params(n) * sizeof(float));
    cr_assert_eq(m.optimizer, 3 * net_num_params(n) * sizeof(float));
    cr_assert_eq(m.total, m.params + m.optimizer + m.activations + m.workspace);
    net_destroy(&n);
    /* activations grow with the micro-batch; an invalid config is a spec error */
    NetMemory m2;
    cr_assert_eq(net_memory_estimate(&nc, 6, 2, 1, &m2), ERR_OK);
    cr_assert_eq(m2.activations, 2 * m.activations);
    nc.unet.groups = 5;
    cr_assert_eq(net_memory_estimate(&nc, 3, 2, 1, &m2), ERR_SPEC);
}
