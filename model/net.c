/* model/net.c - parameter table, activation arena, the U-Net and the MLP.
 *
 * Building a network registers, in forward order, every parameter tensor (into the table) and
 * every activation (into the arena registry); offsets are resolved afterwards. The forward pass
 * walks a list of blocks, the backward pass walks it in reverse (explicit call lists, backward
 * accumulates: CONTRIBUTING.md, Model code). Every activation has a value buffer and, when it
 * is on the gradient path, a gradient buffer of the same shape; gradients of activations are
 * cleared at the start of each backward pass.
 */
#include "model/net.h"
#include "model/attention.h"
#include "model/conv2d.h"
#include "model/groupnorm.h"
#include "model/linear.h"
#include "model/ops.h"
#include "core/err.h"
#include "core/mem.h"
#include "core/rng.h"

#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- parameter table ------------------------------------------------------------------------ */

typedef enum { INIT_GLOROT = 0, INIT_ZERO, INIT_ONE, INIT_NORMAL } InitKind;

typedef struct {
    ParamEntry *e;
    int *init;
    double *fan; /* fan_in + fan_out for Glorot */
    size_t n, cap, total;
} Table;

static size_t table_add(Table *t, InitKind init, double fan, int ndim, const int *shape,
                        const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static size_t table_add(Table *t, InitKind init, double fan, int ndim, const int *shape,
                        const char *fmt, ...)
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

/* ---- activations --------------------------------------------------------------------------- */

typedef enum { GRAD_NONE = 0, GRAD_KEEP = 1, GRAD_LOCAL = 2 } GradKind;

/* An activation: value and (when on the gradient path) gradient, views into the arenas.
 * GRAD_KEEP gradients live for the whole backward pass (block outputs, skips, embeddings);
 * GRAD_LOCAL ones are only used inside their block's backward, so every block's local
 * gradients share one region, cleared when the block's backward starts. */
typedef struct {
    float *x, *d; /* (B, n); d NULL for GRAD_NONE */
    size_t n;     /* floats per sample */
    int grad;     /* GradKind */
} Act;

#define BLOCK_MAX_LOCAL 12

/* ---- layer parameter handles (offsets into the flat buffers) -------------------------------- */

typedef struct {
    size_t w, b;
    Conv2dShape s;
} Conv;

typedef struct {
    size_t g, b;
    size_t C, G;
} Norm;

typedef struct {
    size_t w, b;
    size_t in, out;
} Dense;

typedef enum { BLK_RES = 1, BLK_ATTN, BLK_DOWN, BLK_UP, BLK_CONCAT } BlockKind;

typedef struct {
    BlockKind kind;
    size_t p_lo;   /* first parameter offset of the block (its tensors are contiguous) */
    Act *in, *in2; /* inputs (in2: the skip of a concat) */
    Act *out;
    size_t HW;
    /* ResBlock */
    Norm n1, n2;
    Conv c1, c2, nin;
    Dense tp;
    int has_nin;
    uint32_t rng_block;
    Act *n1o, *a1, *h1, *tpo, *n2o, *a2, *drop, *mask, *h2, *sk, *st1, *st2;
    /* AttnBlock (uses n1, n1o, st1) */
    Conv qkv, proj;
    size_t heads;
    Act *qkvo, *att, *ao, *po;
    /* Down / Up (c1), Up: up = upsampled input */
    Act *up;
    Act *loc[BLOCK_MAX_LOCAL]; /* the GRAD_LOCAL activations */
    int nloc;
} Block;

struct Net {
    NetKind kind;
    NetGradReadyFn ready_fn; /* see net_set_grad_ready */
    void *ready_ctx;
    size_t ready_hi;         /* gradients in [ready_hi, total) reported final */
    UNetConfig ucfg;
    MLPConfig mcfg;
    Table tab;
    float *params, *grads;
    int threads;

    Act **acts;
    size_t n_acts, cap_acts;
    size_t Bcap;
    float *arena, *darena;
    size_t arena_floats, darena_floats;
    float *ws;
    size_t ws_floats;

    /* what the last forward saw */
    size_t B;
    int training, have_fwd;
    int *labels;
    float dropout;

    /* time / class embedding (both nets) */
    size_t temb_dim, temb_hidden;
    Dense td0, td1;
    size_t cls; /* class table offset */
    int num_classes;
    Act *tsin, *t0, *t0a, *emb, *semb;

    /* U-Net */
    Act *xin;
    Conv conv_in;
    Act *h0;
    Block **blk;
    size_t n_blk, cap_blk;
    Norm nout;
    Conv conv_out;
    Act *no, *na, *nost, *y;
    double flops;

    /* MLP */
    Dense *ml, *mt; /* n_layers hidden layers and their time projections */
    Dense mout;
    Act **mz, **ma, **mtp;
};

static Act *act_new(Net *n, size_t per_sample, int grad)
{
    Act *a = xcalloc(1, sizeof *a);
    a->n = per_sample;
    a->grad = grad;
    if (n->n_acts == n->cap_acts) {
        n->cap_acts = n->cap_acts ? 2 * n->cap_acts : 128;
        n->acts = xrealloc(n->acts, n->cap_acts * sizeof *n->acts);
    }
    n->acts[n->n_acts++] = a;
    return a;
}

static Act *loc_new(Net *n, Block *b, size_t per_sample)
{
    ASSERT(b->nloc < BLOCK_MAX_LOCAL);
    Act *a = act_new(n, per_sample, GRAD_LOCAL);
    b->loc[b->nloc++] = a;
    return a;
}

static Block *blk_new(Net *n, BlockKind kind)
{
    Block *b = xcalloc(1, sizeof *b);
    b->kind = kind;
    b->p_lo = n->tab.total;
    if (n->n_blk == n->cap_blk) {
        n->cap_blk = n->cap_blk ? 2 * n->cap_blk : 64;
        n->blk = xrealloc(n->blk, n->cap_blk * sizeof *n->blk);
    }
    n->blk[n->n_blk++] = b;
    return b;
}

static Conv conv_new(Net *n, const char *name, Conv2dShape s, InitKind init)
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

static Dense dense_new(Net *n, const char *name, size_t in, size_t out, InitKind init)
{
    Dense d = {0, 0, in, out};
    int shw[2] = {(int)out, (int)in}, shb[1] = {(int)out};
    d.w = table_add(&n->tab, init, (double)(in + out), 2, shw, "%s.weight", name);
    d.b = table_add(&n->tab, INIT_ZERO, 0, 1, shb, "%s.bias", name);
    n->flops += 2.0 * (double)in * (double)out;
    return d;
}

static Norm norm_new(Net *n, const char *name, size_t C, size_t G)
{
    Norm m = {0, 0, C, G};
    int sh[1] = {(int)C};
    m.g = table_add(&n->tab, INIT_ONE, 0, 1, sh, "%s.weight", name);
    m.b = table_add(&n->tab, INIT_ZERO, 0, 1, sh, "%s.bias", name);
    return m;
}

/* ---- configuration checks ------------------------------------------------------------------ */

int unet_config_check(const UNetConfig *c)
{
    if (c->in_ch < 1) return ERR(ERR_SPEC, "model: in_ch must be >= 1, got %d", c->in_ch);
    if (c->ch < 1) return ERR(ERR_SPEC, "model: base channels must be >= 1, got %d", c->ch);
    if (c->n_mult < 1 || c->n_mult > UNET_MAX_LEVELS)
        return ERR(ERR_SPEC, "model: ch_mult must have 1 to %d entries, got %d", UNET_MAX_LEVELS,
                   c->n_mult);
    if (c->num_res_blocks < 1)
        return ERR(ERR_SPEC, "model: num_res_blocks must be >= 1, got %d", c->num_res_blocks);
    if (c->n_attn < 0 || c->n_attn > UNET_MAX_ATTN)
        return ERR(ERR_SPEC, "model: at most %d attention resolutions, got %d", UNET_MAX_ATTN,
                   c->n_attn);
    if (c->heads < 1) return ERR(ERR_SPEC, "model: heads must be >= 1, got %d", c->heads);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return ERR(ERR_SPEC, "model: dropout must be in [0, 1), got %g", (double)c->dropout);
    if (c->groups < 1) return ERR(ERR_SPEC, "model: groups must be >= 1, got %d", c->groups);
    if (c->temb_dim < 4 || c->temb_hidden < 1)
        return ERR(ERR_SPEC, "model: temb_dim must be >= 4 and temb_hidden >= 1 (got %d, %d)",
                   c->temb_dim, c->temb_hidden);
    if (c->num_classes < 0)
        return ERR(ERR_SPEC, "model: num_classes must be >= 0, got %d", c->num_classes);
    int div = 1 << (c->n_mult - 1);
    if (c->img_size < 1 || c->img_size % div)
        return ERR(ERR_SPEC,
                   "model: image size %d must be a positive multiple of %d (2^(levels-1) for %d "
                   "levels)",
                   c->img_size, div, c->n_mult);
    for (int i = 0; i < c->n_mult; i++) {
        if (c->ch_mult[i] < 1)
            return ERR(ERR_SPEC, "model: ch_mult[%d] must be >= 1, got %d", i, c->ch_mult[i]);
        int C = c->ch * c->ch_mult[i];
        if (C % c->groups)
            return ERR(ERR_SPEC, "model: GroupNorm groups %d do not divide %d channels (level %d)",
                       c->groups, C, i);
        if (C % c->heads)
            return ERR(ERR_SPEC, "model: %d attention heads do not divide %d channels (level %d)",
                       c->heads, C, i);
    }
    if (c->ch % c->groups)
        return ERR(ERR_SPEC, "model: GroupNorm groups %d do not divide base channels %d",
                   c->groups, c->ch);
    for (int a = 0; a < c->n_attn; a++) {
        int ok = 0;
        for (int i = 0; i < c->n_mult; i++) ok |= (c->img_size >> i) == c->attn_res[a];
        if (!ok)
            return ERR(ERR_SPEC, "model: attention resolution %d is not one of the U-Net's levels "
                       "(%d >> i)", c->attn_res[a], c->img_size);
    }
    return ERR_OK;
}

int mlp_config_check(const MLPConfig *c)
{
    if (c->in_dim < 1) return ERR(ERR_SPEC, "model: MLP in_dim must be >= 1, got %d", c->in_dim);
    if (c->hidden < 1) return ERR(ERR_SPEC, "model: MLP hidden must be >= 1, got %d", c->hidden);
    if (c->n_layers < 1)
        return ERR(ERR_SPEC, "model: MLP n_layers must be >= 1, got %d", c->n_layers);
    if (c->temb_dim < 4 || c->temb_hidden < 1)
        return ERR(ERR_SPEC, "model: temb_dim must be >= 4 and temb_hidden >= 1 (got %d, %d)",
                   c->temb_dim, c->temb_hidden);
    if (c->num_classes < 0)
        return ERR(ERR_SPEC, "model: num_classes must be >= 0, got %d", c->num_classes);
    return ERR_OK;
}

int net_config_check(const NetConfig *c)
{
    if (c->kind == NET_UNET) return unet_config_check(&c->unet);
    if (c->kind == NET_MLP) return mlp_config_check(&c->mlp);
    return ERR(ERR_SPEC, "model: unknown network kind %d", (int)c->kind);
}

/* ---- building ------------------------------------------------------------------------------ */

static void build_temb(Net *n, size_t temb_dim, size_t temb_hidden, int num_classes)
{
    n->temb_dim = temb_dim;
    n->temb_hidden = temb_hidden;
    n->num_classes = num_classes;
    n->td0 = dense_new(n, "temb.dense0", temb_dim, temb_hidden, INIT_GLOROT);
    n->td1 = dense_new(n, "temb.dense1", temb_hidden, temb_hidden, INIT_GLOROT);
    if (num_classes > 0) {
        int sh[2] = {num_classes + 1, (int)temb_hidden};
        n->cls = table_add(&n->tab, INIT_NORMAL, 0, 2, sh, "class_emb.weight");
    }
    n->tsin = act_new(n, temb_dim, GRAD_NONE);
    n->t0 = act_new(n, temb_hidden, GRAD_KEEP);
    n->t0a = act_new(n, temb_hidden, GRAD_KEEP);
    n->emb = act_new(n, temb_hidden, GRAD_KEEP);
    n->semb = act_new(n, temb_hidden, GRAD_KEEP);
}

static int has_attn(const UNetConfig *c, int res)
{
    for (int a = 0; a < c->n_attn; a++)
        if (c->attn_res[a] == res) return 1;
    return 0;
}

static Act *build_res(Net *n, const char *name, Act *in, int ic, int oc, int H)
{
    const UNetConfig *c = &n->ucfg;
    char buf[2 * PARAM_NAME_MAX];
    Block *b = blk_new(n, BLK_RES);
    size_t HW = (size_t)H * H, G = (size_t)c->groups;
    b->in = in;
    b->HW = HW;
    snprintf(buf, sizeof buf, "%s.norm1", name);
    b->n1 = norm_new(n, buf, (size_t)ic, G);
    snprintf(buf, sizeof buf, "%s.conv1", name);
    b->c1 = conv_new(n, buf, conv2d_shape(ic, oc, 3, 1, 1, H, H), INIT_GLOROT);
    snprintf(buf, sizeof buf, "%s.temb_proj", name);
    b->tp = dense_new(n, buf, (size_t)c->temb_hidden, (size_t)oc, INIT_GLOROT);
    snprintf(buf, sizeof buf, "%s.norm2", name);
    b->n2 = norm_new(n, buf, (size_t)oc, G);
    snprintf(buf, sizeof buf, "%s.conv2", name);
    b->c2 = conv_new(n, buf, conv2d_shape(oc, oc, 3, 1, 1, H, H), INIT_ZERO);
    b->has_nin = ic != oc;
    if (b->has_nin) {
        snprintf(buf, sizeof buf, "%s.nin_shortcut", name);
        b->nin = conv_new(n, buf, conv2d_shape(ic, oc, 1, 1, 0, H, H), INIT_GLOROT);
    }
    b->n1o = loc_new(n, b, (size_t)ic * HW);
    b->a1 = loc_new(n, b, (size_t)ic * HW);
    b->st1 = act_new(n, 2 * G, GRAD_NONE);
    b->h1 = loc_new(n, b, (size_t)oc * HW);
    b->tpo = loc_new(n, b, (size_t)oc);
    b->n2o = loc_new(n, b, (size_t)oc * HW);
    b->a2 = loc_new(n, b, (size_t)oc * HW);
    b->st2 = act_new(n, 2 * G, GRAD_NONE);
    if (c->dropout > 0.0f) {
        b->drop = loc_new(n, b, (size_t)oc * HW);
        b->mask = act_new(n, (size_t)oc * HW, GRAD_NONE);
    }
    b->h2 = loc_new(n, b, (size_t)oc * HW);
    if (b->has_nin) b->sk = loc_new(n, b, (size_t)oc * HW);
    b->out = act_new(n, (size_t)oc * HW, GRAD_KEEP);
    return b->out;
}

static Act *build_attn(Net *n, const char *name, Act *in, int C, int H)
{
    const UNetConfig *c = &n->ucfg;
    char buf[2 * PARAM_NAME_MAX];
    Block *b = blk_new(n, BLK_ATTN);
    size_t HW = (size_t)H * H, G = (size_t)c->groups;
    b->in = in;
    b->HW = HW;
    b->heads = (size_t)c->heads;
    snprintf(buf, sizeof buf, "%s.norm", name);
    b->n1 = norm_new(n, buf, (size_t)C, G);
    snprintf(buf, sizeof buf, "%s.qkv", name);
    b->qkv = conv_new(n, buf, conv2d_shape(C, 3 * C, 1, 1, 0, H, H), INIT_GLOROT);
    snprintf(buf, sizeof buf, "%s.proj_out", name);
    b->proj = conv_new(n, buf, conv2d_shape(C, C, 1, 1, 0, H, H), INIT_ZERO);
    n->flops += 4.0 * (double)HW * (double)HW * (double)C; /* q k^T and P v */
    b->n1o = loc_new(n, b, (size_t)C * HW);
    b->st1 = act_new(n, 2 * G, GRAD_NONE);
    b->qkvo = loc_new(n, b, 3 * (size_t)C * HW);
    b->att = act_new(n, b->heads * HW * HW, GRAD_NONE);
    b->ao = loc_new(n, b, (size_t)C * HW);
    b->po = loc_new(n, b, (size_t)C * HW);
    b->out = act_new(n, (size_t)C * HW, GRAD_KEEP);
    return b->out;
}

static Act *build_down(Net *n, const char *name, Act *in, int C, int H)
{
    char buf[2 * PARAM_NAME_MAX];
    Block *b = blk_new(n, BLK_DOWN);
    b->in = in;
    snprintf(buf, sizeof buf, "%s.conv", name);
    b->c1 = conv_new(n, buf, conv2d_shape_same(C, C, 3, 2, H, H), INIT_GLOROT);
    b->out = act_new(n, (size_t)C * b->c1.s.OH * b->c1.s.OW, GRAD_KEEP);
    return b->out;
}

static Act *build_up(Net *n, const char *name, Act *in, int C, int H)
{
    char buf[2 * PARAM_NAME_MAX];
    Block *b = blk_new(n, BLK_UP);
    b->in = in;
    b->HW = (size_t)H * H;
    snprintf(buf, sizeof buf, "%s.conv", name);
    b->c1 = conv_new(n, buf, conv2d_shape(C, C, 3, 1, 1, 2 * H, 2 * H), INIT_GLOROT);
    b->up = loc_new(n, b, (size_t)C * 4 * b->HW);
    b->out = act_new(n, (size_t)C * 4 * b->HW, GRAD_KEEP);
    return b->out;
}

static Act *build_concat(Net *n, Act *h, Act *skip, int C1, int C2, int H)
{
    Block *b = blk_new(n, BLK_CONCAT);
    b->in = h;
    b->in2 = skip;
    b->HW = (size_t)H * H;
    b->n1.C = (size_t)C1; /* channel counts, reused fields */
    b->n2.C = (size_t)C2;
    b->out = act_new(n, (size_t)(C1 + C2) * b->HW, GRAD_KEEP);
    return b->out;
}

static void build_unet(Net *n)
{
    const UNetConfig *c = &n->ucfg;
    char name[PARAM_NAME_MAX];
    build_temb(n, (size_t)c->temb_dim, (size_t)c->temb_hidden, c->num_classes);
    int H = c->img_size;
    n->xin = act_new(n, (size_t)c->in_ch * H * H, GRAD_KEEP);
    n->conv_in = conv_new(n, "conv_in", conv2d_shape(c->in_ch, c->ch, 3, 1, 1, H, H), INIT_GLOROT);
    n->h0 = act_new(n, (size_t)c->ch * H * H, GRAD_KEEP);

    Act *hs[UNET_MAX_LEVELS * 16];
    int hs_ch[UNET_MAX_LEVELS * 16], nhs = 0;
    hs[nhs] = n->h0;
    hs_ch[nhs++] = c->ch;
    Act *h = n->h0;
    int C = c->ch;
    for (int i = 0; i < c->n_mult; i++) {
        int oc = c->ch * c->ch_mult[i];
        for (int r = 0; r < c->num_res_blocks; r++) {
            snprintf(name, sizeof name, "down.%d.block.%d", i, r);
            h = build_res(n, name, h, C, oc, H);
            C = oc;
            if (has_attn(c, H)) {
                snprintf(name, sizeof name, "down.%d.attn.%d", i, r);
                h = build_attn(n, name, h, C, H);
            }
            hs[nhs] = h;
            hs_ch[nhs++] = C;
        }
        if (i != c->n_mult - 1) {
            snprintf(name, sizeof name, "down.%d.downsample", i);
            h = build_down(n, name, h, C, H);
            H /= 2;
            hs[nhs] = h;
            hs_ch[nhs++] = C;
        }
    }
    h = build_res(n, "mid.block_1", h, C, C, H);
    h = build_attn(n, "mid.attn_1", h, C, H);
    h = build_res(n, "mid.block_2", h, C, C, H);
    for (int i = c->n_mult - 1; i >= 0; i--) {
        int oc = c->ch * c->ch_mult[i];
        for (int r = 0; r <= c->num_res_blocks; r++) {
            nhs--;
            h = build_concat(n, h, hs[nhs], C, hs_ch[nhs], H);
            snprintf(name, sizeof name, "up.%d.block.%d", i, r);
            h = build_res(n, name, h, C + hs_ch[nhs], oc, H);
            C = oc;
            if (has_attn(c, H)) {
                snprintf(name, sizeof name, "up.%d.attn.%d", i, r);
                h = build_attn(n, name, h, C, H);
            }
        }
        if (i != 0) {
            snprintf(name, sizeof name, "up.%d.upsample", i);
            h = build_up(n, name, h, C, H);
            H *= 2;
        }
    }
    ASSERT(nhs == 0);
    n->nout = norm_new(n, "norm_out", (size_t)C, (size_t)c->groups);
    n->conv_out = conv_new(n, "conv_out", conv2d_shape(C, c->in_ch, 3, 1, 1, H, H), INIT_ZERO);
    n->no = act_new(n, (size_t)C * H * H, GRAD_KEEP);
    n->na = act_new(n, (size_t)C * H * H, GRAD_KEEP);
    n->nost = act_new(n, 2 * (size_t)c->groups, GRAD_NONE);
    n->y = act_new(n, (size_t)c->in_ch * H * H, GRAD_KEEP);
    ASSERT(h == n->blk[n->n_blk - 1]->out && h->n == (size_t)C * H * H);

    /* dropout layers take consecutive ranges of each sample's RNG sequence */
    uint32_t blk = 0;
    for (size_t i = 0; i < n->n_blk; i++) {
        Block *b = n->blk[i];
        if (b->kind == BLK_RES && b->mask) {
            b->rng_block = blk;
            blk += dropout_rng_blocks(b->mask->n);
        }
    }
}

static void build_mlp(Net *n)
{
    const MLPConfig *c = &n->mcfg;
    char name[PARAM_NAME_MAX];
    build_temb(n, (size_t)c->temb_dim, (size_t)c->temb_hidden, c->num_classes);
    size_t L = (size_t)c->n_layers, Hd = (size_t)c->hidden;
    n->xin = act_new(n, (size_t)c->in_dim, GRAD_KEEP);
    n->ml = xcalloc(L, sizeof *n->ml);
    n->mt = xcalloc(L, sizeof *n->mt);
    n->mz = xcalloc(L, sizeof *n->mz);
    n->ma = xcalloc(L, sizeof *n->ma);
    n->mtp = xcalloc(L, sizeof *n->mtp);
    for (size_t i = 0; i < L; i++) {
        snprintf(name, sizeof name, "layers.%zu.linear", i);
        n->ml[i] = dense_new(n, name, i == 0 ? (size_t)c->in_dim : Hd, Hd, INIT_GLOROT);
        snprintf(name, sizeof name, "layers.%zu.temb_proj", i);
        n->mt[i] = dense_new(n, name, (size_t)c->temb_hidden, Hd, INIT_GLOROT);
        n->mz[i] = act_new(n, Hd, GRAD_KEEP);
        n->mtp[i] = act_new(n, Hd, GRAD_KEEP);
        n->ma[i] = act_new(n, Hd, GRAD_KEEP);
    }
    n->mout = dense_new(n, "out", Hd, (size_t)c->in_dim, INIT_GLOROT);
    n->y = act_new(n, (size_t)c->in_dim, GRAD_KEEP);
}

static Net *net_alloc(NetKind kind)
{
    Net *n = xcalloc(1, sizeof *n);
    n->kind = kind;
    n->threads = omp_get_max_threads();
    return n;
}

static void net_finish(Net *n)
{
    n->params = xalloc_aligned(n->tab.total * sizeof(float));
    n->grads = xalloc_aligned(n->tab.total * sizeof(float));
}

static void net_free_structure(Net *n)
{
    for (size_t i = 0; i < n->n_acts; i++) xfree(n->acts[i]);
    for (size_t i = 0; i < n->n_blk; i++) xfree(n->blk[i]);
    xfree(n->acts);
    xfree(n->blk);
    xfree(n->tab.e);
    xfree(n->tab.init);
    xfree(n->tab.fan);
    xfree(n->ml);
    xfree(n->mt);
    xfree(n->mz);
    xfree(n->ma);
    xfree(n->mtp);
    xfree(n->labels);
}

static Net *unet_build(const UNetConfig *cfg)
{
    if (unet_config_check(cfg) != ERR_OK) return NULL;
    Net *n = net_alloc(NET_UNET);
    n->ucfg = *cfg;
    n->dropout = cfg->dropout;
    build_unet(n);
    return n;
}

static Net *mlp_build(const MLPConfig *cfg)
{
    if (mlp_config_check(cfg) != ERR_OK) return NULL;
    Net *n = net_alloc(NET_MLP);
    n->mcfg = *cfg;
    build_mlp(n);
    return n;
}

Net *net_create_unet(const UNetConfig *cfg)
{
    Net *n = unet_build(cfg);
    if (n) net_finish(n);
    return n;
}

Net *net_create_mlp(const MLPConfig *cfg)
{
    Net *n = mlp_build(cfg);
    if (n) net_finish(n);
    return n;
}

Net *net_create(const NetConfig *cfg)
{
    if (cfg->kind == NET_UNET) return net_create_unet(&cfg->unet);
    if (cfg->kind == NET_MLP) return net_create_mlp(&cfg->mlp);
    net_config_check(cfg);
    return NULL;
}

void net_destroy(Net **pn)
{
    if (!pn || !*pn) return;
    Net *n = *pn;
    net_free_structure(n);
    xfree_aligned(n->params);
    xfree_aligned(n->grads);
    xfree_aligned(n->arena);
    xfree_aligned(n->darena);
    xfree_aligned(n->ws);
    xfree(n);
    *pn = NULL;
}

size_t unet_count_params(const UNetConfig *cfg)
{
    Net *n = unet_build(cfg);
    if (!n) return 0;
    size_t p = n->tab.total;
    net_free_structure(n);
    xfree(n);
    return p;
}

double unet_flops_per_sample(const UNetConfig *cfg)
{
    Net *n = unet_build(cfg);
    if (!n) return 0.0;
    double f = n->flops;
    net_free_structure(n);
    xfree(n);
    return f;
}

size_t mlp_count_params(const MLPConfig *cfg)
{
    Net *n = mlp_build(cfg);
    if (!n) return 0;
    size_t p = n->tab.total;
    net_free_structure(n);
    xfree(n);
    return p;
}

double mlp_flops_per_sample(const MLPConfig *cfg)
{
    Net *n = mlp_build(cfg);
    if (!n) return 0.0;
    double f = n->flops;
    net_free_structure(n);
    xfree(n);
    return f;
}

size_t net_count_params(const NetConfig *cfg)
{
    if (cfg->kind == NET_UNET) return unet_count_params(&cfg->unet);
    if (cfg->kind == NET_MLP) return mlp_count_params(&cfg->mlp);
    return 0;
}

double net_flops_per_sample(const NetConfig *cfg)
{
    if (cfg->kind == NET_UNET) return unet_flops_per_sample(&cfg->unet);
    if (cfg->kind == NET_MLP) return mlp_flops_per_sample(&cfg->mlp);
    return 0.0;
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
    return (n->arena_floats + n->darena_floats + n->ws_floats) * sizeof(float);
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

/* ---- arena --------------------------------------------------------------------------------- */

static size_t ws_need(const Net *n, size_t B)
{
    size_t w = 0;
    int T = n->threads;
#define WS_MAX(v)                  \
    do {                           \
        size_t v_ = (v);           \
        if (v_ > w) w = v_;        \
    } while (0)
    if (n->kind == NET_UNET) {
        WS_MAX(conv2d_ws_floats(&n->conv_in.s, B, T));
        WS_MAX(conv2d_ws_floats(&n->conv_out.s, B, T));
        for (size_t i = 0; i < n->n_blk; i++) {
            const Block *b = n->blk[i];
            switch (b->kind) {
            case BLK_RES:
                WS_MAX(conv2d_ws_floats(&b->c1.s, B, T));
                WS_MAX(conv2d_ws_floats(&b->c2.s, B, T));
                if (b->has_nin) WS_MAX(conv2d_ws_floats(&b->nin.s, B, T));
                break;
            case BLK_ATTN: WS_MAX(attn_ws_floats(b->HW, T)); break;
            case BLK_DOWN:
            case BLK_UP: WS_MAX(conv2d_ws_floats(&b->c1.s, B, T)); break;
            case BLK_CONCAT: break;
            }
        }
    }
#undef WS_MAX
    return w;
}

static size_t padded(size_t n) { return (n + 15) & ~(size_t)15; }

static void arena_reserve(Net *n, size_t B)
{
    if (B > n->Bcap) {
        size_t per = 0, keep = 0, local = 0;
        for (size_t i = 0; i < n->n_acts; i++) {
            per += padded(n->acts[i]->n);
            if (n->acts[i]->grad == GRAD_KEEP) keep += padded(n->acts[i]->n);
        }
        for (size_t i = 0; i < n->n_blk; i++) {
            size_t l = 0;
            for (int k = 0; k < n->blk[i]->nloc; k++) l += padded(n->blk[i]->loc[k]->n);
            local = l > local ? l : local;
        }
        xfree_aligned(n->arena);
        xfree_aligned(n->darena);
        n->arena_floats = per * B;
        n->darena_floats = (keep + local) * B;
        n->arena = xalloc_aligned(n->arena_floats * sizeof(float));
        n->darena = xalloc_aligned(n->darena_floats * sizeof(float));
        float *p = n->arena, *q = n->darena;
        for (size_t i = 0; i < n->n_acts; i++) {
            Act *a = n->acts[i];
            a->x = p;
            p += padded(a->n) * B;
            a->d = NULL;
            if (a->grad == GRAD_KEEP) {
                a->d = q;
                q += padded(a->n) * B;
            }
        }
        for (size_t i = 0; i < n->n_blk; i++) {
            float *l = q;
            for (int k = 0; k < n->blk[i]->nloc; k++) {
                n->blk[i]->loc[k]->d = l;
                l += padded(n->blk[i]->loc[k]->n) * B;
            }
        }
        xfree(n->labels);
        n->labels = xcalloc(B, sizeof *n->labels);
        n->Bcap = B;
    }
    size_t w = ws_need(n, B);
    if (w > n->ws_floats) {
        xfree_aligned(n->ws);
        n->ws = xalloc_aligned(w * sizeof(float));
        n->ws_floats = w;
    }
}

/* clear the block's local gradients before its backward accumulates into them */
static void blk_zero_local(const Block *b, size_t B)
{
    for (int k = 0; k < b->nloc; k++) memset(b->loc[k]->d, 0, B * b->loc[k]->n * sizeof(float));
}

/* ---- forward / backward helpers ------------------------------------------------------------ */

#define PP(off) (n->params + (off))
#define GG(off) (n->grads + (off))

static void res_forward(Net *n, Block *b, size_t B, const uint64_t *sample_idx, uint64_t seed,
                        uint32_t step)
{
    const size_t ic = b->n1.C, oc = b->n2.C, HW = b->HW, G = b->n1.G;
    groupnorm_forward(b->n1o->x, b->a1->x, b->st1->x, b->st1->x + B * G, b->in->x, PP(b->n1.g),
                      PP(b->n1.b), B, ic, HW, G);
    conv2d_forward(b->h1->x, b->a1->x, PP(b->c1.w), PP(b->c1.b), &b->c1.s, B, n->ws);
    linear_forward(b->tpo->x, n->semb->x, PP(b->tp.w), PP(b->tp.b), B, b->tp.in, oc);
    chan_add_forward(b->h1->x, b->tpo->x, B, oc, HW);
    groupnorm_forward(b->n2o->x, b->a2->x, b->st2->x, b->st2->x + B * G, b->h1->x, PP(b->n2.g),
                      PP(b->n2.b), B, oc, HW, G);
    const float *c2in = b->a2->x;
    if (n->training && b->mask) {
        dropout_forward(b->drop->x, b->mask->x, b->a2->x, n->dropout, B, oc * HW, seed,
                        sample_idx, step, b->rng_block);
        c2in = b->drop->x;
    }
    conv2d_forward(b->h2->x, c2in, PP(b->c2.w), PP(b->c2.b), &b->c2.s, B, n->ws);
    const float *skip = b->in->x;
    if (b->has_nin) {
        conv2d_forward(b->sk->x, b->in->x, PP(b->nin.w), PP(b->nin.b), &b->nin.s, B, n->ws);
        skip = b->sk->x;
    }
    add_forward(b->out->x, skip, b->h2->x, B * oc * HW);
}

static void res_backward(Net *n, Block *b, size_t B)
{
    const size_t ic = b->n1.C, oc = b->n2.C, HW = b->HW, G = b->n1.G;
    const float *dout = b->out->d;
    /* out = skip + h2 */
    if (b->has_nin)
        conv2d_backward(b->in->d, GG(b->nin.w), GG(b->nin.b), dout, b->in->x, PP(b->nin.w),
                        &b->nin.s, B, n->ws);
    else
        add_backward(b->in->d, dout, B * oc * HW);
    /* h2 = conv2(dropout(a2)) */
    int drop = n->training && b->mask;
    conv2d_backward(drop ? b->drop->d : b->a2->d, GG(b->c2.w), GG(b->c2.b), dout,
                    drop ? b->drop->x : b->a2->x, PP(b->c2.w), &b->c2.s, B, n->ws);
    if (drop) dropout_backward(b->a2->d, b->drop->d, b->mask->x, B * oc * HW);
    /* a2 = silu(n2o), n2o = GN2(h1) */
    groupnorm_silu_backward(b->h1->d, GG(b->n2.g), GG(b->n2.b), b->a2->d, b->n2o->x, b->n2o->d,
                            b->h1->x, PP(b->n2.g), b->st2->x, b->st2->x + B * G, B, oc, HW, G);
    /* h1 = conv1(a1) + tp(semb) broadcast */
    chan_add_backward(b->tpo->d, b->h1->d, B, oc, HW);
    linear_backward(n->semb->d, GG(b->tp.w), GG(b->tp.b), b->tpo->d, n->semb->x, PP(b->tp.w), B,
                    b->tp.in, oc);
    conv2d_backward(b->a1->d, GG(b->c1.w), GG(b->c1.b), b->h1->d, b->a1->x, PP(b->c1.w),
                    &b->c1.s, B, n->ws);
    groupnorm_silu_backward(b->in->d, GG(b->n1.g), GG(b->n1.b), b->a1->d, b->n1o->x, b->n1o->d,
                            b->in->x, PP(b->n1.g), b->st1->x, b->st1->x + B * G, B, ic, HW, G);
}

static void attn_block_forward(Net *n, Block *b, size_t B)
{
    const size_t C = b->n1.C, HW = b->HW, G = b->n1.G;
    groupnorm_forward(b->n1o->x, NULL, b->st1->x, b->st1->x + B * G, b->in->x, PP(b->n1.g),
                      PP(b->n1.b), B, C, HW, G);
    conv2d_forward(b->qkvo->x, b->n1o->x, PP(b->qkv.w), PP(b->qkv.b), &b->qkv.s, B, n->ws);
    attn_forward(b->ao->x, b->att->x, b->qkvo->x, B, C, HW, b->heads);
    conv2d_forward(b->po->x, b->ao->x, PP(b->proj.w), PP(b->proj.b), &b->proj.s, B, n->ws);
    add_forward(b->out->x, b->in->x, b->po->x, B * C * HW);
}

static void attn_block_backward(Net *n, Block *b, size_t B)
{
    const size_t C = b->n1.C, HW = b->HW, G = b->n1.G;
    add_backward(b->in->d, b->out->d, B * C * HW);
    conv2d_backward(b->ao->d, GG(b->proj.w), GG(b->proj.b), b->out->d, b->ao->x, PP(b->proj.w),
                    &b->proj.s, B, n->ws);
    attn_backward(b->qkvo->d, b->ao->d, b->qkvo->x, b->att->x, B, C, HW, b->heads, n->ws);
    conv2d_backward(b->n1o->d, GG(b->qkv.w), GG(b->qkv.b), b->qkvo->d, b->n1o->x, PP(b->qkv.w),
                    &b->qkv.s, B, n->ws);
    groupnorm_backward(b->in->d, GG(b->n1.g), GG(b->n1.b), b->n1o->d, b->in->x, PP(b->n1.g),
                       b->st1->x, b->st1->x + B * G, B, C, HW, G);
}

static void temb_forward(Net *n, const float *t, const int *labels, size_t B)
{
    temb_sinusoid(n->tsin->x, t, B, n->temb_dim);
    linear_forward(n->t0->x, n->tsin->x, PP(n->td0.w), PP(n->td0.b), B, n->temb_dim,
                   n->temb_hidden);
    silu_forward(n->t0a->x, n->t0->x, B * n->temb_hidden);
    linear_forward(n->emb->x, n->t0a->x, PP(n->td1.w), PP(n->td1.b), B, n->temb_hidden,
                   n->temb_hidden);
    if (n->num_classes > 0) {
        for (size_t b = 0; b < B; b++) {
            int l = labels ? labels[b] : -1;
            ASSERT(l >= -1 && l < n->num_classes);
            n->labels[b] = l;
        }
        embed_forward(n->emb->x, PP(n->cls), n->labels, n->num_classes, B, n->temb_hidden);
    }
    silu_forward(n->semb->x, n->emb->x, B * n->temb_hidden);
}

static void temb_backward(Net *n, size_t B)
{
    silu_backward(n->emb->d, n->semb->d, n->emb->x, B * n->temb_hidden);
    if (n->num_classes > 0)
        embed_backward(GG(n->cls), n->emb->d, n->labels, n->num_classes, B, n->temb_hidden);
    linear_backward(n->t0a->d, GG(n->td1.w), GG(n->td1.b), n->emb->d, n->t0a->x, PP(n->td1.w), B,
                    n->temb_hidden, n->temb_hidden);
    silu_backward(n->t0->d, n->t0a->d, n->t0->x, B * n->temb_hidden);
    linear_backward(NULL, GG(n->td0.w), GG(n->td0.b), n->t0->d, n->tsin->x, PP(n->td0.w), B,
                    n->temb_dim, n->temb_hidden);
}

static void unet_forward(Net *n, const uint64_t *sample_idx, uint64_t seed, uint32_t step,
                         size_t B)
{
    conv2d_forward(n->h0->x, n->xin->x, PP(n->conv_in.w), PP(n->conv_in.b), &n->conv_in.s, B,
                   n->ws);
    for (size_t i = 0; i < n->n_blk; i++) {
        Block *b = n->blk[i];
        switch (b->kind) {
        case BLK_RES: res_forward(n, b, B, sample_idx, seed, step); break;
        case BLK_ATTN: attn_block_forward(n, b, B); break;
        case BLK_DOWN:
            conv2d_forward(b->out->x, b->in->x, PP(b->c1.w), PP(b->c1.b), &b->c1.s, B, n->ws);
            break;
        case BLK_UP: {
            size_t H = (size_t)b->c1.s.H / 2;
            upsample2x_forward(b->up->x, b->in->x, B, (size_t)b->c1.s.IC, H, H);
            conv2d_forward(b->out->x, b->up->x, PP(b->c1.w), PP(b->c1.b), &b->c1.s, B, n->ws);
            break;
        }
        case BLK_CONCAT:
            concat_forward(b->out->x, b->in->x, b->in2->x, B, b->n1.C, b->n2.C, b->HW);
            break;
        }
    }
    const Act *h = n->blk[n->n_blk - 1]->out;
    const size_t C = n->nout.C, G = n->nout.G, HW = (size_t)n->conv_out.s.H * n->conv_out.s.W;
    groupnorm_forward(n->no->x, n->na->x, n->nost->x, n->nost->x + B * G, h->x, PP(n->nout.g),
                      PP(n->nout.b), B, C, HW, G);
    conv2d_forward(n->y->x, n->na->x, PP(n->conv_out.w), PP(n->conv_out.b), &n->conv_out.s, B,
                   n->ws);
}

/* Parameters [lo, ready_hi) have their final gradients: tell the listener (in descending order,
 * each offset once per backward). */
static void grad_ready(Net *n, size_t lo)
{
    if (n->ready_fn && lo < n->ready_hi) n->ready_fn(n->ready_ctx, lo, n->ready_hi);
    if (lo < n->ready_hi) n->ready_hi = lo;
}

static void unet_backward(Net *n, size_t B)
{
    const Act *h = n->blk[n->n_blk - 1]->out;
    const size_t C = n->nout.C, G = n->nout.G, HW = (size_t)n->conv_out.s.H * n->conv_out.s.W;
    conv2d_backward(n->na->d, GG(n->conv_out.w), GG(n->conv_out.b), n->y->d, n->na->x,
                    PP(n->conv_out.w), &n->conv_out.s, B, n->ws);
    groupnorm_silu_backward(h->d, GG(n->nout.g), GG(n->nout.b), n->na->d, n->no->x, n->no->d,
                            h->x, PP(n->nout.g), n->nost->x, n->nost->x + B * G, B, C, HW, G);
    grad_ready(n, n->nout.g);
    for (size_t i = n->n_blk; i-- > 0;) {
        Block *b = n->blk[i];
        blk_zero_local(b, B);
        switch (b->kind) {
        case BLK_RES: res_backward(n, b, B); break;
        case BLK_ATTN: attn_block_backward(n, b, B); break;
        case BLK_DOWN:
            conv2d_backward(b->in->d, GG(b->c1.w), GG(b->c1.b), b->out->d, b->in->x, PP(b->c1.w),
                            &b->c1.s, B, n->ws);
            break;
        case BLK_UP: {
            size_t H = (size_t)b->c1.s.H / 2;
            conv2d_backward(b->up->d, GG(b->c1.w), GG(b->c1.b), b->out->d, b->up->x, PP(b->c1.w),
                            &b->c1.s, B, n->ws);
            upsample2x_backward(b->in->d, b->up->d, B, (size_t)b->c1.s.IC, H, H);
            break;
        }
        case BLK_CONCAT:
            concat_backward(b->in->d, b->in2->d, b->out->d, B, b->n1.C, b->n2.C, b->HW);
            break;
        }
        grad_ready(n, b->p_lo);
    }
    conv2d_backward(n->xin->d, GG(n->conv_in.w), GG(n->conv_in.b), n->h0->d, n->xin->x,
                    PP(n->conv_in.w), &n->conv_in.s, B, n->ws);
    grad_ready(n, n->conv_in.w);
}

static void mlp_forward(Net *n, size_t B)
{
    const MLPConfig *c = &n->mcfg;
    const Act *h = n->xin;
    for (int i = 0; i < c->n_layers; i++) {
        Dense *l = &n->ml[i], *t = &n->mt[i];
        linear_forward(n->mz[i]->x, h->x, PP(l->w), PP(l->b), B, l->in, l->out);
        linear_forward(n->mtp[i]->x, n->semb->x, PP(t->w), PP(t->b), B, t->in, t->out);
        add_forward(n->mz[i]->x, n->mz[i]->x, n->mtp[i]->x, B * l->out);
        silu_forward(n->ma[i]->x, n->mz[i]->x, B * l->out);
        h = n->ma[i];
    }
    linear_forward(n->y->x, h->x, PP(n->mout.w), PP(n->mout.b), B, n->mout.in, n->mout.out);
}

static void mlp_backward(Net *n, size_t B)
{
    const MLPConfig *c = &n->mcfg;
    const int L = c->n_layers;
    linear_backward(n->ma[L - 1]->d, GG(n->mout.w), GG(n->mout.b), n->y->d, n->ma[L - 1]->x,
                    PP(n->mout.w), B, n->mout.in, n->mout.out);
    for (int i = L - 1; i >= 0; i--) {
        Dense *l = &n->ml[i], *t = &n->mt[i];
        const Act *h = i ? n->ma[i - 1] : n->xin;
        silu_backward(n->mz[i]->d, n->ma[i]->d, n->mz[i]->x, B * l->out);
        linear_backward(n->semb->d, GG(t->w), GG(t->b), n->mz[i]->d, n->semb->x, PP(t->w), B,
                        t->in, t->out);
        linear_backward(h->d, GG(l->w), GG(l->b), n->mz[i]->d, h->x, PP(l->w), B, l->in, l->out);
    }
}

/* ---- public forward / backward ------------------------------------------------------------- */

void net_forward(Net *n, const float *x, const float *t, const int *labels,
                 const uint64_t *sample_idx, uint64_t seed, uint32_t step, int training,
                 size_t B, float *out)
{
    ASSERT(B > 0);
    int saved = omp_get_max_threads();
    omp_set_num_threads(n->threads);
    arena_reserve(n, B);
    n->B = B;
    n->training = training && n->dropout > 0.0f;
    ASSERT(!n->training || sample_idx);
    memcpy(n->xin->x, x, B * n->xin->n * sizeof(float));
    temb_forward(n, t, labels, B);
    if (n->kind == NET_UNET)
        unet_forward(n, sample_idx, seed, step, B);
    else
        mlp_forward(n, B);
    memcpy(out, n->y->x, B * n->y->n * sizeof(float));
    n->have_fwd = 1;
    omp_set_num_threads(saved);
}

void net_backward(Net *n, const float *dout)
{
    ASSERT(n->have_fwd);
    const size_t B = n->B;
    int saved = omp_get_max_threads();
    omp_set_num_threads(n->threads);
    /* gradients of activations: cleared, then accumulated by every consumer (block-local
     * ones are cleared as each block's backward starts) */
    for (size_t i = 0; i < n->n_acts; i++)
        if (n->acts[i]->grad == GRAD_KEEP)
            memset(n->acts[i]->d, 0, B * n->acts[i]->n * sizeof(float));
    memcpy(n->y->d, dout, B * n->y->n * sizeof(float));
    n->ready_hi = n->tab.total;
    if (n->kind == NET_UNET)
        unet_backward(n, B);
    else
        mlp_backward(n, B);
    temb_backward(n, B);
    grad_ready(n, 0);
    omp_set_num_threads(saved);
}

void net_set_grad_ready(Net *n, NetGradReadyFn fn, void *ctx)
{
    n->ready_fn = fn;
    n->ready_ctx = ctx;
}

const float *net_input_grad(const Net *n) { return n->have_fwd ? n->xin->d : NULL; }
