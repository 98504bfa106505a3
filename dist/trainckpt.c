/* dist/trainckpt.c - checkpoints in the training loop (see dist/trainckpt.h). */
#include "dist/trainckpt.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "dist/dist.h"
#include "dist/preempt.h"
#include "dist/watchdog.h"
#include "io/fsutil.h"

struct TrainCkpt {
    CkptSaver *saver;
    CkptTensor *tensors;
    size_t n_tensors;
    char *spec;          /* the resolved job spec, YAML */
    size_t lo, hi;       /* this rank's slice of every buffer */
    int async;
    int stopped;         /* signal that stopped the run */
    long last_saved;     /* step of the newest committed checkpoint of this process, -1 */
    char last_path[4200];
};

static char *spec_yaml(const JobSpec *js)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ASSERT(f != NULL);
    int rc = jobspec_emit(js, f);
    fclose(f);
    ASSERT(rc == ERR_OK);
    char *out = xstrdup(buf);
    free(buf);
    return out;
}

static CkptState state_of(TrainCkpt *tc, Trainer *tr)
{
    CkptState st = {.step = (uint64_t)tr->ctr.step, .n = tr->n, .lo = tc->lo, .hi = tc->hi,
                    .params = net_params(tr->net), .ema = tr->opt.ema, .m = tr->opt.m,
                    .v = tr->opt.v, .mlo = tr->opt.mlo, .zero1 = tr->js->train.zero1,
                    .tensors = tc->tensors, .n_tensors = tc->n_tensors, .spec = tc->spec};
    st.counters.optim_step = tr->opt.step;
    st.counters.ema_updates = tr->opt.ema_updates;
    st.counters.nonfinite = (uint64_t)tr->ctr.nonfinite;
    st.counters.consecutive_bad = (uint64_t)tr->ctr.nonfinite_run;
    st.counters.steps_done = (uint64_t)tr->ctr.updates;
    return st;
}

/* checkpoint.resume: never with checkpoints present: refuse, or with --force remove them. */
static int fresh_start(Trainer *tr, const TrainOptions *opt)
{
    const char *ckdir = tr->js->checkpoint.dir;
    int rc = ERR_OK;
    int64_t newest = -1;
    if (tr->rank == 0) {
        CkptEntry *v;
        size_t n;
        rc = ckpt_list(ckdir, &v, &n);
        for (size_t i = 0; rc == ERR_OK && i < n; i++)
            if (v[i].committed) newest = (int64_t)v[i].step;
        if (rc == ERR_OK && newest >= 0 && opt->force) {
            for (size_t i = 0; rc == ERR_OK && i < n; i++) {
                char p[4400];
                snprintf(p, sizeof p, "%s/%s", ckdir, v[i].name);
                rc = ckpt_remove_dir(p);
            }
            char p[4400];
            snprintf(p, sizeof p, "%s/latest", ckdir);
            remove(p);
            if (rc == ERR_OK)
                log_warn("checkpoint.resume: never with --force: removed the checkpoints of the "
                         "earlier run in %s (newest step %" PRId64 ")", ckdir, newest);
        }
        if (rc != ERR_OK) newest = -2;
        xfree(v);
    }
    TRY(dist_bcast(&newest, sizeof newest, 0));
    if (newest == -2) return tr->rank == 0 ? rc : ERR(ERR_IO, "rank 0 could not list %s", ckdir);
    if (newest >= 0 && !opt->force) {
        ERR(ERR_STATE, "checkpoint.resume is never, but %s holds checkpoints of an earlier run "
            "(newest step %" PRId64 ")", ckdir, newest);
        err_hint("resume it (checkpoint.resume: auto), write elsewhere (run.out_dir or "
                 "checkpoint.dir), or pass --force to delete them and start over");
        return ERR_STATE;
    }
    return ERR_OK;
}

/* Load the checkpoint at path into the trainer. */
static int load(TrainCkpt *tc, Trainer *tr, const char *path, double t0)
{
    const JobSpec *js = tr->js;
    CkptManifest m;
    size_t mlo = tr->opt.mlo, mhi = tr->opt.mhi;
    /* the spec first: a changed shape is best explained by the keys that changed */
    int rc = ckpt_manifest_read(&m, path);
    if (rc == ERR_OK) {
        rc = ckpt_spec_check(m.spec, tc->spec, 1);
        ckpt_manifest_free(&m);
    }
    int64_t bad = rc != ERR_OK;
    TRY(dist_allreduce_max_i64(&bad, 1));
    if (rc != ERR_OK) return rc;
    if (bad) return ERR(ERR_STATE, "%s: refused on another rank", path);
    TRY(ckpt_load(path, &m, tr->n, net_params(tr->net), tr->opt.ema, tr->opt.m, tr->opt.v, mlo,
                  mhi));
    if (m.n_tensors != tc->n_tensors)
        rc = ERR(ERR_STATE, "%s: %zu tensors, the model has %zu", path, m.n_tensors,
                 tc->n_tensors);
    for (size_t i = 0; rc == ERR_OK && i < m.n_tensors; i++)
        if (strcmp(m.tensors[i].name, tc->tensors[i].name) != 0 ||
            m.tensors[i].count != tc->tensors[i].count)
            rc = ERR(ERR_STATE, "%s: tensor %zu is %s (%" PRIu64 " values), the model has %s "
                     "(%" PRIu64 ")", path, i, m.tensors[i].name, m.tensors[i].count,
                     tc->tensors[i].name, tc->tensors[i].count);
    if (rc == ERR_OK) {
        tr->ctr.step = (long)m.step;
        tr->ctr.updates = (long)m.counters.steps_done;
        tr->ctr.nonfinite = (long)m.counters.nonfinite;
        tr->ctr.nonfinite_run = (long)m.counters.consecutive_bad;
        tr->opt.step = m.counters.optim_step;
        tr->opt.ema_updates = m.counters.ema_updates;
        tc->last_saved = (long)m.step;
        snprintf(tc->last_path, sizeof tc->last_path, "%s", path);
        if (tr->rank == 0) {
            log_info("resuming from %s: step %" PRIu64 " of %d (saved on %u rank%s at %s; "
                     "verified and loaded in %.2f s)", path, m.step, js->train.steps, m.world,
                     m.world > 1 ? "s" : "", m.time, core_now() - t0);
            if ((long)m.step >= js->train.steps)
                log_info("the checkpoint already reaches train.steps = %d: writing the outputs "
                         "only (raise train.steps to train on)", js->train.steps);
        }
    }
    ckpt_manifest_free(&m);
    return rc;
}

int trainckpt_open(TrainCkpt **out, Trainer *tr, const TrainOptions *opt)
{
    const JobSpec *js = tr->js;
    TrainCkpt *tc = xcalloc(1, sizeof *tc);
    *out = tc;
    tc->last_saved = -1;
    tc->async = js->checkpoint.async;
    tc->spec = spec_yaml(js);
    size_t nt;
    const ParamEntry *pe = net_param_table(tr->net, &nt);
    tc->tensors = xcalloc(nt, sizeof *tc->tensors);
    tc->n_tensors = nt;
    for (size_t i = 0; i < nt; i++) {
        CkptTensor *t = &tc->tensors[i];
        snprintf(t->name, sizeof t->name, "%s", pe[i].name);
        t->ndim = pe[i].ndim;
        for (int d = 0; d < 4; d++) t->shape[d] = d < pe[i].ndim ? pe[i].shape[d] : 1;
        t->offset = pe[i].offset;
        t->count = pe[i].count;
    }
    if (js->train.zero1) {
        reducer_shard_range(tr->red, tr->rank, &tc->lo, &tc->hi);
    } else {
        ckpt_even_slice(tr->n, tr->rank, tr->size, 16, &tc->lo, &tc->hi);
    }
    CkptPolicy pol = {.dir = js->checkpoint.dir, .keep = js->checkpoint.keep,
                      .keep_every = js->checkpoint.keep_every};
    tc->saver = ckpt_saver_create(&pol);
    if (tc->async) ckpt_saver_reserve(tc->saver, (tr->opt.ema ? 4 : 3) * (tc->hi - tc->lo));

    char path[4200] = "";
    int found = 0;
    double t0 = core_now();
    preempt_fault_startup("resume", tr->rank);
    if (opt && opt->resume) {
        snprintf(path, sizeof path, "%s", opt->resume);
        CkptManifest m;
        int rc = ckpt_manifest_read(&m, path);
        if (rc == ERR_OK) {
            rc = ckpt_verify(path, &m, (uint32_t)tr->rank, (uint32_t)tr->size, NULL);
            ckpt_manifest_free(&m);
        }
        /* every rank read the manifest itself: agree on the outcome */
        int64_t bad = rc != ERR_OK;
        TRY(dist_allreduce_max_i64(&bad, 1));
        if (rc != ERR_OK) return err_context("--resume %s", path);
        if (bad) return ERR(ERR_INTEGRITY, "--resume %s: the checkpoint does not verify on "
                            "another rank", path);
        found = 1;
    } else if (js->checkpoint.resume == JOB_RESUME_NEVER) {
        TRY(fresh_start(tr, opt ? opt : &(TrainOptions){0}));
    } else {
        TRY(ckpt_find_latest(js->checkpoint.dir, path, sizeof path, &found));
        if (!found && js->checkpoint.resume == JOB_RESUME_MUST) {
            ERR(ERR_STATE, "checkpoint.resume is must, but %s holds no checkpoint that verifies",
                js->checkpoint.dir);
            err_hint("start the run with checkpoint.resume: auto (or never), or point "
                     "checkpoint.dir at the run to continue");
            return ERR_STATE;
        }
    }
    if (found) TRY(load(tc, tr, path, t0));
    /* metrics.jsonl: continue from the checkpoint's step, or start empty */
    int rc = ERR_OK;
    if (tr->rank == 0) {
        long dropped = 0;
        runlog_close(&tr->rl);
        rc = runlog_trim(js->run.out_dir, found ? tr->ctr.step : 0, &dropped);
        if (rc == ERR_OK) rc = runlog_open(&tr->rl, js->run.out_dir, js->train.log_every);
        if (rc == ERR_OK && dropped > 0)
            log_info("metrics.jsonl: %ld line%s %s dropped", dropped, dropped > 1 ? "s" : "",
                     found ? "past the checkpoint's step (or cut short)" : "of an earlier run");
    }
    /* with it, agree on a signal received during start-up: the run then stops before its
     * first step, with nothing to save (dist/preempt.h, Start-up) */
    int64_t flags[2] = {rc != ERR_OK, preempt_pending() != 0};
    TRY(dist_allreduce_max_i64(flags, 2));
    if (rc != ERR_OK) return rc;
    if (flags[0]) return ERR(ERR_IO, "rank 0 could not prepare metrics.jsonl");
    if (flags[1]) tc->stopped = preempt_pending() ? preempt_pending() : 1;
    return ERR_OK;
}

/* A save committed: remember it, and put it on this boundary's metrics line. */
static void note_save(TrainCkpt *tc, const CkptSaveStats *s, RunRecord *rec)
{
    tc->last_saved = (long)s->step;
    snprintf(tc->last_path, sizeof tc->last_path, "%s", s->path);
    rec->ckpt_step = (long)s->step;
    rec->ckpt_stall_s = s->stall_s;
    rec->ckpt_save_s = s->total_s;
    rec->ckpt_bytes = (unsigned long long)s->bytes;
}

/* Wait for the async save in flight (the watchdog does not count the wait). */
static int commit(TrainCkpt *tc, RunRecord *rec)
{
    CkptSaveStats s;
    watchdog_hold();
    int rc = ckpt_save_commit(tc->saver, &s);
    watchdog_release();
    TRY(rc);
    note_save(tc, &s, rec);
    return ERR_OK;
}

static int save_sync(TrainCkpt *tc, Trainer *tr, RunRecord *rec)
{
    if (ckpt_save_busy(tc->saver)) TRY(commit(tc, rec));
    if (tc->last_saved == tr->ctr.step) return ERR_OK;
    CkptState st = state_of(tc, tr);
    CkptSaveStats s;
    watchdog_hold();
    int rc = ckpt_save(tc->saver, &st, &s);
    watchdog_release();
    TRY(rc);
    note_save(tc, &s, rec);
    return ERR_OK;
}

int trainckpt_boundary(TrainCkpt *tc, Trainer *tr, RunRecord *rec)
{
    const JobSpec *js = tr->js;
    long step = tr->ctr.step;
    int every = js->checkpoint.every;
    watchdog_kick(); /* a step boundary: dist/watchdog.h */
    /* an async save moves on when the sums of this step's reduction say its current phase is
     * done everywhere: exchange the shard results, let rank 0's writer commit, learn that it
     * committed (dist/ckpt.h) */
    if (ckpt_save_busy(tc->saver)) {
        CkptSaveStats s;
        int committed = 0;
        TRY(ckpt_save_advance(tc->saver, tr->sync_out[TRAIN_SYNC_CKPT_READY], &s, &committed));
        if (committed) note_save(tc, &s, rec);
    }
    if (tr->sync_out[TRAIN_SYNC_STOP] > 0) {
        /* the first signal any rank saw; rank 0's name for the line */
        tc->stopped = preempt_pending() ? preempt_pending() : 1;
        return save_sync(tc, tr, rec);
    }
    if (step >= js->train.steps) return save_sync(tc, tr, rec);
    if (every > 0 && step % every == 0) {
        if (!tc->async) return save_sync(tc, tr, rec);
        if (ckpt_save_busy(tc->saver)) TRY(commit(tc, rec)); /* never two in flight */
        CkptState st = state_of(tc, tr);
        TRY(ckpt_save_start(tc->saver, &st));
    }
    return ERR_OK;
}

double trainckpt_ready(TrainCkpt *tc) { return tc ? ckpt_save_ready(tc->saver) : 0.0; }

int trainckpt_stopped(const TrainCkpt *tc) { return tc ? tc->stopped : 0; }
const char *trainckpt_last_path(const TrainCkpt *tc) { return tc ? tc->last_path : ""; }

void trainckpt_close(TrainCkpt *tc)
{
    if (!tc) return;
    ckpt_saver_destroy(tc->saver);
    xfree(tc->tensors);
    xfree(tc->spec);
    xfree(tc);
}
