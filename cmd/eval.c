/* cmd/eval.c - `dfm eval SAMPLES.npy | RUN_DIR | WEIGHTS`: FD-FMNIST and the other scores
 * beside the real-data floor, optionally over a sweep of sampler settings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/err.h"
#include "core/mem.h"
#include "dist/dist.h"
#include "dist/evalrun.h"
#include "dist/likelihood.h"

static void eval_usage(FILE *f)
{
    fprintf(f,
            "usage: dfm eval SAMPLES.npy [options]\n"
            "       dfm eval RUN_DIR|CKPT_DIR|WEIGHTS [--job JOB.yaml] [--n N] [--sweep steps=10,20,50,100]\n"
            "                [--sweep eta=0,1] [--sweep guidance=1,2,3] [sampler options] [options]\n"
            "       mpirun -np N dfm eval ...\n\n"
            "Score images against the test split of the evaluator's dataset: FD-FMNIST (Frechet\n"
            "distance of the evaluator classifier's features; never called FID), precision and\n"
            "recall (k = 3), the spectral distance (dB) of radially averaged power spectra, the\n"
            "class histogram's distance from uniform and, with labels, the classifier's accuracy\n"
            "on the intended classes. Each score is printed beside its real-data floor: the same\n"
            "number of train-split images scored the same way. Every number is the same for any\n"
            "rank count and chunk size.\n\n"
            "SAMPLES.npy: (N, C, H, W) or (N, H, W), float32 in [-1, 1] or uint8 0..255 (the\n"
            "layouts dfm sample writes). RUN_DIR / CKPT_DIR / WEIGHTS (the sources of dfm sample):\n"
            "draw --n samples over the ranks (as dfm sample) and score them; each --sweep adds an\n"
            "axis, every combination is one point,\n"
            "and the points go to OUT_DIR/sweep.md and sweep.csv (scores, NFE, wall time).\n\n"
            "Resumable: every chunk of per-image records is appended (fsynced) to a partial-*.bin\n"
            "file in OUT_DIR, named by a hash of everything it depends on; an interrupted eval\n"
            "(a signal, kill -9) run again with the same arguments continues from them and gives\n"
            "the same numbers. The files are removed when the evaluation succeeds.\n\n"
            "options:\n"
            "  --evaluator NAME  fmnist (default) or mnist (dfm evaluator list)\n"
            "  --data DIR        dataset directory (default data/)\n"
            "  --ref N           reference: the first N test images (default all)\n"
            "  --labels L.npy    intended class of each sample (.npy input), (N) numbers\n"
            "  --weights FILE    evaluator weights instead of the shipped, hash-checked file\n"
            "  --no-floor        skip the real-data floor\n"
            "  --chunk K         images per work chunk handed to a rank (default 64)\n"
            "  --n N             samples to draw from a model (default 1000)\n"
            "  --job JOB.yaml    the model's spec (default RUN_DIR/job.yaml)\n"
            "  --out-dir DIR     where a sweep's tables and the partial results go (default\n"
            "                    RUN_DIR/eval, or eval/; for SAMPLES.npy none unless given)\n"
            "  --metrics LIST    with a model: nll (probability-flow ODE) and/or elbo (the DDPM\n"
            "                    variational bound) of --n test examples, bits/dim for images;\n"
            "                    swd, fd_fmnist, spectrum: the sample scores (the default)\n"
            "  --sampler S, --steps N, --eta E, --timesteps T, --class C, --guidance W, --seed S,\n"
            "  --ema, --no-ema, --set KEY=VALUE   as for dfm sample\n"
            "  -h, --help        this help\n");
}

int cmd_eval(int argc, char **argv)
{
    EvalRunArgs a;
    evalrun_args_default(&a);
    a.n = 1000;
    EvalSweep sw;
    memset(&sw, 0, sizeof sw);
    const char *job = NULL, *out_dir = NULL;
    int use_ema = -1, rc = -1, n_sets = 0, metrics = 0;
    char **sets = xcalloc((size_t)argc + 1, sizeof *sets);
    static const char *const map[][2] = {
        {"--sampler", "sample.sampler"}, {"--steps", "sample.steps"}, {"--eta", "sample.eta"},
        {"--timesteps", "sample.timesteps"}, {"--class", "sample.label"},
        {"--guidance", "sample.guidance"}, {"--seed", "sample.seed"}};
    for (int i = 1; i < argc && rc < 0; i++) {
        const char *s = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t k;
        for (k = 0; k < sizeof map / sizeof map[0]; k++)
            if (!strcmp(s, map[k][0])) break;
        int mapped = k < sizeof map / sizeof map[0];
        if (cmd_is_help(s)) {
            eval_usage(stdout);
            rc = 0;
        } else if (!strcmp(s, "--no-floor")) {
            a.floor = 0;
        } else if (!strcmp(s, "--ema") || !strcmp(s, "--no-ema")) {
            use_ema = !strcmp(s, "--ema");
        } else if (mapped || !strcmp(s, "--evaluator") || !strcmp(s, "--data") ||
                   !strcmp(s, "--ref") || !strcmp(s, "--labels") || !strcmp(s, "--weights") ||
                   !strcmp(s, "--chunk") || !strcmp(s, "--n") || !strcmp(s, "--job") ||
                   !strcmp(s, "--out-dir") || !strcmp(s, "--sweep") || !strcmp(s, "--set") ||
                   !strcmp(s, "--metrics")) {
            if (!v) {
                rc = cmd_usage_error("eval", "eval: %s needs a value", s);
                break;
            }
            i++;
            if (mapped) {
                size_t len = strlen(map[k][1]) + strlen(v) + 2;
                sets[n_sets] = xmalloc(len);
                snprintf(sets[n_sets++], len, "%s=%s", map[k][1], v);
            } else if (!strcmp(s, "--set")) sets[n_sets++] = xstrdup(v);
            else if (!strcmp(s, "--metrics")) { /* the registry of eval.metrics spells them */
                size_t len = strlen(v) + 16;
                sets[n_sets] = xmalloc(len);
                snprintf(sets[n_sets++], len, "eval.metrics=[%s]", v);
                metrics = 1;
            }
            else if (!strcmp(s, "--evaluator")) a.evaluator = v;
            else if (!strcmp(s, "--data")) a.data_dir = v;
            else if (!strcmp(s, "--labels")) a.labels = v;
            else if (!strcmp(s, "--weights")) a.weights = v;
            else if (!strcmp(s, "--job")) job = v;
            else if (!strcmp(s, "--out-dir")) out_dir = v;
            else if (!strcmp(s, "--sweep")) {
                if (evalrun_sweep_parse(&sw, v) != ERR_OK) rc = cmd_report(err_code());
            } else {
                char *end;
                long n = strtol(v, &end, 10);
                if (*end || n < 1 || n > 100000000)
                    rc = cmd_usage_error("eval", "eval: %s wants a positive count, not '%s'", s, v);
                else if (!strcmp(s, "--ref")) a.n_ref = (size_t)n;
                else if (!strcmp(s, "--n")) a.n = (size_t)n;
                else a.chunk = (size_t)n;
            }
        } else if (s[0] == '-' && s[1]) {
            rc = cmd_usage_error("eval", "eval: unknown option '%s'", s);
        } else if (a.samples) {
            rc = cmd_usage_error("eval", "eval: one source at a time (got '%s' and '%s')", a.samples, s);
        } else {
            a.samples = s;
        }
    }
    if (rc < 0 && !a.samples) rc = cmd_usage_error("eval", "eval: missing SAMPLES.npy or RUN_DIR");
    size_t len = a.samples ? strlen(a.samples) : 0;
    int is_npy = len > 4 && !strcmp(a.samples + len - 4, ".npy");
    if (rc < 0 && is_npy && (n_sets > 0 || sw.n_axes > 0 || job))
        rc = cmd_usage_error("eval", "eval: sampler options, --sweep and --job apply to a model, not to %s", a.samples);
    if (rc >= 0) {
        for (int i = 0; i < n_sets; i++) xfree(sets[i]);
        xfree(sets);
        return rc;
    }
    rc = dist_init(&argc, &argv);
    if (rc == ERR_OK) rc = dist_check_world();
    if (rc == ERR_OK && is_npy) {
        rc = evalrun_npy(&a, out_dir, stdout);
    } else if (rc == ERR_OK) {
        SampleModel m;
        rc = sample_model_init(&m, a.samples, job, (const char *const *)sets, n_sets, use_ema);
        char dir[4200];
        if (!out_dir) {
            if (m.run_dir[0]) snprintf(dir, sizeof dir, "%s/eval", m.run_dir);
            else snprintf(dir, sizeof dir, "eval");
            out_dir = dir;
        }
        int others = 1, lik = rc == ERR_OK && metrics && likelihood_wanted(&m.js, &others);
        if (lik) rc = likelihood_eval(&m, &a, stdout);
        if (rc == ERR_OK && others) rc = evalrun_model(&m, &a, &sw, out_dir, stdout);
        sample_model_free(&m);
    }
    for (int i = 0; i < n_sets; i++) xfree(sets[i]);
    xfree(sets);
    return cmd_dist_end(rc);
}
