/* tests/model/test_parity.c - dfm's U-Net against PyTorch (tests/torch/make_reference.py):
 * same weights, same input; output, loss, every parameter gradient and the parameters after 3
 * Adam steps with clipping must agree to 1e-4 (relative to each tensor's largest value). Two
 * configs: 16x16 images, and 28x28 with fmnist-small's levels (28, 14, 7), where the
 * convolutions take Winograd F(4x4) at 28x28 and F(2x2) at 14x14 and 7x7. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/net.h"
#include "model/optim.h"

typedef struct {
    UNetConfig cfg;
    uint32_t B, steps, nt;
    float lr, b1, b2, eps, clip;
    char (*names)[PARAM_NAME_MAX];
    uint32_t (*shapes)[5];
    uint64_t P;
    float *p0, *x, *t, *target, *out, *grads, *after;
    int *labels;
    double loss;
} Ref;

static FILE *open_ref(const char *file)
{
    const char *root = getenv("DFM_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/%s", root ? root : ".", file);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s (run the tests from the repository root or set DFM_ROOT)",
                       path);
    return f;
}

static void rd(void *p, size_t sz, size_t n, FILE *f)
{
    cr_assert_eq(fread(p, sz, n, f), n, "parity file truncated");
}

static uint32_t u32(FILE *f)
{
    uint32_t v;
    rd(&v, 4, 1, f);
    return v;
}

static float *floats(FILE *f, size_t n)
{
    float *p = malloc(n * sizeof *p);
    rd(p, 4, n, f);
    return p;
}

static void load(Ref *r, const char *file)
{
    FILE *f = open_ref(file);
    char magic[8];
    rd(magic, 1, 8, f);
    cr_assert(memcmp(magic, "DFMPARIT", 8) == 0, "bad magic");
    cr_assert_eq(u32(f), 1u, "version");
    UNetConfig *c = &r->cfg;
    memset(c, 0, sizeof *c);
    c->in_ch = (int)u32(f);
    c->img_size = (int)u32(f);
    c->ch = (int)u32(f);
    c->n_mult = (int)u32(f);
    for (int i = 0; i < 4; i++) c->ch_mult[i] = (int)u32(f);
    c->num_res_blocks = (int)u32(f);
    c->n_attn = (int)u32(f);
    for (int i = 0; i < 4; i++) c->attn_res[i] = (int)u32(f);
    c->heads = (int)u32(f);
    c->groups = (int)u32(f);
    c->temb_dim = (int)u32(f);
    c->temb_hidden = (int)u32(f);
    c->num_classes = (int)u32(f);
    r->B = u32(f);
    float hp[6];
    rd(hp, 4, 6, f);
    c->dropout = hp[0];
    r->lr = hp[1], r->b1 = hp[2], r->b2 = hp[3], r->eps = hp[4], r->clip = hp[5];
    r->steps = u32(f);
    r->nt = u32(f);
    r->names = calloc(r->nt, sizeof *r->names);
    r->shapes = calloc(r->nt, sizeof *r->shapes);
    for (uint32_t i = 0; i < r->nt; i++) {
        uint32_t len = u32(f);
        cr_assert(len < PARAM_NAME_MAX);
        rd(r->names[i], 1, len, f);
        for (int k = 0; k < 5; k++) r->shapes[i][k] = u32(f);
    }
    rd(&r->P, 8, 1, f);
    size_t per = (size_t)c->in_ch * c->img_size * c->img_size, B = r->B;
    r->p0 = floats(f, r->P);
    r->x = floats(f, B * per);
    r->t = floats(f, B);
    r->labels = malloc(B * sizeof *r->labels);
    rd(r->labels, 4, B, f);
    r->target = floats(f, B * per);
    r->out = floats(f, B * per);
    rd(&r->loss, 8, 1, f);
    r->grads = floats(f, r->P);
    r->after = floats(f, r->P);
    fclose(f);
}

static void ref_free(Ref *r)
{
    free(r->names); free(r->shapes); free(r->p0); free(r->x); free(r->t); free(r->labels);
    free(r->target); free(r->out); free(r->grads); free(r->after);
}

/* max |a - b| / max |b| over one tensor */
static double tensor_rel(const float *a, const float *b, size_t n)
{
    double m = 0, s = 1e-30;
    for (size_t i = 0; i < n; i++) {
        m = fmax(m, fabs((double)a[i] - (double)b[i]));
        s = fmax(s, fabs((double)b[i]));
    }
    return m / s;
}

/* forward, MSE loss (in double) against target, dloss/dout, backward */
static double loss_and_grads(Net *n, const Ref *r, float *out, float *dout)
{
    size_t per = net_sample_floats(n), N = r->B * per;
    net_zero_grad(n);
    NetTrainOpts fo = {.labels = r->labels};
    net_forward(n, r->x, r->t, r->B, &fo, out);
    double l = 0;
    for (size_t i = 0; i < N; i++) {
        double d = (double)out[i] - (double)r->target[i];
        l += d * d;
        dout[i] = (float)(2.0 * d / (double)N);
    }
    net_backward(n, dout);
    return l / (double)N;
}

static void parity(const char *file)
{
    Ref r;
    load(&r, file);
    Net *n = net_create_unet(&r.cfg);
    cr_assert_not_null(n);
    size_t nt, per = net_sample_floats(n), N = r.B * per;
    const ParamEntry *tab = net_param_table(n, &nt);
    cr_assert_eq(nt, (size_t)r.nt, "tensor count %zu vs torch %u", nt, r.nt);
    cr_assert_eq(net_num_params(n), (size_t)r.P);
    for (size_t i = 0; i < nt; i++) {
        cr_assert_str_eq(tab[i].name, r.names[i], "tensor %zu", i);
        cr_assert_eq((uint32_t)tab[i].ndim, r.shapes[i][0], "%s ndim", tab[i].name);
        for (int d = 0; d < tab[i].ndim; d++)
            cr_assert_eq((uint32_t)tab[i].shape[d], r.shapes[i][1 + d], "%s dim %d", tab[i].name, d);
    }
    memcpy(net_params(n), r.p0, r.P * 4);
    float *out = malloc(N * 4), *dout = malloc(N * 4);
    double loss = loss_and_grads(n, &r, out, dout);
    double e = tensor_rel(out, r.out, N), e_out = e;
    cr_assert(e < 1e-4, "output relative error %g", e);
    cr_assert(fabs(loss - r.loss) < 1e-4 * r.loss, "loss %.9g vs torch %.9g", loss, r.loss);
    double worst_g = 0, worst_p = 0;
    for (size_t i = 0; i < nt; i++) {
        e = tensor_rel(net_grads(n) + tab[i].offset, r.grads + tab[i].offset, tab[i].count);
        cr_assert(e < 1e-4, "gradient of %s: relative error %g", tab[i].name, e);
        worst_g = fmax(worst_g, e);
    }
    /* 3 Adam steps with global-norm clipping, as torch.optim.Adam + clip_grad_norm_ */
    OptimConfig oc = optim_config_default();
    oc.beta1 = r.b1, oc.beta2 = r.b2, oc.eps = r.eps, oc.grad_clip = r.clip;
    Optim o;
    optim_init(&o, &oc, r.P, net_params(n));
    for (uint32_t s = 0; s < r.steps; s++) {
        loss_and_grads(n, &r, out, dout);
        optim_step(&o, net_params(n), net_grads(n), r.lr);
    }
    for (size_t i = 0; i < nt; i++) {
        e = tensor_rel(net_params(n) + tab[i].offset, r.after + tab[i].offset, tab[i].count);
        cr_assert(e < 1e-4, "%s after %u Adam steps: relative error %g", tab[i].name, r.steps, e);
        worst_p = fmax(worst_p, e);
    }
    cr_log_info("parity (%s): output %g, worst gradient %g, worst parameter after Adam %g",
                file, e_out, worst_g, worst_p);
    optim_free(&o);
    net_destroy(&n);
    free(out); free(dout);
    ref_free(&r);
}

Test(parity, unet_matches_pytorch) { parity("unet_parity.bin"); }
Test(parity, unet_28x28_matches_pytorch) { parity("unet_parity28.bin"); }
