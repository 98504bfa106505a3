/* cmd/train.c - `dfm train JOB.yaml [--set a.b=v ...]`. */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/err.h"
#include "core/log.h"
#include "dist/dist.h"
#include "dist/train.h"
#include "io/jobspec.h"

static void train_usage(FILE *f)
{
    fprintf(f,
            "usage: dfm train JOB.yaml [--set section.key=value ...]\n"
            "       mpirun -np N dfm train JOB.yaml [...]\n\n"
            "Train the model a job spec describes, on one rank or under mpirun on many. The\n"
            "global batch is a property of the job, not of the rank count: with the default\n"
            "deterministic reduction the weights are bitwise identical for 1, 2, 4, ... ranks.\n\n"
            "options:\n"
            "  --set KEY=VALUE   override a job-spec key (validated like the file), repeatable\n"
            "  -h, --help        this help\n\n"
            "Writes metrics.jsonl, samples.png, weights.bin and final.json into run.out_dir.\n"
            "Environment: DFM_LOG=debug|info|warn|error.\n");
}

int cmd_train(int argc, char **argv)
{
    /* Check the spec before starting MPI: a typo costs no allocation on a cluster. */
    JobSpec js;
    int rc = cmd_load_job(argc, argv, "train", train_usage, &js);
    if (rc >= 0) return rc;

    dist_choose_wait_policy(js.train.threads); /* may restart the process, before MPI */
    rc = dist_init(&argc, &argv);
    if (rc == ERR_OK) rc = dist_check_world();
    TrainResult res;
    if (rc == ERR_OK) rc = train_run(&js, &res);
    jobspec_free(&js);
    if (rc != ERR_OK) {
        int status = cmd_report(rc);
        if (dist_size() > 1) dist_abort(status);
        dist_finalize();
        return status;
    }
    dist_finalize();
    return 0;
}
