/* dist/train.c - the training loop: data -> targets -> forward/backward per micro-shard ->
 * tree reduction -> clip -> Adam(W) -> EMA, with logging and agreement checks. See
 * dist/train.h for the contract; the job-spec translation is dist/jobconf.c, sampling
 * dist/sample.c, the files a run writes dist/runfiles.c. */
#include "dist/train.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "dist/data.h"
#include "dist/dist.h"
#include "dist/evaltrain.h"
#include "dist/fault.h"
#include "dist/jobagree.h"
#include "dist/jobconf.h"
#include "dist/preempt.h"
#include "dist/runfiles.h"
#include "dist/trainckpt.h"
#include "dist/watchdog.h"
#include "io/fsutil.h"

/* The gradient norm is summed in double over fixed chunks of this many floats, then over the
 * chunks in order: the same bits for any rank count, with or without ZeRO-1 (shards are aligned
 * to whole chunks, whose sums are exchanged: n / 4096 doubles per step). */
#define NORM_CHUNK ((size_t)4096)

/* ---- set-up and tear-down ----------------------------------------------------------------- */

static int load_data(Trainer *tr)
{
    const JobSpec *js = tr->js;
    const char *name = jobconf_dataset_name(js);
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

int trainer_init(Trainer *tr, const JobSpec *js)
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
    jobconf_loader(js, &tr->lc);

    NetConfig nc;
    jobconf_net(js, &nc);
    tr->net = net_create(&nc);
    if (!tr->net) return err_code() != ERR_OK ? (int)err_code()
                                              : ERR(ERR_SPEC, "invalid model configuration");
    net_set_threads(tr->net, tr->threads);
    net_init_params(tr->net, js->run.seed);
    tr->n = net_num_params(tr->net);

    TRY(jobconf_schedule(js, &tr->sch));
    tr->time_scale = jobconf_time_scale(js);
    jobconf_targets(js, &tr->tc);
    TRY(jobconf_lr(js, &tr->lr));
    TRY(jobconf_optim(js, &tr->oc));
    optim_init(&tr->opt, &tr->oc, tr->n, net_params(tr->net));
    TRY(sample_setup_init(&tr->smp, js, tr->net));

    /* Overlap buckets: an eighth of the model, between 64 KiB and 4 MiB, so even a small model
     * has several buckets to start during its backward. */
    size_t bucket = tr->n / 8;
    bucket = bucket < 16384 ? 16384 : bucket > 1048576 ? 1048576 : bucket;
    ReducerConfig rcfg = {.n = tr->n, .M = tr->M, .bucket_floats = bucket,
                          .mode = js->train.reduce == JOB_REDUCE_OVERLAP ? REDUCE_OVERLAP
                                                                         : REDUCE_DETERMINISTIC,
                          .zero1 = js->train.zero1, .shard_align = NORM_CHUNK};
    TRY(reducer_create(&tr->red, &rcfg));
    if (js->train.zero1) {
        /* ZeRO-1: this rank updates (and keeps Adam moments for) its own shard only */
        size_t lo, hi;
        reducer_shard_range(tr->red, tr->rank, &lo, &hi);
        optim_shard_moments(&tr->opt, lo, hi);
    }
    net_set_grad_ready(tr->net, on_grad_ready, tr);

    size_t mD = tr->m * tr->D;
    tr->x0 = xalloc_aligned(sizeof(float) * mD);
    tr->xt = xalloc_aligned(sizeof(float) * mD);
    tr->target = xalloc_aligned(sizeof(float) * mD);
    tr->out = xalloc_aligned(sizeof(float) * mD);
    tr->dout = xalloc_aligned(sizeof(float) * mD);
    tr->tnet = xmalloc(sizeof(double) * tr->m);
    tr->per_sample = xmalloc(sizeof(double) * tr->m);
    tr->weight = xmalloc(sizeof(double) * tr->m);
    tr->tin = xmalloc(sizeof(float) * tr->m);
    tr->labels = xmalloc(sizeof(int) * tr->m);
    tr->labels_in = xmalloc(sizeof(int) * tr->m);
    tr->idx = xmalloc(sizeof(uint64_t) * tr->m);
    tr->n_chunks = (tr->n + NORM_CHUNK - 1) / NORM_CHUNK;
    tr->chunk_sumsq = xcalloc(tr->n_chunks, sizeof(double));
    if (tr->rank == 0) TRY(runlog_open(&tr->rl, js->run.out_dir, js->train.log_every));
    TRY(fs_mkdir_p(js->run.out_dir));
    if (tr->rank == 0) TRY(runfiles_spec(js));
    return ERR_OK;
}

void trainer_free(Trainer *tr)
{
    runlog_close(&tr->rl);
    sample_setup_free(&tr->smp);
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
    xfree(tr->tnet);
    xfree(tr->per_sample);
    xfree(tr->weight);
    xfree(tr->tin);
    xfree(tr->labels);
    xfree(tr->labels_in);
    xfree(tr->idx);
    xfree(tr->chunk_sumsq);
    memset(tr, 0, sizeof *tr);
}

/* ---- one optimizer step ------------------------------------------------------------------ */

/* Statistics reduced across ranks: loss sum, then per-quartile loss sums and counts, then the
 * caller's sync values (tr->sync_in: preemption and checkpoint flags). */
enum { ST_LOSS = 0, ST_QSUM = 1, ST_QCNT = 5, ST_SYNC = 9, ST_N = 9 + TRAIN_SYNC_N };

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
        if (s == 0 && fault_nan_step((long)k + 1)) tr->x0[0] = NAN;
        int sde = tr->sch.family == SCHED_SDE; /* weighted denoising score matching */
        if (sde)
            TRY(sched_sde_train_targets(&tr->tc, &tr->sch.sde, tr->sch.sde_out,
                                        tr->tc.sde_weight, k, tr->idx, tr->m, tr->D, tr->x0,
                                        conditional ? tr->labels_in : NULL, tr->xt, tr->tnet,
                                        tr->target, tr->weight, conditional ? tr->labels : NULL));
        else
            TRY(sched_train_targets(&tr->tc, &tr->sch, k, tr->idx, tr->m, tr->D, tr->x0,
                                    conditional ? tr->labels_in : NULL, tr->xt, tr->tnet,
                                    tr->target, conditional ? tr->labels : NULL, NULL, NULL));
        for (size_t b = 0; b < tr->m; b++) tr->tin[b] = (float)(tr->tnet[b] * tr->time_scale);
        NetTrainOpts fo = {.labels = conditional ? tr->labels : NULL, .sample_idx = tr->idx,
                           .seed = js->run.seed, .step = (uint32_t)k, .dropout = 1};
        net_forward(tr->net, tr->xt, tr->tin, tr->m, &fo, tr->out);
        stats[ST_LOSS] += sde ? sched_loss_mse_weighted(tr->out, tr->target, tr->weight, tr->m,
                                                        tr->D, norm, tr->dout, tr->per_sample)
                              : sched_loss_mse(tr->out, tr->target, tr->m, tr->D, norm, tr->dout,
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
        /* the moments hold [mlo, mhi) (ZeRO-1: this rank's shard only): shift the views */
        size_t o = tr->opt.mlo;
        adam_update_range(&tr->oc, p + o, g + o, tr->opt.m, tr->opt.v, (float)lr, scale, t, a - o,
                          b - o);
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

int trainer_step(Trainer *tr)
{
    const JobSpec *js = tr->js;
    TrainCounters *c = &tr->ctr;
    long step = c->step;
    double st[ST_N] = {0};
    float *g;
    size_t lo, hi;
    TRY(compute_gradient(tr, (uint64_t)step, st, &g, &lo, &hi));
    if (tr->sync_fill) tr->sync_fill(tr->boundary_ctx, tr);
    for (int i = 0; i < TRAIN_SYNC_N; i++) st[ST_SYNC + i] = tr->sync_in[i];
    TRY(dist_allreduce_sum_f64(st, ST_N));
    for (int i = 0; i < TRAIN_SYNC_N; i++) tr->sync_out[i] = st[ST_SYNC + i];
    double gnorm;
    TRY(grad_norm(tr, g, lo, hi, &gnorm));
    double lr = lr_at(&tr->lr, (uint64_t)step);
    if (!isfinite(st[ST_LOSS]) || !isfinite(gnorm)) {
        c->nonfinite++;
        if (++c->nonfinite_run > js->train.max_nonfinite) {
            ERR(ERR_NUMERIC, "%ld consecutive step%s had a non-finite loss or gradient "
                "(last at step %ld, lr %.3g)", c->nonfinite_run, c->nonfinite_run == 1 ? "" : "s",
                step + 1, lr);
            err_hint("the run has diverged: lower train.lr, set train.grad_clip (e.g. 1.0) or "
                     "a longer train.warmup, and check the data for NaN/Inf");
            return ERR_NUMERIC;
        }
        if (tr->rank == 0)
            runlog_note(&tr->rl, "step %ld: non-finite loss or gradient, update skipped", step + 1);
    } else {
        c->nonfinite_run = 0;
        apply_update(tr, g, lo, hi, gnorm, lr);
        if (js->train.zero1) TRY(reducer_allgather_params(tr->red, net_params(tr->net)));
        update_ema(tr, (uint64_t)step);
        c->updates++;
    }
    c->step = step + 1;
    c->last_loss = st[ST_LOSS];
    if (tr->size > 1 && tr->rank == tr->size - 1 && fault_diverge_step(c->step)) {
        float *p = net_params(tr->net);
        p[tr->n / 2] = nextafterf(p[tr->n / 2], INFINITY);
    }
    if (js->train.check_every > 0 && c->step % js->train.check_every == 0)
        TRY(dist_params_agree(net_params(tr->net), tr->n, c->step, NULL));
    double run_s = core_now() - tr->t0;
    c->wall_s = tr->wall0 + run_s;
    RunRecord r = {.step = c->step, .steps = js->train.steps, .loss = st[ST_LOSS],
                   .grad_norm = gnorm, .lr = lr,
                   .img_per_s = (double)tr->B * (double)(c->step - tr->step0) / run_s,
                   .wall_s = c->wall_s, .nonfinite = c->nonfinite, .first_step = tr->step0};
    if (tr->boundary) TRY(tr->boundary(tr->boundary_ctx, tr, &r));
    if (tr->rank == 0) {
        for (int q = 0; q < 4; q++)
            r.loss_q[q] = st[ST_QCNT + q] > 0 ? st[ST_QSUM + q] / st[ST_QCNT + q] : (double)NAN;
        TRY(runlog_record(&tr->rl, &r));
    }
    return ERR_OK;
}

/* ---- the run ------------------------------------------------------------------------------ */

static void log_start(const Trainer *tr)
{
    const JobSpec *js = tr->js;
    log_info("training %s: %s on %s, %zu parameters, %d rank%s x %d thread%s, global batch "
             "%zu (%zu micro-batch%s of %zu)%s",
             js->run.name,
             js->objective.type == JOB_OBJ_FLOW  ? "flow matching"
             : js->objective.type == JOB_OBJ_SDE ? "score matching (SDE)"
                                                 : "DDPM",
             tr->ds.name, tr->n, tr->size, tr->size == 1 ? "" : "s", tr->threads,
             tr->threads == 1 ? "" : "s", tr->B, tr->M, tr->M == 1 ? "" : "es", tr->m,
             reducer_bitwise(tr->red) ? ", rank-count invariant" : "");
    if (jobspec_warmup_steps(js) != js->train.warmup)
        log_info("note: train.warmup (%d) is not below train.steps (%ld): warming up for %d steps",
                 js->train.warmup, (long)js->train.steps, jobspec_warmup_steps(js));
}

static int boundary(void *ctx, Trainer *tr, RunRecord *rec)
{
    return trainckpt_boundary(ctx, tr, rec);
}

static void sync_fill(void *ctx, Trainer *tr)
{
    tr->sync_in[TRAIN_SYNC_STOP] = preempt_pending() != 0;
    tr->sync_in[TRAIN_SYNC_CKPT_READY] = trainckpt_ready(ctx);
}

int train_run(const JobSpec *js, const TrainOptions *opt, TrainResult *res)
{
    Trainer tr;
    TrainCkpt *ck = NULL;
    EvalTrain *et = NULL; /* eval.every (dist/evaltrain.h) */
    memset(&tr, 0, sizeof tr);
    memset(res, 0, sizeof *res);
    res->swd = res->swd_floor = NAN;

    int rc = dist_rank() == 0 ? runfiles_check(js) : ERR_OK;
    if (rc == ERR_OK) rc = trainer_init(&tr, js);
    if (rc == ERR_OK) rc = trainckpt_open(&ck, &tr, opt);
    if (rc == ERR_OK && tr.rank == 0) log_start(&tr);
    tr.boundary = boundary;
    tr.sync_fill = sync_fill;
    tr.boundary_ctx = ck;

    tr.t0 = core_now();
    tr.step0 = tr.ctr.step;
    tr.wall0 = tr.ctr.wall_s;
    if (rc == ERR_OK) watchdog_start(js->train.watchdog); /* dist/watchdog.h */
    while (rc == ERR_OK && tr.ctr.step < js->train.steps && !trainckpt_stopped(ck)) {
        if (tr.rank == 0) fault_signal_step(tr.ctr.step + 1);
        rc = trainer_step(&tr);
        if (rc == ERR_OK && trainckpt_stopped(ck)) break;
        if (rc == ERR_OK) { /* an evaluation is legitimately slow: not watched */
            watchdog_hold();
            rc = evaltrain_boundary(&et, &tr);
            watchdog_release();
        }
        long s = tr.ctr.step;
        if (rc == ERR_OK && js->train.sample_every > 0 && s % js->train.sample_every == 0 &&
            s < js->train.steps)
        {
            watchdog_hold();
            rc = runfiles_samples(&tr, res, 0);
            watchdog_release();
        }
    }
    watchdog_stop();
    int erc = evaltrain_end(&et, &tr);
    if (rc == ERR_OK) rc = erc;
    if (rc == ERR_OK && trainckpt_stopped(ck)) {
        int sig = trainckpt_stopped(ck);
        res->preempted = sig;
        res->steps_done = tr.ctr.updates;
        const char *by = sig > 1 ? preempt_signal_name(sig) : "a signal on another rank";
        if (tr.rank == 0 && tr.ctr.step == tr.step0) /* during start-up: nothing new to save */
            runlog_note(&tr.rl, "stopped by %s before step %ld of %d, during start-up: nothing "
                        "to save (%s%s); run the same command to %s (exit status %d)", by,
                        tr.ctr.step + 1, js->train.steps,
                        trainckpt_last_path(ck)[0] ? "the run resumed from "
                                                   : "no step was trained",
                        trainckpt_last_path(ck), trainckpt_last_path(ck)[0] ? "resume" : "start",
                        DFM_EXIT_PREEMPTED);
        else if (tr.rank == 0)
            runlog_note(&tr.rl, "stopped by %s after step %ld of %d: checkpoint saved to %s; run "
                        "the same command to resume (exit status %d)", by, tr.ctr.step,
                        js->train.steps, trainckpt_last_path(ck), DFM_EXIT_PREEMPTED);
        trainckpt_close(ck);
        trainer_free(&tr);
        return ERR_OK;
    }

    res->steps_done = tr.ctr.updates;
    res->nonfinite = tr.ctr.nonfinite;
    res->last_loss = tr.ctr.last_loss;
    res->wall_s = tr.ctr.wall_s;
    if (tr.ctr.wall_s > tr.wall0)
        res->img_per_s = (double)tr.B * (double)(tr.ctr.step - tr.step0) /
                         (tr.ctr.wall_s - tr.wall0);
    /* The weights first: nothing after them (sampling, writing the samples) can lose them. */
    if (rc == ERR_OK) rc = dist_params_agree(net_params(tr.net), tr.n, res->steps_done,
                                             &res->param_hash);
    if (rc == ERR_OK && tr.rank == 0) rc = runfiles_weights(&tr);
    if (rc == ERR_OK) {
        res->ema_hash = tr.opt.ema ? dist_hash_f32(tr.opt.ema, tr.n) : 0;
        rc = runfiles_samples(&tr, res, 1);
        if (rc != ERR_OK && tr.rank == 0)
            log_info("the weights were saved before sampling: %s/weights.bin", js->run.out_dir);
    }
    if (rc == ERR_OK && tr.rank == 0) rc = runfiles_final(&tr, res);
    if (rc == ERR_OK && tr.rank == 0) {
        runfiles_report(&tr, res);
        if (trainckpt_last_path(ck)[0])
            runlog_note(&tr.rl, "checkpoint: %s (dfm ckpt ls %s)", trainckpt_last_path(ck),
                        js->run.out_dir);
    }
    trainckpt_close(ck);
    trainer_free(&tr);
    return rc;
}
