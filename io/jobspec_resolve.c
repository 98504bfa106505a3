/* io/jobspec_resolve.c - derived defaults, the inactive-subsection rule and the cross-field
 * checks of a job spec (see io/jobspec.h). A derived key follows its sources until it is set
 * explicitly; every check reports at the key that was set, or at the other key involved when
 * the first was left at its default. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "io/dataset.h"
#include "io/jobspec_int.h"

/* ---- derived values ------------------------------------------------------------------------- */

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = xmalloc(la + lb + 1);
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

static void set_derived_str(JobSpec *js, const char *key, const char *a, const char *b)
{
    int fi = key_of(key);
    if (explicit_key(js, fi)) return;
    char **dst = VAL(js, &g_fields[fi], char *);
    xfree(*dst);
    *dst = join(a, b);
}

#define DERIVE(key, lvalue, value) \
    do { if (!explicit_key(js, key_of(key))) (lvalue) = (value); } while (0)

/* Recompute every derived value that was not set explicitly. */
void jobspec_resolve(JobSpec *js)
{
    JobData *d = &js->data;
    /* The shape comes from the dataset registry. The toys are 2-D points; the spec treats them
     * as unlabelled (their mode labels are not classes to condition on). */
    const DatasetInfo *di = dataset_find(jobspec_data_name(js));
    ASSERT(di != NULL);
    int toy = d->dataset == JOB_DATA_TOY2D;
    ASSERT(toy ? !di->fetched : di->fetched && di->h == di->w);
    d->img_channels = toy ? 0 : di->c;
    d->img_size = toy ? 0 : di->h;
    d->n_labels = toy ? 0 : di->num_classes;
    d->data_dim = di->c * di->h * di->w;

    set_derived_str(js, "run.out_dir", "runs/", js->run.name);
    set_derived_str(js, "checkpoint.dir", js->run.out_dir, "/ckpt");
    set_derived_str(js, "sample.out", js->run.out_dir,
                    d->dataset == JOB_DATA_TOY2D ? "/samples.csv" : "/samples.png");
    set_derived_str(js, "slurm.job_name", "", js->run.name);
    set_derived_str(js, "slurm.output", js->run.out_dir, "/slurm-%j.out");

    DERIVE("model.num_classes", js->model.num_classes, d->conditional ? d->n_labels : 0);
    DERIVE("model.unet.temb_dim", js->model.unet.temb_dim, js->model.unet.channels + (js->model.unet.channels & 1));
    DERIVE("model.unet.temb_hidden", js->model.unet.temb_hidden, 4 * js->model.unet.channels);

    JobTrain *t = &js->train;
    int mb = 1;
    for (int k = 16; k >= 1; k--)
        if (t->batch % k == 0) {
            mb = k;
            break;
        }
    DERIVE("train.micro_batch", t->micro_batch, mb);

    JobSample *s = &js->sample;
    DERIVE("sample.sampler", s->sampler,
           js->objective.type == JOB_OBJ_DDPM  ? JOB_SAMPLER_DDIM
           : js->objective.type == JOB_OBJ_SDE ? JOB_SAMPLER_EM
                                               : JOB_SAMPLER_EULER);
    int T = js->objective.ddpm.timesteps;
    int steps = 50;
    if (js->objective.type == JOB_OBJ_DDPM) steps = s->sampler == JOB_SAMPLER_DDPM ? T : (T < 50 ? T : 50);
    DERIVE("sample.steps", s->steps, steps);
    /* uniform spacing starts at t = 1 + (S-1) T/S, where the cosine schedule still leaves
     * sqrt(abar) = 3.0% of the signal (S = 50; 1.4% at S = 100) while x_T is pure noise;
     * trailing spacing starts at t = T (jobs/README.md) */
    DERIVE("sample.timesteps", s->timesteps,
           js->objective.type == JOB_OBJ_DDPM && js->objective.ddpm.schedule == JOB_BETAS_COSINE
               ? JOB_TS_TRAILING
               : JOB_TS_UNIFORM);
    DERIVE("sample.clip_x0", s->clip_x0, d->dataset != JOB_DATA_TOY2D);
    DERIVE("sample.seed", s->seed, js->run.seed);
    DERIVE("sample.use_ema", s->use_ema, t->ema.decay > 0);
}


int jobspec_warmup_steps(const JobSpec *js)
{
    return js->train.warmup < js->train.steps ? js->train.warmup : js->train.steps - 1;
}

/* ---- cross-field checks --------------------------------------------------------------------- */

static void loc_text(const JobSpec *js, int fi, char *buf, size_t n)
{
    const JobSpecLoc *l = js->loc ? &js->loc[fi] : NULL;
    if (l && l->set > 0 && l->set <= js->n_sets) {
        char s[2 * KEY_SHOW_MAX + 16];
        js_show(s, sizeof s, js->sets[l->set - 1], strlen(js->sets[l->set - 1]));
        snprintf(buf, n, "--set %s", s);
    } else if (l && l->line > 0) {
        snprintf(buf, n, "%s:%d:%d", js->file ? js->file : "<spec>", l->line, l->col);
    } else {
        snprintf(buf, n, "%s:1:1", js->file ? js->file : "<defaults>");
    }
}

/* Report at key a when it was set explicitly, else at b when that was, else at a. */
static int xerr(const JobSpec *js, const char *a, const char *b, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int xerr(const JobSpec *js, const char *a, const char *b, const char *fmt, ...)
{
    int fa = key_of(a), fi = fa;
    if (js->loc && !explicit_key(js, fa) && b && explicit_key(js, key_of(b))) fi = key_of(b);
    char where[512], msg[ERR_MSG_MAX];
    loc_text(js, fi, where, sizeof where);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ERR(ERR_SPEC, "%s: %s: %s", where, g_fields[fi].path, msg);
}

/* The inactive-subsection rule (the table is g_subsections): a key of a subsection that does
 * not apply must not be set, or it would be silently ignored. */
static int check_inactive(const JobSpec *js)
{
    if (!js->loc) return ERR_OK;
    for (size_t i = 0; i < g_nfields; i++) {
        int sub;
        if (field_active(js, i, &sub) || !explicit_key(js, (int)i)) continue;
        const Subsection *ss = &g_subsections[sub];
        const Field *sel = &g_fields[key_of(ss->selector)];
        char where[512];
        loc_text(js, (int)i, where, sizeof where);
        return ERR(ERR_SPEC, "%s: %s: only applies when %s is %s, but it is %s", where,
                   g_fields[i].path, ss->selector, sel->names[ss->active_when],
                   sel->names[*CVAL(js, sel, int)]);
    }
    return ERR_OK;
}

int jobspec_check(const JobSpec *js)
{
    const JobData *d = &js->data;
    const JobModel *m = &js->model;
    const JobObjective *o = &js->objective;
    const JobTrain *t = &js->train;
    const JobSample *s = &js->sample;
    const int toy = d->dataset == JOB_DATA_TOY2D;

    TRY(check_inactive(js));

    /* data */
    if (toy && d->flip) return xerr(js, "data.flip", "data.dataset", "flip needs an image dataset");
    if (d->conditional && d->n_labels == 0)
        return xerr(js, "data.conditional", "data.dataset", "dataset %s has no class labels",
                    jobspec_dataset_name(d->dataset));

    /* model */
    if (toy && m->type != JOB_MODEL_MLP)
        return xerr(js, "model.type", "data.dataset", "dataset toy2d needs model.type mlp");
    if (!toy && m->type == JOB_MODEL_MLP)
        return xerr(js, "model.type", "data.dataset", "model.type mlp needs data.dataset toy2d");
    if (d->conditional && m->num_classes != d->n_labels)
        return xerr(js, "model.num_classes", "data.conditional",
                    "must be %d (the classes of %s) for a conditional model", d->n_labels,
                    jobspec_dataset_name(d->dataset));
    if (!d->conditional && m->num_classes != 0)
        return xerr(js, "model.num_classes", "data.conditional",
                    "must be 0 when data.conditional is false");
    if (m->type == JOB_MODEL_UNET) {
        const JobUNet *u = &m->unet;
        int levels = u->n_ch_mult;
        if (d->img_size % (1 << (levels - 1)))
            return xerr(js, "model.unet.ch_mult", NULL,
                        "%d levels halve the image %d times, but the image size %d is not divisible "
                        "by %d", levels, levels - 1, d->img_size, 1 << (levels - 1));
        for (int i = 0; i < levels; i++) {
            long ch = (long)u->channels * u->ch_mult[i];
            if (ch > 65536)
                return xerr(js, "model.unet.ch_mult", "model.unet.channels",
                            "level %d has %ld channels (at most 65536)", i, ch);
            if (ch % u->groups)
                return xerr(js, "model.unet.groups", "model.unet.channels",
                            "%d groups do not divide the %ld channels of level %d", u->groups, ch, i);
        }
        long mid = (long)u->channels * u->ch_mult[levels - 1];
        if (mid % u->heads)
            return xerr(js, "model.unet.heads", "model.unet.channels",
                        "%d heads do not divide the %ld channels of the middle block", u->heads, mid);
        for (int a = 0; a < u->n_attn; a++) {
            int r = u->attn_resolutions[a], lvl = -1;
            for (int i = 0; i < levels; i++)
                if (d->img_size >> i == r) lvl = i;
            for (int b = 0; b < a; b++)
                if (u->attn_resolutions[b] == r)
                    return xerr(js, "model.unet.attn_resolutions", NULL, "%d is listed twice", r);
            if (lvl < 0) {
                char lv[128];
                size_t off = 0;
                for (int i = 0; i < levels; i++)
                    off += (size_t)snprintf(lv + off, sizeof lv - off, "%s%d", i ? ", " : "",
                                            d->img_size >> i);
                return xerr(js, "model.unet.attn_resolutions", NULL,
                            "resolution %d is not reached; the levels are %s", r, lv);
            }
            long ch = (long)u->channels * u->ch_mult[lvl];
            if (ch % u->heads)
                return xerr(js, "model.unet.heads", NULL,
                            "%d heads do not divide the %ld channels at resolution %d", u->heads, ch, r);
        }
        if (u->temb_dim & 1)
            return xerr(js, "model.unet.temb_dim", "model.unet.channels", "must be even, got %d",
                        u->temb_dim);
    }

    /* objective */
    if (o->label_dropout > 0 && !d->conditional)
        return xerr(js, "objective.label_dropout", "data.conditional",
                    "label dropout needs data.conditional: true");
    if (o->type == JOB_OBJ_DDPM && o->ddpm.schedule == JOB_BETAS_LINEAR &&
        o->ddpm.beta_start > o->ddpm.beta_end)
        return xerr(js, "objective.ddpm.beta_end", "objective.ddpm.beta_start",
                    "beta_end (%g) must be >= beta_start (%g)", o->ddpm.beta_end, o->ddpm.beta_start);

    /* train */
    if (t->batch % t->micro_batch)
        return xerr(js, "train.micro_batch", "train.batch", "%d does not divide train.batch (%d)",
                    t->micro_batch, t->batch);
    if (t->min_lr > t->lr)
        return xerr(js, "train.min_lr", "train.lr", "min_lr (%g) exceeds lr (%g)", t->min_lr, t->lr);
    if (t->ema.start > t->steps)
        return xerr(js, "train.ema.start", "train.steps", "%d exceeds train.steps (%d)", t->ema.start,
                    t->steps);

    if (o->type == JOB_OBJ_SDE && o->sde.beta_min > o->sde.beta_max)
        return xerr(js, "objective.sde.beta_max", "objective.sde.beta_min",
                    "beta_max (%g) must be >= beta_min (%g)", o->sde.beta_max, o->sde.beta_min);
    if (o->type == JOB_OBJ_SDE && o->sde.sigma_min >= o->sde.sigma_max)
        return xerr(js, "objective.sde.sigma_max", "objective.sde.sigma_min",
                    "sigma_max (%g) must be > sigma_min (%g)", o->sde.sigma_max, o->sde.sigma_min);

    /* sample */
    int ddpm_family = s->sampler <= JOB_SAMPLER_DPMPP2M;
    int sde_only = s->sampler >= JOB_SAMPLER_EM;
    if (o->type == JOB_OBJ_DDPM && !ddpm_family)
        return xerr(js, "sample.sampler", "objective.type",
                    "sampler %s is for objective %s; use ddpm, ddim or dpmpp2m",
                    jobspec_sampler_name(s->sampler), sde_only ? "sde" : "flow or sde");
    if (o->type == JOB_OBJ_FLOW && (ddpm_family || sde_only))
        return xerr(js, "sample.sampler", "objective.type",
                    "sampler %s is for objective %s; use euler, midpoint, heun, rk4 or rk45",
                    jobspec_sampler_name(s->sampler), ddpm_family ? "ddpm" : "sde");
    if (o->type == JOB_OBJ_SDE && ddpm_family)
        return xerr(js, "sample.sampler", "objective.type",
                    "sampler %s is for objective ddpm; use em, pc, langevin, or euler, midpoint, "
                    "heun, rk4, rk45 for the probability-flow ODE",
                    jobspec_sampler_name(s->sampler));
    if (s->resample > 1 &&
        !(o->type == JOB_OBJ_DDPM && (s->sampler == JOB_SAMPLER_DDPM || s->sampler == JOB_SAMPLER_DDIM)) &&
        !(o->type == JOB_OBJ_FLOW && s->sampler >= JOB_SAMPLER_EULER && s->sampler <= JOB_SAMPLER_RK4))
        return xerr(js, "sample.resample", "sample.sampler",
                    "resampling is for the ddpm and ddim samplers and the fixed-step flow "
                    "samplers (euler, midpoint, heun, rk4), not %s",
                    jobspec_sampler_name(s->sampler));
    if (s->sampler == JOB_SAMPLER_LANGEVIN && s->steps < 2)
        return xerr(js, "sample.steps", "sample.sampler",
                    "langevin needs at least 2 noise levels, got %d", s->steps);
    if (s->sampler == JOB_SAMPLER_LANGEVIN && s->correctors < 1)
        return xerr(js, "sample.correctors", "sample.sampler",
                    "langevin needs at least 1 move per noise level");
    if (o->type == JOB_OBJ_DDPM && s->steps > o->ddpm.timesteps)
        return xerr(js, "sample.steps", "objective.ddpm.timesteps",
                    "%d sampling steps exceed objective.ddpm.timesteps (%d)", s->steps,
                    o->ddpm.timesteps);
    if (o->type != JOB_OBJ_DDPM && s->timesteps == JOB_TS_TRAILING)
        return xerr(js, "sample.timesteps", "objective.type", "trailing spacing is for objective ddpm");
    if (s->guidance != 1.0 && o->label_dropout <= 0)
        return xerr(js, "sample.guidance", "objective.label_dropout",
                    "guidance %g needs a model trained with objective.label_dropout > 0 (and "
                    "data.conditional: true); use 1 for no guidance", s->guidance);
    if (s->label >= 0 && !d->conditional)
        return xerr(js, "sample.label", "data.conditional", "a class label needs data.conditional: true");
    if (s->label >= m->num_classes && d->conditional)
        return xerr(js, "sample.label", NULL, "%d is not a class of %s (0..%d)", s->label,
                    jobspec_dataset_name(d->dataset), m->num_classes - 1);
    if (s->use_ema && t->ema.decay <= 0)
        return xerr(js, "sample.use_ema", "train.ema.decay", "needs train.ema.decay > 0");

    /* eval */
    for (int i = 0; i < js->eval.n_metrics; i++) {
        JobMetric mt = js->eval.metrics[i];
        if (mt == JOB_METRIC_FD_FMNIST && d->dataset != JOB_DATA_FASHION_MNIST)
            return xerr(js, "eval.metrics", "data.dataset", "fd_fmnist needs data.dataset fashion-mnist");
        if (mt == JOB_METRIC_SPECTRUM && toy)
            return xerr(js, "eval.metrics", "data.dataset", "spectrum needs an image dataset");
        if (mt == JOB_METRIC_ELBO && o->type != JOB_OBJ_DDPM)
            return xerr(js, "eval.metrics", "objective.type",
                        "elbo is the variational bound of objective ddpm; use nll for %s models",
                        o->type == JOB_OBJ_FLOW ? "flow" : "sde");
    }
    return ERR_OK;
}

