/* model/mlp.c - the MLP for low-dimensional data (model/README.md, Architecture):
 * h_0 = x; h_{l+1} = silu(linear_l(h_l) + temb_proj_l(silu(emb))); out = out(h_L).
 * Step 0 is the time embedding, step l+1 hidden layer l, step L+1 the output layer. */
#include "model/net_int.h"
#include "model/linear.h"
#include "model/ops.h"
#include "core/err.h"
#include "core/mem.h"

#include <stdio.h>

typedef struct {
    Dense linear, temb_proj;
    Act *pre, *temb_out, *act; /* linear + temb_proj, temb_proj alone, silu(pre) */
} MLPLayer;

struct MLP {
    MLPLayer *layer;
    int n_layers;
    Dense out;
};

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

void mlp_build(Net *n)
{
    const MLPConfig *c = &n->mcfg;
    struct MLP *m = n->mlp = xcalloc(1, sizeof *m);
    char name[PARAM_NAME_MAX];
    net_begin_step(n);
    temb_build(n, (size_t)c->temb_dim, (size_t)c->temb_hidden, c->num_classes);
    const size_t Hd = (size_t)c->hidden;
    n->xin = act_new(n, (size_t)c->in_dim, ACT_GRAD);
    m->n_layers = c->n_layers;
    m->layer = xcalloc((size_t)c->n_layers, sizeof *m->layer);
    Act *h = n->xin;
    for (int i = 0; i < c->n_layers; i++) {
        MLPLayer *l = &m->layer[i];
        net_begin_step(n);
        act_use(n, h);
        act_use(n, n->temb.semb);
        snprintf(name, sizeof name, "layers.%d.linear", i);
        l->linear = dense_new(n, name, i == 0 ? (size_t)c->in_dim : Hd, Hd, INIT_GLOROT);
        snprintf(name, sizeof name, "layers.%d.temb_proj", i);
        l->temb_proj = dense_new(n, name, (size_t)c->temb_hidden, Hd, INIT_GLOROT);
        l->pre = act_new(n, Hd, ACT_GRAD);
        l->temb_out = act_new(n, Hd, 0);
        l->act = act_new(n, Hd, ACT_GRAD);
        h = l->act;
    }
    net_begin_step(n);
    act_use(n, h);
    m->out = dense_new(n, "out", Hd, (size_t)c->in_dim, INIT_GLOROT);
    n->y = act_new(n, (size_t)c->in_dim, 0);
}

void mlp_free(Net *n)
{
    if (!n->mlp) return;
    xfree(n->mlp->layer);
    xfree(n->mlp);
    n->mlp = NULL;
}

void mlp_forward(Net *n, size_t B)
{
    const struct MLP *m = n->mlp;
    const Act *h = n->xin;
    for (int i = 0; i < m->n_layers; i++) {
        const MLPLayer *l = &m->layer[i];
        const Dense *d = &l->linear, *t = &l->temb_proj;
        linear_forward(l->pre->x, h->x, PP(d->w), PP(d->b), B, d->in, d->out);
        linear_forward(l->temb_out->x, n->temb.semb->x, PP(t->w), PP(t->b), B, t->in, t->out);
        add_forward(l->pre->x, l->pre->x, l->temb_out->x, B * d->out);
        silu_forward(l->act->x, l->pre->x, B * d->out);
        h = l->act;
    }
    linear_forward(n->y->x, h->x, PP(m->out.w), PP(m->out.b), B, m->out.in, m->out.out);
}

void mlp_backward(Net *n, size_t B)
{
    const struct MLP *m = n->mlp;
    const int L = m->n_layers;
    net_backward_step_begin(n, L + 1);
    linear_backward(m->layer[L - 1].act->d, GG(m->out.w), GG(m->out.b), n->dout,
                    m->layer[L - 1].act->x, PP(m->out.w), B, m->out.in, m->out.out);
    grad_ready(n, m->out.w);
    for (int i = L - 1; i >= 0; i--) {
        const MLPLayer *l = &m->layer[i];
        const Dense *d = &l->linear, *t = &l->temb_proj;
        const Act *h = i ? m->layer[i - 1].act : n->xin;
        net_backward_step_begin(n, i + 1);
        silu_backward(l->pre->d, l->act->d, l->pre->x, B * d->out);
        linear_backward(n->temb.semb->d, GG(t->w), GG(t->b), l->pre->d, n->temb.semb->x,
                        PP(t->w), B, t->in, t->out);
        linear_backward(h->d, GG(d->w), GG(d->b), l->pre->d, h->x, PP(d->w), B, d->in, d->out);
        grad_ready(n, d->w);
    }
    net_backward_step_begin(n, 0);
}
