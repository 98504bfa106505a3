/* io/runstatus.h - `dfm status RUN_DIR`: where a run stands, from its files and from Slurm.
 *
 * For a run directory (one with job.yaml from dfm submit, or any run.out_dir of dfm train):
 *   - the Slurm job: state, reason, run time and limit, exit code and restart count, from
 *     `scontrol show job` while the controller knows the job, else from `sacct` when the cluster
 *     keeps accounting (it says so when it does not), else from slurm-history.log alone;
 *   - starts and ends recorded by the batch script in slurm-history.log;
 *   - the newest committed checkpoint (<checkpoint.dir>/step-N with a manifest.yaml);
 *   - the last line of metrics.jsonl: step of steps, loss, images/s and the time left at that rate;
 *   - the last lines of the Slurm log.
 * For a sweep directory (with points.tsv) the same for every task, one row each.
 *
 * Text output is for people; json = 1 prints one JSON object (schema in slurm/README.md).
 * Missing pieces are reported as missing, not as errors; only a directory that does not exist,
 * or has none of these files, is an error (ERR_ARG).
 */
#ifndef DFM_IO_RUNSTATUS_H
#define DFM_IO_RUNSTATUS_H

#include <stdio.h>

int runstatus_print(const char *dir, int json, int log_lines, FILE *out);

#endif
