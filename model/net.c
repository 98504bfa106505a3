/* model/net.c - the parameter table, the activation arena and its memory plans, the time
 * embedding, and the public calls; the U-Net is model/unet.c, the MLP model/mlp.c.
 *
 * Building a network registers, in forward order, every parameter tensor (into the table) and
 * every activation (Act) with the step that writes it and the last step that reads it
 * (model/net_int.h). The arena then plans each layout once, in floats per sample, so that two
 * Acts share memory exactly when they are never live together; a batch of B scales every
 * offset by B. Inference and training have their own plans in the same arena.
 */
#include "model/net.h"
#include "model/net_int.h"
#include "model/attention.h"
#include "model/linear.h"
#include "model/ops.h"
#include "core/err.h"
#include "core/mem.h"
#include "core/rng.h"

#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- parameter table ------------------------------------------------------------------------ */

size_t table_add(Table *t, InitKind init, double fan, int ndim, const int *shape, const char *fmt,
                 ...)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->e = xrealloc(t->e, t->cap * sizeof *t->e);
        t->init = xrealloc(t->init, t->cap * sizeof *t->init);
        t->fan = xrealloc(t->fan, t->cap * sizeof *t->fan);
    }
    ParamEntry *p = &t->e[t->n];
    memset(p, 0, sizeof *p);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->name, sizeof p->name, fmt, ap);
    va_end(ap);
    p->ndim = ndim;
    p->count = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->count *= (size_t)shape[i];
    }
    p->offset = t->total;
    t->total += p->count;
    t->init[t->n] = (int)init;
    t->fan[t->n] = fan;
    t->n++;
    return p->offset;
}

Conv conv_new(Net *n, const char *name, Conv2dShape s, InitKind init)
{
    Conv c;
    c.s = s;
    int shw[4] = {s.OC, s.IC, s.K, s.K}, shb[1] = {s.OC};
    double fan = (double)s.K * s.K * (s.IC + s.OC);
    c.w = table_add(&n->tab, init, fan, 4, shw, "%s.weight", name);
    c.b = table_add(&n->tab, INIT_ZERO, 0, 1, shb, "%s.bias", name);
    n->flops += 2.0 * conv2d_macs(&s);
    return c;
}

Dense dense_new(Net *n, const char *name, size_t in, size_t out, InitKind init)
{
    Dense d = {0, 0, in, out};
    int shw[2] = {(int)out, (int)in}, shb[1] = {(int)out};
    d.w = table_add(&n->tab, init, (double)(in + out), 2, shw, "%s.weight", name);
    d.b = table_add(&n->tab, INIT_ZERO, 0, 1, shb, "%s.bias", name);
    n->flops += 2.0 * (double)in * (double)out;
    return d;
}

Norm norm_new(Net *n, const char *name, size_t C, size_t G)
{
    Norm m = {0, 0, C, G};
    int sh[1] = {(int)C};
    m.g = table_add(&n->tab, INIT_ONE, 0, 1, sh, "%s.weight", name);
    m.b = table_add(&n->tab, INIT_ZERO, 0, 1, sh, "%s.bias", name);
    return m;
}

/* ---- activations and steps ----------------------------------------------------------------- */

int net_begin_step(Net *n)
{
    n->build_step = n->n_steps++;
    return n->build_step;
}

Act *act_new(Net *n, size_t per_sample, int flags)
{
    ASSERT(n->n_steps > 0);
    Act *a = xcalloc(1, sizeof *a);
    a->n = per_sample;
    a->flags = flags;
    a->step = a->last_use = n->build_step;
    if (n->n_acts == n->cap_acts) {
        n->cap_acts = n->cap_acts ? 2 * n->cap_acts : 128;
        n->acts = xrealloc(n->acts, n->cap_acts * sizeof *n->acts);
    }
    n->acts[n->n_acts++] = a;
    return a;
}

void act_use(Net *n, Act *a)
{
    ASSERT(a->step <= n->build_step);
    if (n->build_step > a->last_use) a->last_use = n->build_step;
}

/* ---- memory plans ---------------------------------------------------------------------------- */

static size_t padded(size_t f) { return (f + 15) & ~(size_t)15; } /* 64-byte multiples */

typedef struct {
    size_t size, off;
    int lo[2], hi[2], nint; /* live intervals (inclusive) */
    size_t act;
    int grad;
} PlanItem;

static int items_conflict(const PlanItem *a, const PlanItem *b)
{
    for (int i = 0; i < a->nint; i++)
        for (int j = 0; j < b->nint; j++)
            if (a->lo[i] <= b->hi[j] && b->lo[j] <= a->hi[i]) return 1;
    return 0;
}

static int cmp_item_size(const void *pa, const void *pb)
{
    const PlanItem *a = *(PlanItem *const *)pa, *b = *(PlanItem *const *)pb;
    if (a->size != b->size) return a->size < b->size ? 1 : -1;
    if (a->act != b->act) return a->act < b->act ? -1 : 1;
    return a->grad - b->grad;
}

static int cmp_item_off(const void *pa, const void *pb)
{
    const PlanItem *a = *(PlanItem *const *)pa, *b = *(PlanItem *const *)pb;
    return (a->off > b->off) - (a->off < b->off);
}

/* Greedy by decreasing size: each item at the lowest offset clear of every placed item it
 * shares a time with. */
static size_t place_items(PlanItem *it, size_t m)
{
    PlanItem **ord = xmalloc((m + 1) * sizeof *ord), **live = xmalloc((m + 1) * sizeof *live);
    for (size_t i = 0; i < m; i++) ord[i] = &it[i];
    qsort(ord, m, sizeof *ord, cmp_item_size);
    size_t total = 0;
    for (size_t i = 0; i < m; i++) {
        size_t nl = 0;
        for (size_t j = 0; j < i; j++)
            if (items_conflict(ord[i], ord[j])) live[nl++] = ord[j];
        qsort(live, nl, sizeof *live, cmp_item_off);
        size_t off = 0;
        for (size_t j = 0; j < nl; j++) {
            if (live[j]->off >= off + ord[i]->size) break;
            size_t end = live[j]->off + live[j]->size;
            if (end > off) off = end;
        }
        ord[i]->off = off;
        if (off + ord[i]->size > total) total = off + ord[i]->size;
    }
    xfree(ord);
    xfree(live);
    return total;
}

static void plan_free(Plan *p)
{
    xfree(p->off_x);
    xfree(p->off_d);
    if (p->zero_at) {
        for (int s = 0; p->n_zero_at && s < p->ready; s++) xfree(p->zero_at[s]);
    }
    xfree(p->zero_at);
    xfree(p->n_zero_at);
    memset(p, 0, sizeof *p);
}

static void plan_build(Net *n, Layout lay)
{
    Plan *p = &n->plan[lay];
    if (p->ready) return;
    const int S = n->n_steps, T = 2 * S - 1; /* training: backward of step s at time T - s */
    PlanItem *it = xcalloc(2 * n->n_acts + 1, sizeof *it);
    size_t m = 0;
    for (size_t i = 0; i < n->n_acts; i++) {
        const Act *a = n->acts[i];
        if (lay == LAYOUT_INFER) {
            if (a->flags & ACT_TRAIN_ONLY) continue;
            it[m] = (PlanItem){padded(a->n), 0, {a->step, 0}, {a->last_use, 0}, 1, i, 0};
            m++;
            continue;
        }
        if (a->flags & ACT_RECOMPUTE)
            it[m] = (PlanItem){padded(a->n), 0, {a->step, T - a->last_use},
                               {a->last_use, T - a->step}, 2, i, 0};
        else if (a->flags & ACT_FWD_ONLY)
            it[m] = (PlanItem){padded(a->n), 0, {a->step, 0}, {a->last_use, 0}, 1, i, 0};
        else
            it[m] = (PlanItem){padded(a->n), 0, {a->step, 0}, {T - a->step, 0}, 1, i, 0};
        m++;
        if (a->flags & ACT_GRAD) {
            it[m] = (PlanItem){padded(a->n), 0, {T - a->last_use, 0}, {T - a->step, 0}, 1, i, 1};
            m++;
        }
    }
    p->units = place_items(it, m);
    p->off_x = xmalloc(n->n_acts * sizeof *p->off_x);
    p->off_d = xmalloc(n->n_acts * sizeof *p->off_d);
    for (size_t i = 0; i < n->n_acts; i++) p->off_x[i] = p->off_d[i] = SIZE_MAX;
    for (size_t k = 0; k < m; k++) {
        if (it[k].grad)
            p->off_d[it[k].act] = it[k].off;
        else
            p->off_x[it[k].act] = it[k].off;
    }
    if (lay == LAYOUT_TRAIN) {
        /* gradients are cleared when their live range starts: at the backward of the last
         * step that reads them */
        p->zero_at = xcalloc((size_t)S, sizeof *p->zero_at);
        p->n_zero_at = xcalloc((size_t)S, sizeof *p->n_zero_at);
        for (size_t i = 0; i < n->n_acts; i++) {
            const Act *a = n->acts[i];
            if (!(a->flags & ACT_GRAD)) continue;
            int s = a->last_use;
            p->zero_at[s] = xrealloc(p->zero_at[s], (size_t)(p->n_zero_at[s] + 1) * sizeof(int));
            p->zero_at[s][p->n_zero_at[s]++] = (int)i;
        }
    }
    xfree(it);
    p->ready = S;
}

static size_t ws_need(const Net *n, size_t B)
{
    size_t w = n->kind == NET_UNET ? unet_ws_floats(n, B) : 0;
    return w;
}

/* Point every Act into the arena for layout lay and batch B (growing the arena if needed). */
static void arena_layout(Net *n, Layout lay, size_t B)
{
    plan_build(n, lay);
    const Plan *p = &n->plan[lay];
    size_t need = p->units * B;
    if (need > n->arena_floats) {
        xfree_aligned(n->arena);
        n->arena = xalloc_aligned(need * sizeof(float));
        n->arena_floats = need;
        n->layout = LAYOUT_NONE;
    }
    if (B > n->labels_cap) {
        xfree(n->labels);
        xfree(n->sample_idx);
        n->labels = xcalloc(B, sizeof *n->labels);
        n->sample_idx = xcalloc(B, sizeof *n->sample_idx);
        n->labels_cap = B;
    }
    size_t w = ws_need(n, B);
    if (w > n->ws_floats) {
        xfree_aligned(n->ws);
        n->ws = xalloc_aligned(w * sizeof(float));
        n->ws_floats = w;
    }
    if (n->layout == lay && n->layout_B == B) return;
    for (size_t i = 0; i < n->n_acts; i++) {
        Act *a = n->acts[i];
        a->x = p->off_x[i] == SIZE_MAX ? NULL : n->arena + p->off_x[i] * B;
        a->d = p->off_d[i] == SIZE_MAX ? NULL : n->arena + p->off_d[i] * B;
    }
    n->layout = lay;
    n->layout_B = B;
}

/* p[0..n) = 0, split among the threads in fixed chunks: the gradient buffers are tens of MB,
 * and one thread clearing them while the others wait was 3-5% of a 2-thread training step */
static void zero_floats(float *p, size_t n)
{
    const size_t chunk = (size_t)1 << 16, nc = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (nc > 1)
    for (size_t c = 0; c < nc; c++) {
        const size_t lo = c * chunk, m = n - lo < chunk ? n - lo : chunk;
        memset(p + lo, 0, m * sizeof(float));
    }
}

void net_backward_step_begin(Net *n, int s)
{
    const Plan *p = &n->plan[LAYOUT_TRAIN];
    for (int k = 0; k < p->n_zero_at[s]; k++) {
        const Act *a = n->acts[p->zero_at[s][k]];
        zero_floats(a->d, n->B * a->n);
    }
}

/* Parameters [lo, ready_hi) have their final gradients: tell the listener (in descending order,
 * each offset once per backward). */
void grad_ready(Net *n, size_t lo)
{
    if (n->ready_fn && lo < n->ready_hi) n->ready_fn(n->ready_ctx, lo, n->ready_hi);
    if (lo < n->ready_hi) n->ready_hi = lo;
}

/* ---- time embedding ---------------------------------------------------------------------- */

void temb_build(Net *n, size_t dim, size_t hidden, int num_classes)
{
    TimeEmbed *e = &n->temb;
    e->dim = dim;
    e->hidden = hidden;
    e->num_classes = num_classes;
    e->dense0 = dense_new(n, "temb.dense0", dim, hidden, INIT_GLOROT);
    e->dense1 = dense_new(n, "temb.dense1", hidden, hidden, INIT_GLOROT);
    if (num_classes > 0) {
        int sh[2] = {num_classes + 1, (int)hidden};
        e->class_table = table_add(&n->tab, INIT_NORMAL, 0, 2, sh, "class_emb.weight");
    }
    e->sinusoid = act_new(n, dim, 0);
    e->hidden_pre = act_new(n, hidden, ACT_GRAD);
    e->hidden_act = act_new(n, hidden, ACT_GRAD);
    e->emb = act_new(n, hidden, ACT_GRAD);
    e->semb = act_new(n, hidden, ACT_GRAD);
}

void temb_forward(Net *n, const float *t, const int *labels, size_t B)
{
    const TimeEmbed *e = &n->temb;
    temb_sinusoid(e->sinusoid->x, t, B, e->dim);
    linear_forward(e->hidden_pre->x, e->sinusoid->x, PP(e->dense0.w), PP(e->dense0.b), B, e->dim,
                   e->hidden);
    silu_forward(e->hidden_act->x, e->hidden_pre->x, B * e->hidden);
    linear_forward(e->emb->x, e->hidden_act->x, PP(e->dense1.w), PP(e->dense1.b), B, e->hidden,
                   e->hidden);
    if (e->num_classes > 0) {
        for (size_t b = 0; b < B; b++) {
            int l = labels ? labels[b] : -1;
            ASSERT(l >= -1 && l < e->num_classes);
            n->labels[b] = l;
        }
        embed_forward(e->emb->x, PP(e->class_table), n->labels, e->num_classes, B, e->hidden);
    }
    silu_forward(e->semb->x, e->emb->x, B * e->hidden);
}

void temb_backward(Net *n, size_t B)
{
    const TimeEmbed *e = &n->temb;
    silu_backward(e->emb->d, e->semb->d, e->emb->x, B * e->hidden);
    if (e->num_classes > 0)
        embed_backward(GG(e->class_table), e->emb->d, n->labels, e->num_classes, B, e->hidden);
    linear_backward(e->hidden_act->d, GG(e->dense1.w), GG(e->dense1.b), e->emb->d,
                    e->hidden_act->x, PP(e->dense1.w), B, e->hidden, e->hidden);
    silu_backward(e->hidden_pre->d, e->hidden_act->d, e->hidden_pre->x, B * e->hidden);
    linear_backward(NULL, GG(e->dense0.w), GG(e->dense0.b), e->hidden_pre->d, e->sinusoid->x,
                    PP(e->dense0.w), B, e->dim, e->hidden);
}

/* ---- configuration checks and building ------------------------------------------------------ */

int net_config_check(const NetConfig *c)
{
    if (c->kind == NET_UNET) return unet_config_check(&c->unet);
    if (c->kind == NET_MLP) return mlp_config_check(&c->mlp);
    return ERR(ERR_SPEC, "model: unknown network kind %d", (int)c->kind);
}

static void net_free_structure(Net *n)
{
    if (n->kind == NET_UNET) unet_free(n);
    if (n->kind == NET_MLP) mlp_free(n);
    for (size_t i = 0; i < n->n_acts; i++) xfree(n->acts[i]);
    xfree(n->acts);
    for (int l = 0; l < 3; l++) plan_free(&n->plan[l]);
    xfree(n->tab.e);
    xfree(n->tab.init);
    xfree(n->tab.fan);
    xfree(n->labels);
    xfree(n->sample_idx);
}

/* the structure only (table, Acts, steps); no buffers */
static Net *net_build(const NetConfig *cfg)
{
    if (net_config_check(cfg) != ERR_OK) return NULL;
    Net *n = xcalloc(1, sizeof *n);
    n->kind = cfg->kind;
    n->threads = omp_get_max_threads();
    if (cfg->kind == NET_UNET) {
        n->ucfg = cfg->unet;
        n->dropout = cfg->unet.dropout;
        unet_build(n);
    } else {
        n->mcfg = cfg->mlp;
        mlp_build(n);
    }
    return n;
}

static void net_build_free(Net *n)
{
    net_free_structure(n);
    xfree(n);
}

Net *net_create(const NetConfig *cfg)
{
    Net *n = net_build(cfg);
    if (!n) return NULL;
    n->params = xalloc_aligned(n->tab.total * sizeof(float));
    n->grads = xalloc_aligned(n->tab.total * sizeof(float));
    return n;
}

Net *net_create_unet(const UNetConfig *cfg)
{
    NetConfig c = {.kind = NET_UNET, .unet = *cfg};
    return net_create(&c);
}

Net *net_create_mlp(const MLPConfig *cfg)
{
    NetConfig c = {.kind = NET_MLP, .mlp = *cfg};
    return net_create(&c);
}

void net_destroy(Net **pn)
{
    if (!pn || !*pn) return;
    Net *n = *pn;
    net_free_structure(n);
    xfree_aligned(n->params);
    xfree_aligned(n->grads);
    xfree_aligned(n->arena);
    xfree_aligned(n->ws);
    xfree(n);
    *pn = NULL;
}

size_t net_count_params(const NetConfig *cfg)
{
    Net *n = net_build(cfg);
    if (!n) return 0;
    size_t p = n->tab.total;
    net_build_free(n);
    return p;
}

double net_flops_per_sample(const NetConfig *cfg)
{
    Net *n = net_build(cfg);
    if (!n) return 0.0;
    double f = n->flops;
    net_build_free(n);
    return f;
}

size_t unet_count_params(const UNetConfig *cfg)
{
    NetConfig c = {.kind = NET_UNET, .unet = *cfg};
    return net_count_params(&c);
}

double unet_flops_per_sample(const UNetConfig *cfg)
{
    NetConfig c = {.kind = NET_UNET, .unet = *cfg};
    return net_flops_per_sample(&c);
}

size_t mlp_count_params(const MLPConfig *cfg)
{
    NetConfig c = {.kind = NET_MLP, .mlp = *cfg};
    return net_count_params(&c);
}

double mlp_flops_per_sample(const MLPConfig *cfg)
{
    NetConfig c = {.kind = NET_MLP, .mlp = *cfg};
    return net_flops_per_sample(&c);
}

static void memory_of(Net *n, size_t B, int ema, NetMemory *m)
{
    plan_build(n, LAYOUT_TRAIN);
    m->params = 2 * n->tab.total * sizeof(float);
    m->optimizer = (ema ? 3 : 2) * n->tab.total * sizeof(float);
    m->activations = n->plan[LAYOUT_TRAIN].units * B * sizeof(float);
    m->workspace = ws_need(n, B) * sizeof(float);
    m->total = m->params + m->optimizer + m->activations + m->workspace;
}

int net_memory_estimate(const NetConfig *cfg, size_t B, int threads, int ema, NetMemory *m)
{
    memset(m, 0, sizeof *m);
    Net *n = net_build(cfg);
    if (!n) return (int)err_code();
    n->threads = threads > 0 ? threads : omp_get_max_threads();
    memory_of(n, B, ema, m);
    net_build_free(n);
    return ERR_OK;
}

/* ---- accessors ----------------------------------------------------------------------------- */

NetKind net_kind(const Net *n) { return n->kind; }

const ParamEntry *net_param_table(const Net *n, size_t *n_tensors)
{
    if (n_tensors) *n_tensors = n->tab.n;
    return n->tab.e;
}

size_t net_num_params(const Net *n) { return n->tab.total; }
float *net_params(Net *n) { return n->params; }
float *net_grads(Net *n) { return n->grads; }

size_t net_sample_floats(const Net *n) { return n->xin->n; }

size_t net_activation_bytes(const Net *n)
{
    return (n->arena_floats + n->ws_floats) * sizeof(float);
}

void net_set_threads(Net *n, int t) { n->threads = t > 0 ? t : 1; }

void net_zero_grad(Net *n) { memset(n->grads, 0, n->tab.total * sizeof(float)); }

void net_init_params(Net *n, uint64_t seed)
{
    for (size_t i = 0; i < n->tab.n; i++) {
        const ParamEntry *e = &n->tab.e[i];
        float *p = n->params + e->offset;
        Rng r;
        rng_init(&r, seed, rng_stream(RNG_P_INIT, i), 0, 0);
        switch ((InitKind)n->tab.init[i]) {
        case INIT_GLOROT: {
            double lim = sqrt(6.0 / n->tab.fan[i]);
            for (size_t k = 0; k < e->count; k++)
                p[k] = (float)((2.0 * rng_uniform(&r) - 1.0) * lim);
            break;
        }
        case INIT_ZERO: memset(p, 0, e->count * sizeof(float)); break;
        case INIT_ONE:
            for (size_t k = 0; k < e->count; k++) p[k] = 1.0f;
            break;
        case INIT_NORMAL:
            for (size_t k = 0; k < e->count; k++) p[k] = (float)rng_normal(&r);
            break;
        }
    }
}

/* ---- forward / backward ------------------------------------------------------------------ */

static void run_forward(Net *n, Layout lay, const float *x, const float *t, const int *labels,
                        const uint64_t *sample_idx, size_t B, float *out)
{
    ASSERT(B > 0);
    int saved = omp_get_max_threads();
    omp_set_num_threads(n->threads);
    arena_layout(n, lay, B);
    if (sample_idx) memcpy(n->sample_idx, sample_idx, B * sizeof *sample_idx);
    n->B = B;
    n->pass = lay;
    memcpy(n->xin->x, x, B * n->xin->n * sizeof(float));
    temb_forward(n, t, labels, B);
    if (n->kind == NET_UNET)
        unet_forward(n, B);
    else
        mlp_forward(n, B);
    memcpy(out, n->y->x, B * n->y->n * sizeof(float));
    omp_set_num_threads(saved);
}

void net_forward(Net *n, const float *x, const float *t, size_t B, const NetTrainOpts *o,
                 float *out)
{
    static const NetTrainOpts none = {0};
    if (!o) o = &none;
    n->dropout_on = o->dropout && n->dropout > 0.0f;
    ASSERT(!n->dropout_on || o->sample_idx);
    n->seed = o->seed;
    n->dstep = o->step;
    run_forward(n, LAYOUT_TRAIN, x, t, o->labels, n->dropout_on ? o->sample_idx : NULL, B, out);
    n->have_fwd = 1;
}

void net_infer(Net *n, const float *x, const float *t, const int *labels, size_t B, float *out)
{
    n->dropout_on = 0;
    n->have_fwd = 0; /* the inference layout reuses the training forward's memory */
    run_forward(n, LAYOUT_INFER, x, t, labels, NULL, B, out);
}

void net_backward(Net *n, const float *dout)
{
    ASSERT(n->have_fwd && n->layout == LAYOUT_TRAIN && n->layout_B == n->B);
    const size_t B = n->B;
    int saved = omp_get_max_threads();
    omp_set_num_threads(n->threads);
    n->dout = dout;
    n->ready_hi = n->tab.total;
    if (n->kind == NET_UNET)
        unet_backward(n, B);
    else
        mlp_backward(n, B);
    /* step 0: the input layer's backward ran in the kind's code; the embedding ends it */
    temb_backward(n, B);
    grad_ready(n, 0);
    n->dout = NULL;
    omp_set_num_threads(saved);
}

void net_set_grad_ready(Net *n, NetGradReadyFn fn, void *ctx)
{
    n->ready_fn = fn;
    n->ready_ctx = ctx;
}

const float *net_input_grad(const Net *n)
{
    return n->have_fwd && n->layout == LAYOUT_TRAIN ? n->xin->d : NULL;
}
