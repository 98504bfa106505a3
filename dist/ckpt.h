/* dist/ckpt.h - saving and loading checkpoints collectively (format: io/ckpt.h).
 *
 * Save (every rank calls; each writes the slice [lo, hi) of every buffer it was given):
 *   1. every rank writes <dir>/step-N.tmp/shard-R-of-W.bin, hashing while writing, and fsyncs;
 *   2. the ranks agree that every shard was written (one allgather of size, hash and status);
 *   3. rank 0 removes stale *.tmp directories, writes manifest.yaml (fsync), renames
 *      step-N.tmp to step-N, fsyncs the checkpoint directory, then moves `latest` atomically;
 *   4. retention: rank 0 removes checkpoints beyond policy.keep (and not multiples of
 *      keep_every), only after the new one is committed;
 *   5. rank 0 tells every rank the outcome (one broadcast).
 * A crash or kill -9 of any rank at any point leaves the previous checkpoint as it was: nothing
 * is named step-N until its manifest and every shard are on disk. A failed save (full disk, ...)
 * returns the same error on every rank, naming the rank and the path, and removes its .tmp.
 *
 * Async (ckpt_save_start, ckpt_save_advance, ckpt_save_commit): the caller's thread only copies
 * and posts or completes small exchanges; every file operation runs on a writer thread (no MPI
 * there: MPI is FUNNELED), and nothing at a step boundary waits for another rank.
 *   a. ckpt_save_start copies this rank's slice into a second buffer and starts the writer
 *      thread, which writes, hashes and fsyncs the shard (step 1). Local, no communication.
 *   b. The caller sums ckpt_save_ready over the ranks in a reduction it does anyway, and calls
 *      ckpt_save_advance with the sum at every step boundary while a save is busy: once every
 *      shard is written, it posts step 2 (MPI_Iallgather of the results); at the next boundary
 *      it completes it (every rank posted it a step ago) and hands rank 0's steps 3-4 to a
 *      writer thread; once the sum says rank 0's commit is done, the save is committed on every
 *      rank, with no message (a failed commit makes rank 0's value 1.5, and then one broadcast
 *      carries its error to every rank).
 * ckpt_save_commit does whatever is left, waiting for the threads (the training loop calls it
 * before a synchronous save or a new async one: one save in flight at a time). The files are
 * written in the same order as by the synchronous save, so a crash at any point of the async
 * path leaves the previous checkpoint as it was, too.
 *
 * Fault injection for tests: DFM_CKPT_KILL_AT=POINT[@RANK][:STEP] sends SIGKILL to the process
 * at POINT (begin, shard-half, shard-written, agreed, manifest, renamed, latest, retention) on
 * RANK (default: every rank) when saving STEP (default: every save).
 *
 * Load: ckpt_find_latest verifies candidates newest first (shard r is hashed by rank r mod P)
 * and skips corrupt or partial ones with a warning that names them; ckpt_load reads the byte
 * ranges each rank needs from whichever shards hold them, so any rank count resumes any
 * checkpoint.
 */
#ifndef DFM_DIST_CKPT_H
#define DFM_DIST_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "io/ckpt.h"

typedef struct {
    const char *dir; /* checkpoint.dir */
    int keep;        /* newest checkpoints kept (0 = all) */
    int keep_every;  /* also keep steps that are multiples of this (0 = none) */
} CkptPolicy;

/* The training state at a step boundary, as one rank holds it. */
typedef struct {
    uint64_t step;
    size_t n;                 /* values per buffer */
    size_t lo, hi;            /* the slice this rank writes */
    const float *params;      /* n values (only [lo, hi) is read) */
    const float *ema;         /* n values, or NULL without EMA */
    const float *m, *v;       /* Adam moments: m[i - mlo] for i in [lo, hi) */
    size_t mlo;
    CkptCounters counters;
    int zero1;
    const CkptTensor *tensors; /* the parameter table */
    size_t n_tensors;
    const char *spec;          /* the resolved job spec as YAML */
} CkptState;

typedef struct {
    uint64_t step;
    uint64_t bytes;  /* all shards */
    double stall_s;  /* seconds the caller was blocked (async: the copy, the agreement, the
                        outcome's broadcast and any wait for the writer threads) */
    double total_s;  /* from the start of the save to the end of its commit (rank 0's clock) */
    int async;
    char path[4200]; /* the committed checkpoint */
} CkptSaveStats;

typedef struct CkptSaver CkptSaver;

CkptSaver *ckpt_saver_create(const CkptPolicy *p);
/* Joins a running writer thread; an uncommitted save is abandoned (its .tmp stays until the
 * next save cleans it). NULL-safe. */
void ckpt_saver_destroy(CkptSaver *s);

/* Synchronous save: collective, returns once committed (or failed on every rank). */
int ckpt_save(CkptSaver *s, const CkptState *st, CkptSaveStats *out);
/* Async: make the second buffer hold `floats` values now (allocated and touched, so the first
 * save does not pay for the page faults at a step boundary). Optional. */
void ckpt_saver_reserve(CkptSaver *s, size_t floats);
/* Async: copy the slice and start the writer thread (local, no communication). */
int ckpt_save_start(CkptSaver *s, const CkptState *st);
/* A save was started and not committed yet. */
int ckpt_save_busy(const CkptSaver *s);
/* This rank's part of the current phase of the save in flight: 0 not done (or idle), 1 done,
 * 1.5 on rank 0 when its commit failed. Sum it over the ranks for ckpt_save_advance. */
double ckpt_save_ready(CkptSaver *s);
/* Collective, at a step boundary while a save is busy, with the sum of ckpt_save_ready taken in
 * the same step on every rank: move the save on without waiting for other ranks; *committed = 1
 * (and *out filled: bytes and total_s are rank 0's figures) once it is committed. */
int ckpt_save_advance(CkptSaver *s, double ready_sum, CkptSaveStats *out, int *committed);
/* Collective: finish the save in flight, waiting for the writer threads. */
int ckpt_save_commit(CkptSaver *s, CkptSaveStats *out);

/* The slice of rank r of P for n values (contiguous, multiples of align except the last). */
void ckpt_even_slice(size_t n, int rank, int size, size_t align, size_t *lo, size_t *hi);

/* Collective: every shard's size and hash (spread over the ranks). */
int ckpt_verify_collective(const char *path, const CkptManifest *m);
/* Collective: the newest committed checkpoint of ckdir that verifies; *found = 0 when none.
 * Skipped ones are named in a warning on rank 0. */
int ckpt_find_latest(const char *ckdir, char *path, size_t size, int *found);

/* Collective: read the manifest of path into *m (every rank) and load params and ema [0, n)
 * (ema may be NULL) and the moments [mlo, mhi) into m_buf/v_buf. n must match. */
int ckpt_load(const char *path, CkptManifest *m, size_t n, float *params, float *ema,
              float *m_buf, float *v_buf, size_t mlo, size_t mhi);

/* Compare the job spec a checkpoint was saved with to the current one (both as YAML). Changes
 * that break the state (shapes, objective, schedule, optimizer kind) fail with ERR_STATE and a
 * list "key: saved -> now"; the others are logged on rank 0 (warned when the learning-rate
 * schedule's length changes). */
int ckpt_spec_check(const char *saved, const char *now, int log_rank0);

/* The fault-injection hook (see above); exposed for the training loop's own points. */
void ckpt_kill_point(const char *point, uint64_t step);

#endif
