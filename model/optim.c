/* model/optim.c - Adam/AdamW, clipping and EMA over flat buffers. */
#include "model/optim.h"
#include "core/err.h"
#include "core/mem.h"

#include <math.h>
#include <string.h>

/* below this many elements a loop runs on the calling thread: a parallel region costs more */
#define PAR_MIN 32768

OptimConfig optim_config_default(void)
{
    OptimConfig c = {OPTIM_ADAM, 0.9f, 0.999f, 1e-8f, 0.0f, 0.0f, 0.0f, 0};
    return c;
}

int optim_config_check(const OptimConfig *c)
{
    if (c->kind != OPTIM_ADAM && c->kind != OPTIM_ADAMW)
        return ERR(ERR_SPEC, "optimizer: unknown kind %d", (int)c->kind);
    if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f) || !(c->beta2 >= 0.0f && c->beta2 < 1.0f))
        return ERR(ERR_SPEC, "optimizer: betas must be in [0, 1), got %g, %g", (double)c->beta1,
                   (double)c->beta2);
    if (!(c->eps > 0.0f)) return ERR(ERR_SPEC, "optimizer: eps must be > 0, got %g", (double)c->eps);
    if (!(c->weight_decay >= 0.0f))
        return ERR(ERR_SPEC, "optimizer: weight_decay must be >= 0, got %g",
                   (double)c->weight_decay);
    if (!(c->grad_clip >= 0.0f))
        return ERR(ERR_SPEC, "optimizer: grad_clip must be >= 0 (0 = off), got %g",
                   (double)c->grad_clip);
    if (!(c->ema_decay >= 0.0f && c->ema_decay < 1.0f))
        return ERR(ERR_SPEC, "optimizer: ema_decay must be in [0, 1), got %g",
                   (double)c->ema_decay);
    return ERR_OK;
}

void optim_init(Optim *o, const OptimConfig *cfg, size_t n, const float *params)
{
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->n = n;
    o->m = xalloc_aligned(n * sizeof(float));
    o->v = xalloc_aligned(n * sizeof(float));
    o->mlo = 0;
    o->mhi = n;
    if (cfg->ema_decay > 0.0f) {
        o->ema = xalloc_aligned(n * sizeof(float));
        if (params) memcpy(o->ema, params, n * sizeof(float));
    }
}

void optim_shard_moments(Optim *o, size_t lo, size_t hi)
{
    ASSERT(lo <= hi && hi <= o->n);
    xfree_aligned(o->m);
    xfree_aligned(o->v);
    /* one spare float so an empty shard still gets a real allocation */
    o->m = xalloc_aligned((hi - lo + 1) * sizeof(float));
    o->v = xalloc_aligned((hi - lo + 1) * sizeof(float));
    o->mlo = lo;
    o->mhi = hi;
}

void optim_free(Optim *o)
{
    if (!o) return;
    xfree_aligned(o->m);
    xfree_aligned(o->v);
    xfree_aligned(o->ema);
    memset(o, 0, sizeof *o);
}

double optim_grad_sumsq(const float *g, size_t lo, size_t hi)
{
    double s = 0.0;
    for (size_t i = lo; i < hi; i++) s += (double)g[i] * (double)g[i];
    return s;
}

float optim_clip_scale(double norm, float clip)
{
    if (clip <= 0.0f) return 1.0f;
    double c = (double)clip / (norm + 1e-6);
    return c < 1.0 ? (float)c : 1.0f;
}

double optim_ema_decay(const OptimConfig *cfg, uint64_t k)
{
    double d = (double)cfg->ema_decay;
    if (cfg->ema_warmup) {
        double w = (1.0 + (double)k) / (10.0 + (double)k);
        if (w < d) d = w;
    }
    return d;
}

void adam_update_range(const OptimConfig *cfg, float *params, const float *grads, float *m,
                       float *v, float lr, float grad_scale, uint64_t t, size_t lo, size_t hi)
{
    const float b1 = cfg->beta1, b2 = cfg->beta2, eps = cfg->eps, wd = cfg->weight_decay;
    const double bc1 = 1.0 - pow((double)b1, (double)t), bc2 = 1.0 - pow((double)b2, (double)t);
    const float step_size = (float)((double)lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float decay = cfg->kind == OPTIM_ADAMW ? 1.0f - lr * wd : 1.0f;
    const float l2 = cfg->kind == OPTIM_ADAM ? wd : 0.0f;
#pragma omp parallel for schedule(static) if (hi - lo > PAR_MIN)
    for (size_t i = lo; i < hi; i++) {
        float p = params[i];
        float g = grads[i] * grad_scale + l2 * p;
        float mi = b1 * m[i] + (1.0f - b1) * g;
        float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        p *= decay;
        params[i] = p - step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
    }
}

void ema_update_range(float *ema, const float *params, double decay, size_t lo, size_t hi)
{
    const float d = (float)decay, c = (float)(1.0 - decay);
#pragma omp parallel for schedule(static) if (hi - lo > PAR_MIN)
    for (size_t i = lo; i < hi; i++) ema[i] = d * ema[i] + c * params[i];
}

double optim_step(Optim *o, float *params, const float *grads, float lr)
{
    double norm = sqrt(optim_grad_sumsq(grads, 0, o->n));
    float scale = optim_clip_scale(norm, o->cfg.grad_clip);
    o->step++;
    adam_update_range(&o->cfg, params, grads, o->m, o->v, lr, scale, o->step, 0, o->n);
    if (o->ema) {
        ema_update_range(o->ema, params, optim_ema_decay(&o->cfg, o->ema_updates), 0, o->n);
        o->ema_updates++;
    }
    return norm;
}
