/* dist/ckpt.c - collective checkpoint save, commit, retention, verification and load
 * (see dist/ckpt.h). */
#include "dist/ckpt.h"

#include <errno.h>
#include <mpi.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "dist/dist.h"
#include "io/fsutil.h"
#include "io/sha256.h"

#ifndef DFM_VERSION
#define DFM_VERSION "unknown"
#endif
#ifndef DFM_GIT_COMMIT
#define DFM_GIT_COMMIT "unknown"
#endif

/* ---- fault injection ---------------------------------------------------------------------- */

void ckpt_kill_point(const char *point, uint64_t step)
{
    const char *e = getenv("DFM_CKPT_KILL_AT");
    if (!e || !*e) return;
    char name[64];
    size_t k = strcspn(e, "@:");
    if (k >= sizeof name) return;
    memcpy(name, e, k);
    name[k] = '\0';
    if (strcmp(name, point) != 0) return;
    const char *r = strchr(e, '@'), *s = strchr(e, ':');
    if (r && atoi(r + 1) != dist_rank()) return;
    if (s && strtoull(s + 1, NULL, 10) != step) return;
    fprintf(stderr, "dfm: [rank %d] DFM_CKPT_KILL_AT=%s: killing myself at %s of step %" PRIu64
            "\n", dist_rank(), e, point, step);
    fflush(stderr);
    raise(SIGKILL);
}

/* ---- slices ------------------------------------------------------------------------------- */

void ckpt_even_slice(size_t n, int rank, int size, size_t align, size_t *lo, size_t *hi)
{
    if (align == 0) align = 1;
    size_t per = (n + (size_t)size - 1) / (size_t)size;
    per = (per + align - 1) / align * align;
    size_t a = per * (size_t)rank, b = a + per;
    *lo = a < n ? a : n;
    *hi = b < n ? b : n;
}

/* ---- the saver ----------------------------------------------------------------------------- */

/* What one rank reports after writing its shard (fixed size: it travels in an allgather). */
typedef struct {
    int64_t rc;
    uint64_t lo, hi, bytes;
    char sha256[72];
    char msg[440];
} ShardResult;

/* What rank 0 reports after the commit (fixed size: it travels in a broadcast). */
typedef struct {
    int64_t rc;
    uint64_t bytes;
    double total_s; /* rank 0: from the start of the save to the end of its commit */
    char msg[480];
} Outcome;

enum { PH_IDLE = 0, PH_WRITE = 1, PH_AGREE = 2, PH_COMMIT = 3 };

struct CkptSaver {
    CkptPolicy pol;
    char dir[4096];
    /* the save in flight */
    int phase, async, thread_live;
    pthread_t thread;
    atomic_int done;   /* this rank's part of the current phase is finished */
    uint64_t step;
    double t_start, stall;
    CkptState st;      /* counters and table; buffers point at staging (async) or live data */
    const float *w[4]; /* first value of the slice: params, ema (or NULL), m, v */
    float *staging;    /* async: nbuf * (hi - lo) floats */
    size_t staging_cap;
    char tmpdir[4200], shard_path[4300];
    ShardResult res;   /* this rank's shard */
    ShardResult *all;  /* every rank's, after the agreement (rank 0's commit reads them) */
    MPI_Request req;   /* the agreement's MPI_Iallgather (req_live) */
    int req_live;
    Outcome out;       /* rank 0: the commit's outcome */
};

CkptSaver *ckpt_saver_create(const CkptPolicy *p)
{
    CkptSaver *s = xcalloc(1, sizeof *s);
    s->pol = *p;
    snprintf(s->dir, sizeof s->dir, "%s", p->dir);
    s->pol.dir = s->dir;
    return s;
}

static void join_thread(CkptSaver *s)
{
    if (s->thread_live) {
        pthread_join(s->thread, NULL);
        s->thread_live = 0;
    }
}

void ckpt_saver_destroy(CkptSaver *s)
{
    if (!s) return;
    join_thread(s);
    if (s->req_live) {
        /* An agreement still in flight (a failed run): waiting could hang on a dead rank, and
         * MPI may still write into its buffers, so they are left allocated. */
        int flag = 0;
        if (MPI_Test(&s->req, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS || !flag) return;
    }
    xfree(s->all);
    xfree_aligned(s->staging);
    xfree(s);
}

void ckpt_saver_reserve(CkptSaver *s, size_t floats)
{
    if (floats + 1 <= s->staging_cap) return;
    xfree_aligned(s->staging);
    s->staging_cap = floats + 1;
    s->staging = xalloc_aligned(sizeof(float) * s->staging_cap);
    memset(s->staging, 0, sizeof(float) * s->staging_cap); /* fault the pages in now */
}

typedef struct {
    uint64_t step;
    int half_done;
} HookCtx;

static void half_hook(void *vctx, uint64_t done, uint64_t total)
{
    HookCtx *h = vctx;
    if (!h->half_done && done * 2 >= total) {
        h->half_done = 1;
        ckpt_kill_point("shard-half", h->step);
    }
}

/* Write this rank's shard from s->st (thread-safe: file I/O only). */
static void write_shard(CkptSaver *s)
{
    const CkptState *st = &s->st;
    int has_ema = s->w[1] != NULL;
    CkptShardHeader h = {.rank = (uint32_t)dist_rank(), .world = (uint32_t)dist_size(),
                         .nbuf = has_ema ? 4u : 3u, .has_ema = (uint32_t)has_ema, .n = st->n,
                         .lo = st->lo, .hi = st->hi, .step = st->step};
    const float *bufs[4];
    int k = 0;
    bufs[k++] = s->w[0];
    if (has_ema) bufs[k++] = s->w[1];
    bufs[k++] = s->w[2];
    bufs[k++] = s->w[3];
    HookCtx hc = {.step = st->step};
    ShardResult *r = &s->res;
    memset(r, 0, sizeof *r);
    r->lo = st->lo;
    r->hi = st->hi;
    char hex[65] = {0};
    int rc = fs_mkdir_p(s->tmpdir);
    if (rc == ERR_OK)
        rc = ckpt_shard_write(s->shard_path, &h, bufs, &r->bytes, hex, half_hook, &hc);
    if (rc == ERR_OK) {
        memcpy(r->sha256, hex, 65);
        ckpt_kill_point("shard-written", st->step);
    } else {
        snprintf(r->msg, sizeof r->msg, "%s", err_message());
        err_clear();
    }
    r->rc = rc;
}

static void *writer_main(void *arg)
{
    CkptSaver *s = arg;
    write_shard(s);
    atomic_store(&s->done, 1);
    return NULL;
}

static int begin(CkptSaver *s, const CkptState *st)
{
    if (s->phase != PH_IDLE) return ERR(ERR_STATE, "a checkpoint save is already in flight");
    ASSERT(st->lo <= st->hi && st->hi <= st->n && st->mlo <= st->lo);
    s->st = *st;
    s->step = st->step;
    s->t_start = core_now();
    s->stall = 0.0;
    char name[CKPT_NAME_MAX], shard[CKPT_NAME_MAX];
    ckpt_step_name(name, sizeof name, st->step);
    snprintf(s->tmpdir, sizeof s->tmpdir, "%s/%s.tmp", s->dir, name);
    ckpt_shard_name(shard, sizeof shard, (uint32_t)dist_rank(), (uint32_t)dist_size());
    snprintf(s->shard_path, sizeof s->shard_path, "%s/%s", s->tmpdir, shard);
    s->w[0] = st->params + st->lo;
    s->w[1] = st->ema ? st->ema + st->lo : NULL;
    s->w[2] = st->m + (st->lo - st->mlo);
    s->w[3] = st->v + (st->lo - st->mlo);
    atomic_store(&s->done, 0);
    s->phase = PH_WRITE;
    ckpt_kill_point("begin", st->step);
    return ERR_OK;
}

int ckpt_save_start(CkptSaver *s, const CkptState *st)
{
    double t0 = core_now();
    TRY(begin(s, st));
    s->async = 1;
    size_t cnt = st->hi - st->lo, nbuf = st->ema ? 4 : 3;
    ckpt_saver_reserve(s, nbuf * cnt);
    /* Staging holds [lo, hi) of each buffer; the writer reads it through s->w. */
    float *p = s->staging, *e = st->ema ? s->staging + cnt : NULL;
    float *m = s->staging + (nbuf - 2) * cnt, *v = s->staging + (nbuf - 1) * cnt;
    memcpy(p, st->params + st->lo, sizeof(float) * cnt);
    if (e) memcpy(e, st->ema + st->lo, sizeof(float) * cnt);
    memcpy(m, st->m + (st->lo - st->mlo), sizeof(float) * cnt);
    memcpy(v, st->v + (st->lo - st->mlo), sizeof(float) * cnt);
    s->w[0] = p;
    s->w[1] = e;
    s->w[2] = m;
    s->w[3] = v;
    s->st.params = s->st.m = s->st.v = NULL; /* the live buffers move on */
    s->st.ema = e; /* only its presence is read from here on */
    if (pthread_create(&s->thread, NULL, writer_main, s) != 0) {
        s->phase = PH_IDLE;
        return ERR(ERR_STATE, "cannot start the checkpoint writer thread: %s", strerror(errno));
    }
    s->thread_live = 1;
    s->stall += core_now() - t0;
    return ERR_OK;
}

int ckpt_save_busy(const CkptSaver *s) { return s->phase != PH_IDLE; }

double ckpt_save_ready(CkptSaver *s)
{
    if (s->phase == PH_IDLE || !atomic_load(&s->done)) return 0.0;
    /* rank 0 after its commit: 1.5 says that it failed (the sum then exceeds the rank count) */
    if (s->phase == PH_COMMIT && dist_rank() == 0 && s->out.rc != ERR_OK) return 1.5;
    return 1.0;
}

/* Rank 0: commit the agreed save (file operations only: runs on the writer thread). */
static int commit_rank0(CkptSaver *s, const ShardResult *all, int world, uint64_t *bytes_out)
{
    const CkptState *st = &s->st;
    char name[CKPT_NAME_MAX], final[4200];
    ckpt_step_name(name, sizeof name, s->step);
    snprintf(final, sizeof final, "%s/%s", s->dir, name);
    char tmpname[CKPT_NAME_MAX + 8];
    snprintf(tmpname, sizeof tmpname, "%s.tmp", name);
    TRY(ckpt_clean_stale(s->dir, tmpname));

    CkptManifest m;
    memset(&m, 0, sizeof m);
    m.format_version = CKPT_FORMAT_VERSION;
    snprintf(m.dfm_version, sizeof m.dfm_version, "%s", DFM_VERSION);
    snprintf(m.dfm_commit, sizeof m.dfm_commit, "%s", DFM_GIT_COMMIT);
    m.step = s->step;
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(m.time, sizeof m.time, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    m.world = (uint32_t)world;
    m.n = st->n;
    m.has_ema = st->ema != NULL;
    m.zero1 = st->zero1;
    m.counters = st->counters;
    m.n_tensors = st->n_tensors;
    m.tensors = (CkptTensor *)(uintptr_t)st->tensors;
    m.shards = xcalloc((size_t)world, sizeof *m.shards);
    uint64_t bytes = 0;
    for (int r = 0; r < world; r++) {
        CkptShardInfo *si = &m.shards[r];
        ckpt_shard_name(si->file, sizeof si->file, (uint32_t)r, (uint32_t)world);
        si->rank = (uint32_t)r;
        si->lo = all[r].lo;
        si->hi = all[r].hi;
        si->bytes = all[r].bytes;
        memcpy(si->sha256, all[r].sha256, 65);
        bytes += si->bytes;
    }
    m.spec = (char *)(uintptr_t)(st->spec ? st->spec : "");
    Sha256 *sh = sha256_create();
    sha256_update(sh, m.spec, strlen(m.spec));
    sha256_final_hex(sh, m.spec_sha256);
    int rc = ckpt_manifest_write(s->tmpdir, &m);
    xfree(m.shards);
    TRY(rc);
    ckpt_kill_point("manifest", s->step);

    /* A checkpoint of the same step exists (a run resumed from an older one): move it aside,
     * put the new one in place, then remove the old one. */
    char old[4300] = "";
    if (fs_exists(final)) {
        snprintf(old, sizeof old, "%s/%s.old.tmp", s->dir, name);
        TRY(ckpt_remove_dir(old));
        if (rename(final, old) != 0)
            return ERR(ERR_IO, "cannot rename %s to %s: %s", final, old, strerror(errno));
    }
    if (rename(s->tmpdir, final) != 0)
        return ERR(ERR_IO, "cannot rename %s to %s: %s", s->tmpdir, final, strerror(errno));
    TRY(fs_fsync_dir(s->dir));
    ckpt_kill_point("renamed", s->step);
    TRY(ckpt_set_latest(s->dir, name));
    ckpt_kill_point("latest", s->step);
    if (old[0]) TRY(ckpt_remove_dir(old));
    TRY(ckpt_retain(s->dir, s->pol.keep, s->pol.keep_every, name));
    ckpt_kill_point("retention", s->step);
    *bytes_out = bytes;
    return ERR_OK;
}

/* Rank 0's commit with its outcome recorded in s->out (no MPI: the async save runs it on the
 * writer thread). */
static void commit_outcome(CkptSaver *s)
{
    Outcome *o = &s->out;
    memset(o, 0, sizeof *o);
    int rc = commit_rank0(s, s->all, dist_size(), &o->bytes);
    if (rc != ERR_OK) {
        o->rc = rc;
        snprintf(o->msg, sizeof o->msg, "checkpoint of step %" PRIu64 " failed on rank 0: %s",
                 s->step, err_message());
        err_clear();
        if (fs_exists(s->tmpdir)) ckpt_remove_dir(s->tmpdir); /* not committed: give the
                                                                 space back */
        err_clear();
    }
    o->total_s = core_now() - s->t_start;
}

static void *committer_main(void *arg)
{
    CkptSaver *s = arg;
    commit_outcome(s);
    atomic_store(&s->done, 1);
    return NULL;
}

static int fail_with(int rc, const char *msg)
{
    ERR(rc, "%s", msg);
    if (strstr(msg, "No space left") || strstr(msg, "Disk quota"))
        err_hint("the previous checkpoint is intact; free space or point checkpoint.dir "
                 "elsewhere, then resume");
    return rc;
}

/* Every rank's shard is written (or failed): post the exchange of the results (step 2). The
 * async save only posts it here (MPI_Iallgather, nothing to wait for at this boundary) and
 * completes it at the next one, by which time every rank has posted it. Collective. */
static int post_agreement(CkptSaver *s)
{
    double t0 = core_now();
    join_thread(s);
    int world = dist_size();
    xfree(s->all);
    s->all = xcalloc((size_t)world, sizeof *s->all);
    s->phase = PH_AGREE;
    if (world == 1) {
        s->all[0] = s->res;
    } else {
        int mrc = MPI_Iallgather(&s->res, (int)sizeof s->res, MPI_BYTE, s->all,
                                 (int)sizeof s->res, MPI_BYTE, MPI_COMM_WORLD, &s->req);
        if (mrc != MPI_SUCCESS) {
            s->phase = PH_IDLE;
            return ERR(ERR_MPI, "checkpoint of step %" PRIu64 ": MPI_Iallgather failed (%d)",
                       s->step, mrc);
        }
        s->req_live = 1;
    }
    s->stall += core_now() - t0;
    return ERR_OK;
}

/* Complete the exchange; on success rank 0 commits, on the writer thread (async) or here
 * (sync). Collective. */
static int finish_agreement(CkptSaver *s)
{
    double t0 = core_now();
    int rank = dist_rank(), world = dist_size();
    if (s->req_live) {
        int mrc = MPI_Wait(&s->req, MPI_STATUS_IGNORE);
        s->req_live = 0;
        if (mrc != MPI_SUCCESS) {
            s->phase = PH_IDLE;
            return ERR(ERR_MPI, "checkpoint of step %" PRIu64 ": MPI_Wait failed (%d)", s->step,
                       mrc);
        }
    }
    ckpt_kill_point("agreed", s->step);
    int bad = -1;
    for (int r = 0; r < world && bad < 0; r++)
        if (s->all[r].rc != ERR_OK) bad = r;
    if (bad >= 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "checkpoint of step %" PRIu64 " failed on rank %d: %s",
                 s->step, bad, s->all[bad].msg);
        if (rank == 0) {
            ckpt_remove_dir(s->tmpdir); /* best effort: give the space back */
            err_clear();
        }
        s->phase = PH_IDLE;
        return fail_with((int)s->all[bad].rc, msg);
    }
    s->phase = PH_COMMIT;
    atomic_store(&s->done, rank != 0); /* only rank 0 has work in this phase */
    if (rank == 0) {
        if (s->async && pthread_create(&s->thread, NULL, committer_main, s) == 0) {
            s->thread_live = 1;
        } else {
            commit_outcome(s);
            atomic_store(&s->done, 1);
        }
    }
    s->stall += core_now() - t0;
    return ERR_OK;
}

static void fill_stats(const CkptSaver *s, uint64_t bytes, double total_s, CkptSaveStats *out)
{
    CkptSaveStats stats;
    memset(&stats, 0, sizeof stats);
    stats.step = s->step;
    stats.bytes = bytes;
    char name[CKPT_NAME_MAX];
    ckpt_step_name(name, sizeof name, s->step);
    snprintf(stats.path, sizeof stats.path, "%s/%s", s->dir, name);
    stats.stall_s = s->async ? s->stall : total_s;
    stats.total_s = total_s;
    stats.async = s->async;
    if (out) *out = stats;
}

/* Rank 0's commit is finished: every rank learns its outcome through a broadcast (the
 * synchronous path, and the async one when the commit failed). Collective. */
static int learn_outcome(CkptSaver *s, CkptSaveStats *out)
{
    double t0 = core_now();
    join_thread(s);
    Outcome o = s->out;
    int rc = dist_bcast(&o, sizeof o, 0);
    s->phase = PH_IDLE;
    if (rc != ERR_OK) return rc;
    if (o.rc != ERR_OK) return fail_with((int)o.rc, o.msg);
    s->stall += core_now() - t0;
    /* rank 0's clock: the save is on disk from the end of its commit on */
    fill_stats(s, o.bytes, s->async ? o.total_s : core_now() - s->t_start, out);
    return ERR_OK;
}

int ckpt_save_advance(CkptSaver *s, double ready_sum, CkptSaveStats *out, int *committed)
{
    *committed = 0;
    double world = (double)dist_size();
    switch (s->phase) {
    case PH_WRITE:
        return ready_sum >= world ? post_agreement(s) : ERR_OK;
    case PH_AGREE:
        return finish_agreement(s);
    case PH_COMMIT:
        if (ready_sum < world) return ERR_OK;
        if (ready_sum > world + 0.25) { /* rank 0's commit failed: its message to every rank */
            TRY(learn_outcome(s, out));
            return ERR(ERR_STATE, "checkpoint of step %" PRIu64 ": the commit failed", s->step);
        }
        /* committed: the reduced sum said so, no message needed */
        join_thread(s);
        s->phase = PH_IDLE;
        fill_stats(s, s->out.bytes,
                   dist_rank() == 0 ? s->out.total_s : core_now() - s->t_start, out);
        *committed = 1;
        return ERR_OK;
    default:
        return ERR(ERR_STATE, "no checkpoint save in flight");
    }
}

int ckpt_save_commit(CkptSaver *s, CkptSaveStats *out)
{
    if (s->phase == PH_IDLE) return ERR(ERR_STATE, "no checkpoint save in flight");
    if (s->phase == PH_WRITE) TRY(post_agreement(s)); /* waits for the writer thread */
    if (s->phase == PH_AGREE) TRY(finish_agreement(s));
    return learn_outcome(s, out); /* waits for rank 0's commit */
}

int ckpt_save(CkptSaver *s, const CkptState *st, CkptSaveStats *out)
{
    TRY(begin(s, st));
    s->async = 0;
    write_shard(s);
    atomic_store(&s->done, 1);
    return ckpt_save_commit(s, out);
}

/* ---- verification and load ------------------------------------------------------------------ */

/* All ranks agree on a local result; on failure the first failing rank's message travels. */
static int agree(int rc)
{
    typedef struct {
        int64_t rc;
        char msg[504];
    } Res;
    int world = dist_size();
    Res mine = {.rc = rc};
    if (rc != ERR_OK) snprintf(mine.msg, sizeof mine.msg, "%s", err_message());
    Res *all = xcalloc((size_t)world, sizeof *all);
    int grc = dist_allgather(&mine, all, sizeof mine);
    if (grc != ERR_OK) {
        xfree(all);
        return grc;
    }
    int out = ERR_OK;
    for (int r = 0; r < world; r++) {
        if (all[r].rc == ERR_OK) continue;
        out = (int)all[r].rc;
        if (r != dist_rank()) ERR(out, "rank %d: %s", r, all[r].msg);
        break;
    }
    xfree(all);
    return out;
}

int ckpt_verify_collective(const char *path, const CkptManifest *m)
{
    int rc = ckpt_verify(path, m, (uint32_t)dist_rank(), (uint32_t)dist_size(), NULL);
    return agree(rc);
}

int ckpt_find_latest(const char *ckdir, char *path, size_t size, int *found)
{
    *found = 0;
    path[0] = '\0';
    CkptEntry *v = NULL;
    size_t n = 0;
    int64_t count = 0;
    int rc = ERR_OK;
    if (dist_rank() == 0) {
        rc = ckpt_list(ckdir, &v, &n);
        count = rc == ERR_OK ? (int64_t)n : -1;
    }
    rc = agree(rc);
    if (rc != ERR_OK) {
        xfree(v);
        return rc;
    }
    TRY(dist_bcast(&count, sizeof count, 0));
    for (int64_t j = count - 1; j >= 0; j--) {
        char name[CKPT_NAME_MAX] = {0};
        int64_t committed = 0;
        char problem[200] = {0};
        if (dist_rank() == 0) {
            memcpy(name, v[j].name, sizeof name);
            committed = v[j].committed;
            memcpy(problem, v[j].problem, sizeof problem);
        }
        TRY(dist_bcast(name, sizeof name, 0));
        TRY(dist_bcast(&committed, sizeof committed, 0));
        if (!committed) {
            size_t L = strlen(name);
            int is_tmp = L > 4 && !strcmp(name + L - 4, ".tmp");
            if (dist_rank() == 0 && !is_tmp)
                log_warn("checkpoint %s/%s skipped: %s", ckdir, name, problem);
            continue;
        }
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", ckdir, name);
        CkptManifest m;
        int r = ckpt_manifest_read(&m, p);
        if (r == ERR_OK) {
            r = ckpt_verify(p, &m, (uint32_t)dist_rank(), (uint32_t)dist_size(), NULL);
            ckpt_manifest_free(&m);
        }
        r = agree(r);
        if (r == ERR_MPI) {
            xfree(v);
            return r;
        }
        if (r != ERR_OK) {
            if (dist_rank() == 0) log_warn("checkpoint %s skipped: %s", p, err_message());
            err_clear();
            continue;
        }
        snprintf(path, size, "%s", p);
        *found = 1;
        break;
    }
    xfree(v);
    return ERR_OK;
}

int ckpt_load(const char *path, CkptManifest *m, size_t n, float *params, float *ema,
              float *m_buf, float *v_buf, size_t mlo, size_t mhi)
{
    int rc = ckpt_manifest_read(m, path);
    if (rc == ERR_OK && m->n != n)
        rc = ERR(ERR_STATE, "%s holds %" PRIu64 " parameters, the model has %zu", path, m->n, n);
    if (rc == ERR_OK && ema && !m->has_ema)
        rc = ERR(ERR_STATE, "%s has no EMA weights, the job has train.ema.decay > 0", path);
    if (rc == ERR_OK) rc = ckpt_read_range(path, m, CKPT_PARAMS, 0, n, params);
    if (rc == ERR_OK && ema) rc = ckpt_read_range(path, m, CKPT_EMA, 0, n, ema);
    if (rc == ERR_OK) rc = ckpt_read_range(path, m, CKPT_M, mlo, mhi, m_buf);
    if (rc == ERR_OK) rc = ckpt_read_range(path, m, CKPT_V, mlo, mhi, v_buf);
    rc = agree(rc);
    if (rc != ERR_OK) ckpt_manifest_free(m);
    return rc;
}

/* ---- the job spec across a resume ---------------------------------------------------------- */

static int has_prefix(const char *k, const char *p) { return !strncmp(k, p, strlen(p)); }

/* Changes that make the saved state meaningless for the new spec. */
static int breaking(const char *k)
{
    static const char *const pre[] = {"model.", "objective.", "data.dataset", "data.toy",
                                      "data.img_size", "data.img_channels", "data.data_dim",
                                      "train.optimizer"};
    for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++)
        if (has_prefix(k, pre[i])) return 1;
    return 0;
}

/* Changes that leave the run the same run (or only change what is reported). */
static int harmless(const char *k)
{
    static const char *const pre[] = {"run.name", "run.out_dir", "train.steps", "train.log_every",
                                      "train.sample_every", "train.sample_count",
                                      "train.check_every", "train.threads", "train.reduce",
                                      "train.watchdog",
                                      "train.zero1", "train.max_nonfinite", "checkpoint.",
                                      "sample.", "eval.", "slurm.", "data.dir", "data.mirrors"};
    for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++)
        if (has_prefix(k, pre[i])) return 1;
    return 0;
}

int ckpt_spec_check(const char *saved, const char *now, int log_rank0)
{
    CkptKV a, b;
    TRY(ckpt_yaml_flatten(saved, strlen(saved), &a));
    int rc = ckpt_yaml_flatten(now, strlen(now), &b);
    if (rc != ERR_OK) {
        ckpt_kv_free(&a);
        return rc;
    }
    char list[4096] = "";
    size_t pos = 0;
    int nbreak = 0;
    int lr_cosine = 0;
    const char *sched = ckpt_kv_get(&b, "train.lr_schedule");
    if (sched && !strcmp(sched, "cosine")) lr_cosine = 1;
    int talk = log_rank0 && dist_rank() == 0;
    /* keys in either spec */
    for (int pass = 0; pass < 2; pass++) {
        const CkptKV *x = pass == 0 ? &a : &b, *y = pass == 0 ? &b : &a;
        for (size_t i = 0; i < x->n; i++) {
            const char *k = x->keys[i], *vx = x->vals[i], *vy = ckpt_kv_get(y, k);
            if (pass == 1 && vy) continue; /* seen in pass 0 */
            const char *sv = pass == 0 ? vx : (vy ? vy : "(absent)");
            const char *nv = pass == 0 ? (vy ? vy : "(absent)") : vx;
            if (vy && !strcmp(vx, vy)) continue;
            if (breaking(k)) {
                nbreak++;
                if (pos < sizeof list)
                    pos += (size_t)snprintf(list + pos, sizeof list - pos, "\n  %s: %s -> %s", k,
                                            sv, nv);
            } else if (lr_cosine && (!strcmp(k, "train.steps") || !strcmp(k, "train.warmup"))) {
                if (talk)
                    log_warn("resume: %s: %s -> %s changes the length of the cosine learning-rate "
                             "schedule: the rest of the run follows the new one", k, sv, nv);
            } else if (harmless(k)) {
                if (talk) log_info("resume: %s: %s -> %s", k, sv, nv);
            } else if (talk) {
                log_warn("resume: %s: %s -> %s: the continued run will differ from an "
                         "uninterrupted one", k, sv, nv);
            }
        }
    }
    ckpt_kv_free(&a);
    ckpt_kv_free(&b);
    if (nbreak) {
        ERR(ERR_STATE, "the job spec changed in %d way%s that the checkpoint's state cannot "
            "follow (saved -> now):%s", nbreak, nbreak > 1 ? "s" : "", list);
        err_hint("restore those keys, or start a new run (another run.out_dir or "
                 "checkpoint.dir, or checkpoint.resume: never with --force)");
        return ERR_STATE;
    }
    return ERR_OK;
}
