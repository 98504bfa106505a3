/* model/unet.c - the DDPM U-Net (model/README.md, Architecture): building, forward, backward.
 *
 * The network is a list of blocks, one step each (model/net_int.h), between an input step
 * (time embedding, conv_in) and an output step (GroupNorm + SiLU + conv_out). The forward walks
 * the list, the backward walks it in reverse; each block kind has its own struct, its own
 * forward and its own backward. The same forward serves training and inference: the arena's
 * layout decides what is kept (model/net.c).
 */
#include "model/net_int.h"
#include "model/attention.h"
#include "model/conv2d.h"
#include "model/groupnorm.h"
#include "model/linear.h"
#include "model/ops.h"
#include "core/err.h"
#include "core/mem.h"

#include <stdio.h>
#include <string.h>

typedef enum { BLK_RES = 1, BLK_ATTN, BLK_DOWN, BLK_UP, BLK_CONCAT } BlockKind;

/* h = conv1(silu(norm1(x))) + temb_proj(silu(emb)); h = conv2(dropout(silu(norm2(h))));
 * out = shortcut(x) + h, shortcut a 1x1 convolution when the channel count changes */
typedef struct {
    Norm norm1, norm2;
    Conv conv1, conv2, shortcut;
    Dense temb_proj;
    int has_shortcut;
    uint32_t rng_block; /* first RNG block of this layer's dropout mask */
    Act *act1, *stats1; /* act1 = silu(norm1(x)); stats: (B, G) means then (B, G) rstds */
    Act *conv1_out, *temb_out;
    Act *act2, *stats2; /* act2 = silu(norm2(conv1_out)) */
    Act *dropped, *mask; /* NULL without dropout */
    Act *conv2_out, *shortcut_out;
} ResBlock;

/* out = x + proj_out(attention(qkv(norm(x)))) */
typedef struct {
    Norm norm;
    Conv qkv, proj_out;
    size_t heads;
    Act *norm_out, *stats, *qkv_out, *probs, *attn_out, *proj;
} AttnBlock;

/* Downsample: 3x3 stride-2 conv; Upsample: nearest x2 (upsampled), then 3x3 conv */
typedef struct {
    Conv conv;
    Act *upsampled; /* Upsample only */
} ResampleBlock;

/* out = [in, skip] along channels */
typedef struct {
    Act *skip;
    size_t in_ch, skip_ch;
} ConcatBlock;

typedef struct {
    BlockKind kind;
    int step;
    size_t p_lo; /* first parameter offset of the block (its tensors are contiguous) */
    size_t HW;   /* positions of the block's input */
    Act *in, *out;
    union {
        ResBlock res;
        AttnBlock attn;
        ResampleBlock resample;
        ConcatBlock cat;
    };
} Block;

struct UNet {
    Block **blk;
    size_t n_blk, cap_blk;
    Conv conv_in;
    Act *h0;
    Norm norm_out;
    Conv conv_out;
    int head_step;
    Act *head_act, *head_stats;
};

/* ---- configuration check ------------------------------------------------------------------- */

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

/* ---- building ------------------------------------------------------------------------------ */

static Block *blk_new(Net *n, BlockKind kind, Act *in, size_t HW)
{
    struct UNet *u = n->unet;
    Block *b = xcalloc(1, sizeof *b);
    b->kind = kind;
    b->p_lo = n->tab.total;
    b->step = net_begin_step(n);
    b->in = in;
    b->HW = HW;
    act_use(n, in);
    if (u->n_blk == u->cap_blk) {
        u->cap_blk = u->cap_blk ? 2 * u->cap_blk : 64;
        u->blk = xrealloc(u->blk, u->cap_blk * sizeof *u->blk);
    }
    u->blk[u->n_blk++] = b;
    return b;
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
    const size_t HW = (size_t)H * H, G = (size_t)c->groups, ICHW = (size_t)ic * HW,
                 OCHW = (size_t)oc * HW;
    Block *b = blk_new(n, BLK_RES, in, HW);
    ResBlock *r = &b->res;
    act_use(n, n->temb.semb);
    snprintf(buf, sizeof buf, "%s.norm1", name);
    r->norm1 = norm_new(n, buf, (size_t)ic, G);
    snprintf(buf, sizeof buf, "%s.conv1", name);
    r->conv1 = conv_new(n, buf, conv2d_shape(ic, oc, 3, 1, 1, H, H), INIT_GLOROT);
    snprintf(buf, sizeof buf, "%s.temb_proj", name);
    r->temb_proj = dense_new(n, buf, (size_t)c->temb_hidden, (size_t)oc, INIT_GLOROT);
    snprintf(buf, sizeof buf, "%s.norm2", name);
    r->norm2 = norm_new(n, buf, (size_t)oc, G);
    snprintf(buf, sizeof buf, "%s.conv2", name);
    r->conv2 = conv_new(n, buf, conv2d_shape(oc, oc, 3, 1, 1, H, H), INIT_ZERO);
    r->has_shortcut = ic != oc;
    if (r->has_shortcut) {
        snprintf(buf, sizeof buf, "%s.nin_shortcut", name);
        r->shortcut = conv_new(n, buf, conv2d_shape(ic, oc, 1, 1, 0, H, H), INIT_GLOROT);
    }
    /* kept for the backward: the input (its producer's), conv1_out and the GroupNorm
     * statistics; the SiLU outputs and the dropout mask are recomputed from them */
    r->act1 = act_new(n, ICHW, ACT_GRAD | ACT_RECOMPUTE);
    r->stats1 = act_new(n, 2 * G, 0);
    r->conv1_out = act_new(n, OCHW, ACT_GRAD);
    r->temb_out = act_new(n, (size_t)oc, ACT_GRAD | ACT_FWD_ONLY);
    r->act2 = act_new(n, OCHW, ACT_GRAD | ACT_RECOMPUTE);
    r->stats2 = act_new(n, 2 * G, 0);
    if (c->dropout > 0.0f) {
        r->dropped = act_new(n, OCHW, ACT_GRAD | ACT_TRAIN_ONLY | ACT_RECOMPUTE);
        r->mask = act_new(n, OCHW, ACT_TRAIN_ONLY | ACT_RECOMPUTE);
    }
    r->conv2_out = act_new(n, OCHW, ACT_FWD_ONLY);
    if (r->has_shortcut) r->shortcut_out = act_new(n, OCHW, ACT_FWD_ONLY);
    b->out = act_new(n, OCHW, ACT_GRAD);
    return b->out;
}

static Act *build_attn(Net *n, const char *name, Act *in, int C, int H)
{
    const UNetConfig *c = &n->ucfg;
    char buf[2 * PARAM_NAME_MAX];
    const size_t HW = (size_t)H * H, G = (size_t)c->groups, CHW = (size_t)C * HW;
    Block *b = blk_new(n, BLK_ATTN, in, HW);
    AttnBlock *a = &b->attn;
    a->heads = (size_t)c->heads;
    snprintf(buf, sizeof buf, "%s.norm", name);
    a->norm = norm_new(n, buf, (size_t)C, G);
    snprintf(buf, sizeof buf, "%s.qkv", name);
    a->qkv = conv_new(n, buf, conv2d_shape(C, 3 * C, 1, 1, 0, H, H), INIT_GLOROT);
    snprintf(buf, sizeof buf, "%s.proj_out", name);
    a->proj_out = conv_new(n, buf, conv2d_shape(C, C, 1, 1, 0, H, H), INIT_ZERO);
    n->flops += 4.0 * (double)HW * (double)HW * (double)C; /* q k^T and P v */
    a->norm_out = act_new(n, CHW, ACT_GRAD | ACT_RECOMPUTE);
    a->stats = act_new(n, 2 * G, 0);
    a->qkv_out = act_new(n, 3 * CHW, ACT_GRAD);
    a->probs = act_new(n, a->heads * HW * HW, 0);
    a->attn_out = act_new(n, CHW, ACT_GRAD);
    a->proj = act_new(n, CHW, ACT_FWD_ONLY);
    b->out = act_new(n, CHW, ACT_GRAD);
    return b->out;
}

static Act *build_down(Net *n, const char *name, Act *in, int C, int H)
{
    char buf[2 * PARAM_NAME_MAX];
    Block *b = blk_new(n, BLK_DOWN, in, (size_t)H * H);
    snprintf(buf, sizeof buf, "%s.conv", name);
    b->resample.conv = conv_new(n, buf, conv2d_shape_same(C, C, 3, 2, H, H), INIT_GLOROT);
    const Conv2dShape *s = &b->resample.conv.s;
    b->out = act_new(n, (size_t)C * s->OH * s->OW, ACT_GRAD);
    return b->out;
}

static Act *build_up(Net *n, const char *name, Act *in, int C, int H)
{
    char buf[2 * PARAM_NAME_MAX];
    Block *b = blk_new(n, BLK_UP, in, (size_t)H * H);
    snprintf(buf, sizeof buf, "%s.conv", name);
    b->resample.conv = conv_new(n, buf, conv2d_shape(C, C, 3, 1, 1, 2 * H, 2 * H), INIT_GLOROT);
    b->resample.upsampled = act_new(n, (size_t)C * 4 * b->HW, ACT_GRAD | ACT_RECOMPUTE);
    b->out = act_new(n, (size_t)C * 4 * b->HW, ACT_GRAD);
    return b->out;
}

static Act *build_concat(Net *n, Act *h, Act *skip, int C1, int C2, int H)
{
    Block *b = blk_new(n, BLK_CONCAT, h, (size_t)H * H);
    act_use(n, skip);
    b->cat.skip = skip;
    b->cat.in_ch = (size_t)C1;
    b->cat.skip_ch = (size_t)C2;
    /* recomputed for its reader's backward (unet_backward) */
    b->out = act_new(n, (size_t)(C1 + C2) * b->HW, ACT_GRAD | ACT_RECOMPUTE);
    return b->out;
}

void unet_build(Net *n)
{
    const UNetConfig *c = &n->ucfg;
    struct UNet *u = n->unet = xcalloc(1, sizeof *u);
    char name[PARAM_NAME_MAX];
    /* step 0: time embedding and input convolution */
    net_begin_step(n);
    temb_build(n, (size_t)c->temb_dim, (size_t)c->temb_hidden, c->num_classes);
    int H = c->img_size;
    n->xin = act_new(n, (size_t)c->in_ch * H * H, ACT_GRAD);
    u->conv_in = conv_new(n, "conv_in", conv2d_shape(c->in_ch, c->ch, 3, 1, 1, H, H), INIT_GLOROT);
    u->h0 = act_new(n, (size_t)c->ch * H * H, ACT_GRAD);

    Act *hs[UNET_MAX_LEVELS * 16];
    int hs_ch[UNET_MAX_LEVELS * 16], nhs = 0;
    hs[nhs] = u->h0;
    hs_ch[nhs++] = c->ch;
    Act *h = u->h0;
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
    /* output step: GroupNorm + SiLU + conv_out */
    u->head_step = net_begin_step(n);
    act_use(n, h);
    u->norm_out = norm_new(n, "norm_out", (size_t)C, (size_t)c->groups);
    u->conv_out = conv_new(n, "conv_out", conv2d_shape(C, c->in_ch, 3, 1, 1, H, H), INIT_ZERO);
    u->head_act = act_new(n, (size_t)C * H * H, ACT_GRAD | ACT_RECOMPUTE);
    u->head_stats = act_new(n, 2 * (size_t)c->groups, 0);
    n->y = act_new(n, (size_t)c->in_ch * H * H, ACT_FWD_ONLY);
    ASSERT(h == u->blk[u->n_blk - 1]->out && h->n == (size_t)C * H * H);

    /* dropout layers take consecutive ranges of each sample's RNG sequence */
    uint32_t rb = 0;
    for (size_t i = 0; i < u->n_blk; i++) {
        Block *b = u->blk[i];
        if (b->kind == BLK_RES && b->res.mask) {
            b->res.rng_block = rb;
            rb += dropout_rng_blocks(b->res.mask->n);
        }
    }
}

void unet_free(Net *n)
{
    struct UNet *u = n->unet;
    if (!u) return;
    for (size_t i = 0; i < u->n_blk; i++) xfree(u->blk[i]);
    xfree(u->blk);
    xfree(u);
    n->unet = NULL;
}

size_t unet_ws_floats(const Net *n, size_t B)
{
    const struct UNet *u = n->unet;
    const int T = n->threads;
    size_t w = 0;
#define WS_MAX(v)           \
    do {                    \
        size_t v_ = (v);    \
        if (v_ > w) w = v_; \
    } while (0)
    WS_MAX(conv2d_ws_floats(&u->conv_in.s, B, T));
    WS_MAX(conv2d_ws_floats(&u->conv_out.s, B, T));
    WS_MAX(2 * groupnorm_ws_doubles(B, u->norm_out.C));
    for (size_t i = 0; i < u->n_blk; i++) {
        const Block *b = u->blk[i];
        switch (b->kind) {
        case BLK_RES:
            WS_MAX(2 * groupnorm_ws_doubles(B, b->res.norm1.C));
            WS_MAX(2 * groupnorm_ws_doubles(B, b->res.norm2.C));
            WS_MAX(conv2d_ws_floats(&b->res.conv1.s, B, T));
            WS_MAX(conv2d_ws_floats(&b->res.conv2.s, B, T));
            if (b->res.has_shortcut) WS_MAX(conv2d_ws_floats(&b->res.shortcut.s, B, T));
            break;
        case BLK_ATTN:
            WS_MAX(2 * groupnorm_ws_doubles(B, b->attn.norm.C));
            WS_MAX(attn_ws_floats(b->HW, T));
            WS_MAX(conv2d_ws_floats(&b->attn.qkv.s, B, T));
            WS_MAX(conv2d_ws_floats(&b->attn.proj_out.s, B, T));
            break;
        case BLK_DOWN:
        case BLK_UP: WS_MAX(conv2d_ws_floats(&b->resample.conv.s, B, T)); break;
        case BLK_CONCAT: break;
        }
    }
#undef WS_MAX
    return w;
}

/* ---- blocks: forward and backward ------------------------------------------------------------ */

/* A GroupNorm backward's row sums live in the network's workspace (sized for them by
 * unet_ws_floats; the arena is allocated aligned for any type, and only one layer uses the
 * workspace at a time). */
#define GN_WS(n) ((double *)(void *)(n)->ws)

/* out = conv(silu(norm(in))), statistics into stats (means then rstds). On the Winograd path
 * the convolution applies GroupNorm + SiLU as it reads its input and act is not written (the
 * backward recomputes it); elsewhere act is written and read. The same bits either way. */
static void gn_silu_conv(Net *n, const Norm *nm, Act *stats, Act *act, const float *in,
                         const Conv *cv, float *out, size_t B, size_t HW)
{
    const size_t C = nm->C, G = nm->G;
    float *mean = stats->x, *rstd = stats->x + B * G;
    if (conv2d_fuses_gn_silu(&cv->s)) {
        groupnorm_forward(NULL, NULL, mean, rstd, in, PP(nm->g), PP(nm->b), B, C, HW, G);
        Conv2dGnSilu gn = {mean, rstd, PP(nm->g), PP(nm->b), (int)G};
        conv2d_forward_gn_silu(out, in, &gn, PP(cv->w), PP(cv->b), &cv->s, B, n->ws);
        return;
    }
    groupnorm_forward(NULL, act->x, mean, rstd, in, PP(nm->g), PP(nm->b), B, C, HW, G);
    conv2d_forward(out, act->x, PP(cv->w), PP(cv->b), &cv->s, B, n->ws);
}

static void res_forward(Net *n, Block *b, size_t B)
{
    ResBlock *r = &b->res;
    const size_t oc = r->norm2.C, HW = b->HW, G = r->norm1.G;
    gn_silu_conv(n, &r->norm1, r->stats1, r->act1, b->in->x, &r->conv1, r->conv1_out->x, B, HW);
    linear_forward(r->temb_out->x, n->temb.semb->x, PP(r->temb_proj.w), PP(r->temb_proj.b), B,
                   r->temb_proj.in, oc);
    chan_add_forward(r->conv1_out->x, r->temb_out->x, B, oc, HW);
    if (n->dropout_on && r->mask) { /* dropout between SiLU and conv2: act2 is written */
        groupnorm_forward(NULL, r->act2->x, r->stats2->x, r->stats2->x + B * G,
                          r->conv1_out->x, PP(r->norm2.g), PP(r->norm2.b), B, oc, HW, G);
        dropout_forward(r->dropped->x, r->mask->x, r->act2->x, n->dropout, B, oc * HW, n->seed,
                        n->sample_idx, n->dstep, r->rng_block);
        conv2d_forward(r->conv2_out->x, r->dropped->x, PP(r->conv2.w), PP(r->conv2.b),
                       &r->conv2.s, B, n->ws);
    } else {
        gn_silu_conv(n, &r->norm2, r->stats2, r->act2, r->conv1_out->x, &r->conv2,
                     r->conv2_out->x, B, HW);
    }
    const float *skip = b->in->x;
    if (r->has_shortcut) {
        conv2d_forward(r->shortcut_out->x, b->in->x, PP(r->shortcut.w), PP(r->shortcut.b),
                       &r->shortcut.s, B, n->ws);
        skip = r->shortcut_out->x;
    }
    add_forward(b->out->x, skip, r->conv2_out->x, B * oc * HW);
}

static void res_backward(Net *n, Block *b, size_t B)
{
    ResBlock *r = &b->res;
    const size_t ic = r->norm1.C, oc = r->norm2.C, HW = b->HW, G = r->norm1.G;
    const float *dout = b->out->d;
    int drop = n->dropout_on && r->mask;
    /* recompute what the forward did not keep: act2 (and its dropout), act1 */
    groupnorm_apply(NULL, r->act2->x, r->conv1_out->x, PP(r->norm2.g), PP(r->norm2.b),
                    r->stats2->x, r->stats2->x + B * G, B, oc, HW, G);
    if (drop)
        dropout_forward(r->dropped->x, r->mask->x, r->act2->x, n->dropout, B, oc * HW, n->seed,
                        n->sample_idx, n->dstep, r->rng_block);
    groupnorm_apply(NULL, r->act1->x, b->in->x, PP(r->norm1.g), PP(r->norm1.b), r->stats1->x,
                    r->stats1->x + B * G, B, ic, HW, G);
    /* out = skip + conv2_out */
    if (r->has_shortcut)
        conv2d_backward(b->in->d, GG(r->shortcut.w), GG(r->shortcut.b), dout, b->in->x,
                        PP(r->shortcut.w), &r->shortcut.s, B, n->ws);
    else
        add_backward(b->in->d, dout, B * oc * HW);
    /* conv2_out = conv2(dropout(act2)) */
    conv2d_backward(drop ? r->dropped->d : r->act2->d, GG(r->conv2.w), GG(r->conv2.b), dout,
                    drop ? r->dropped->x : r->act2->x, PP(r->conv2.w), &r->conv2.s, B, n->ws);
    if (drop) dropout_backward(r->act2->d, r->dropped->d, r->mask->x, B * oc * HW);
    /* act2 = silu(GN2(conv1_out)) */
    groupnorm_silu_backward(r->conv1_out->d, GG(r->norm2.g), GG(r->norm2.b), r->act2->d,
                            r->conv1_out->x, PP(r->norm2.g), PP(r->norm2.b), r->stats2->x,
                            r->stats2->x + B * G, B, oc, HW, G, GN_WS(n));
    /* conv1_out = conv1(act1) + temb_proj(semb) broadcast */
    chan_add_backward(r->temb_out->d, r->conv1_out->d, B, oc, HW);
    linear_backward(n->temb.semb->d, GG(r->temb_proj.w), GG(r->temb_proj.b), r->temb_out->d,
                    n->temb.semb->x, PP(r->temb_proj.w), B, r->temb_proj.in, oc);
    conv2d_backward(r->act1->d, GG(r->conv1.w), GG(r->conv1.b), r->conv1_out->d, r->act1->x,
                    PP(r->conv1.w), &r->conv1.s, B, n->ws);
    /* act1 = silu(GN1(in)) */
    groupnorm_silu_backward(b->in->d, GG(r->norm1.g), GG(r->norm1.b), r->act1->d, b->in->x,
                            PP(r->norm1.g), PP(r->norm1.b), r->stats1->x, r->stats1->x + B * G,
                            B, ic, HW, G, GN_WS(n));
}

static void attn_block_forward(Net *n, Block *b, size_t B)
{
    AttnBlock *a = &b->attn;
    const size_t C = a->norm.C, HW = b->HW, G = a->norm.G;
    groupnorm_forward(a->norm_out->x, NULL, a->stats->x, a->stats->x + B * G, b->in->x,
                      PP(a->norm.g), PP(a->norm.b), B, C, HW, G);
    conv2d_forward(a->qkv_out->x, a->norm_out->x, PP(a->qkv.w), PP(a->qkv.b), &a->qkv.s, B, n->ws);
    attn_forward(a->attn_out->x, a->probs->x, a->qkv_out->x, B, C, HW, a->heads);
    conv2d_forward(a->proj->x, a->attn_out->x, PP(a->proj_out.w), PP(a->proj_out.b),
                   &a->proj_out.s, B, n->ws);
    add_forward(b->out->x, b->in->x, a->proj->x, B * C * HW);
}

static void attn_block_backward(Net *n, Block *b, size_t B)
{
    AttnBlock *a = &b->attn;
    const size_t C = a->norm.C, HW = b->HW, G = a->norm.G;
    groupnorm_apply(a->norm_out->x, NULL, b->in->x, PP(a->norm.g), PP(a->norm.b), a->stats->x,
                    a->stats->x + B * G, B, C, HW, G);
    add_backward(b->in->d, b->out->d, B * C * HW);
    conv2d_backward(a->attn_out->d, GG(a->proj_out.w), GG(a->proj_out.b), b->out->d,
                    a->attn_out->x, PP(a->proj_out.w), &a->proj_out.s, B, n->ws);
    attn_backward(a->qkv_out->d, a->attn_out->d, a->qkv_out->x, a->probs->x, B, C, HW, a->heads,
                  n->ws);
    conv2d_backward(a->norm_out->d, GG(a->qkv.w), GG(a->qkv.b), a->qkv_out->d, a->norm_out->x,
                    PP(a->qkv.w), &a->qkv.s, B, n->ws);
    groupnorm_backward(b->in->d, GG(a->norm.g), GG(a->norm.b), a->norm_out->d, b->in->x,
                       PP(a->norm.g), a->stats->x, a->stats->x + B * G, B, C, HW, G, GN_WS(n));
}

static void block_forward(Net *n, Block *b, size_t B)
{
    switch (b->kind) {
    case BLK_RES: res_forward(n, b, B); break;
    case BLK_ATTN: attn_block_forward(n, b, B); break;
    case BLK_DOWN: {
        const Conv *c = &b->resample.conv;
        conv2d_forward(b->out->x, b->in->x, PP(c->w), PP(c->b), &c->s, B, n->ws);
        break;
    }
    case BLK_UP: {
        const Conv *c = &b->resample.conv;
        size_t H = (size_t)c->s.H / 2;
        upsample2x_forward(b->resample.upsampled->x, b->in->x, B, (size_t)c->s.IC, H, H);
        conv2d_forward(b->out->x, b->resample.upsampled->x, PP(c->w), PP(c->b), &c->s, B, n->ws);
        break;
    }
    case BLK_CONCAT:
        concat_forward(b->out->x, b->in->x, b->cat.skip->x, B, b->cat.in_ch, b->cat.skip_ch,
                       b->HW);
        break;
    }
}

static void block_backward(Net *n, Block *b, size_t B)
{
    switch (b->kind) {
    case BLK_RES: res_backward(n, b, B); break;
    case BLK_ATTN: attn_block_backward(n, b, B); break;
    case BLK_DOWN: {
        const Conv *c = &b->resample.conv;
        conv2d_backward(b->in->d, GG(c->w), GG(c->b), b->out->d, b->in->x, PP(c->w), &c->s, B,
                        n->ws);
        break;
    }
    case BLK_UP: {
        const Conv *c = &b->resample.conv;
        size_t H = (size_t)c->s.H / 2;
        upsample2x_forward(b->resample.upsampled->x, b->in->x, B, (size_t)c->s.IC, H, H);
        conv2d_backward(b->resample.upsampled->d, GG(c->w), GG(c->b), b->out->d,
                        b->resample.upsampled->x, PP(c->w), &c->s, B, n->ws);
        upsample2x_backward(b->in->d, b->resample.upsampled->d, B, (size_t)c->s.IC, H, H);
        break;
    }
    case BLK_CONCAT:
        concat_backward(b->in->d, b->cat.skip->d, b->out->d, B, b->cat.in_ch, b->cat.skip_ch,
                        b->HW);
        break;
    }
}

/* ---- the network ----------------------------------------------------------------------------- */

void unet_forward(Net *n, size_t B)
{
    struct UNet *u = n->unet;
    conv2d_forward(u->h0->x, n->xin->x, PP(u->conv_in.w), PP(u->conv_in.b), &u->conv_in.s, B,
                   n->ws);
    for (size_t i = 0; i < u->n_blk; i++) block_forward(n, u->blk[i], B);
    const Act *h = u->blk[u->n_blk - 1]->out;
    gn_silu_conv(n, &u->norm_out, u->head_stats, u->head_act, h->x, &u->conv_out, n->y->x, B,
                 (size_t)u->conv_out.s.H * u->conv_out.s.W);
}

void unet_backward(Net *n, size_t B)
{
    struct UNet *u = n->unet;
    const Act *h = u->blk[u->n_blk - 1]->out;
    const size_t C = u->norm_out.C, G = u->norm_out.G,
                 HW = (size_t)u->conv_out.s.H * u->conv_out.s.W;
    net_backward_step_begin(n, u->head_step);
    groupnorm_apply(NULL, u->head_act->x, h->x, PP(u->norm_out.g), PP(u->norm_out.b),
                    u->head_stats->x, u->head_stats->x + B * G, B, C, HW, G);
    conv2d_backward(u->head_act->d, GG(u->conv_out.w), GG(u->conv_out.b), n->dout,
                    u->head_act->x, PP(u->conv_out.w), &u->conv_out.s, B, n->ws);
    groupnorm_silu_backward(h->d, GG(u->norm_out.g), GG(u->norm_out.b), u->head_act->d, h->x,
                            PP(u->norm_out.g), PP(u->norm_out.b), u->head_stats->x,
                            u->head_stats->x + B * G, B, C, HW, G, GN_WS(n));
    grad_ready(n, u->norm_out.g);
    for (size_t i = u->n_blk; i-- > 0;) {
        Block *b = u->blk[i];
        net_backward_step_begin(n, b->step);
        const Block *p = i > 0 ? u->blk[i - 1] : NULL;
        if (p && p->kind == BLK_CONCAT && p->out == b->in) { /* its output, recomputed here */
            ASSERT(p->out->last_use == b->step);
            concat_forward(p->out->x, p->in->x, p->cat.skip->x, B, p->cat.in_ch, p->cat.skip_ch,
                           p->HW);
        }
        block_backward(n, b, B);
        grad_ready(n, b->p_lo);
    }
    net_backward_step_begin(n, 0);
    conv2d_backward(n->xin->d, GG(u->conv_in.w), GG(u->conv_in.b), u->h0->d, n->xin->x,
                    PP(u->conv_in.w), &u->conv_in.s, B, n->ws);
    grad_ready(n, u->conv_in.w);
}
