/* model/classifier.c - three convolutions and two dense layers, forward and backward. */
#include "model/classifier.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "core/rng.h"
#include "model/conv2d.h"
#include "model/gemm.h"
#include "model/linear.h"
#include "model/optim.h"

enum { T_C1W, T_C1B, T_C2W, T_C2B, T_C3W, T_C3B, T_F1W, T_F1B, T_F2W, T_F2B, T_COUNT };

struct Clf {
    ClfConfig cfg;
    Conv2dShape s1, s2, s3;
    size_t flat; /* c3 (S/4)^2 */
    ParamEntry table[T_COUNT];
    size_t n;
    float *params, *grads;
    /* arena for cap samples: post-ReLU activations and their gradients */
    size_t cap;
    float *a1, *a2, *a3, *f, *lg;
    float *d1, *d2, *d3, *df, *dlg;
    float *ws;
    size_t ws_floats;
};

ClfConfig clf_config_default(int in_ch, int size, int num_classes)
{
    ClfConfig c = {.in_ch = in_ch, .size = size, .c1 = 32, .c2 = 64, .c3 = 128, .feat = 128,
                   .num_classes = num_classes};
    return c;
}

int clf_config_check(const ClfConfig *c)
{
    if (c->in_ch < 1 || c->in_ch > 4) return ERR(ERR_SPEC, "classifier: in_ch %d not in 1..4", c->in_ch);
    if (c->size < 4 || c->size % 4 || c->size > 256)
        return ERR(ERR_SPEC, "classifier: size %d must be a multiple of 4 in 4..256", c->size);
    if (c->c1 < 1 || c->c2 < 1 || c->c3 < 1 || c->c1 > 1024 || c->c2 > 1024 || c->c3 > 1024)
        return ERR(ERR_SPEC, "classifier: convolution widths %d,%d,%d not in 1..1024", c->c1, c->c2,
                   c->c3);
    if (c->feat < 2 || c->feat > 4096)
        return ERR(ERR_SPEC, "classifier: feature width %d not in 2..4096", c->feat);
    if (c->num_classes < 2 || c->num_classes > 1000)
        return ERR(ERR_SPEC, "classifier: num_classes %d not in 2..1000", c->num_classes);
    return ERR_OK;
}

static void add_entry(Clf *c, int i, const char *name, int ndim, int s0, int s1, int s2, int s3)
{
    ParamEntry *e = &c->table[i];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->ndim = ndim;
    e->shape[0] = s0, e->shape[1] = s1, e->shape[2] = s2, e->shape[3] = s3;
    size_t cnt = 1;
    for (int d = 0; d < ndim; d++) cnt *= (size_t)e->shape[d];
    e->count = cnt;
    e->offset = c->n;
    c->n += cnt;
}

Clf *clf_create(const ClfConfig *cfg)
{
    if (clf_config_check(cfg) != ERR_OK) return NULL;
    Clf *c = xcalloc(1, sizeof *c);
    c->cfg = *cfg;
    const int S = cfg->size;
    c->s1 = conv2d_shape(cfg->in_ch, cfg->c1, 3, 1, 1, S, S);
    c->s2 = conv2d_shape(cfg->c1, cfg->c2, 3, 2, 1, S, S);
    c->s3 = conv2d_shape(cfg->c2, cfg->c3, 3, 2, 1, c->s2.OH, c->s2.OW);
    c->flat = (size_t)cfg->c3 * c->s3.OH * c->s3.OW;
    add_entry(c, T_C1W, "conv1.weight", 4, cfg->c1, cfg->in_ch, 3, 3);
    add_entry(c, T_C1B, "conv1.bias", 1, cfg->c1, 0, 0, 0);
    add_entry(c, T_C2W, "conv2.weight", 4, cfg->c2, cfg->c1, 3, 3);
    add_entry(c, T_C2B, "conv2.bias", 1, cfg->c2, 0, 0, 0);
    add_entry(c, T_C3W, "conv3.weight", 4, cfg->c3, cfg->c2, 3, 3);
    add_entry(c, T_C3B, "conv3.bias", 1, cfg->c3, 0, 0, 0);
    add_entry(c, T_F1W, "fc1.weight", 2, cfg->feat, (int)c->flat, 0, 0);
    add_entry(c, T_F1B, "fc1.bias", 1, cfg->feat, 0, 0, 0);
    add_entry(c, T_F2W, "fc2.weight", 2, cfg->num_classes, cfg->feat, 0, 0);
    add_entry(c, T_F2B, "fc2.bias", 1, cfg->num_classes, 0, 0, 0);
    c->params = xalloc_aligned(sizeof(float) * c->n);
    c->grads = xalloc_aligned(sizeof(float) * c->n);
    return c;
}

static void arena_free(Clf *c)
{
    float **bufs[] = {&c->a1, &c->a2, &c->a3, &c->f, &c->lg, &c->d1,
                      &c->d2, &c->d3, &c->df, &c->dlg, &c->ws};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        xfree_aligned(*bufs[i]);
        *bufs[i] = NULL;
    }
    c->cap = 0;
}

void clf_destroy(Clf **pc)
{
    if (!pc || !*pc) return;
    Clf *c = *pc;
    arena_free(c);
    xfree_aligned(c->params);
    xfree_aligned(c->grads);
    xfree(c);
    *pc = NULL;
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

static void arena_reserve(Clf *c, size_t B)
{
    if (B <= c->cap) return;
    arena_free(c);
    const ClfConfig *g = &c->cfg;
    size_t n1 = (size_t)g->c1 * c->s1.OH * c->s1.OW, n2 = (size_t)g->c2 * c->s2.OH * c->s2.OW;
    c->a1 = xalloc_aligned(sizeof(float) * B * n1);
    c->d1 = xalloc_aligned(sizeof(float) * B * n1);
    c->a2 = xalloc_aligned(sizeof(float) * B * n2);
    c->d2 = xalloc_aligned(sizeof(float) * B * n2);
    c->a3 = xalloc_aligned(sizeof(float) * B * c->flat);
    c->d3 = xalloc_aligned(sizeof(float) * B * c->flat);
    c->f = xalloc_aligned(sizeof(float) * B * (size_t)g->feat);
    c->df = xalloc_aligned(sizeof(float) * B * (size_t)g->feat);
    c->lg = xalloc_aligned(sizeof(float) * B * (size_t)g->num_classes);
    c->dlg = xalloc_aligned(sizeof(float) * B * (size_t)g->num_classes);
    int nt = omp_get_max_threads();
    size_t ws = max_sz(conv2d_ws_floats(&c->s1, B, nt),
                       max_sz(conv2d_ws_floats(&c->s2, B, nt), conv2d_ws_floats(&c->s3, B, nt)));
    c->ws_floats = ws;
    c->ws = xalloc_aligned(sizeof(float) * (ws ? ws : 1));
    c->cap = B;
}

const ClfConfig *clf_config(const Clf *c) { return &c->cfg; }
const ParamEntry *clf_param_table(const Clf *c, size_t *n_tensors)
{
    *n_tensors = T_COUNT;
    return c->table;
}
size_t clf_num_params(const Clf *c) { return c->n; }
float *clf_params(Clf *c) { return c->params; }
float *clf_grads(Clf *c) { return c->grads; }
void clf_zero_grad(Clf *c) { memset(c->grads, 0, sizeof(float) * c->n); }

void clf_init_params(Clf *c, uint64_t seed)
{
    for (int i = 0; i < T_COUNT; i++) {
        const ParamEntry *e = &c->table[i];
        float *p = c->params + e->offset;
        if (e->ndim == 1) {
            memset(p, 0, sizeof(float) * e->count);
            continue;
        }
        size_t fan_in = e->count / (size_t)e->shape[0];
        double bound = sqrt(6.0 / (double)fan_in);
        if (i == T_F2W) bound = sqrt(3.0 / (double)fan_in); /* logits: unit-variance scale */
        Rng r;
        rng_init(&r, seed, rng_stream(RNG_P_INIT, (uint64_t)i), 0, 0);
        for (size_t k = 0; k < e->count; k++) p[k] = (float)((2.0 * rng_uniform(&r) - 1.0) * bound);
    }
}

static void relu_inplace(float *x, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* dx = dy where y > 0, else 0 (y the ReLU output) */
static void relu_mask(float *d, const float *y, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) d[i] = y[i] > 0.0f ? d[i] : 0.0f;
}

#define P(t) (c->params + c->table[t].offset)
#define G(t) (c->grads + c->table[t].offset)

/* Forward of B <= cap samples into the arena. */
static void forward_arena(Clf *c, const float *x, size_t B)
{
    const ClfConfig *g = &c->cfg;
    size_t n1 = (size_t)g->c1 * c->s1.OH * c->s1.OW, n2 = (size_t)g->c2 * c->s2.OH * c->s2.OW;
    conv2d_forward(c->a1, x, P(T_C1W), P(T_C1B), &c->s1, B, c->ws);
    relu_inplace(c->a1, B * n1);
    conv2d_forward(c->a2, c->a1, P(T_C2W), P(T_C2B), &c->s2, B, c->ws);
    relu_inplace(c->a2, B * n2);
    conv2d_forward(c->a3, c->a2, P(T_C3W), P(T_C3B), &c->s3, B, c->ws);
    relu_inplace(c->a3, B * c->flat);
    linear_forward(c->f, c->a3, P(T_F1W), P(T_F1B), B, c->flat, (size_t)g->feat);
    relu_inplace(c->f, B * (size_t)g->feat);
    linear_forward(c->lg, c->f, P(T_F2W), P(T_F2B), B, (size_t)g->feat, (size_t)g->num_classes);
}

void clf_forward(Clf *c, const float *x, size_t B, float *feat, float *logits)
{
    gemm_single_thread();
    const size_t piece = 256, in = (size_t)c->cfg.in_ch * c->cfg.size * c->cfg.size;
    arena_reserve(c, B < piece ? B : piece);
    const size_t F = (size_t)c->cfg.feat, K = (size_t)c->cfg.num_classes;
    for (size_t lo = 0; lo < B; lo += c->cap) {
        size_t nb = B - lo < c->cap ? B - lo : c->cap;
        forward_arena(c, x + lo * in, nb);
        if (feat) memcpy(feat + lo * F, c->f, sizeof(float) * nb * F);
        if (logits) memcpy(logits + lo * K, c->lg, sizeof(float) * nb * K);
    }
}

int clf_argmax(const float *logits, int K)
{
    int best = 0;
    for (int k = 1; k < K; k++)
        if (logits[k] > logits[best]) best = k;
    return best;
}

double clf_train_step(Clf *c, const float *x, const int *labels, size_t B, size_t *correct)
{
    gemm_single_thread();
    arena_reserve(c, B);
    forward_arena(c, x, B);
    const ClfConfig *g = &c->cfg;
    const size_t F = (size_t)g->feat, K = (size_t)g->num_classes;
    size_t n1 = (size_t)g->c1 * c->s1.OH * c->s1.OW, n2 = (size_t)g->c2 * c->s2.OH * c->s2.OW;
    /* softmax cross-entropy in double, samples in order */
    double loss = 0.0;
    size_t ok = 0;
    for (size_t b = 0; b < B; b++) {
        const float *z = c->lg + b * K;
        float *dz = c->dlg + b * K;
        ASSERT(labels[b] >= 0 && (size_t)labels[b] < K);
        double mx = z[0];
        for (size_t k = 1; k < K; k++) mx = (double)z[k] > mx ? (double)z[k] : mx;
        double se = 0.0;
        for (size_t k = 0; k < K; k++) se += exp((double)z[k] - mx);
        double lse = mx + log(se);
        loss += lse - (double)z[labels[b]];
        for (size_t k = 0; k < K; k++)
            dz[k] = (float)((exp((double)z[k] - lse) - (k == (size_t)labels[b])) / (double)B);
        ok += clf_argmax(z, (int)K) == labels[b];
    }
    if (correct) *correct = ok;
    memset(c->df, 0, sizeof(float) * B * F);
    linear_backward(c->df, G(T_F2W), G(T_F2B), c->dlg, c->f, P(T_F2W), B, F, K);
    relu_mask(c->df, c->f, B * F);
    memset(c->d3, 0, sizeof(float) * B * c->flat);
    linear_backward(c->d3, G(T_F1W), G(T_F1B), c->df, c->a3, P(T_F1W), B, c->flat, F);
    relu_mask(c->d3, c->a3, B * c->flat);
    memset(c->d2, 0, sizeof(float) * B * n2);
    conv2d_backward(c->d2, G(T_C3W), G(T_C3B), c->d3, c->a2, P(T_C3W), &c->s3, B, c->ws);
    relu_mask(c->d2, c->a2, B * n2);
    memset(c->d1, 0, sizeof(float) * B * n1);
    conv2d_backward(c->d1, G(T_C2W), G(T_C2B), c->d2, c->a1, P(T_C2W), &c->s2, B, c->ws);
    relu_mask(c->d1, c->a1, B * n1);
    conv2d_backward(NULL, G(T_C1W), G(T_C1B), c->d1, x, P(T_C1W), &c->s1, B, c->ws);
    return loss / (double)B;
}

void clf_u8_to_float(float *out, const uint8_t *in, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = (float)in[i] / 127.5f - 1.0f;
}

int clf_fit(Clf *c, const uint8_t *images, const int32_t *labels, size_t n,
            const ClfTrainConfig *tc, ClfProgressFn progress, void *ctx)
{
    if (tc->epochs < 1 || tc->batch < 1 || !(tc->lr > 0.0f))
        return ERR(ERR_ARG, "classifier training: epochs, batch and lr must be positive");
    if (n < (size_t)tc->batch)
        return ERR(ERR_ARG, "classifier training: %zu examples, fewer than one batch of %d", n,
                   tc->batch);
    const int S = c->cfg.size, C = c->cfg.in_ch;
    const size_t in = (size_t)C * S * S, Bt = (size_t)tc->batch;
    const size_t per_epoch = n / Bt, steps = per_epoch * (size_t)tc->epochs;
    OptimConfig oc = optim_config_default();
    Optim opt;
    optim_init(&opt, &oc, c->n, NULL);
    size_t *perm = xmalloc(sizeof(size_t) * n);
    float *x = xalloc_aligned(sizeof(float) * Bt * in);
    int *y = xmalloc(sizeof(int) * Bt);
    size_t k = 0;
    for (int e = 0; e < tc->epochs; e++) {
        Rng r;
        rng_init(&r, tc->seed, rng_stream(RNG_P_DATA_PERM, (uint64_t)e), 0, 0);
        for (size_t i = 0; i < n; i++) perm[i] = i;
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = (size_t)rng_below(&r, i + 1), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (size_t s = 0; s < per_epoch; s++, k++) {
            for (size_t b = 0; b < Bt; b++) {
                size_t idx = perm[s * Bt + b];
                float *xb = x + b * in;
                clf_u8_to_float(xb, images + idx * in, in);
                y[b] = labels[idx];
                if (tc->flip) {
                    Rng fr;
                    rng_init(&fr, tc->seed, rng_stream(RNG_P_AUGMENT, idx), (uint32_t)e, 0);
                    if (rng_u32(&fr) & 1u)
                        for (int ch = 0; ch < C; ch++)
                            for (int h = 0; h < S; h++) {
                                float *row = xb + ((size_t)ch * S + h) * S;
                                for (int w = 0; w < S / 2; w++) {
                                    float t = row[w];
                                    row[w] = row[S - 1 - w];
                                    row[S - 1 - w] = t;
                                }
                            }
                }
            }
            clf_zero_grad(c);
            size_t ok;
            double loss = clf_train_step(c, x, y, Bt, &ok);
            if (!isfinite(loss)) {
                optim_free(&opt);
                xfree(perm);
                xfree_aligned(x);
                xfree(y);
                return ERR(ERR_NUMERIC, "classifier training diverged at step %zu (loss %g)", k,
                           loss);
            }
            float lr = (float)((double)tc->lr * 0.5 * (1.0 + cos(M_PI * (double)k / (double)steps)));
            optim_step(&opt, c->params, c->grads, lr);
            if (progress) progress(ctx, e, k + 1, steps, loss, (double)ok / (double)Bt);
        }
    }
    optim_free(&opt);
    xfree(perm);
    xfree_aligned(x);
    xfree(y);
    return ERR_OK;
}

double clf_accuracy(Clf *c, const uint8_t *images, const int32_t *labels, size_t n, int *pred)
{
    const size_t in = (size_t)c->cfg.in_ch * c->cfg.size * c->cfg.size, piece = 256;
    const int K = c->cfg.num_classes;
    float *x = xalloc_aligned(sizeof(float) * piece * in);
    float *lg = xmalloc(sizeof(float) * piece * (size_t)K);
    size_t ok = 0;
    for (size_t lo = 0; lo < n; lo += piece) {
        size_t nb = n - lo < piece ? n - lo : piece;
        clf_u8_to_float(x, images + lo * in, nb * in);
        clf_forward(c, x, nb, NULL, lg);
        for (size_t b = 0; b < nb; b++) {
            int p = clf_argmax(lg + b * (size_t)K, K);
            if (pred) pred[lo + b] = p;
            ok += p == labels[lo + b];
        }
    }
    xfree_aligned(x);
    xfree(lg);
    return n ? (double)ok / (double)n : 0.0;
}
