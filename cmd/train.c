/* cmd/train.c - `dfm train JOB.yaml [--set a.b=v ...] [--resume PATH] [--force]`. */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "dist/dist.h"
#include "dist/preempt.h"
#include "dist/train.h"
#include "io/jobspec.h"

static void train_usage(FILE *f)
{
    fprintf(f,
            "usage: dfm train JOB.yaml [--set section.key=value ...] [--resume PATH] [--force]\n"
            "       mpirun -np N dfm train JOB.yaml [...]\n\n"
            "Train the model a job spec describes, on one rank or under mpirun on many. The\n"
            "global batch is a property of the job, not of the rank count: with the default\n"
            "deterministic reduction the weights are bitwise identical for 1, 2, 4, ... ranks.\n\n"
            "options:\n"
            "  --set KEY=VALUE   override a job-spec key (validated like the file), repeatable\n"
            "  --resume PATH     continue from this checkpoint (a step-N directory), on any rank\n"
            "                    count; default: checkpoint.resume (auto: the newest one that\n"
            "                    verifies in checkpoint.dir)\n"
            "  --force           with checkpoint.resume: never, delete an earlier run's\n"
            "                    checkpoints instead of refusing to start\n"
            "  -h, --help        this help\n\n"
            "Writes metrics.jsonl, samples.png, weights.bin and final.json into run.out_dir and\n"
            "checkpoints into checkpoint.dir (every checkpoint.every steps and at the end).\n"
            "SIGUSR1, SIGTERM or SIGINT: save a checkpoint at the next step boundary and exit with\n"
            "status %d (preempted, checkpoint saved: run the same command to resume); a second\n"
            "SIGINT exits at once.\n"
            "Environment: DFM_LOG=debug|info|warn|error.\n",
            DFM_EXIT_PREEMPTED);
}

int cmd_train(int argc, char **argv)
{
    /* Signals first: a preemption notice that arrives during start-up is kept, not fatal. They
     * stay blocked (pending) across the wait-policy re-exec: dist/preempt.h, Start-up. */
    preempt_block();
    preempt_install();
    /* --resume and --force are this command's; the rest is the shared job-spec syntax. */
    TrainOptions opt = {0};
    char **rest = xcalloc((size_t)argc + 1, sizeof *rest);
    int nrest = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (i > 0 && !strcmp(a, "--resume")) {
            if (i + 1 >= argc || !argv[i + 1][0]) {
                xfree(rest);
                return cmd_usage_error("train", "train: --resume needs a checkpoint directory");
            }
            opt.resume = argv[++i];
        } else if (i > 0 && !strncmp(a, "--resume=", 9)) {
            if (!a[9]) {
                xfree(rest);
                return cmd_usage_error("train", "train: --resume needs a checkpoint directory");
            }
            opt.resume = a + 9;
        } else if (i > 0 && !strcmp(a, "--force")) {
            opt.force = 1;
        } else {
            rest[nrest++] = argv[i];
        }
    }
    /* Check the spec before starting MPI: a typo costs no allocation on a cluster. */
    JobSpec js;
    int rc = cmd_load_job(nrest, rest, "train", train_usage, &js);
    xfree(rest);
    if (rc >= 0) return rc;

    preempt_fault_startup("exec", -1);
    dist_choose_wait_policy(js.train.threads); /* may restart the process, before MPI */
    preempt_unblock();
    preempt_fault_startup("mpi-init", -1);
    rc = dist_init(&argc, &argv);
    if (rc == ERR_OK) rc = dist_check_world();
    TrainResult res;
    if (rc == ERR_OK) rc = train_run(&js, &opt, &res);
    jobspec_free(&js);
    int status = cmd_dist_end(rc);
    return status != 0 ? status : res.preempted ? DFM_EXIT_PREEMPTED : 0;
}
