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
 */
#ifndef DFM_DIST_TRAIN_H
#define DFM_DIST_TRAIN_H

#include <stdint.h>

#include "io/jobspec.h"
#include "model/net.h"

typedef struct {
    long steps_done;      /* optimizer steps applied */
    long nonfinite;       /* steps skipped for a non-finite loss or gradient */
    double last_loss;     /* mean loss of the last step */
    double img_per_s;     /* training throughput over the run (all ranks) */
    double wall_s;        /* seconds in the training loop */
    uint64_t param_hash;  /* dist_hash_f32 of the final parameters */
    uint64_t ema_hash;    /* ... of the EMA weights (0 when EMA is off) */
    double swd, swd_floor; /* toy2d only: SW2(samples, held-out) and SW2(data, data); else NaN */
} TrainResult;

int train_run(const JobSpec *js, TrainResult *res);

/* The network a job spec describes (data dimensions included). */
void train_net_config(const JobSpec *js, NetConfig *nc);

#endif
