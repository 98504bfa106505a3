/* cmd/submit.c - `dfm submit JOB.yaml [--set k=v ...] [--sweep k=v1,v2 ...] [--dry-run]`. */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/err.h"
#include "core/mem.h"
#include "io/jobspec.h"
#include "io/submit.h"

static void submit_usage(FILE *f)
{
    fprintf(f,
            "usage: dfm submit JOB.yaml [--set KEY=VALUE ...] [--sweep KEY=V1,V2,... ...]\n"
            "                           [--dry-run] [--template FILE]\n"
            "\n"
            "Turn a job spec into a Slurm batch script (from its slurm section) and submit it with\n"
            "sbatch. The resolved spec (job.yaml), the script (job.sbatch) and a history of the\n"
            "job's starts (slurm-history.log) go into run.out_dir. The job checkpoints on the\n"
            "warning signal before its time limit, requeues itself and resumes.\n"
            "\n"
            "options:\n"
            "  --set KEY=VALUE     override a job-spec key (validated like the file), repeatable\n"
            "  --sweep KEY=V1,V2   one array job over the product of all --sweep values, one run\n"
            "                      directory per point (run.out_dir/p000, ...), table in points.tsv\n"
            "  --dry-run           print the batch script; write and submit nothing\n"
            "  --template FILE     render FILE instead of the built-in slurm/job.sbatch.in\n"
            "  -h, --help          this help\n"
            "\n"
            "exit status: 0 submitted, 2 invalid spec or usage error, 1 sbatch failed or missing.\n"
            "Watch the job with 'dfm status RUN_DIR'. Details: slurm/README.md\n");
}

int cmd_submit(int argc, char **argv)
{
    SubmitOptions o = {0};
    const char **sweeps = xcalloc((size_t)argc + 1, sizeof *sweeps);
    char **rest = xcalloc((size_t)argc + 1, sizeof *rest);
    int n_rest = 0, rc = -1;
    rest[n_rest++] = argv[0];
    for (int i = 1; i < argc && rc < 0; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--dry-run")) {
            o.dry_run = 1;
        } else if (!strcmp(a, "--sweep") || !strcmp(a, "--template")) {
            if (i + 1 >= argc)
                rc = cmd_usage_error("submit", "submit: %s needs a value", a);
            else if (a[2] == 's')
                sweeps[o.n_sweeps++] = argv[++i];
            else
                o.template_path = argv[++i];
        } else if (!strncmp(a, "--sweep=", 8)) {
            sweeps[o.n_sweeps++] = a + 8;
        } else if (!strncmp(a, "--template=", 11)) {
            o.template_path = a + 11;
        } else if (!strcmp(a, "--set") && i + 1 < argc) {
            rest[n_rest++] = argv[i++];
            rest[n_rest++] = argv[i];
        } else {
            rest[n_rest++] = argv[i];
        }
    }
    JobSpec js;
    if (rc < 0) rc = cmd_load_job(n_rest, rest, "submit", submit_usage, &js);
    if (rc < 0) {
        for (int i = 1; i < n_rest; i++)
            if (rest[i][0] != '-' && (i == 1 || strcmp(rest[i - 1], "--set") != 0)) o.spec_path = rest[i];
        o.sweeps = sweeps;
        o.version = DFM_VERSION;
        o.commit = DFM_GIT_COMMIT;
        rc = cmd_report(submit_job(&js, &o, stdout));
        jobspec_free(&js);
    }
    xfree(rest);
    xfree(sweeps);
    return rc;
}
