/* dist/evaltrain.h - eval.every in `dfm train`: the evaluation of `dfm eval`, run on every rank
 * at a step boundary, logged to metrics.jsonl.
 *
 * Every eval.every steps all ranks draw eval.count samples of the current weights (the EMA when
 * sample.use_ema) with the sample section's sampler, through the coordinator (dist/coord.h):
 * rank 0 hands out chunks of eval.batch samples and computes chunks itself, and each rank turns
 * its samples into records (image data: the evaluator's features, class and power spectrum,
 * dist/evaluate.h; toy2d: the points). Only records travel. Rank 0 then scores them in a
 * background thread (no MPI in it) while every rank goes back to training, so no rank waits
 * in a collective while rank 0 scores; the scores are appended to metrics.jsonl as
 *     {"step":S,"eval":{"n":..,"fd_fmnist":..,"fd_fmnist_floor":..,"precision":..,...,"eval_s":..}}
 * once done (checked at every step boundary; the last one is waited for at the end). Numbers
 * are those `dfm eval` reports for the same weights, sampler, count and reference, the same for
 * any rank count. Image data: the evaluator of the dataset (dist/evaluator.h), its reference the
 * first eval.ref test images (0 = all), the floor eval.count train images; toy2d: the sliced
 * Wasserstein distance and its floor (dist/sample.h).
 */
#ifndef DFM_DIST_EVALTRAIN_H
#define DFM_DIST_EVALTRAIN_H

#include "dist/train.h"

typedef struct EvalTrain EvalTrain;

/* Collective, at every step boundary of the training loop: at a multiple of eval.every, run
 * the evaluation; on rank 0 also log a finished scoring. *et starts NULL; the first call sets
 * up the evaluator and its reference (so a missing one stops the run at its first step). */
int evaltrain_boundary(EvalTrain **et, Trainer *tr);
/* Wait for a scoring in flight, log it (rank 0), free. NULL-safe. */
int evaltrain_end(EvalTrain **et, Trainer *tr);

#endif
