/* dist/jobconf.c - job spec -> module configurations. See dist/jobconf.h. */
#include "dist/jobconf.h"

#include <string.h>

#include "core/err.h"

const char *jobconf_dataset_name(const JobSpec *js) { return jobspec_data_name(js); }

void jobconf_net(const JobSpec *js, NetConfig *nc)
{
    memset(nc, 0, sizeof *nc);
    if (js->model.type == JOB_MODEL_UNET) {
        const JobUNet *u = &js->model.unet;
        UNetConfig *c = &nc->unet;
        nc->kind = NET_UNET;
        c->in_ch = js->data.img_channels;
        c->img_size = js->data.img_size;
        c->ch = u->channels;
        c->n_mult = u->n_ch_mult;
        for (int i = 0; i < u->n_ch_mult; i++) c->ch_mult[i] = u->ch_mult[i];
        c->num_res_blocks = u->num_res_blocks;
        c->n_attn = u->n_attn;
        for (int i = 0; i < u->n_attn; i++) c->attn_res[i] = u->attn_resolutions[i];
        c->heads = u->heads;
        c->dropout = (float)u->dropout;
        c->groups = u->groups;
        c->temb_dim = u->temb_dim;
        c->temb_hidden = u->temb_hidden;
        c->num_classes = js->model.num_classes;
    } else {
        MLPConfig *c = &nc->mlp;
        nc->kind = NET_MLP;
        c->in_dim = js->data.data_dim;
        c->hidden = js->model.mlp.hidden;
        c->n_layers = js->model.mlp.layers;
        c->temb_dim = js->model.mlp.temb_dim;
        c->temb_hidden = js->model.mlp.hidden;
        c->num_classes = js->model.num_classes;
    }
}

int jobconf_sde(const JobSpec *js, Sde *sde, SdeOut *out)
{
    const JobSDE *e = &js->objective.sde;
    if (js->objective.type != JOB_OBJ_SDE)
        return ERR(ERR_SPEC, "objective.type is not sde");
    *out = e->prediction == JOB_SDE_PRED_SCORE ? SDE_OUT_SCORE : SDE_OUT_EPS;
    if (e->kind == JOB_SDE_VE) return sde_init_ve(sde, e->sigma_min, e->sigma_max, e->t_eps);
    return sde_init_vp(sde, e->beta_min, e->beta_max, e->t_eps);
}

int jobconf_schedule(const JobSpec *js, Schedule *s)
{
    if (js->objective.type == JOB_OBJ_FLOW) return sched_init_flow(s, js->objective.flow.sigma_min);
    if (js->objective.type == JOB_OBJ_SDE) {
        Sde sde;
        SdeOut out = SDE_OUT_EPS;
        memset(s, 0, sizeof *s);
        TRY(jobconf_sde(js, &sde, &out));
        return sched_init_sde(s, &sde, out);
    }
    const JobDDPM *d = &js->objective.ddpm;
    SchedPred pred = d->prediction == JOB_PRED_EPS  ? SCHED_PRED_EPS
                     : d->prediction == JOB_PRED_X0 ? SCHED_PRED_X0
                                                    : SCHED_PRED_V;
    if (d->schedule == JOB_BETAS_LINEAR)
        return sched_init_linear(s, d->timesteps, d->beta_start, d->beta_end, pred);
    return sched_init_cosine(s, d->timesteps, d->cosine_s, 0.999, pred);
}

double jobconf_time_scale(const JobSpec *js)
{
    return js->objective.type == JOB_OBJ_DDPM ? 1.0 : JOBCONF_FLOW_TIME_SCALE;
}

void jobconf_sampler(const JobSpec *js, SamplerConfig *c)
{
    static const SamplerKind kinds[] = {
        [JOB_SAMPLER_DDPM] = SAMPLER_DDPM,   [JOB_SAMPLER_DDIM] = SAMPLER_DDIM,
        [JOB_SAMPLER_DPMPP2M] = SAMPLER_DPMPP_2M, [JOB_SAMPLER_EULER] = SAMPLER_EULER,
        [JOB_SAMPLER_MIDPOINT] = SAMPLER_MIDPOINT, [JOB_SAMPLER_HEUN] = SAMPLER_HEUN,
        [JOB_SAMPLER_RK4] = SAMPLER_RK4, [JOB_SAMPLER_RK45] = SAMPLER_RK45,
        [JOB_SAMPLER_EM] = SAMPLER_EM, [JOB_SAMPLER_PC] = SAMPLER_PC,
        [JOB_SAMPLER_LANGEVIN] = SAMPLER_LANGEVIN,
    };
    static const SchedSpacing spacing[] = {
        [JOB_TS_UNIFORM] = SCHED_SPACING_UNIFORM, [JOB_TS_QUADRATIC] = SCHED_SPACING_QUADRATIC,
        [JOB_TS_TRAILING] = SCHED_SPACING_TRAILING,
    };
    sampler_config_default(c, kinds[js->sample.sampler]);
    c->steps = js->sample.steps;
    c->spacing = spacing[js->sample.timesteps];
    c->eta = js->sample.eta;
    c->var = js->sample.variance == JOB_VAR_BETA ? SCHED_VAR_BETA : SCHED_VAR_BETA_TILDE;
    c->clip_x0 = js->sample.clip_x0 && js->objective.type == JOB_OBJ_DDPM;
    c->clip = 1.0;
    c->guidance = js->sample.guidance;
    c->rtol = js->sample.rtol;
    c->atol = js->sample.atol;
    c->correctors = js->sample.correctors;
    c->snr = js->sample.snr;
    c->predictor_em = js->sample.predictor == JOB_PREDICTOR_EM;
    c->langevin_eps = js->sample.langevin_eps;
    c->resample = js->sample.resample;
    c->seed = js->sample.seed;
}

void jobconf_targets(const JobSpec *js, TrainTargetConfig *tc)
{
    train_target_config_default(tc);
    tc->seed = js->run.seed;
    tc->p_uncond = js->model.num_classes > 0 ? js->objective.label_dropout : 0.0;
    tc->tdist = js->objective.flow.t_sampling == JOB_TSAMP_LOGIT_NORMAL ? SCHED_TIME_LOGIT_NORMAL
                                                                        : SCHED_TIME_UNIFORM;
    tc->ln_mean = js->objective.flow.logit_mean;
    tc->ln_std = js->objective.flow.logit_std;
    tc->sde_weight = js->objective.sde.weighting == JOB_SDE_W_G2 ? SDE_WEIGHT_G2 : SDE_WEIGHT_SIGMA2;
}

int jobconf_lr(const JobSpec *js, LrSchedule *lr)
{
    memset(lr, 0, sizeof *lr);
    lr->kind = js->train.lr_schedule == JOB_LR_COSINE ? LR_COSINE : LR_CONSTANT;
    lr->base = js->train.lr;
    lr->min = js->train.min_lr;
    lr->warmup = (uint64_t)jobspec_warmup_steps(js); /* clamped below train.steps */
    lr->total = (uint64_t)js->train.steps;
    return lr_check(lr);
}

int jobconf_optim(const JobSpec *js, OptimConfig *oc)
{
    *oc = optim_config_default();
    oc->kind = js->train.optimizer == JOB_OPT_ADAMW ? OPTIM_ADAMW : OPTIM_ADAM;
    oc->beta1 = (float)js->train.beta1;
    oc->beta2 = (float)js->train.beta2;
    oc->eps = (float)js->train.eps;
    oc->weight_decay = (float)js->train.weight_decay;
    oc->grad_clip = (float)js->train.grad_clip;
    oc->ema_decay = (float)js->train.ema.decay;
    oc->ema_warmup = js->train.ema.warmup;
    return optim_config_check(oc);
}

void jobconf_loader(const JobSpec *js, LoaderConfig *lc)
{
    memset(lc, 0, sizeof *lc);
    lc->seed = js->run.seed;
    lc->batch = (size_t)js->train.batch;
    lc->hflip = js->data.flip;
}
