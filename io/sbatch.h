/* io/sbatch.h - the Slurm batch script of a job: template expansion, rendering from the spec's
 * `slurm` section, and the checks that span sections.
 *
 * The template (slurm/job.sbatch.in, compiled into dfm; `dfm submit --template FILE` uses
 * another) is a bash script with placeholders @NAME@ (capitals, digits, underscores):
 *
 *   - a placeholder with a value is replaced by it (all occurrences on the line);
 *   - a line with a placeholder that has no value (an optional key left empty, such as
 *     slurm.partition) is left out entirely, so `#SBATCH --partition=@PARTITION@` disappears;
 *   - a list placeholder (@EXTRA@, @SETUP@, @RUN_DIR@) repeats its line once per entry, and
 *     drops it when the list is empty; one list placeholder per line;
 *   - an unknown placeholder is an error naming the template line.
 *
 * Values that reach a shell command are quoted for bash ('...'); values on #SBATCH lines
 * (partition, account, qos, output, chdir) may not contain blanks or quotes, since sbatch reads
 * those lines itself: sbatch_check rejects them.
 *
 * Placeholders of the built-in template: JOB_NAME VERSION COMMIT SOURCE PARTITION ACCOUNT QOS
 * NODES NTASKS_PER_NODE CPUS_PER_TASK MEM TIME SIGNAL SIGNAL_NAME REQUEUE REQUEUE_ON_75 WORKDIR
 * OUTPUT ARRAY EXTRA DFM RUN_DIR SETUP LAUNCH (slurm/README.md says what each becomes).
 */
#ifndef DFM_IO_SBATCH_H
#define DFM_IO_SBATCH_H

#include <stddef.h>

#include "io/jobspec.h"

/* The exit status of `dfm train` for "stopped on a signal, checkpoint saved, resume me"
 * (EX_TEMPFAIL); the batch script requeues the job on it and on nothing else. */
#define SBATCH_EXIT_PREEMPTED 75

typedef struct {
    const char *name;        /* without the @ signs */
    const char *value;       /* NULL: lines using it are left out */
    const char *const *list; /* for a list placeholder (is_list) */
    int n_list;
    int is_list;
} SbatchVar;

/* Expand tmpl (NUL-terminated) with vars; *out is malloc'd. `tmpl_name` names the template in
 * errors ("slurm/job.sbatch.in:12: unknown placeholder @FOO@"). */
int sbatch_expand(const char *tmpl, const char *tmpl_name, const SbatchVar *vars, size_t n_vars,
                  char **out);

/* The built-in template (slurm/job.sbatch.in at build time), and its name for messages. */
const char *sbatch_builtin_template(void);
#define SBATCH_TEMPLATE_NAME "slurm/job.sbatch.in"

typedef struct {
    const char *dfm;      /* absolute path of the dfm binary the job runs */
    const char *workdir;  /* absolute directory the job runs in (#SBATCH --chdir) */
    const char *source;   /* the job spec file it was made from (for the header comment) */
    const char *version;  /* dfm version and commit (header comment) */
    const char *commit;
    const char *const *run_dirs; /* one per array task; 1 = a plain job. Each holds job.yaml */
    int n_run_dirs;
    const char *output;   /* #SBATCH --output; NULL = slurm.output */
} SbatchJob;

/* Render the batch script of js (its slurm section) with tmpl (NULL = built-in). */
int sbatch_render(const JobSpec *js, const SbatchJob *job, const char *tmpl, const char *tmpl_name,
                  char **script);

/* Rules across sections that `dfm validate` does not apply, because they only matter for a
 * batch job: ranks (nodes x ntasks_per_node) against the micro-batches of a step,
 * train.threads against slurm.cpus_per_task, the warning signal (dfm train checkpoints on
 * SIGUSR1) against the time limit, and #SBATCH values without blanks or quotes. Errors are
 * ERR_SPEC naming the keys; advice that does not stop a submission is logged as a warning, and
 * *n_warnings (may be NULL) counts it. `what` prefixes messages (the spec file, or a sweep point). */
int sbatch_check(const JobSpec *js, const char *what, int *n_warnings);

/* Parse slurm.signal ("[B:][SIG]NAME@SECONDS"): *batch_only = 1 with B:, name without SIG. */
int sbatch_parse_signal(const char *s, int *batch_only, char name[8], int *seconds);

/* slurm.time in seconds. */
long sbatch_time_seconds(const char *t);

/* Quote s for bash: unchanged when it only holds [A-Za-z0-9_./:=%+,@-], else in '...'. */
char *sbatch_shell_quote(const char *s);

#endif
