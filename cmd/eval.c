/* cmd/eval.c - `dfm eval SAMPLES.npy`: FD-FMNIST and the other scores beside the real-data floor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/err.h"
#include "dist/dist.h"
#include "dist/evalrun.h"

static void eval_usage(FILE *f)
{
    fprintf(f,
            "usage: dfm eval SAMPLES.npy [--evaluator NAME] [--data DIR] [--ref N] [--labels L.npy]\n"
            "                [--weights FILE] [--no-floor] [--chunk K]\n"
            "       mpirun -np N dfm eval ...\n\n"
            "Score images against the test split of the evaluator's dataset: FD-FMNIST (Frechet\n"
            "distance of the evaluator classifier's features; never called FID), precision and\n"
            "recall (k = 3), the spectral distance (dB) of radially averaged power spectra, the\n"
            "class histogram's distance from uniform and, with --labels, the classifier's\n"
            "accuracy on the intended classes. Each score is printed beside its real-data floor:\n"
            "the same number of train-split images scored the same way. Every number is the same\n"
            "for any rank count.\n\n"
            "SAMPLES.npy: (N, C, H, W) or (N, H, W), float32 in [-1, 1] or uint8 0..255 (the\n"
            "layouts dfm sample writes).\n\n"
            "options:\n"
            "  --evaluator NAME  fmnist (default) or mnist (dfm evaluator list)\n"
            "  --data DIR        dataset directory (default data/)\n"
            "  --ref N           reference: the first N test images (default all)\n"
            "  --labels L.npy    intended class of each sample, (N) integers as float32/uint8\n"
            "  --weights FILE    evaluator weights instead of the shipped, hash-checked file\n"
            "  --no-floor        skip the real-data floor\n"
            "  --chunk K         images per work chunk handed to a rank (default 64)\n"
            "  -h, --help        this help\n");
}

int cmd_eval(int argc, char **argv)
{
    EvalRunArgs a;
    evalrun_args_default(&a);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (cmd_is_help(s)) {
            eval_usage(stdout);
            return 0;
        } else if (!strcmp(s, "--no-floor")) {
            a.floor = 0;
        } else if (!strcmp(s, "--evaluator") || !strcmp(s, "--data") || !strcmp(s, "--ref") ||
                   !strcmp(s, "--labels") || !strcmp(s, "--weights") || !strcmp(s, "--chunk")) {
            if (i + 1 >= argc) return cmd_usage_error("eval", "eval: %s needs a value", s);
            const char *v = argv[++i];
            if (!strcmp(s, "--evaluator")) a.evaluator = v;
            else if (!strcmp(s, "--data")) a.data_dir = v;
            else if (!strcmp(s, "--labels")) a.labels = v;
            else if (!strcmp(s, "--weights")) a.weights = v;
            else {
                char *end;
                long n = strtol(v, &end, 10);
                if (*end || n < 1 || n > 100000000)
                    return cmd_usage_error("eval", "eval: %s wants a positive count, not '%s'", s, v);
                if (!strcmp(s, "--ref")) a.n_ref = (size_t)n;
                else a.chunk = (size_t)n;
            }
        } else if (s[0] == '-' && s[1]) {
            return cmd_usage_error("eval", "eval: unknown option '%s'", s);
        } else if (a.samples) {
            return cmd_usage_error("eval", "eval: one sample file at a time (got '%s' and '%s')", a.samples, s);
        } else {
            a.samples = s;
        }
    }
    if (!a.samples) return cmd_usage_error("eval", "eval: missing SAMPLES.npy");
    int rc = dist_init(&argc, &argv);
    if (rc == ERR_OK) rc = dist_check_world();
    if (rc == ERR_OK) rc = evalrun_npy(&a, stdout);
    if (rc != ERR_OK) {
        int status = cmd_report(rc);
        if (dist_size() > 1) dist_abort(status);
        dist_finalize();
        return status;
    }
    dist_finalize();
    return 0;
}
