/* cmd/sample.c - `dfm sample RUN_DIR|weights.bin`: draw samples over the ranks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/err.h"
#include "core/mem.h"
#include "dist/dist.h"
#include "dist/samplerun.h"

static void sample_usage(FILE *f)
{
    fprintf(f,
            "usage: dfm sample RUN_DIR|CKPT_DIR|WEIGHTS [--job JOB.yaml] [--sampler S] [--steps N] [--eta E]\n"
            "                  [--timesteps uniform|quadratic|trailing] [--n COUNT] [--class C]\n"
            "                  [--guidance W] [--seed S] [--ema|--no-ema] [--chunk K]\n"
            "                  [--noise FILE.npy] [--inpaint IMAGE.npy --mask MASK.npy]\n"
            "                  [--out FILE.npy] [--dtype float32|uint8] [--png FILE.png]\n"
            "                  [--set section.key=value ...]\n"
            "       mpirun -np N dfm sample ...\n\n"
            "Draw samples from trained weights. Rank 0 hands out chunks of sample indices as ranks\n"
            "become free and draws samples itself between messages. Sample i depends only on the\n"
            "weights, the sampler settings and i: the output is byte-identical for any number of\n"
            "ranks and any chunk size.\n\n"
            "RUN_DIR is a directory dfm train wrote: its weights.bin, or when there is none (a run\n"
            "still going or preempted) its newest checkpoint that verifies; weights.bin wins when\n"
            "both exist. CKPT_DIR is one checkpoint (RUN_DIR/ckpt/step-N, every shard's SHA-256\n"
            "checked first) or a checkpoint folder (its newest); its manifest carries the job spec.\n"
            "WEIGHTS is a weights file, which needs --job. The sampler options override the spec's\n"
            "sample section (the same checks as --set sample.KEY=VALUE).\n\n"
            "options:\n"
            "  --sampler S      ddpm, ddim, dpmpp2m (diffusion); euler, midpoint, heun, rk4, rk45\n"
            "                   (flow, and the probability-flow ODE of sde models); em, pc,\n"
            "                   langevin (sde models); their settings: --set sample.rtol=..,\n"
            "                   sample.atol, sample.correctors, sample.snr, sample.predictor,\n"
            "                   sample.langevin_eps (jobs/README.md)\n"
            "  --steps N        sampler steps            --eta E       DDIM eta (0 deterministic)\n"
            "  --timesteps T    uniform, quadratic or trailing spacing\n"
            "  --n COUNT        number of samples (default sample.count)\n"
            "  --class C        class of every sample (default: sample i gets class i mod K)\n"
            "  --guidance W     classifier-free guidance scale (1 = none)\n"
            "  --seed S         sampler seed (default sample.seed)\n"
            "  --resample U     with --inpaint: RePaint resampling, each level stepped U times\n"
            "                   (ddpm, ddim and the fixed-step flow samplers; 1 = off)\n"
            "  --ema, --no-ema  sample with the EMA weights (default when the run kept one) or not\n"
            "  --chunk K        samples per chunk handed to a rank (default 16)\n"
            "  --noise FILE.npy start sample i from row i of FILE (float32, the layout of --out)\n"
            "                   instead of its own noise: x_T for diffusion, the tau = 0 state for\n"
            "                   flow; sets --n. With ddim --eta 0 (or a flow) a sample is a fixed\n"
            "                   function of its row: interpolate rows for latent interpolation\n"
            "  --inpaint IMAGE.npy --mask MASK.npy\n"
            "                   keep IMAGE where MASK is 1 and generate where it is 0; each is one\n"
            "                   image (C, H, W) for every sample or one per sample (N, C, H, W);\n"
            "                   IMAGE float32 in [-1, 1] or uint8, MASK 0/1\n"
            "  --out FILE.npy   the samples as a NumPy array (default RUN_DIR/samples.npy): shape\n"
            "                   (N, C, H, W) for images, (N, D) for vectors, C order\n"
            "  --dtype T        float32 (default: the values, images in [-1, 1]) or uint8\n"
            "                   (round((x + 1) * 127.5), clamped)\n"
            "  --png FILE.png   grid of the first %d samples (default: --out with .png)\n"
            "  -h, --help       this help\n",
            SAMPLERUN_PNG_MAX);
}

int cmd_sample(int argc, char **argv)
{
    const char *source = NULL, *job = NULL, *out = NULL, *png = NULL;
    const char *noise = NULL, *inpaint = NULL, *mask = NULL;
    int use_ema = -1, u8 = 0;
    long chunk = 16, n = -1;
    char **sets = xcalloc((size_t)argc + 1, sizeof *sets);
    int n_sets = 0, rc = -1;
    static const char *const map[][2] = {
        {"--sampler", "sample.sampler"}, {"--steps", "sample.steps"}, {"--eta", "sample.eta"},
        {"--timesteps", "sample.timesteps"}, {"--class", "sample.label"},
        {"--guidance", "sample.guidance"}, {"--seed", "sample.seed"},
        {"--resample", "sample.resample"}};
    for (int i = 1; i < argc && rc < 0; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t k;
        for (k = 0; k < sizeof map / sizeof map[0]; k++)
            if (!strcmp(a, map[k][0])) break;
        if (cmd_is_help(a)) {
            sample_usage(stdout);
            rc = 0;
        } else if (!strcmp(a, "--ema") || !strcmp(a, "--no-ema")) {
            use_ema = !strcmp(a, "--ema");
        } else if (k < sizeof map / sizeof map[0] || !strcmp(a, "--set") || !strcmp(a, "--job") ||
                   !strcmp(a, "--out") || !strcmp(a, "--png") || !strcmp(a, "--dtype") ||
                   !strcmp(a, "--chunk") || !strcmp(a, "--n") || !strcmp(a, "--noise") ||
                   !strcmp(a, "--inpaint") || !strcmp(a, "--mask")) {
            if (!v) {
                rc = cmd_usage_error("sample", "sample: %s needs a value", a);
                break;
            }
            i++;
            if (k < sizeof map / sizeof map[0]) {
                size_t len = strlen(map[k][1]) + strlen(v) + 2;
                sets[n_sets] = xmalloc(len);
                snprintf(sets[n_sets++], len, "%s=%s", map[k][1], v);
            } else if (!strcmp(a, "--set")) {
                sets[n_sets++] = xstrdup(v);
            } else if (!strcmp(a, "--job")) job = v;
            else if (!strcmp(a, "--out")) out = v;
            else if (!strcmp(a, "--png")) png = v;
            else if (!strcmp(a, "--noise")) noise = v;
            else if (!strcmp(a, "--inpaint")) inpaint = v;
            else if (!strcmp(a, "--mask")) mask = v;
            else if (!strcmp(a, "--dtype")) {
                if (!strcmp(v, "uint8")) u8 = 1;
                else if (!strcmp(v, "float32")) u8 = 0;
                else rc = cmd_usage_error("sample", "sample: --dtype is float32 or uint8, not '%s'", v);
            } else {
                char *end;
                long x = strtol(v, &end, 10);
                if (*end || x < 1 || x > 100000000)
                    rc = cmd_usage_error("sample", "sample: %s wants a positive count, not '%s'", a, v);
                else if (!strcmp(a, "--chunk")) chunk = x;
                else n = x;
            }
        } else if (a[0] == '-' && a[1]) {
            rc = cmd_usage_error("sample", "sample: unknown option '%s'", a);
        } else if (source) {
            rc = cmd_usage_error("sample", "sample: one source at a time (got '%s' and '%s')", source, a);
        } else {
            source = a;
        }
    }
    if (rc < 0 && !source) rc = cmd_usage_error("sample", "sample: missing RUN_DIR, CKPT_DIR or weights file");
    if (rc < 0 && !inpaint != !mask)
        rc = cmd_usage_error("sample", "sample: --inpaint and --mask go together");
    if (rc >= 0) {
        for (int i = 0; i < n_sets; i++) xfree(sets[i]);
        xfree(sets);
        return rc;
    }
    rc = dist_init(&argc, &argv);
    if (rc == ERR_OK) rc = dist_check_world();
    SampleModel m;
    memset(&m, 0, sizeof m);
    if (rc == ERR_OK)
        rc = sample_model_init(&m, source, job, (const char *const *)sets, n_sets, use_ema);
    size_t count = n > 0 ? (size_t)n : 0;
    if (rc == ERR_OK) rc = sample_model_inputs(&m, noise, inpaint, mask, &count);
    char npy[4200], pngp[4200];
    if (rc == ERR_OK) {
        if (!out) {
            if (m.run_dir[0]) snprintf(npy, sizeof npy, "%s/samples.npy", m.run_dir);
            else snprintf(npy, sizeof npy, "samples.npy");
            out = npy;
        }
        if (!png) {
            size_t len = strlen(out);
            snprintf(pngp, sizeof pngp, "%.*s.png", (int)(len > 4 && !strcmp(out + len - 4, ".npy") ? len - 4 : len), out);
            png = pngp;
        }
        SampleRunOut o = {.n = count ? count : (size_t)m.js.sample.count, .chunk = (size_t)chunk,
                          .npy = out, .npy_u8 = u8, .png = png};
        rc = samplerun(&m, &o);
    }
    sample_model_free(&m);
    for (int i = 0; i < n_sets; i++) xfree(sets[i]);
    xfree(sets);
    return cmd_dist_end(rc);
}
