/* dist/runfiles.h - the files a training run writes into run.out_dir (rank 0 writes them all):
 *
 *     weights.bin    final parameters and EMA weights with their parameter table (io/weights.h)
 *     samples.png    progress grids, and the final grid unless sample.out points elsewhere
 *     sample.out     the final samples (a PNG, or for toy2d a CSV when it ends in .csv)
 *     final.json     one JSON object: steps, loss, throughput, parameter hashes, reduction
 *                    statistics, and for toy2d the sliced Wasserstein distances
 *
 * runfiles_check runs before step 1, so a path that cannot be written stops the run at once;
 * the training loop writes the weights before it samples, so a failure while sampling or writing
 * the samples never loses them.
 */
#ifndef DFM_DIST_RUNFILES_H
#define DFM_DIST_RUNFILES_H

#include "dist/train.h"

/* Every output path of the job can be created (directories are made as needed); the error names
 * the job key (run.out_dir, sample.out). Rank 0. */
int runfiles_check(const JobSpec *js);
/* <out_dir>/job.yaml: the resolved spec beside the weights, so that `dfm sample RUN_DIR` and
 * `dfm eval RUN_DIR` rebuild the same network and sampler. Atomic. Rank 0. */
int runfiles_spec(const JobSpec *js);
/* <out_dir>/weights.bin. Rank 0. */
int runfiles_weights(Trainer *tr);
/* Samples 0..count-1 from the EMA weights (or the live ones when sample.use_ema is off or there
 * is no EMA): train.sample_count progress samples to <out_dir>/samples.png, or (final) sample.count
 * samples to sample.out, scored for toy2d into res->swd. Collective; rank 0 writes. */
int runfiles_samples(Trainer *tr, TrainResult *res, int final);
/* <out_dir>/final.json. Rank 0. */
int runfiles_final(Trainer *tr, const TrainResult *res);
/* The closing log lines: totals and where each output is. Rank 0. */
void runfiles_report(Trainer *tr, const TrainResult *res);

#endif
