/* dist/train.h - the training loop, on one rank or many.
 *
 * train_run executes a resolved job spec: it fetches and verifies the data (one rank per node
 * downloads), builds the model, and runs
 *     batch -> noise and t by sample index -> forward -> loss -> backward
 *           -> gradient reduction -> clip -> Adam/AdamW -> EMA
 * for train.steps optimizer steps, writing into run.out_dir:
 *     metrics.jsonl  one JSON object per step (rank 0)
 *     samples.png    a sample grid (images) or scatter plot (toy2d) from the EMA weights at
 *                    fixed sample indices, every train.sample_every steps and at the end
 *     weights.bin    final parameters and EMA weights with their parameter table
 *     final.json     step, loss, parameter hashes (and for toy2d the sliced Wasserstein
 *                    distance to held-out data next to the data-to-data floor)
 *
 * World-size invariance: the global batch (train.batch) is cut into micro-shards of
 * train.micro_batch examples; rank r of P computes the micro-shards [r*M/P, (r+1)*M/P) and the
 * reducer combines them in one fixed tree (dist/reduce.h). With train.reduce = deterministic the
 * weights after any number of steps are bitwise identical for every P that is a power of two
 * dividing M = batch / micro_batch, with or without ZeRO-1. Every random number is keyed by
 * (seed, global sample index, step), never by rank.
 *
 * Must be called on every rank after dist_init. Errors are returned on the rank that saw them;
 * errors that all ranks see (bad data, divergence) are returned on all of them.
 *
 * The pieces of train_run are public so that a caller can restore a saved state between
 * trainer_init and the first trainer_step (see "training state" in Trainer).
 */
#ifndef DFM_DIST_TRAIN_H
#define DFM_DIST_TRAIN_H

#include <stdint.h>

#include "dist/reduce.h"
#include "dist/sample.h"
#include "io/dataset.h"
#include "io/jobspec.h"
#include "io/loader.h"
#include "io/runlog.h"
#include "model/net.h"
#include "model/optim.h"
#include "sched/lr.h"
#include "sched/schedule.h"
#include "sched/targets.h"

typedef struct {
    long steps_done;      /* optimizer steps applied */
    long nonfinite;       /* steps skipped for a non-finite loss or gradient */
    double last_loss;     /* mean loss of the last step */
    double img_per_s;     /* training throughput over the run (all ranks) */
    double wall_s;        /* seconds in the training loop */
    uint64_t param_hash;  /* dist_hash_f32 of the final parameters */
    uint64_t ema_hash;    /* ... of the EMA weights (0 when EMA is off) */
    double swd, swd_floor; /* toy2d only: SW2(samples, held-out) and SW2(data, data); else NaN */
    int preempted;        /* stopped by a signal after saving a checkpoint (its number; 0: no) */
} TrainResult;

/* How a run starts (the command line's part; the job spec's is checkpoint.resume). */
typedef struct {
    const char *resume; /* --resume PATH: continue from this checkpoint (NULL: checkpoint.resume) */
    int force;          /* --force: with checkpoint.resume: never, delete an earlier run's
                           checkpoints instead of refusing to start */
} TrainOptions;

/* Values every rank contributes to the reduction trainer_step already does (no extra message):
 * sync_fill sets sync_in right before that reduction (late, so an async checkpoint writer that
 * finished during the step's compute counts at this boundary); read the sums in sync_out after
 * it. */
enum { TRAIN_SYNC_STOP = 0, TRAIN_SYNC_CKPT_READY = 1, TRAIN_SYNC_N = 2 };

struct Trainer;
/* Called by trainer_step on every rank at the step boundary (after the update, before the
 * metrics line, whose checkpoint fields it may fill). Collective. */
typedef int (*TrainBoundaryFn)(void *ctx, struct Trainer *tr, RunRecord *rec);

/* Counters of the loop; together with the buffers named in Trainer they are the whole training
 * state (data order, noise and dropout are functions of the step and the sample index). */
typedef struct {
    long step;          /* steps completed = 0-based index of the next global batch */
    long updates;       /* optimizer updates applied (steps minus the skipped ones) */
    long nonfinite;     /* steps skipped for a non-finite loss or gradient */
    long nonfinite_run; /* of those, how many in a row up to the last step */
    double last_loss;   /* mean loss of the last step */
    double wall_s;      /* seconds spent in the loop, over all processes of the run */
} TrainCounters;

typedef struct Trainer {
    const JobSpec *js;
    int rank, size, threads;

    /* ---- training state: what a checkpoint saves and restores --------------------------- */
    Net *net;          /* parameters: net_params(net), n floats */
    Optim opt;         /* Adam moments opt.m and opt.v (n floats each), EMA weights opt.ema (n
                          floats, NULL without EMA), Adam's bias-correction step opt.step,
                          EMA update count opt.ema_updates */
    TrainCounters ctr;

    /* ---- fixed by the job spec ---------------------------------------------------------- */
    Dataset ds;
    LoaderConfig lc;
    Schedule sch;
    TrainTargetConfig tc;
    LrSchedule lr;
    OptimConfig oc;
    GradReducer *red;
    SampleSetup smp;    /* progress and final samples, on the same network */
    size_t n, D;        /* parameters; floats per example */
    size_t B, m, M;     /* global batch, micro-batch, micro-shards */
    double time_scale;  /* network time input = time_scale * sampler/target time */

    /* ---- scratch ------------------------------------------------------------------------ */
    float *x0, *xt, *target, *out, *dout; /* (m, D) */
    double *tnet, *per_sample;            /* (m) */
    double *weight;                       /* (m): score-matching weights (objective sde) */
    float *tin;                           /* (m) */
    int *labels, *labels_in;              /* (m) */
    uint64_t *idx;                        /* (m) */
    double *chunk_sumsq;                  /* n_chunks */
    size_t n_chunks;
    int ready_rc;       /* first error of the gradient-ready listener */
    double t0;          /* core_now() when this process's loop started */
    long step0;         /* ctr.step then */
    double wall0;       /* ctr.wall_s then (time of earlier processes, after a restore) */
    RunLog rl;          /* rank 0 */
    double sync_in[TRAIN_SYNC_N], sync_out[TRAIN_SYNC_N]; /* see TRAIN_SYNC_STOP */
    TrainBoundaryFn boundary; /* checkpoints (dist/trainckpt.h); NULL: none */
    void (*sync_fill)(void *ctx, struct Trainer *tr); /* sets sync_in; NULL: left as is */
    void *boundary_ctx;       /* for both */
} Trainer;

/* Data, network with fresh parameters, optimizer, reducer, run log. On failure *tr can still be
 * given to trainer_free. */
int trainer_init(Trainer *tr, const JobSpec *js);
/* One step on global batch tr->ctr.step: gradient, reduction, clipped update, EMA, metrics. A
 * non-finite loss or gradient skips the update; more than train.max_nonfinite in a row is
 * ERR_NUMERIC. */
int trainer_step(Trainer *tr);
void trainer_free(Trainer *tr);

/* The whole run: trainer_init, train.steps steps with progress samples, then the outputs. */
int train_run(const JobSpec *js, const TrainOptions *opt, TrainResult *res);

#endif
