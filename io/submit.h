/* io/submit.h - `dfm submit`: a job spec (and optional sweep) to a Slurm batch job.
 *
 * A plain job: the resolved spec goes to <run.out_dir>/job.yaml, the rendered script to
 * <run.out_dir>/job.sbatch, then `sbatch --parsable job.sbatch` queues it and one line
 * "<time> submit job=<id> ..." is appended to <run.out_dir>/slurm-history.log (the script adds a
 * line at each start and end). The job runs in the directory dfm submit was started from
 * (#SBATCH --chdir), so relative paths in the spec mean the same thing there.
 *
 * A sweep (--sweep KEY=V1,V2 ..., the product of all of them, the first varying slowest) is one
 * array job: point i trains <run.out_dir>/pNNN/job.yaml (the base spec with the point's values
 * and run.out_dir set to that directory), <run.out_dir>/points.tsv lists the points, and the
 * array's script and history are in <run.out_dir>. Values are split at commas outside [...], so
 * --sweep model.unet.ch_mult=[1,2],[1,2,2] has two points. slurm.* and run.out_dir cannot be
 * swept (one array job has one shape).
 *
 * Refuses (ERR_STATE) when the run directory's last submitted job is still queued or running.
 */
#ifndef DFM_IO_SUBMIT_H
#define DFM_IO_SUBMIT_H

#include <stdio.h>

#include "io/jobspec.h"

typedef struct {
    const char *spec_path;       /* the job spec file as given (messages, script header) */
    const char *const *sweeps;   /* "KEY=V1,V2,..." */
    int n_sweeps;
    int dry_run;                 /* print the script on out, write and submit nothing */
    const char *template_path;   /* NULL: the built-in template */
    const char *dfm_path;        /* the dfm binary the job runs; NULL: this one */
    const char *version, *commit;
} SubmitOptions;

#define SUBMIT_MAX_POINTS 10000

int submit_job(const JobSpec *js, const SubmitOptions *o, FILE *out);

/* Expand the Slurm filename pattern of --output for a job: %j %J (job id), %A (array job id),
 * %a (array task), %x (job name), %u (user), %% and zero padding (%3a); others are kept as they
 * are. array_id < 0: not an array (then %A is the job id and %a is 4294967294, like Slurm). */
void submit_expand_output(const char *pattern, long job_id, long array_id, int task,
                          const char *job_name, char *buf, size_t n);

#endif
