/* dist/trainckpt.h - checkpoints in the training loop: resume, periodic and async saves,
 * preemption.
 *
 * trainckpt_open runs after trainer_init and before the first step. It decides where the run
 * starts (checkpoint.resume, or --resume PATH), loads the state of that checkpoint into the
 * trainer (any rank count: the load reshards), checks that the job spec did not change in a
 * way the state cannot follow, and trims metrics.jsonl to the checkpoint's step (a fresh run
 * empties it). The training loop then calls trainckpt_boundary at every step boundary (inside
 * trainer_step, after the update, before the metrics line, so the line records the save):
 *   - an async save whose current phase finished on every rank moves on (shards written:
 *     agree and let rank 0's writer thread commit; commit done: learn its outcome);
 *   - every checkpoint.every steps a save starts (async with checkpoint.async) and at the last
 *     step a synchronous one (an async save in flight is committed first);
 *   - when any rank received SIGUSR1, SIGTERM or SIGINT (learned through the per-step
 *     reduction: trainer_step sums tr->stop_local), the state is saved and the run stops:
 *     trainckpt_stopped() is then non-zero and train_run returns with res->preempted set.
 * A signal received during start-up (dist/preempt.h) is agreed on at the end of trainckpt_open:
 * trainckpt_stopped() is then non-zero before the first step and the run stops without a step
 * and without a save.
 * All of it is collective; every rank takes the same decisions from reduced values.
 */
#ifndef DFM_DIST_TRAINCKPT_H
#define DFM_DIST_TRAINCKPT_H

#include "dist/ckpt.h"
#include "dist/train.h"

typedef struct TrainCkpt TrainCkpt;

/* Where the run starts; collective. On success *out is ready for trainckpt_boundary. */
int trainckpt_open(TrainCkpt **out, Trainer *tr, const TrainOptions *opt);
/* At the step boundary after step tr->ctr.step; fills the checkpoint fields of rec (rank 0's
 * metrics line). Collective. */
int trainckpt_boundary(TrainCkpt *tc, Trainer *tr, RunRecord *rec);
/* This rank's part of the current phase of the async save is done (1.0) or not (0.0): the
 * value for tr->sync_in[TRAIN_SYNC_CKPT_READY]. NULL-safe. */
double trainckpt_ready(TrainCkpt *tc);
/* The signal that stopped the run (0 = none; 1 = a signal another rank received), and the
 * checkpoint it saved. */
int trainckpt_stopped(const TrainCkpt *tc);
const char *trainckpt_last_path(const TrainCkpt *tc);
/* Joins a writer thread still running (a failed run); NULL-safe. */
void trainckpt_close(TrainCkpt *tc);

#endif
