/* tests/io/test_jobspec.c - the job-spec loader: defaults, shipped jobs, round trips, --set,
 * error classes and positions, the malformed-spec corpus in tests/io/bad_specs. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "io/jobspec.h"
#include "io/jobspec_int.h" /* the schema rows, for the tests that walk them */

static const char *root_dir(void)
{
    const char *r = getenv("DFM_ROOT");
    return r && *r ? r : ".";
}

static char *path_in_root(const char *rel)
{
    const char *r = root_dir();
    char *p = xmalloc(strlen(r) + strlen(rel) + 2);
    sprintf(p, "%s/%s", r, rel);
    return p;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = xmalloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Sorted list of the *.yaml files in a directory under the repository root. */
static int list_yaml(const char *rel, char ***out)
{
    char *dir = path_in_root(rel);
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot open directory %s (set DFM_ROOT to the repository root)", dir);
    char **v = NULL;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".yaml")) continue;
        v = xrealloc(v, (size_t)(n + 1) * sizeof *v);
        v[n] = xmalloc(strlen(dir) + l + 2);
        sprintf(v[n], "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    xfree(dir);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (strcmp(v[i], v[j]) > 0) {
                char *t = v[i];
                v[i] = v[j];
                v[j] = t;
            }
    *out = v;
    return n;
}

static void free_list(char **v, int n)
{
    for (int i = 0; i < n; i++) xfree(v[i]);
    xfree(v);
}

static char *emit_to_string(const JobSpec *js, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    cr_assert_not_null(f);
    cr_assert_eq(jobspec_emit(js, f), ERR_OK, "%s", err_message());
    fclose(f);
    return buf;
}

static int load_str(JobSpec *js, const char *text)
{
    err_clear();
    return jobspec_load_string(js, text, strlen(text), "t.yaml");
}

/* ---- defaults ------------------------------------------------------------------------------- */

Test(jobspec, defaults)
{
    JobSpec js;
    cr_assert_eq(jobspec_defaults(&js), ERR_OK);
    cr_assert_str_eq(js.run.name, "dfm");
    cr_assert_str_eq(js.run.out_dir, "runs/dfm");
    cr_assert_eq(js.data.dataset, JOB_DATA_FASHION_MNIST);
    cr_assert_eq(js.data.img_size, 28);
    cr_assert_eq(js.data.img_channels, 1);
    cr_assert_eq(js.data.data_dim, 784);
    cr_assert_eq(js.model.type, JOB_MODEL_UNET);
    cr_assert_eq(js.model.unet.channels, 64);
    cr_assert_eq(js.model.unet.n_ch_mult, 3);
    cr_assert_eq(js.model.unet.temb_dim, 64);
    cr_assert_eq(js.model.unet.temb_hidden, 256);
    cr_assert_eq(js.model.num_classes, 0);
    cr_assert_eq(js.objective.ddpm.timesteps, 1000);
    cr_assert_eq(js.objective.ddpm.beta_start, 1e-4);
    cr_assert_eq(js.objective.ddpm.beta_end, 0.02);
    cr_assert_eq(js.objective.ddpm.cosine_s, 0.008);
    cr_assert_eq(js.train.batch, 64);
    cr_assert_eq(js.train.micro_batch, 16);
    cr_assert_eq(js.train.ema.decay, 0.9999);
    cr_assert_str_eq(js.checkpoint.dir, "runs/dfm/ckpt");
    cr_assert_eq(js.sample.sampler, JOB_SAMPLER_DDIM);
    cr_assert_eq(js.sample.steps, 50);
    cr_assert_eq(js.sample.guidance, 1.0);
    cr_assert_eq(js.sample.variance, JOB_VAR_BETA_TILDE);
    cr_assert_eq(js.sample.timesteps, JOB_TS_UNIFORM); /* linear schedule */
    cr_assert(js.sample.use_ema);
    cr_assert(js.sample.clip_x0);
    cr_assert_str_eq(js.sample.out, "runs/dfm/samples.png");
    cr_assert_str_eq(js.slurm.job_name, "dfm");
    cr_assert_str_eq(js.slurm.time, "01:00:00");
    cr_assert_str_eq(js.slurm.partition, "");
    cr_assert_eq(js.eval.n_metrics, 1);
    cr_assert_eq(js.eval.metrics[0], JOB_METRIC_SWD);
    cr_assert_eq(jobspec_check(&js), ERR_OK, "%s", err_message());
    jobspec_free(&js);
    jobspec_free(&js); /* zeroed: a second free is harmless */
}

Test(jobspec, minimal_spec_equals_defaults)
{
    JobSpec a, b;
    cr_assert_eq(load_str(&a, "run:\n  name: dfm\n"), ERR_OK, "%s", err_message());
    jobspec_defaults(&b);
    cr_assert(jobspec_equal(&a, &b));
    jobspec_free(&a);
    jobspec_free(&b);
}

Test(jobspec, empty_section_means_defaults)
{
    JobSpec js;
    cr_assert_eq(load_str(&js, "train:\nrun:\n  seed: 7\n"), ERR_OK, "%s", err_message());
    cr_assert_eq(js.train.batch, 64);
    cr_assert_eq(js.run.seed, 7u);
    cr_assert_eq(js.sample.seed, 7u); /* derived from run.seed */
    jobspec_free(&js);
}

/* ---- shipped jobs --------------------------------------------------------------------------- */

Test(jobspec, shipped_jobs_load_and_round_trip)
{
    char **files;
    int n = list_yaml("jobs", &files);
    cr_assert_geq(n, 8, "expected the shipped jobs in jobs/, found %d", n);
    for (int i = 0; i < n; i++) {
        JobSpec a, b;
        err_clear();
        cr_assert_eq(jobspec_load(&a, files[i]), ERR_OK, "%s: %s", files[i], err_message());
        cr_assert_eq(jobspec_check(&a), ERR_OK, "%s", err_message());
        size_t len;
        char *text = emit_to_string(&a, &len);
        cr_assert_eq(jobspec_load_string(&b, text, len, "emitted"), ERR_OK, "%s: %s\n%s", files[i],
                     err_message(), text);
        cr_assert(jobspec_equal(&a, &b), "%s: emitted spec loads differently", files[i]);
        size_t len2;
        char *text2 = emit_to_string(&b, &len2);
        cr_assert_str_eq(text, text2, "%s: emission is not a fixed point", files[i]);
        free(text);
        free(text2);
        jobspec_free(&a);
        jobspec_free(&b);
    }
    free_list(files, n);
}

Test(jobspec, shipped_job_names)
{
    static const char *const want[] = {"quickstart", "quickstart-ddpm", "fmnist-ddpm",
                                       "fmnist-flow", "fmnist-cfg", "toy2d-ddpm", "toy2d-flow",
                                       "cifar10-ddpm", "bench-fmnist-small"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "jobs/%s.yaml", want[i]);
        char *p = path_in_root(rel);
        JobSpec js;
        cr_assert_eq(jobspec_load(&js, p), ERR_OK, "%s: %s", p, err_message());
        cr_assert_str_eq(js.run.name, want[i]);
        jobspec_free(&js);
        xfree(p);
    }
}

Test(jobspec, cifar10_is_the_ddpm_paper_setup)
{
    char *p = path_in_root("jobs/cifar10-ddpm.yaml");
    JobSpec js;
    cr_assert_eq(jobspec_load(&js, p), ERR_OK, "%s", err_message());
    const JobUNet *u = &js.model.unet;
    cr_assert_eq(js.data.dataset, JOB_DATA_CIFAR10);
    cr_assert(js.data.flip);
    cr_assert_eq(u->channels, 128);
    cr_assert_eq(u->n_ch_mult, 4);
    cr_assert(u->ch_mult[0] == 1 && u->ch_mult[1] == 2 && u->ch_mult[2] == 2 && u->ch_mult[3] == 2);
    cr_assert_eq(u->num_res_blocks, 2);
    cr_assert(u->n_attn == 1 && u->attn_resolutions[0] == 16);
    cr_assert_eq(u->dropout, 0.1);
    cr_assert_eq(js.objective.type, JOB_OBJ_DDPM);
    cr_assert_eq(js.objective.ddpm.schedule, JOB_BETAS_LINEAR);
    cr_assert_eq(js.objective.ddpm.beta_start, 1e-4);
    cr_assert_eq(js.objective.ddpm.beta_end, 0.02);
    cr_assert_eq(js.objective.ddpm.timesteps, 1000);
    cr_assert_eq(js.objective.ddpm.prediction, JOB_PRED_EPS);
    cr_assert_eq(js.train.optimizer, JOB_OPT_ADAM);
    cr_assert_eq(js.train.lr, 2e-4);
    cr_assert_eq(js.train.batch, 128);
    cr_assert_eq(js.train.warmup, 5000);
    cr_assert_eq(js.train.grad_clip, 1.0);
    cr_assert_eq(js.train.ema.decay, 0.9999);
    cr_assert_eq(js.sample.sampler, JOB_SAMPLER_DDPM);
    cr_assert_eq(js.sample.variance, JOB_VAR_BETA); /* sigma^2 = beta: the paper's FID 3.17 */
    jobspec_free(&js);
    xfree(p);
}

Test(jobspec, sample_variance_and_timesteps_rules)
{
    JobSpec js;
    cr_assert_eq(load_str(&js, "sample:\n  variance: beta\n"), ERR_OK, "%s", err_message());
    cr_assert_eq(js.sample.variance, JOB_VAR_BETA);
    jobspec_free(&js);
    cr_assert_eq(load_str(&js, "sample:\n  variance: large\n"), ERR_SPEC);
    cr_assert(strstr(err_message(), "beta_tilde, beta") != NULL, "%s", err_message());
    /* T >= 2 is one rule, checked when the spec is read (the schedule needs two steps) */
    cr_assert_eq(load_str(&js, "objective:\n  ddpm:\n    timesteps: 1\n"), ERR_SPEC);
    cr_assert_eq(load_str(&js, "objective:\n  ddpm:\n    timesteps: 2\n"), ERR_OK, "%s",
                 err_message());
    cr_assert_eq(jobspec_set(&js, "objective.ddpm.timesteps=1"), ERR_SPEC);
    cr_assert_eq(js.objective.ddpm.timesteps, 2);
    jobspec_free(&js);
}

Test(jobspec, bench_fmnist_small)
{
    char *p = path_in_root("jobs/bench-fmnist-small.yaml");
    JobSpec js;
    cr_assert_eq(jobspec_load(&js, p), ERR_OK, "%s", err_message());
    const JobUNet *u = &js.model.unet;
    cr_assert_eq(js.data.dataset, JOB_DATA_FASHION_MNIST);
    cr_assert(js.data.img_size == 28 && js.data.img_channels == 1);
    cr_assert_eq(u->channels, 64);
    cr_assert(u->n_ch_mult == 3 && u->ch_mult[0] == 1 && u->ch_mult[1] == 2 && u->ch_mult[2] == 2);
    cr_assert_eq(u->num_res_blocks, 2);
    cr_assert(u->n_attn == 1 && u->attn_resolutions[0] == 7);
    cr_assert_eq(u->groups, 32);
    cr_assert_eq(u->dropout, 0.1);
    cr_assert_eq(u->temb_dim, 64);
    cr_assert_eq(u->temb_hidden, 256);
    cr_assert_eq(js.train.batch, 64);
    jobspec_free(&js);
    xfree(p);
}

Test(jobspec, shipped_jobs_take_a_short_smoke_run)
{
    /* One override makes a smoke run of any shipped job: the warm-up is clamped. */
    char **files;
    int n = list_yaml("jobs", &files);
    const char *sets[] = {"train.steps=3"};
    for (int i = 0; i < n; i++) {
        JobSpec js;
        err_clear();
        cr_assert_eq(jobspec_load_with(&js, files[i], sets, 1), ERR_OK, "%s: %s", files[i],
                     err_message());
        cr_assert_leq(jobspec_warmup_steps(&js), 2, "%s", files[i]);
        cr_assert_eq(jobspec_warmup_steps(&js), js.train.warmup < 3 ? js.train.warmup : 2);
        jobspec_free(&js);
    }
    free_list(files, n);
}

/* ---- --set ---------------------------------------------------------------------------------- */

Test(jobspec, set_valid_overrides)
{
    JobSpec js;
    cr_assert_eq(load_str(&js, "run:\n  name: a\ntrain:\n  lr: 2.0e-4\n"), ERR_OK);
    cr_assert_eq(jobspec_set(&js, "train.lr=1e-4"), ERR_OK, "%s", err_message());
    cr_assert_eq(js.train.lr, 1e-4);
    cr_assert_eq(jobspec_set(&js, "model.unet.ch_mult=[1, 2]"), ERR_OK, "%s", err_message());
    cr_assert(js.model.unet.n_ch_mult == 2 && js.model.unet.ch_mult[1] == 2);
    cr_assert_eq(jobspec_set(&js, "slurm.account=proj42"), ERR_OK, "%s", err_message());
    cr_assert_str_eq(js.slurm.account, "proj42");
    cr_assert_eq(jobspec_set(&js, "slurm.account="), ERR_OK, "%s", err_message());
    cr_assert_str_eq(js.slurm.account, "");
    cr_assert_eq(jobspec_set(&js, "data.mirrors=[https://a.example/x, https://b.example/y]"), ERR_OK,
                 "%s", err_message());
    cr_assert_eq(js.data.n_mirrors, 2);
    cr_assert_str_eq(js.data.mirrors[1], "https://b.example/y");
    cr_assert_eq(jobspec_set(&js, "run.seed=18446744073709551615"), ERR_OK);
    cr_assert_eq(js.run.seed, UINT64_MAX);
    cr_assert_eq(js.n_sets, 6);
    jobspec_free(&js);
}

Test(jobspec, set_rederives_and_respects_explicit)
{
    JobSpec js;
    cr_assert_eq(load_str(&js, "run:\n  name: a\ncheckpoint:\n  dir: /scratch/ck\n"), ERR_OK);
    cr_assert_str_eq(js.run.out_dir, "runs/a");
    cr_assert_eq(jobspec_set(&js, "run.name=b"), ERR_OK, "%s", err_message());
    cr_assert_str_eq(js.run.out_dir, "runs/b");
    cr_assert_str_eq(js.slurm.job_name, "b");
    cr_assert_str_eq(js.sample.out, "runs/b/samples.png");
    cr_assert_str_eq(js.checkpoint.dir, "/scratch/ck"); /* explicit: not re-derived */
    cr_assert_eq(jobspec_set(&js, "model.unet.channels=128"), ERR_OK, "%s", err_message());
    cr_assert_eq(js.model.unet.temb_dim, 128);
    cr_assert_eq(js.model.unet.temb_hidden, 512);
    cr_assert_eq(jobspec_set(&js, "train.batch=100"), ERR_OK, "%s", err_message());
    cr_assert_eq(js.train.micro_batch, 10); /* largest divisor of 100 that is <= 16 */
    cr_assert_eq(jobspec_set(&js, "objective.type=flow"), ERR_OK, "%s", err_message());
    cr_assert_eq(js.sample.sampler, JOB_SAMPLER_EULER);
    jobspec_free(&js);
}

Test(jobspec, set_invalid_leaves_spec_unchanged)
{
    JobSpec js, before;
    cr_assert_eq(load_str(&js, "train:\n  batch: 64\n"), ERR_OK);
    jobspec_copy(&before, &js);
    err_clear();
    cr_assert_eq(jobspec_set(&js, "train.lr=abc"), ERR_SPEC);
    cr_assert_str_eq(err_message(), "--set train.lr=abc: train.lr: expected a number in (0, 1], got \"abc\"");
    cr_assert_eq(jobspec_set(&js, "trian.lr=1"), ERR_SPEC);
    cr_assert_str_eq(err_message(), "--set trian.lr=1: unknown key 'trian.lr'; did you mean 'train.lr'?");
    cr_assert_eq(jobspec_set(&js, "train=1"), ERR_SPEC);
    cr_assert(strstr(err_message(), "'train' is a section") != NULL, "%s", err_message());
    cr_assert_eq(jobspec_set(&js, "train.lr"), ERR_SPEC);
    cr_assert(strstr(err_message(), "expected section.key=value") != NULL, "%s", err_message());
    cr_assert_eq(jobspec_set(&js, "train.micro_batch=7"), ERR_SPEC); /* cross-field */
    cr_assert_str_eq(err_message(), "--set train.micro_batch=7: train.micro_batch: 7 does not divide "
                                    "train.batch (64)");
    cr_assert_eq(jobspec_set(&js, "model.unet.ch_mult=[1, 2"), ERR_PARSE);
    cr_assert(!strncmp(err_message(), "--set model.unet.ch_mult=[1, 2: malformed YAML", 46), "%s",
              err_message());
    cr_assert_eq(jobspec_set(&js, "train.lr=&a 1"), ERR_PARSE);
    cr_assert(jobspec_equal(&js, &before));
    cr_assert_eq(js.n_sets, 0);
    jobspec_free(&js);
    jobspec_free(&before);
}

Test(jobspec, load_with_sets_before_cross_check)
{
    /* The file alone is inconsistent (32 does not divide 100); the override fixes it. */
    char path[] = "/tmp/dfm_jobspec_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *text = "train:\n  batch: 100\n  micro_batch: 32\n";
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    JobSpec js;
    err_clear();
    cr_assert_eq(jobspec_load(&js, path), ERR_SPEC);
    const char *sets[] = {"train.micro_batch=25"};
    cr_assert_eq(jobspec_load_with(&js, path, sets, 1), ERR_OK, "%s", err_message());
    cr_assert_eq(js.train.micro_batch, 25);
    jobspec_free(&js);
    /* A --set that makes a key of the file inactive is reported at the file's key. */
    const char *sets2[] = {"objective.type=flow"};
    const char *t2 = "objective:\n  ddpm:\n    timesteps: 500\n";
    fd = open(path, O_WRONLY | O_TRUNC);
    cr_assert_eq(write(fd, t2, strlen(t2)), (ssize_t)strlen(t2));
    close(fd);
    cr_assert_eq(jobspec_load_with(&js, path, sets2, 1), ERR_SPEC);
    char want[256];
    snprintf(want, sizeof want, "%s:3:16: objective.ddpm.timesteps: only applies when objective.type is "
                                "ddpm, but it is flow", path);
    cr_assert_str_eq(err_message(), want);
    unlink(path);
}

Test(jobspec, set_errors_name_the_assignment_for_cross_checks)
{
    JobSpec js;
    cr_assert_eq(load_str(&js, "model:\n  type: unet\n"), ERR_OK);
    err_clear();
    cr_assert_eq(jobspec_set(&js, "data.dataset=toy2d"), ERR_SPEC);
    cr_assert_str_eq(err_message(), "t.yaml:2:9: model.type: dataset toy2d needs model.type mlp");
    cr_assert_eq(jobspec_set(&js, "model.type=mlp"), ERR_SPEC); /* mlp needs toy2d */
    cr_assert_str_eq(err_message(), "--set model.type=mlp: model.type: model.type mlp needs data.dataset toy2d");
    jobspec_free(&js);
}

Test(jobspec, removed_keys_say_what_replaces_them)
{
    JobSpec js;
    cr_assert_eq(load_str(&js, "train:\n  grad_accum: 4\n"), ERR_SPEC);
    cr_assert(!strncmp(err_message(), "t.yaml:2:3: train.grad_accum was removed: ", 41), "%s",
              err_message());
    cr_assert(strstr(err_message(), "train.micro_batch bounds the memory per pass") != NULL, "%s",
              err_message());
    cr_assert_eq(load_str(&js, "data:\n  drop_last: true\n"), ERR_SPEC);
    cr_assert(strstr(err_message(), "data.drop_last was removed") != NULL, "%s", err_message());
    cr_assert_eq(load_str(&js, "run:\n  name: a\n"), ERR_OK);
    cr_assert_eq(jobspec_set(&js, "train.grad_accum=1"), ERR_SPEC);
    cr_assert(!strncmp(err_message(), "--set train.grad_accum=1: train.grad_accum was removed: ", 56),
              "%s", err_message());
    jobspec_free(&js);
}

/* ---- error classes and limits --------------------------------------------------------------- */

Test(jobspec, error_classes)
{
    JobSpec js;
    cr_assert_eq(load_str(&js, "train: [1, 2\n"), ERR_PARSE);
    cr_assert_eq(load_str(&js, "train:\n  lr: x\n"), ERR_SPEC);
    cr_assert_eq(load_str(&js, "run: &a {}\n"), ERR_PARSE);
    err_clear();
    cr_assert_eq(jobspec_load(&js, "/nonexistent/dir/job.yaml"), ERR_IO);
    cr_assert(strstr(err_message(), "No such file") != NULL, "%s", err_message());
    cr_assert_null(js.loc); /* freed and zeroed on failure */
}

Test(jobspec, empty_inputs)
{
    JobSpec js;
    err_clear();
    cr_assert_eq(jobspec_load_string(&js, "", 0, "e.yaml"), ERR_SPEC);
    cr_assert(!strncmp(err_message(), "e.yaml:1:1: empty job spec", 26), "%s", err_message());
    cr_assert_eq(jobspec_load_string(&js, "\xef\xbb\xbf", 3, "e.yaml"), ERR_SPEC);
    cr_assert_eq(load_str(&js, "---\n"), ERR_SPEC);
    cr_assert(strstr(err_message(), "got null") != NULL, "%s", err_message());
}

Test(jobspec, bom_is_accepted)
{
    JobSpec js;
    const char t[] = "\xef\xbb\xbfrun:\n  name: bom\n";
    err_clear();
    cr_assert_eq(jobspec_load_string(&js, t, sizeof t - 1, "b.yaml"), ERR_OK, "%s", err_message());
    cr_assert_str_eq(js.run.name, "bom");
    jobspec_free(&js);
}

Test(jobspec, limits)
{
    JobSpec js;
    /* Depth: 17 nested flow sequences. */
    char deep[128] = "train:\n  lr: ";
    for (int i = 0; i < 17; i++) strcat(deep, "[");
    for (int i = 0; i < 17; i++) strcat(deep, "]");
    strcat(deep, "\n");
    cr_assert_eq(load_str(&js, deep), ERR_PARSE);
    cr_assert(strstr(err_message(), "nested deeper than 16") != NULL, "%s", err_message());
    /* Node count: a flow list of 150000 zeros. */
    size_t n = 150000;
    char *big = xmalloc(2 * n + 32);
    size_t o = (size_t)sprintf(big, "x: [");
    for (size_t i = 0; i < n; i++) big[o++] = '0', big[o++] = ',';
    big[o - 1] = ']';
    big[o] = '\0';
    cr_assert_eq(jobspec_load_string(&js, big, o, "big.yaml"), ERR_PARSE);
    cr_assert(strstr(err_message(), "more than 100000 YAML nodes") != NULL, "%s", err_message());
    xfree(big);
    /* Size: over 1 MiB. */
    size_t sz = JOBSPEC_MAX_BYTES + 10;
    char *huge = xmalloc(sz);
    memset(huge, '#', sz);
    cr_assert_eq(jobspec_load_string(&js, huge, sz, "huge.yaml"), ERR_PARSE);
    cr_assert(strstr(err_message(), "larger than") != NULL, "%s", err_message());
    xfree(huge);
}

Test(jobspec, numbers)
{
    JobSpec js;
    cr_assert_eq(load_str(&js, "train:\n  lr: 3.0000000000000004e-05\n  eps: 1e-300\n"), ERR_OK);
    cr_assert_eq(js.train.lr, 3.0000000000000004e-05);
    size_t len;
    char *text = emit_to_string(&js, &len);
    JobSpec b;
    cr_assert_eq(jobspec_load_string(&b, text, len, "e"), ERR_OK, "%s", err_message());
    cr_assert_eq(b.train.lr, js.train.lr); /* exact round trip */
    cr_assert_eq(b.train.eps, 1e-300);
    free(text);
    jobspec_free(&b);
    jobspec_free(&js);
    cr_assert_eq(load_str(&js, "train:\n  lr: 1e999\n"), ERR_SPEC);
    cr_assert(strstr(err_message(), "(out of range)") != NULL, "%s", err_message());
    cr_assert_eq(load_str(&js, "train:\n  steps: 010\n"), ERR_SPEC); /* octal-looking */
    cr_assert_eq(load_str(&js, "train:\n  steps: 1_000\n"), ERR_SPEC);
    cr_assert_eq(load_str(&js, "train:\n  steps: +100\n"), ERR_OK);
    jobspec_free(&js);
    cr_assert_eq(load_str(&js, "train:\n  lr: '1e-4'\n"), ERR_SPEC);
    cr_assert(strstr(err_message(), "the quoted string") != NULL, "%s", err_message());
    cr_assert_eq(load_str(&js, "model:\n  type: mlp\n  mlp:\n    temb_dim: 33\ndata:\n  dataset: toy2d\n"),
                 ERR_SPEC);
    cr_assert(strstr(err_message(), "(even)") != NULL, "%s", err_message());
}

Test(jobspec, strings)
{
    JobSpec js;
    /* Strings that look like other YAML types survive the round trip as strings. */
    cr_assert_eq(load_str(&js, "slurm:\n  partition: \"null\"\n  account: '123'\n  qos: \"~\"\n"
                               "  setup: [\"module load x: y\", 'echo \"hi\"']\n"),
                 ERR_OK, "%s", err_message());
    cr_assert_str_eq(js.slurm.partition, "null");
    cr_assert_str_eq(js.slurm.account, "123");
    cr_assert_str_eq(js.slurm.setup[0], "module load x: y");
    size_t len;
    char *text = emit_to_string(&js, &len);
    JobSpec b;
    cr_assert_eq(jobspec_load_string(&b, text, len, "e"), ERR_OK, "%s\n%s", err_message(), text);
    cr_assert(jobspec_equal(&js, &b), "%s", text);
    free(text);
    jobspec_free(&b);
    jobspec_free(&js);
    cr_assert_eq(load_str(&js, "slurm:\n  account: ~\n"), ERR_OK); /* null = not set */
    cr_assert_str_eq(js.slurm.account, "");
    jobspec_free(&js);
    cr_assert_eq(load_str(&js, "run:\n  name:\n"), ERR_SPEC);
    cr_assert_str_eq(err_message(), "t.yaml:2:8: run.name: expected a non-empty string");
    cr_assert_eq(load_str(&js, "slurm:\n  time: 7-00:00:00\n  mem: 64G\n  signal: B:SIGUSR1@120\n"),
                 ERR_OK, "%s", err_message());
    jobspec_free(&js);
    cr_assert_eq(load_str(&js, "slurm:\n  time: 00:00:00\n"), ERR_SPEC);
    cr_assert_eq(load_str(&js, "slurm:\n  extra: [\"#SBATCH --exclusive\"]\n"), ERR_SPEC);
}

Test(jobspec, equal_and_copy)
{
    JobSpec a, b;
    cr_assert_eq(load_str(&a, "data:\n  mirrors: [https://m.example/]\n"), ERR_OK);
    jobspec_copy(&b, &a);
    cr_assert(jobspec_equal(&a, &b));
    b.train.lr *= 2;
    cr_assert(!jobspec_equal(&a, &b));
    b.train.lr = a.train.lr;
    b.data.mirrors[0][0] = 'H';
    cr_assert(!jobspec_equal(&a, &b));
    jobspec_free(&a); /* the copy owns its own strings */
    cr_assert_str_eq(b.data.mirrors[0], "Https://m.example/");
    jobspec_free(&b);
}

Test(jobspec, every_key_documented)
{
    char *p = path_in_root("jobs/README.md");
    size_t len;
    char *doc = read_all(p, &len);
    cr_assert_geq(jobspec_nkeys(), 90);
    for (size_t i = 0; i < jobspec_nkeys(); i++) {
        char want[128];
        snprintf(want, sizeof want, "`%s`", jobspec_key(i));
        cr_expect(strstr(doc, want) != NULL, "jobs/README.md does not document %s", want);
    }
    xfree(doc);
    xfree(p);
}

/* ---- the schema rows ------------------------------------------------------------------------ */

Test(jobspec, every_row_has_a_default_or_a_rule_and_a_meaning)
{
    cr_assert_eq(jobspec_nkeys(), g_nfields);
    for (size_t i = 0; i < g_nfields; i++) {
        const Field *f = &g_fields[i];
        cr_expect((f->def != NULL) != (f->derive != NULL),
                  "%s: give exactly one of .def (the default as YAML) or .derive (the rule)", f->path);
        cr_expect(f->doc && *f->doc, "%s: no .doc (the one-line meaning)", f->path);
        cr_expect(strchr(f->path, '.') != NULL, "%s: a key lives in a section", f->path);
        cr_expect(!f->doc || !strchr(f->doc, '|'), "%s: '|' breaks the Markdown table", f->path);
        for (size_t j = 0; j < i; j++)
            cr_expect(strcmp(g_fields[j].path, f->path), "%s: two rows", f->path);
    }
    /* A section's keys are contiguous (emission and the README tables rely on it). */
    for (size_t i = 1; i < g_nfields; i++) {
        size_t l = strcspn(g_fields[i].path, ".");
        if (!strncmp(g_fields[i - 1].path, g_fields[i].path, l + 1)) continue;
        for (size_t j = i + 1; j < g_nfields; j++)
            cr_expect(strncmp(g_fields[j].path, g_fields[i - 1].path,
                              strcspn(g_fields[i - 1].path, ".") + 1),
                      "%s is not next to the other keys of its section", g_fields[j].path);
    }
}

Test(jobspec, defaults_come_from_the_rows)
{
    /* A key with a .def has exactly that value by default (setting it changes nothing); no
     * key of the defaults counts as explicit. Two bases cover every subsection. */
    static const char *const bases[] = {
        "run:\n  name: dfm\n",
        "data:\n  dataset: toy2d\nmodel:\n  type: mlp\nobjective:\n  type: flow\n"};
    JobSpec js;
    cr_assert_eq(jobspec_defaults(&js), ERR_OK, "%s", err_message());
    for (size_t i = 0; i < g_nfields; i++)
        cr_expect(!explicit_key(&js, (int)i), "%s is explicit in the defaults", g_fields[i].path);
    jobspec_free(&js);
    int checked = 0;
    for (size_t k = 0; k < 2; k++) {
        cr_assert_eq(load_str(&js, bases[k]), ERR_OK, "%s", err_message());
        for (size_t i = 0; i < g_nfields; i++) {
            const Field *f = &g_fields[i];
            int sub;
            if (!f->def || !field_active(&js, i, &sub) || explicit_key(&js, (int)i)) continue;
            char text[512];
            snprintf(text, sizeof text, "%s=%s", f->path, f->def);
            JobSpec b;
            jobspec_copy(&b, &js);
            err_clear();
            cr_expect_eq(jobspec_set(&b, text), ERR_OK, "%s: %s", text, err_message());
            cr_expect(jobspec_equal(&js, &b), "%s: the default differs from the row's .def", f->path);
            jobspec_free(&b);
            checked++;
        }
        jobspec_free(&js);
    }
    cr_assert_geq(checked, 70);
}

Test(jobspec, doc_table)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_eq(jobspec_doc_table(f, "train"), ERR_OK, "%s", err_message());
    fclose(f);
    cr_assert(strstr(buf, "| `train.batch` | int | `64` | 1 .. 1048576 | ") != NULL, "%s", buf);
    cr_assert(strstr(buf, "| `train.micro_batch` | int | derived: ") != NULL, "%s", buf);
    cr_assert(strstr(buf, "`model.") == NULL);
    free(buf);
    f = open_memstream(&buf, &len);
    err_clear();
    cr_assert_eq(jobspec_doc_table(f, "trian"), ERR_ARG);
    fclose(f);
    free(buf);
}

Test(jobspec, every_path_key_refuses_an_empty_path)
{
    int npaths = 0;
    for (size_t i = 0; i < g_nfields; i++) {
        const Field *f = &g_fields[i];
        if ((f->fl & FL_PATH) != FL_PATH) continue;
        npaths++;
        JobSpec js;
        cr_assert_eq(load_str(&js, "run:\n  name: p\n"), ERR_OK);
        char set[128], want[256];
        snprintf(set, sizeof set, "%s=", f->path);
        snprintf(want, sizeof want, "--set %s: %s: expected a path, got an empty string", set, f->path);
        err_clear();
        cr_expect_eq(jobspec_set(&js, set), ERR_SPEC, "%s", set);
        cr_expect(!strncmp(err_message(), want, strlen(want)), "%s", err_message());
        snprintf(set, sizeof set, "%s=\"\"", f->path);
        cr_expect_eq(jobspec_set(&js, set), ERR_SPEC, "%s", set);
        jobspec_free(&js);
    }
    cr_assert_geq(npaths, 5); /* out_dir, data.dir, checkpoint.dir, sample.out, slurm.output */
}

/* ---- the malformed-spec corpus -------------------------------------------------------------- */

/* Each file's first line (after an optional BOM) is "# expect: LINE:COL fragment". */
Test(jobspec, bad_specs)
{
    char **files;
    int n = list_yaml("tests/io/bad_specs", &files);
    cr_assert_geq(n, 24, "expected at least 24 malformed specs, found %d", n);
    for (int i = 0; i < n; i++) {
        size_t len;
        char *text = read_all(files[i], &len);
        const char *h = text;
        if (!strncmp(h, "\xef\xbb\xbf", 3)) h += 3;
        cr_assert(!strncmp(h, "# expect: ", 10), "%s: first line must be '# expect: L:C fragment'",
                  files[i]);
        h += 10;
        const char *sp = strchr(h, ' '), *nl = strchr(h, '\n');
        cr_assert(sp && nl && sp < nl, "%s: malformed expect line", files[i]);
        char loc[32], frag[512], prefix[1024];
        snprintf(loc, sizeof loc, "%.*s", (int)(sp - h), h);
        snprintf(frag, sizeof frag, "%.*s", (int)(nl - sp - 1), sp + 1);
        snprintf(prefix, sizeof prefix, "%s:%s: ", files[i], loc);
        JobSpec js;
        err_clear();
        int rc = jobspec_load(&js, files[i]);
        cr_expect(rc == ERR_PARSE || rc == ERR_SPEC, "%s: code %d (%s)", files[i], rc, err_message());
        char msg[ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", err_message());
        cr_expect(!strncmp(msg, prefix, strlen(prefix)), "%s: want prefix '%s', got '%s'", files[i],
                  prefix, msg);
        cr_expect(strstr(msg + (strlen(msg) >= strlen(prefix) ? strlen(prefix) : 0), frag) != NULL,
                  "%s: want '%s' in '%s'", files[i], frag, msg);
        cr_expect(strchr(msg, '\n') == NULL, "%s: message is not one line", files[i]);
        cr_expect_null(js.loc, "%s: spec not freed after the error", files[i]);
        /* The same bytes from memory give the same message (modulo the name). */
        JobSpec js2;
        int rc2 = jobspec_load_string(&js2, text, len, files[i]);
        cr_expect_eq(rc2, rc, "%s: load_string disagrees", files[i]);
        cr_expect_str_eq(err_message(), msg, "%s", files[i]);
        xfree(text);
    }
    free_list(files, n);
}

Test(jobspec, checkpoint_keys)
{
    JobSpec js;
    cr_assert_eq(load_str(&js, "checkpoint:\n  keep_every: 5000\n  async: true\n"), ERR_OK, "%s",
                 err_message());
    cr_assert_eq(js.checkpoint.keep_every, 5000);
    cr_assert(js.checkpoint.async);
    cr_assert_eq(js.checkpoint.resume, JOB_RESUME_AUTO, "resume: auto is the default");
    cr_assert_eq(jobspec_set(&js, "checkpoint.keep_every=-1"), ERR_SPEC);
    cr_assert_eq(jobspec_set(&js, "checkpoint.async=maybe"), ERR_SPEC);
    jobspec_free(&js);
}

Test(jobspec, watchdog_and_slurm_mpi)
{
    JobSpec js;
    cr_assert_eq(load_str(&js, "train:\n  watchdog: 60\nslurm:\n  mpi: pmix_v4\n"), ERR_OK, "%s",
                 err_message());
    cr_assert_eq(js.train.watchdog, 60);
    cr_assert_str_eq(js.slurm.mpi, "pmix_v4");
    cr_assert_eq(jobspec_set(&js, "train.watchdog=0"), ERR_OK, "0 turns it off");
    cr_assert_eq(jobspec_set(&js, "train.watchdog=-1"), ERR_SPEC);
    cr_assert_eq(jobspec_set(&js, "slurm.mpi=pmi2"), ERR_OK);
    cr_assert_eq(jobspec_set(&js, "slurm.mpi=pmix --exclusive"), ERR_SPEC);
    cr_assert(strstr(err_message(), "srun MPI plugin name") != NULL, "%s", err_message());
    cr_assert_eq(jobspec_set(&js, "slurm.mpi="), ERR_SPEC);
    jobspec_free(&js);
    cr_assert_eq(jobspec_defaults(&js), ERR_OK);
    cr_assert_eq(js.train.watchdog, 300);
    cr_assert_str_eq(js.slurm.mpi, "pmix");
    jobspec_free(&js);
}
