/* sched/targets.c - see targets.h. */
#include "sched/targets.h"

#include <math.h>
#include <string.h>

#include "core/err.h" /* ERR */
#include "core/mem.h" /* xmalloc, xfree */
#include "core/rng.h" /* Rng, rng_init, rng_below, rng_uniform, rng_normal, rng_fill_normal */

void train_target_config_default(TrainTargetConfig *c)
{
    memset(c, 0, sizeof *c);
    c->tdist = SCHED_TIME_UNIFORM;
    c->ln_mean = 0.0;
    c->ln_std = 1.0;
}

int sched_train_targets(const TrainTargetConfig *cfg, const Schedule *s, uint64_t step,
                        const uint64_t *idx, size_t B, size_t D, const float *x0,
                        const int *labels_in, float *xt, double *tnet, float *target,
                        int *labels_out, float *noise_out, double *tpaper)
{
    if (step > UINT32_MAX) return ERR(ERR_ARG, "training step %llu exceeds 2^32 - 1",
                                      (unsigned long long)step);
    if (!(cfg->p_uncond >= 0.0 && cfg->p_uncond <= 1.0))
        return ERR(ERR_ARG, "label dropout probability must be in [0, 1], got %g", cfg->p_uncond);
    if (labels_in && !labels_out) return ERR(ERR_ARG, "training targets: labels_out is NULL");
    if (s->family == SCHED_SDE)
        return ERR(ERR_ARG, "training targets: an SDE schedule weights its examples; use "
                            "sched_sde_train_targets");
    if (s->family == SCHED_FLOW && cfg->tdist == SCHED_TIME_LOGIT_NORMAL && !(cfg->ln_std > 0.0))
        return ERR(ERR_ARG, "logit-normal time: std must be > 0, got %g", cfg->ln_std);
    if (s->family == SCHED_FLOW && cfg->tdist != SCHED_TIME_UNIFORM &&
        cfg->tdist != SCHED_TIME_LOGIT_NORMAL)
        return ERR(ERR_ARG, "unknown flow time distribution %d", (int)cfg->tdist);
    uint32_t sub = (uint32_t)step;
    double *x0d = xmalloc(D * sizeof(double)), *ed = xmalloc(D * sizeof(double));
    double *td = xmalloc(D * sizeof(double));
    float *nf = xmalloc(D * sizeof(float));
    for (size_t j = 0; j < B; j++) {
        Rng r;
        rng_init(&r, cfg->seed, rng_stream(RNG_P_TRAIN_T, idx[j]), sub, 0);
        double a, sc, tp;
        if (s->family == SCHED_DISCRETE) {
            int t = 1 + (int)rng_below(&r, (uint64_t)s->T);
            a = s->sqrt_abar[t];
            sc = s->sqrt_1m_abar[t];
            tnet[j] = (double)(t - 1);
            tp = (double)t;
        } else {
            double tau;
            if (cfg->tdist == SCHED_TIME_UNIFORM) {
                tau = rng_uniform(&r);
            } else {
                double z = cfg->ln_mean + cfg->ln_std * rng_normal(&r);
                tau = 1.0 / (1.0 + exp(-z));
            }
            sched_flow_coef(tau, s->sigma_min, &a, &sc);
            tnet[j] = tau;
            tp = tau;
        }
        if (tpaper) tpaper[j] = tp;
        rng_fill_normal(nf, D, cfg->seed, rng_stream(RNG_P_TRAIN_NOISE, idx[j]), sub);
        const float *xj = x0 + j * D;
        for (size_t i = 0; i < D; i++) {
            x0d[i] = (double)xj[i];
            ed[i] = (double)nf[i];
            xt[j * D + i] = (float)(a * x0d[i] + sc * ed[i]);
        }
        if (noise_out) memcpy(noise_out + j * D, nf, D * sizeof(float));
        sched_target_from_x0_eps(s->pred, a, sc, s->sigma_min, x0d, ed, td, D);
        for (size_t i = 0; i < D; i++) target[j * D + i] = (float)td[i];
        if (labels_in) {
            int lab = labels_in[j];
            if (cfg->p_uncond > 0.0) {
                Rng rl;
                rng_init(&rl, cfg->seed, rng_stream(RNG_P_LABEL_DROP, idx[j]), sub, 0);
                if (rng_uniform(&rl) < cfg->p_uncond) lab = -1;
            }
            labels_out[j] = lab;
        }
    }
    xfree(x0d);
    xfree(ed);
    xfree(td);
    xfree(nf);
    return ERR_OK;
}

int sched_sde_train_targets(const TrainTargetConfig *cfg, const Sde *sde, SdeOut out,
                            SdeWeight wt, uint64_t step, const uint64_t *idx, size_t B, size_t D,
                            const float *x0, const int *labels_in, float *xt, double *tnet,
                            float *target, double *weight, int *labels_out)
{
    if (step > UINT32_MAX) return ERR(ERR_ARG, "training step %llu exceeds 2^32 - 1",
                                      (unsigned long long)step);
    if (!(cfg->p_uncond >= 0.0 && cfg->p_uncond <= 1.0))
        return ERR(ERR_ARG, "label dropout probability must be in [0, 1], got %g", cfg->p_uncond);
    if (labels_in && !labels_out) return ERR(ERR_ARG, "training targets: labels_out is NULL");
    if (out != SDE_OUT_EPS && out != SDE_OUT_SCORE)
        return ERR(ERR_ARG, "unknown SDE network output %d", (int)out);
    if (wt != SDE_WEIGHT_SIGMA2 && wt != SDE_WEIGHT_G2)
        return ERR(ERR_ARG, "unknown score-matching weighting %d", (int)wt);
    uint32_t sub = (uint32_t)step;
    double *ed = xmalloc(2 * D * sizeof(double)), *td = ed + D;
    float *nf = xmalloc(D * sizeof(float));
    for (size_t j = 0; j < B; j++) {
        Rng r;
        rng_init(&r, cfg->seed, rng_stream(RNG_P_TRAIN_T, idx[j]), sub, 0);
        double t = sde->t_eps + (1.0 - sde->t_eps) * rng_uniform(&r), a, s;
        sde_marginal(sde, t, &a, &s);
        tnet[j] = t;
        rng_fill_normal(nf, D, cfg->seed, rng_stream(RNG_P_TRAIN_NOISE, idx[j]), sub);
        for (size_t i = 0; i < D; i++) {
            ed[i] = (double)nf[i];
            xt[j * D + i] = (float)(a * (double)x0[j * D + i] + s * ed[i]);
        }
        weight[j] = sde_dsm_target(sde, out, wt, t, ed, td, D);
        for (size_t i = 0; i < D; i++) target[j * D + i] = (float)td[i];
        if (labels_in) {
            int lab = labels_in[j];
            if (cfg->p_uncond > 0.0) {
                Rng rl;
                rng_init(&rl, cfg->seed, rng_stream(RNG_P_LABEL_DROP, idx[j]), sub, 0);
                if (rng_uniform(&rl) < cfg->p_uncond) lab = -1;
            }
            labels_out[j] = lab;
        }
    }
    xfree(ed);
    xfree(nf);
    return ERR_OK;
}

double sched_loss_mse_weighted(const float *out, const float *target, const double *w, size_t B,
                               size_t D, double norm, float *dout, double *per_sample)
{
    double total = 0.0;
    for (size_t j = 0; j < B; j++) {
        double sj = 0.0;
        for (size_t i = 0; i < D; i++) {
            size_t q = j * D + i;
            double r = (double)out[q] - (double)target[q];
            sj += r * r;
            if (dout) dout[q] = (float)(2.0 * w[j] * r / norm);
        }
        if (per_sample) per_sample[j] = w[j] * sj / (double)D;
        total += w[j] * sj;
    }
    return total / norm;
}

double sched_loss_mse(const float *out, const float *target, size_t B, size_t D, double norm,
                      float *dout, double *per_sample)
{
    double total = 0.0;
    for (size_t j = 0; j < B; j++) {
        double sj = 0.0;
        for (size_t i = 0; i < D; i++) {
            size_t q = j * D + i;
            double r = (double)out[q] - (double)target[q];
            sj += r * r;
            if (dout) dout[q] = (float)(2.0 * r / norm);
        }
        if (per_sample) per_sample[j] = sj / (double)D;
        total += sj;
    }
    return total / norm;
}

int sched_time_quartile(const Schedule *s, double tnet)
{
    int q;
    if (s->family == SCHED_DISCRETE)
        q = (int)floor(4.0 * tnet / (double)s->T);
    else
        q = (int)floor(4.0 * tnet);
    return q < 0 ? 0 : (q > 3 ? 3 : q);
}
