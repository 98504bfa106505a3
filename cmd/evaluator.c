/* cmd/evaluator.c - `dfm evaluator list|train|test`: the classifiers behind FD-FMNIST/FD-MNIST. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/cmd.h"
#include "core/err.h"
#include "dist/evaluator.h"

static void evaluator_usage(FILE *f)
{
    fprintf(f,
            "usage: dfm evaluator list\n"
            "       dfm evaluator train NAME [--data DIR] [--epochs N] [--limit N] [--out FILE]\n"
            "       dfm evaluator test NAME [--data DIR] [--limit N] [--weights FILE]\n\n"
            "The small classifiers whose penultimate features give FD-FMNIST (fmnist) and\n"
            "FD-MNIST (mnist). 'train' trains NAME's classifier from its pinned recipe on the\n"
            "dataset's train split (fetch it first: dfm fetch fashion-mnist) and writes it to\n"
            "--out (default NAME.dfmw), then prints its SHA-256 and test accuracy: with the\n"
            "recipe's epochs it reproduces the shipped model/evaluators/NAME.dfmw bit for bit on\n"
            "the same CPU kind. 'test' prints the test accuracy of the shipped classifier (its\n"
            "SHA-256 checked) or of --weights FILE.\n\n"
            "options:\n"
            "  --data DIR      dataset directory (default data/)\n"
            "  --epochs N      override the recipe's epochs (the result is then not the shipped one)\n"
            "  --limit N       use only the first N examples of the split (quick runs, tests)\n"
            "  --out FILE      where train writes the weights\n"
            "  --weights FILE  test this weights file instead of the shipped one\n"
            "  --log-every N   a progress line every N steps (default 100; 0 = none)\n"
            "  -h, --help      this help\n");
}

int cmd_evaluator(int argc, char **argv)
{
    const char *action = NULL, *name = NULL, *data = "data", *out = NULL, *weights = NULL;
    int epochs = 0, log_every = 100;
    long limit = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cmd_is_help(a)) {
            evaluator_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--data") || !strcmp(a, "--epochs") || !strcmp(a, "--out") ||
                   !strcmp(a, "--weights") || !strcmp(a, "--log-every") || !strcmp(a, "--limit")) {
            if (i + 1 >= argc) return cmd_usage_error("evaluator", "evaluator: %s needs a value", a);
            const char *v = argv[++i];
            char *end;
            if (!strcmp(a, "--data")) data = v;
            else if (!strcmp(a, "--out")) out = v;
            else if (!strcmp(a, "--weights")) weights = v;
            else {
                long n = strtol(v, &end, 10);
                if (*end || n < 0 || n > 1000000)
                    return cmd_usage_error("evaluator", "evaluator: %s wants a count, not '%s'", a, v);
                if (!strcmp(a, "--epochs")) epochs = (int)n;
                else if (!strcmp(a, "--limit")) limit = n;
                else log_every = (int)n;
            }
        } else if (a[0] == '-' && a[1]) {
            return cmd_usage_error("evaluator", "evaluator: unknown option '%s'", a);
        } else if (!action) {
            action = a;
        } else if (!name) {
            name = a;
        } else {
            return cmd_usage_error("evaluator", "evaluator: unexpected argument '%s'", a);
        }
    }
    if (!action) return cmd_usage_error("evaluator", "evaluator: missing action (list, train, test)");
    if (!strcmp(action, "list")) {
        printf("%-8s %-10s %-14s %-9s %s\n", "name", "metric", "dataset", "test acc", "weights");
        for (size_t i = 0; i < evaluator_count(); i++) {
            const EvaluatorInfo *e = evaluator_at(i);
            printf("%-8s %-10s %-14s ", e->name, e->metric, e->dataset);
            if (e->sha256) printf("%-9.4f %s (sha256 %s)\n", e->test_acc, e->file, e->sha256);
            else printf("%-9s not shipped\n", "-");
        }
        return 0;
    }
    if (strcmp(action, "train") && strcmp(action, "test"))
        return cmd_usage_error("evaluator", "evaluator: unknown action '%s' (list, train, test)", action);
    if (!name) return cmd_usage_error("evaluator", "evaluator: %s needs an evaluator name", action);
    const EvaluatorInfo *info = evaluator_find(name);
    if (!info) return cmd_report(err_code());
    Clf *c = NULL;
    int rc;
    char hex[65] = "";
    if (!strcmp(action, "train")) {
        char def[256];
        if (!out) {
            snprintf(def, sizeof def, "%s.dfmw", info->name);
            out = def;
        }
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rc = evaluator_train(&c, info, data, epochs, (size_t)limit, log_every);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (rc == ERR_OK) rc = evaluator_save(c, out);
        if (rc == ERR_OK) rc = evaluator_file_sha256(out, hex);
        if (rc == ERR_OK)
            printf("%s: trained in %.1f s, wrote %s\nsha256 %s\n", info->metric,
                   (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec), out, hex);
    } else if (weights) {
        rc = evaluator_read(&c, weights);
        if (rc == ERR_OK) rc = evaluator_file_sha256(weights, hex);
        if (rc == ERR_OK) printf("%s: sha256 %s\n", weights, hex);
    } else {
        rc = evaluator_load(&c, info);
    }
    double acc = 0.0;
    if (rc == ERR_OK) rc = evaluator_test(c, info, data, (size_t)limit, &acc);
    if (rc == ERR_OK) printf("%s classifier: test accuracy %.4f\n", info->metric, acc);
    clf_destroy(&c);
    return cmd_report(rc);
}
