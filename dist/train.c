/* dist/train.c - the training loop: data -> targets -> forward/backward per micro-shard ->
 * tree reduction -> clip -> Adam(W) -> EMA, with logging, sample grids and agreement checks.
 * See dist/train.h for the contract. */
#include "dist/train.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rng.h"
#include "dist/data.h"
#include "dist/dist.h"
#include "dist/jobagree.h"
#include "dist/reduce.h"
#include "io/dataset.h"
#include "io/fsutil.h"
#include "io/image.h"
#include "io/loader.h"
#include "io/runlog.h"
#include "io/weights.h"
#include "model/metrics.h"
#include "model/net.h"
#include "model/optim.h"
#include "sched/lr.h"
#include "sched/sampler.h"
#include "sched/schedule.h"
#include "sched/targets.h"

/* Flow models see 1000 * tau as their time input, so the sinusoidal embedding covers the same
 * range as a DDPM model's 0..T-1 timesteps. */
#define FLOW_TIME_SCALE 1000.0
/* The gradient norm is summed in double over fixed chunks of this many floats, then over the
 * chunks in order: the same bits for any rank count, with or without ZeRO-1 (shards are aligned
 * to whole chunks, whose sums are exchanged: n / 4096 doubles per step). */
#define NORM_CHUNK ((size_t)4096)

typedef struct {
    const JobSpec *js;
    int rank, size, threads;
    Dataset ds;
    LoaderConfig lc;
    Net *net;
    size_t n, D;        /* parameters; floats per example */
    Schedule sch;
    TrainTargetConfig tc;
    LrSchedule lr;
    OptimConfig oc;
    Optim opt;
    GradReducer *red;
    size_t B, m, M;     /* global batch, micro-batch, micro-shards */
    double tscale;      /* network time input = tscale * sampler/target time */
    /* micro-batch scratch */
    float *x0, *xt, *target, *out, *dout;
    double *tnet, *per_sample;
    float *tin;
    int *labels, *labels_in;
    uint64_t *idx;
    double *chunk_sumsq; /* n_chunks */
    size_t n_chunks;
    float *scratch;      /* n floats: the live weights while sampling from the EMA */
    int ready_rc;        /* first error of on_grad_ready */
    RunLog rl;
} Trainer;

/* ---- configuration from the job spec ---------------------------------------------------- */

static const char *dataset_name(const JobSpec *js)
{
    switch (js->data.dataset) {
    case JOB_DATA_FASHION_MNIST: return "fashion-mnist";
    case JOB_DATA_MNIST: return "mnist";
    case JOB_DATA_CIFAR10: return "cifar-10";
    case JOB_DATA_TOY2D: break;
    }
    switch (js->data.toy) {
    case JOB_TOY_MOONS: return "moons";
    case JOB_TOY_8GAUSSIANS: return "8gaussians";
    case JOB_TOY_CHECKERBOARD: return "checkerboard";
    case JOB_TOY_SWISSROLL: return "swissroll";
    }
    return "?";
}

void train_net_config(const JobSpec *js, NetConfig *nc)
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

static int schedule_from_spec(const JobSpec *js, Schedule *s)
{
    if (js->objective.type == JOB_OBJ_FLOW) return sched_init_flow(s, js->objective.flow.sigma_min);
    const JobDDPM *d = &js->objective.ddpm;
    SchedPred pred = d->prediction == JOB_PRED_EPS  ? SCHED_PRED_EPS
                     : d->prediction == JOB_PRED_X0 ? SCHED_PRED_X0
                                                    : SCHED_PRED_V;
    if (d->schedule == JOB_BETAS_LINEAR)
        return sched_init_linear(s, d->timesteps, d->beta_start, d->beta_end, pred);
    return sched_init_cosine(s, d->timesteps, d->cosine_s, 0.999, pred);
}

static void sampler_from_spec(const JobSpec *js, SamplerConfig *c)
{
    static const SamplerKind kinds[] = {
        [JOB_SAMPLER_DDPM] = SAMPLER_DDPM,   [JOB_SAMPLER_DDIM] = SAMPLER_DDIM,
        [JOB_SAMPLER_DPMPP2M] = SAMPLER_DPMPP_2M, [JOB_SAMPLER_EULER] = SAMPLER_EULER,
        [JOB_SAMPLER_MIDPOINT] = SAMPLER_MIDPOINT, [JOB_SAMPLER_HEUN] = SAMPLER_HEUN,
        [JOB_SAMPLER_RK4] = SAMPLER_RK4,
    };
    static const SchedSpacing spacing[] = {
        [JOB_TS_UNIFORM] = SCHED_SPACING_UNIFORM, [JOB_TS_QUADRATIC] = SCHED_SPACING_QUADRATIC,
        [JOB_TS_TRAILING] = SCHED_SPACING_TRAILING,
    };
    sampler_config_default(c, kinds[js->sample.sampler]);
    c->steps = js->sample.steps;
    c->spacing = spacing[js->sample.timesteps];
    c->eta = js->sample.eta;
    c->clip_x0 = js->sample.clip_x0 && js->objective.type == JOB_OBJ_DDPM;
    c->clip = 1.0;
    c->guidance = js->sample.guidance;
    c->seed = js->sample.seed;
}

/* ---- the network as a sampler callback ---------------------------------------------------- */

typedef struct {
    Net *net;
    double tscale;
    float *t;
    size_t cap;
} NetFnCtx;

static int net_fn(void *vctx, const float *x, const double *t, const int *labels, size_t B,
                  size_t D, float *out)
{
    NetFnCtx *c = vctx;
    (void)D;
    if (B > c->cap) {
        c->t = xrealloc(c->t, sizeof(float) * B);
        c->cap = B;
    }
    for (size_t b = 0; b < B; b++) c->t[b] = (float)(t[b] * c->tscale);
    net_forward(c->net, x, c->t, labels, NULL, 0, 0, 0, B, out);
    return ERR_OK;
}

/* ---- sampling, spread over the ranks ------------------------------------------------------ */

/* Draw samples 0..count-1 (sample indices are the keys of their noise) from the EMA weights
 * (or the live ones), each rank its contiguous part, gathered on every rank into out
 * (count, D). */
static int sample_all(Trainer *tr, size_t count, float *out)
{
    const JobSpec *js = tr->js;
    size_t chunk = (count + (size_t)tr->size - 1) / (size_t)tr->size;
    size_t first = (size_t)tr->rank * chunk;
    size_t mine = first >= count ? 0 : (count - first < chunk ? count - first : chunk);
    float *local = xcalloc(chunk * tr->D + 1, sizeof(float));
    float *all = xcalloc((size_t)tr->size * chunk * tr->D + 1, sizeof(float));
    size_t bs = (size_t)js->sample.batch;
    uint64_t *idx = xmalloc(sizeof(uint64_t) * bs);
    int *labels = xmalloc(sizeof(int) * bs);
    int use_ema = js->sample.use_ema && tr->opt.ema;
    float *params = net_params(tr->net);
    if (use_ema) {
        memcpy(tr->scratch, params, sizeof(float) * tr->n);
        memcpy(params, tr->opt.ema, sizeof(float) * tr->n);
    }
    SamplerConfig sc;
    sampler_from_spec(js, &sc);
    NetFnCtx ctx = {.net = tr->net, .tscale = tr->tscale};
    int rc = ERR_OK, nclass = js->model.num_classes;
    for (size_t s = 0; s < mine && rc == ERR_OK; s += bs) {
        size_t nb = mine - s < bs ? mine - s : bs;
        for (size_t j = 0; j < nb; j++) {
            idx[j] = first + s + j;
            labels[j] = js->sample.label >= 0 ? js->sample.label
                                              : (nclass > 0 ? (int)(idx[j] % (uint64_t)nclass) : -1);
        }
        rc = sched_sample(&sc, &tr->sch, net_fn, &ctx, idx, nb, tr->D, nclass > 0 ? labels : NULL,
                          NULL, NULL, local + s * tr->D, NULL);
    }
    if (use_ema) memcpy(params, tr->scratch, sizeof(float) * tr->n);
    /* Every rank takes part in the gather even after a local failure, then all agree. */
    int64_t bad = rc != ERR_OK;
    int grc = dist_allgather(local, all, sizeof(float) * chunk * tr->D);
    if (grc == ERR_OK) grc = dist_allreduce_max_i64(&bad, 1);
    if (grc == ERR_OK && bad && rc == ERR_OK)
        grc = ERR(ERR_STATE, "sampling failed on another rank");
    if (rc == ERR_OK) rc = grc;
    if (rc == ERR_OK) memcpy(out, all, sizeof(float) * count * tr->D);
    xfree(ctx.t);
    xfree(local);
    xfree(all);
    xfree(idx);
    xfree(labels);
    return rc;
}

static int write_samples(Trainer *tr, const char *path, const float *x, size_t count)
{
    const JobSpec *js = tr->js;
    if (js->data.dataset == JOB_DATA_TOY2D) return image_write_scatter_png(path, x, count, 512, 3.0);
    return image_write_grid_png(path, x, count, (size_t)js->data.img_channels,
                                (size_t)js->data.img_size, (size_t)js->data.img_size, 0);
}

/* ---- set-up and tear-down ----------------------------------------------------------------- */

static int load_data(Trainer *tr)
{
    const JobSpec *js = tr->js;
    const char *name = dataset_name(js);
    if (js->data.dataset == JOB_DATA_TOY2D)
        return dataset_toy(&tr->ds, name, (size_t)js->data.toy_size, js->run.seed);
    TRY(dist_dataset_fetch_job(js, name));
    return dataset_open(&tr->ds, name, js->data.dir, DATASET_TRAIN);
}

/* Gradients of [lo, hi) are final during the backward: the reducer starts the exchange of the
 * buckets they complete (it acts on the rank's last micro-shard only), in both modes. */
static void on_grad_ready(void *ctx, size_t lo, size_t hi)
{
    Trainer *tr = ctx;
    if (tr->ready_rc == ERR_OK) tr->ready_rc = reducer_mark_ready(tr->red, lo, hi);
}

static int setup(Trainer *tr, const JobSpec *js)
{
    memset(tr, 0, sizeof *tr);
    tr->js = js;
    tr->rank = dist_rank();
    tr->size = dist_size();
    tr->threads = js->train.threads > 0 ? js->train.threads : dist_default_threads();
    omp_set_num_threads(tr->threads);
    TRY(dist_job_agree_spec(js)); /* before any job-dependent exchange */

    TRY(load_data(tr));
    tr->D = dataset_dim(&tr->ds);
    tr->B = (size_t)js->train.batch;
    tr->m = (size_t)js->train.micro_batch;
    tr->M = tr->B / tr->m;
    if (tr->B > tr->ds.n)
        return ERR(ERR_SPEC, "train.batch (%zu) is larger than the dataset (%zu examples)", tr->B,
                   tr->ds.n);
    if ((size_t)js->data.data_dim != tr->D)
        return ERR(ERR_FORMAT, "dataset %s has %zu values per example, the job expects %d",
                   tr->ds.name, tr->D, js->data.data_dim);
    tr->lc.seed = js->run.seed;
    tr->lc.batch = tr->B;
    tr->lc.hflip = js->data.flip;

    NetConfig nc;
    train_net_config(js, &nc);
    tr->net = net_create(&nc);
    if (!tr->net) return err_code() != ERR_OK ? (int)err_code()
                                              : ERR(ERR_SPEC, "invalid model configuration");
    net_set_threads(tr->net, tr->threads);
    net_init_params(tr->net, js->run.seed);
    tr->n = net_num_params(tr->net);

    TRY(schedule_from_spec(js, &tr->sch));
    tr->tscale = js->objective.type == JOB_OBJ_FLOW ? FLOW_TIME_SCALE : 1.0;
    train_target_config_default(&tr->tc);
    tr->tc.seed = js->run.seed;
    tr->tc.p_uncond = js->model.num_classes > 0 ? js->objective.label_dropout : 0.0;
    tr->tc.tdist = js->objective.flow.t_sampling == JOB_TSAMP_LOGIT_NORMAL ? SCHED_TIME_LOGIT_NORMAL
                                                                           : SCHED_TIME_UNIFORM;
    tr->tc.ln_mean = js->objective.flow.logit_mean;
    tr->tc.ln_std = js->objective.flow.logit_std;

    tr->lr.kind = js->train.lr_schedule == JOB_LR_COSINE ? LR_COSINE : LR_CONSTANT;
    tr->lr.base = js->train.lr;
    tr->lr.min = js->train.min_lr;
    tr->lr.warmup = (uint64_t)js->train.warmup;
    tr->lr.total = (uint64_t)js->train.steps;
    TRY(lr_check(&tr->lr));

    tr->oc = optim_config_default();
    tr->oc.kind = js->train.optimizer == JOB_OPT_ADAMW ? OPTIM_ADAMW : OPTIM_ADAM;
    tr->oc.beta1 = (float)js->train.beta1;
    tr->oc.beta2 = (float)js->train.beta2;
    tr->oc.eps = (float)js->train.eps;
    tr->oc.weight_decay = (float)js->train.weight_decay;
    tr->oc.grad_clip = (float)js->train.grad_clip;
    tr->oc.ema_decay = (float)js->train.ema.decay;
    tr->oc.ema_warmup = js->train.ema.warmup;
    TRY(optim_config_check(&tr->oc));
    optim_init(&tr->opt, &tr->oc, tr->n, net_params(tr->net));

    /* Overlap buckets: an eighth of the model, between 64 KiB and 4 MiB, so even a small model
     * has several buckets to start during its backward. */
    size_t bucket = tr->n / 8;
    bucket = bucket < 16384 ? 16384 : bucket > 1048576 ? 1048576 : bucket;
    ReducerConfig rcfg = {.n = tr->n, .M = tr->M, .bucket_floats = bucket,
                          .mode = js->train.reduce == JOB_REDUCE_OVERLAP ? REDUCE_OVERLAP
                                                                         : REDUCE_DETERMINISTIC,
                          .zero1 = js->train.zero1, .shard_align = NORM_CHUNK};
    TRY(reducer_create(&tr->red, &rcfg));
    net_set_grad_ready(tr->net, on_grad_ready, tr);

    size_t mD = tr->m * tr->D;
    tr->x0 = xalloc_aligned(sizeof(float) * mD);
    tr->xt = xalloc_aligned(sizeof(float) * mD);
    tr->target = xalloc_aligned(sizeof(float) * mD);
    tr->out = xalloc_aligned(sizeof(float) * mD);
    tr->dout = xalloc_aligned(sizeof(float) * mD);
    tr->tnet = xmalloc(sizeof(double) * tr->m);
    tr->per_sample = xmalloc(sizeof(double) * tr->m);
    tr->tin = xmalloc(sizeof(float) * tr->m);
    tr->labels = xmalloc(sizeof(int) * tr->m);
    tr->labels_in = xmalloc(sizeof(int) * tr->m);
    tr->idx = xmalloc(sizeof(uint64_t) * tr->m);
    tr->n_chunks = (tr->n + NORM_CHUNK - 1) / NORM_CHUNK;
    tr->chunk_sumsq = xcalloc(tr->n_chunks, sizeof(double));
    tr->scratch = xalloc_aligned(sizeof(float) * tr->n);
    if (tr->rank == 0) TRY(runlog_open(&tr->rl, js->run.out_dir, js->train.log_every));
    TRY(fs_mkdir_p(js->run.out_dir));
    return ERR_OK;
}

static void teardown(Trainer *tr)
{
    runlog_close(&tr->rl);
    reducer_destroy(&tr->red);
    optim_free(&tr->opt);
    net_destroy(&tr->net);
    sched_free(&tr->sch);
    dataset_free(&tr->ds);
    xfree_aligned(tr->x0);
    xfree_aligned(tr->xt);
    xfree_aligned(tr->target);
    xfree_aligned(tr->out);
    xfree_aligned(tr->dout);
    xfree_aligned(tr->scratch);
    xfree(tr->tnet);
    xfree(tr->per_sample);
    xfree(tr->tin);
    xfree(tr->labels);
    xfree(tr->labels_in);
    xfree(tr->idx);
    xfree(tr->chunk_sumsq);
}

/* ---- one optimizer step ------------------------------------------------------------------ */

/* Fault injection for the non-finite-loss tests: DFM_FAULT_NAN_STEPS=A or A-B (1-based steps)
 * puts a NaN into the first example of micro-batch 0 at those steps, as corrupt data would. */
static int fault_nan_at(long step1)
{
    static long a = -2, b = -2;
    if (a == -2) {
        const char *e = getenv("DFM_FAULT_NAN_STEPS");
        a = b = -1;
        if (e && *e) {
            char *end;
            a = strtol(e, &end, 10);
            b = *end == '-' ? strtol(end + 1, NULL, 10) : a;
        }
    }
    return a >= 0 && step1 >= a && step1 <= b;
}

/* Statistics reduced across ranks: loss sum, then per-quartile loss sums and counts. */
enum { ST_LOSS = 0, ST_QSUM = 1, ST_QCNT = 5, ST_N = 9 };

/* Forward and backward of this rank's micro-shards of global batch k; the reduced gradient
 * lands in *grad (full buffer, or this rank's shard [*lo, *hi) under ZeRO-1). */
static int compute_gradient(Trainer *tr, uint64_t k, double stats[ST_N], float **grad, size_t *lo,
                            size_t *hi)
{
    const JobSpec *js = tr->js;
    size_t first, end;
    reducer_local_shards(tr->red, &first, &end);
    double norm = (double)tr->B * (double)tr->D;
    int conditional = js->model.num_classes > 0;
    for (size_t s = first; s < end; s++) {
        loader_fill(&tr->ds, &tr->lc, k, s * tr->m, tr->m, tr->x0, tr->labels_in, tr->idx);
        if (s == 0 && fault_nan_at((long)k + 1)) tr->x0[0] = NAN;
        TRY(sched_train_targets(&tr->tc, &tr->sch, k, tr->idx, tr->m, tr->D, tr->x0,
                                conditional ? tr->labels_in : NULL, tr->xt, tr->tnet, tr->target,
                                conditional ? tr->labels : NULL, NULL, NULL));
        for (size_t b = 0; b < tr->m; b++) tr->tin[b] = (float)(tr->tnet[b] * tr->tscale);
        net_forward(tr->net, tr->xt, tr->tin, conditional ? tr->labels : NULL, tr->idx,
                    js->run.seed, (uint32_t)k, 1, tr->m, tr->out);
        stats[ST_LOSS] += sched_loss_mse(tr->out, tr->target, tr->m, tr->D, norm, tr->dout,
                                         tr->per_sample);
        for (size_t b = 0; b < tr->m; b++) {
            int q = sched_time_quartile(&tr->sch, tr->tnet[b]);
            stats[ST_QSUM + q] += tr->per_sample[b];
            stats[ST_QCNT + q] += 1.0;
        }
        reducer_leaf_begin_into(tr->red, s, net_grads(tr->net));
        net_backward(tr->net, tr->dout);
        TRY(tr->ready_rc);
        TRY(reducer_leaf_end(tr->red));
    }
    if (js->train.zero1) return reducer_finish_shard(tr->red, grad, lo, hi);
    *lo = 0;
    *hi = tr->n;
    return reducer_finish(tr->red, grad);
}

/* Global gradient norm, the same bits for every rank count (see NORM_CHUNK). */
static int grad_norm(Trainer *tr, const float *g, size_t lo, size_t hi, double *out)
{
    memset(tr->chunk_sumsq, 0, sizeof(double) * tr->n_chunks);
    ASSERT(lo == hi || lo % NORM_CHUNK == 0);
    size_t c0 = lo / NORM_CHUNK, c1 = lo == hi ? c0 : (hi + NORM_CHUNK - 1) / NORM_CHUNK;
#pragma omp parallel for schedule(static)
    for (size_t c = c0; c < c1; c++) {
        size_t a = c * NORM_CHUNK, b = a + NORM_CHUNK < hi ? a + NORM_CHUNK : hi;
        tr->chunk_sumsq[c] = optim_grad_sumsq(g, a, b);
    }
    if (tr->js->train.zero1) TRY(dist_allreduce_sum_f64(tr->chunk_sumsq, tr->n_chunks));
    double s = 0.0;
    for (size_t c = 0; c < tr->n_chunks; c++) s += tr->chunk_sumsq[c];
    *out = sqrt(s);
    return ERR_OK;
}

static void apply_update(Trainer *tr, const float *g, size_t lo, size_t hi, double gnorm,
                         double lr)
{
    float *p = net_params(tr->net);
    float scale = optim_clip_scale(gnorm, tr->oc.grad_clip);
    uint64_t t = ++tr->opt.step;
    size_t nthreads = (size_t)tr->threads, span = hi - lo;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < nthreads; i++) {
        size_t a = lo + span * i / nthreads, b = lo + span * (i + 1) / nthreads;
        adam_update_range(&tr->oc, p, g, tr->opt.m, tr->opt.v, (float)lr, scale, t, a, b);
    }
}

static void update_ema(Trainer *tr, uint64_t step)
{
    if (!tr->opt.ema) return;
    float *p = net_params(tr->net);
    if (step < (uint64_t)tr->js->train.ema.start) {
        memcpy(tr->opt.ema, p, sizeof(float) * tr->n);
        return;
    }
    double d = optim_ema_decay(&tr->oc, tr->opt.ema_updates++);
    size_t nthreads = (size_t)tr->threads;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < nthreads; i++)
        ema_update_range(tr->opt.ema, p, d, tr->n * i / nthreads, tr->n * (i + 1) / nthreads);
}

/* Fault injection for the divergence test: DFM_FAULT_DIVERGE_STEP=S makes the last rank nudge
 * one parameter by one ulp after step S. */
static void maybe_inject_divergence(Trainer *tr, long step)
{
    static long when = -2;
    if (when == -2) {
        const char *e = getenv("DFM_FAULT_DIVERGE_STEP");
        when = e && *e ? atol(e) : -1;
    }
    if (when >= 0 && step == when && tr->rank == tr->size - 1 && tr->size > 1) {
        float *p = net_params(tr->net);
        p[tr->n / 2] = nextafterf(p[tr->n / 2], INFINITY);
    }
}

/* ---- the loop ----------------------------------------------------------------------------- */

static int write_final(Trainer *tr, const TrainResult *res)
{
    const JobSpec *js = tr->js;
    char path[4200];
    size_t nt;
    const ParamEntry *pe = net_param_table(tr->net, &nt);
    WeightsTensor *wt = xcalloc(nt, sizeof *wt);
    for (size_t i = 0; i < nt; i++) {
        snprintf(wt[i].name, sizeof wt[i].name, "%s", pe[i].name);
        wt[i].ndim = pe[i].ndim;
        memcpy(wt[i].shape, pe[i].shape, sizeof wt[i].shape);
        wt[i].offset = pe[i].offset;
        wt[i].count = pe[i].count;
    }
    snprintf(path, sizeof path, "%s/weights.bin", js->run.out_dir);
    int rc = weights_write(path, wt, nt, net_params(tr->net), tr->opt.ema, tr->n);
    xfree(wt);
    TRY(rc);
    AtomicFile af;
    snprintf(path, sizeof path, "%s/final.json", js->run.out_dir);
    TRY(fs_atomic_open(&af, path));
    fprintf(af.f,
            "{\"steps\":%ld,\"ranks\":%d,\"threads\":%d,\"params\":%zu,\"loss\":%.9g,"
            "\"nonfinite\":%ld,\"img_per_s\":%.6g,\"param_hash\":\"%016llx\","
            "\"ema_hash\":\"%016llx\",\"bitwise_rank_invariant\":%s",
            res->steps_done, tr->size, tr->threads, tr->n, res->last_loss, res->nonfinite,
            res->img_per_s, (unsigned long long)res->param_hash,
            (unsigned long long)res->ema_hash, reducer_bitwise(tr->red) ? "true" : "false");
    ReducerStats rs;
    reducer_stats(tr->red, &rs);
    fprintf(af.f, ",\"comm_s_per_step\":%.6g,\"buckets\":%zu,\"buckets_started_in_backward\":%zu",
            rs.steps ? rs.comm_s / (double)rs.steps : 0.0, rs.buckets, rs.buckets_early);
    if (isfinite(res->swd))
        fprintf(af.f, ",\"swd\":%.9g,\"swd_floor\":%.9g,\"swd_ratio\":%.6g", res->swd,
                res->swd_floor, res->swd / res->swd_floor);
    fprintf(af.f, "}\n");
    return fs_atomic_commit(&af);
}

/* Toy data: SW2 between the model's samples and held-out data, next to the SW2 between two
 * independent held-out draws of the same size (what a perfect model would score). */
static int toy_distance(Trainer *tr, const float *samples, size_t count, TrainResult *res)
{
    Dataset a = {0}, b = {0};
    const char *name = dataset_name(tr->js);
    uint64_t seed = tr->js->run.seed;
    TRY(dataset_toy(&a, name, count, seed ^ UINT64_C(0x5eed0001)));
    int rc = dataset_toy(&b, name, count, seed ^ UINT64_C(0x5eed0002));
    if (rc == ERR_OK) {
        res->swd = metrics_swd(samples, count, a.f32, count, tr->D, 256, seed);
        res->swd_floor = metrics_swd(b.f32, count, a.f32, count, tr->D, 256, seed);
    }
    dataset_free(&a);
    dataset_free(&b);
    return rc;
}

static int sample_and_write(Trainer *tr, TrainResult *res, int final)
{
    const JobSpec *js = tr->js;
    size_t count = (size_t)(final ? js->sample.count : js->train.sample_count);
    float *x = xmalloc(sizeof(float) * count * tr->D);
    int rc = sample_all(tr, count, x);
    if (rc == ERR_OK && final && js->data.dataset == JOB_DATA_TOY2D)
        rc = toy_distance(tr, x, count, res);
    if (rc == ERR_OK && tr->rank == 0) {
        char path[4200];
        if (final)
            snprintf(path, sizeof path, "%s", js->sample.out);
        else
            snprintf(path, sizeof path, "%s/samples.png", js->run.out_dir);
        if (js->data.dataset == JOB_DATA_TOY2D && final) {
            size_t L = strlen(path);
            if (L > 4 && !strcmp(path + L - 4, ".csv")) {
                AtomicFile af;
                rc = fs_atomic_open(&af, path);
                if (rc == ERR_OK) {
                    fprintf(af.f, "x,y\n");
                    for (size_t i = 0; i < count; i++)
                        fprintf(af.f, "%.7g,%.7g\n", (double)x[2 * i], (double)x[2 * i + 1]);
                    rc = fs_atomic_commit(&af);
                }
                snprintf(path, sizeof path, "%s/samples.png", js->run.out_dir);
            }
        }
        if (rc == ERR_OK) rc = write_samples(tr, path, x, count);
    }
    xfree(x);
    return rc;
}

/* Whether a key was written in the spec file or given with --set (not a default). */
static int spec_explicit(const JobSpec *js, const char *key)
{
    for (size_t i = 0; js->loc && i < jobspec_nkeys(); i++)
        if (!strcmp(jobspec_key(i), key)) return js->loc[i].line > 0 || js->loc[i].set > 0;
    return 0;
}

/* Settings of the job spec this version of the loop does not act on yet: say so once, rather
 * than let a user believe they took effect. */
static int check_unsupported(const Trainer *tr)
{
    const JobSpec *js = tr->js;
    if (js->checkpoint.resume == JOB_RESUME_MUST)
        return ERR(ERR_SPEC, "checkpoint.resume: must: this version of dfm train does not write or "
                   "resume checkpoints (it writes weights.bin at the end of the run)");
    if (tr->rank != 0) return ERR_OK;
    if (js->checkpoint.every > 0 && spec_explicit(js, "checkpoint.every"))
        log_warn("checkpoint.every = %d: periodic checkpoints are not written by this version; "
                 "the final weights go to %s/weights.bin", js->checkpoint.every, js->run.out_dir);
    if (js->eval.every > 0 && spec_explicit(js, "eval.every"))
        log_warn("eval.every = %d: periodic evaluation is not run by this version; toy2d runs "
                 "report the sliced Wasserstein distance of the final samples", js->eval.every);
    return ERR_OK;
}

static int train_loop(Trainer *tr, TrainResult *res)
{
    const JobSpec *js = tr->js;
    long steps = js->train.steps, consecutive_bad = 0;
    double t0 = core_now();
    float *params = net_params(tr->net);
    if (tr->rank == 0) {
        log_info("training %s: %s on %s, %zu parameters, %d rank%s x %d thread%s, global batch "
                 "%zu (%zu micro-batches of %zu)%s",
                 js->run.name, js->objective.type == JOB_OBJ_FLOW ? "flow matching" : "DDPM",
                 tr->ds.name, tr->n, tr->size, tr->size > 1 ? "s" : "", tr->threads,
                 tr->threads > 1 ? "s" : "", tr->B, tr->M, tr->m,
                 reducer_bitwise(tr->red) ? ", rank-count invariant" : "");
    }
    for (long step = 0; step < steps; step++) {
        double st[ST_N] = {0};
        float *g;
        size_t lo, hi;
        TRY(compute_gradient(tr, (uint64_t)step, st, &g, &lo, &hi));
        TRY(dist_allreduce_sum_f64(st, ST_N));
        double gnorm;
        TRY(grad_norm(tr, g, lo, hi, &gnorm));
        double lr = lr_at(&tr->lr, (uint64_t)step);
        if (!isfinite(st[ST_LOSS]) || !isfinite(gnorm)) {
            res->nonfinite++;
            if (++consecutive_bad > js->train.max_nonfinite) {
                ERR(ERR_NUMERIC, "%ld consecutive steps had a non-finite loss or gradient "
                    "(last at step %ld, lr %.3g)", consecutive_bad, step + 1, lr);
                err_hint("the run has diverged: lower train.lr, set train.grad_clip (e.g. 1.0) or "
                         "a longer train.warmup, and check the data for NaN/Inf");
                return ERR_NUMERIC;
            }
            if (tr->rank == 0)
                runlog_note(&tr->rl, "step %ld: non-finite loss or gradient, update skipped",
                            step + 1);
        } else {
            consecutive_bad = 0;
            apply_update(tr, g, lo, hi, gnorm, lr);
            if (js->train.zero1) TRY(reducer_allgather_params(tr->red, params));
            update_ema(tr, (uint64_t)step);
            res->steps_done++;
        }
        maybe_inject_divergence(tr, step + 1);
        if (js->train.check_every > 0 && (step + 1) % js->train.check_every == 0)
            TRY(dist_params_agree(params, tr->n, step + 1, NULL));
        double wall = core_now() - t0;
        res->last_loss = st[ST_LOSS];
        res->wall_s = wall;
        res->img_per_s = (double)tr->B * (double)(step + 1) / wall;
        if (tr->rank == 0) {
            RunRecord r = {.step = step + 1, .steps = steps, .loss = st[ST_LOSS],
                           .grad_norm = gnorm, .lr = lr, .img_per_s = res->img_per_s,
                           .wall_s = wall, .nonfinite = res->nonfinite};
            for (int q = 0; q < 4; q++)
                r.loss_q[q] = st[ST_QCNT + q] > 0 ? st[ST_QSUM + q] / st[ST_QCNT + q] : (double)NAN;
            TRY(runlog_record(&tr->rl, &r));
        }
        if (js->train.sample_every > 0 && (step + 1) % js->train.sample_every == 0 &&
            step + 1 < steps)
            TRY(sample_and_write(tr, res, 0));
    }
    return ERR_OK;
}

int train_run(const JobSpec *js, TrainResult *res)
{
    Trainer tr;
    memset(res, 0, sizeof *res);
    res->swd = res->swd_floor = NAN;
    int rc = setup(&tr, js);
    if (rc == ERR_OK) rc = check_unsupported(&tr);
    if (rc == ERR_OK) rc = train_loop(&tr, res);
    if (rc == ERR_OK) rc = dist_params_agree(net_params(tr.net), tr.n, res->steps_done,
                                             &res->param_hash);
    if (rc == ERR_OK) {
        res->ema_hash = tr.opt.ema ? dist_hash_f32(tr.opt.ema, tr.n) : 0;
        rc = sample_and_write(&tr, res, 1);
    }
    if (rc == ERR_OK && tr.rank == 0) rc = write_final(&tr, res);
    if (rc == ERR_OK && tr.rank == 0) {
        runlog_note(&tr.rl, "done: %ld steps in %.1f min, final loss %.4f, %.1f img/s",
                    res->steps_done, res->wall_s / 60.0, res->last_loss, res->img_per_s);
        runlog_note(&tr.rl, "samples: %s", js->sample.out);
        runlog_note(&tr.rl, "metrics: %s/metrics.jsonl (one JSON line per step)", js->run.out_dir);
        runlog_note(&tr.rl, "weights: %s/weights.bin (summary in final.json)", js->run.out_dir);
        if (isfinite(res->swd))
            runlog_note(&tr.rl, "sliced Wasserstein distance to held-out data %.4f (data-to-data "
                        "floor %.4f, ratio %.2f)", res->swd, res->swd_floor,
                        res->swd / res->swd_floor);
    }
    teardown(&tr);
    return rc;
}
