/* io/proc.h - run an external program (sbatch, squeue, scontrol, sacct) and capture its output.
 *
 *     const char *argv[] = {"sbatch", "--parsable", "job.sbatch", NULL};
 *     ProcResult r;
 *     TRY(proc_run(argv, 60, &r));        // ERR_IO only when it could not be run at all
 *     if (r.status != 0) ... r.err holds its stderr ...
 *     proc_result_free(&r);
 *
 * No shell is involved: argv[0] is looked up in PATH, the arguments are passed as they are.
 * stdin is /dev/null; stdout and stderr are captured separately (each up to PROC_MAX_OUTPUT bytes,
 * the rest is read and dropped). A program that runs longer than timeout_s seconds is killed
 * (SIGTERM, then SIGKILL 2 s later) and reported with status PROC_TIMED_OUT.
 */
#ifndef DFM_IO_PROC_H
#define DFM_IO_PROC_H

#include <stddef.h>

#define PROC_MAX_OUTPUT (4u << 20)
#define PROC_NOT_FOUND (-1) /* argv[0] is not in PATH (or not executable) */
#define PROC_TIMED_OUT (-2)
#define PROC_SIGNALED (-3)  /* killed by a signal it did not catch */

typedef struct {
    int status;  /* exit status 0..255, or one of PROC_NOT_FOUND, PROC_TIMED_OUT, PROC_SIGNALED */
    char *out;   /* stdout, NUL-terminated (owned) */
    char *err;   /* stderr, NUL-terminated, trailing newlines removed (owned) */
    size_t n_out, n_err;
} ProcResult;

/* Run argv (NULL-terminated) to completion. Returns ERR_OK whenever the program's outcome is in
 * *r, including "not found"; ERR_IO when pipes or the spawn itself failed. */
int proc_run(const char *const *argv, double timeout_s, ProcResult *r);
void proc_result_free(ProcResult *r);

/* One line describing a failed run for an error message: "sbatch exited 1: <its stderr>",
 * "sbatch: not found in PATH", "squeue timed out after 30 s". Writes at most n bytes. */
void proc_describe(const ProcResult *r, const char *name, double timeout_s, char *buf, size_t n);

#endif
