/* dist/samplerun.c - `dfm sample`: weights + spec -> samples over the ranks -> .npy and PNG. */
#include "dist/samplerun.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "dist/ckpt.h"
#include "dist/coord.h"
#include "dist/dist.h"
#include "io/fsutil.h"
#include "io/image.h"
#include "io/npy.h"
#include "io/weights.h"

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The weights must be laid out exactly as the network the spec builds. The tensors of the
 * source, as (name, ndim, shape, offset, count), are read through `get`. */
typedef void (*TensorGet)(const void *tab, size_t i, const char **name, int *ndim,
                          const int **shape, size_t *offset, size_t *count);

static void get_weights(const void *tab, size_t i, const char **name, int *ndim,
                        const int **shape, size_t *offset, size_t *count)
{
    const WeightsTensor *t = (const WeightsTensor *)tab + i;
    *name = t->name, *ndim = t->ndim, *shape = t->shape, *offset = t->offset, *count = t->count;
}

static void get_ckpt(const void *tab, size_t i, const char **name, int *ndim, const int **shape,
                     size_t *offset, size_t *count)
{
    const CkptTensor *t = (const CkptTensor *)tab + i;
    *name = t->name, *ndim = t->ndim, *shape = t->shape;
    *offset = (size_t)t->offset, *count = (size_t)t->count;
}

static int check_table(const void *tab, size_t n_tensors, size_t n, TensorGet get,
                       const Net *net, const char *path)
{
    size_t nt;
    const ParamEntry *pt = net_param_table(net, &nt);
    if (n != net_num_params(net) || n_tensors != nt) {
        ERR(ERR_FORMAT, "%s holds %zu tensors (%zu parameters); the job's network has %zu (%zu)",
            path, n_tensors, n, nt, net_num_params(net));
        err_hint("give the job spec these weights were trained with (--job)");
        return ERR_FORMAT;
    }
    for (size_t i = 0; i < nt; i++) {
        const char *name;
        int ndim;
        const int *shape;
        size_t offset, count;
        get(tab, i, &name, &ndim, &shape, &offset, &count);
        int same = !strcmp(name, pt[i].name) && ndim == pt[i].ndim && offset == pt[i].offset &&
                   count == pt[i].count;
        for (int d = 0; d < pt[i].ndim && same; d++) same = shape[d] == pt[i].shape[d];
        if (!same) {
            ERR(ERR_FORMAT, "%s: tensor %zu is '%s' with %zu values; the job's network has '%s' "
                "with %zu there", path, i, name, count, pt[i].name, pt[i].count);
            err_hint("give the job spec these weights were trained with (--job)");
            return ERR_FORMAT;
        }
    }
    return ERR_OK;
}

/* Which EMA choice to honour: use_ema -1 = the spec's, 0, 1; have = the source has an EMA. */
static int pick_ema(SampleModel *m, int use_ema, int have, const char *path)
{
    int want = use_ema >= 0 ? use_ema : (int)m->js.sample.use_ema;
    if (want && !have) {
        if (use_ema == 1) {
            ERR(ERR_ARG, "%s holds no EMA weights", path);
            err_hint("sample with the trained weights: --no-ema");
            return -1;
        }
        want = 0;
    }
    return want;
}

/* The job spec: the given file, else the run directory's job.yaml, else (a checkpoint) the
 * spec its manifest recorded; then the command's overrides. */
static int load_spec(SampleModel *m, const char *job, const char *manifest_spec,
                     const char *const *sets, int n_sets)
{
    if (job || !manifest_spec) return jobspec_load_with(&m->js, job, sets, n_sets);
    TRY(jobspec_load_string(&m->js, manifest_spec, strlen(manifest_spec), m->weights_path));
    for (int i = 0; i < n_sets; i++) TRY(jobspec_set(&m->js, sets[i]));
    return ERR_OK;
}

/* Weights from one committed checkpoint (path), verified (SHA-256 of every shard, spread over
 * the ranks) when `verify`. Collective. */
static int load_ckpt(SampleModel *m, const char *path, int verify, const char *job,
                     const char *const *sets, int n_sets, int use_ema)
{
    CkptManifest man;
    snprintf(m->weights_path, sizeof m->weights_path, "%s", path);
    int rc = ckpt_manifest_read(&man, path);
    if (rc != ERR_OK) {
        err_hint("give a committed checkpoint (dfm ckpt ls RUN_DIR lists them)");
        return rc;
    }
    if (verify) rc = ckpt_verify_collective(path, &man);
    if (rc == ERR_OK) rc = load_spec(m, job, man.spec, sets, n_sets);
    if (rc == ERR_OK) rc = sample_setup_init(&m->ss, &m->js, NULL);
    if (rc == ERR_OK)
        rc = check_table(man.tensors, man.n_tensors, (size_t)man.n, get_ckpt, m->ss.net, path);
    int want = rc == ERR_OK ? pick_ema(m, use_ema, man.has_ema, path) : 0;
    if (want < 0) rc = err_code();
    m->step = man.step;
    ckpt_manifest_free(&man);
    if (rc != ERR_OK) return rc;
    m->used_ema = want;
    m->n_params = net_num_params(m->ss.net);
    m->params = xalloc_aligned(sizeof(float) * m->n_params);
    float *ema = want ? m->params : NULL, *params = want ? NULL : m->params;
    float *scratch = NULL;
    if (!params) params = scratch = xalloc_aligned(sizeof(float) * m->n_params);
    /* ckpt_load reads the parameters always and the EMA when asked; no Adam moments. */
    rc = ckpt_load(path, &man, m->n_params, params, ema, NULL, NULL, 0, 0);
    if (rc == ERR_OK) ckpt_manifest_free(&man);
    xfree_aligned(scratch);
    snprintf(m->from, sizeof m->from, "checkpoint %s (step %llu)", path, (unsigned long long)m->step);
    return rc;
}

int sample_model_init(SampleModel *m, const char *source, const char *job,
                      const char *const *sets, int n_sets, int use_ema)
{
    memset(m, 0, sizeof *m);
    char spec[4096], path[4200];
    if (is_dir(source)) {
        snprintf(path, sizeof path, "%s/weights.bin", source);
        snprintf(spec, sizeof spec, "%s/job.yaml", source);
        int run = fs_exists(spec);
        if (!job && run) job = spec;
        if (!fs_exists(path)) {
            /* no final weights: a checkpoint (CKPT_DIR), or a run's newest committed one */
            char ckdir[4200], one[4200];
            TRY(ckpt_resolve(source, ckdir, sizeof ckdir, one, sizeof one));
            if (run) snprintf(m->run_dir, sizeof m->run_dir, "%s", source);
            if (one[0]) return load_ckpt(m, one, 1, job, sets, n_sets, use_ema);
            int found = 0;
            TRY(ckpt_find_latest(ckdir, path, sizeof path, &found));
            if (!found) {
                ERR(ERR_ARG, "%s has no weights.bin and %s no committed checkpoint that verifies",
                    source, ckdir);
                err_hint("give a run directory dfm train wrote, one of its checkpoints or a weights "
                         "file with --job");
                return ERR_ARG;
            }
            return load_ckpt(m, path, 0, job, sets, n_sets, use_ema);
        }
        snprintf(m->run_dir, sizeof m->run_dir, "%s", source);
        snprintf(m->weights_path, sizeof m->weights_path, "%s", path);
        if (!job) {
            ERR(ERR_ARG, "%s has no job.yaml (the resolved job spec dfm train writes)", source);
            err_hint("give the job spec the run was trained with: --job JOB.yaml");
            return ERR_ARG;
        }
    } else {
        snprintf(m->weights_path, sizeof m->weights_path, "%s", source);
        if (!job) {
            ERR(ERR_ARG, "%s is a weights file: the job spec that describes its network is needed",
                source);
            err_hint("add --job JOB.yaml, or give the run directory");
            return ERR_ARG;
        }
    }
    TRY(jobspec_load_with(&m->js, job, sets, n_sets));
    Weights w;
    int rc = weights_read(&w, m->weights_path);
    if (rc != ERR_OK) return rc;
    rc = sample_setup_init(&m->ss, &m->js, NULL);
    if (rc == ERR_OK) rc = check_table(w.tensors, w.n_tensors, w.n, get_weights, m->ss.net, m->weights_path);
    if (rc == ERR_OK) {
        int want = pick_ema(m, use_ema, w.ema != NULL, m->weights_path);
        if (want < 0) rc = err_code();
        else {
            m->used_ema = want;
            m->n_params = w.n;
            m->params = xalloc_aligned(sizeof(float) * w.n);
            memcpy(m->params, want ? w.ema : w.params, sizeof(float) * w.n);
        }
    }
    snprintf(m->from, sizeof m->from, "%s", m->weights_path);
    weights_free(&w);
    return rc;
}

/* Read a .npy of samples' shape: (N, C, H, W) / (N, D) rows, or with `single` also one sample
 * (C, H, W) / (D) (returned as N = 1). uint8 is mapped to [-1, 1] when `scale_u8`. */
static int read_rows(const SampleModel *m, const char *path, const char *flag, int single,
                     int scale_u8, float **out, size_t *rows)
{
    const JobSpec *js = &m->js;
    size_t want[3];
    int k;
    if (js->data.dataset != JOB_DATA_TOY2D) {
        want[0] = (size_t)js->data.img_channels;
        want[1] = want[2] = (size_t)js->data.img_size;
        k = 3;
    } else {
        want[0] = m->ss.D;
        k = 1;
    }
    size_t shape[NPY_MAX_DIMS];
    int nd, u8;
    float *v;
    TRY(npy_read_f32(path, &v, shape, &nd, &u8));
    int off = nd == k + 1 ? 1 : nd == k && single ? 0 : -1;
    int fits = off >= 0;
    for (int d = 0; d < k && fits; d++) fits = shape[off + d] == want[d];
    if (!fits || (off == 1 && shape[0] == 0)) {
        char sh[160] = "", w[80];
        for (int d = 0, len = 0; d < nd && len < 140; d++)
            len += snprintf(sh + len, sizeof sh - (size_t)len, "%s%zu", d ? ", " : "", shape[d]);
        if (k == 3) snprintf(w, sizeof w, "(N, %zu, %zu, %zu)%s", want[0], want[1], want[2],
                             single ? " or one image" : "");
        else snprintf(w, sizeof w, "(N, %zu)%s", want[0], single ? " or one sample" : "");
        xfree(v);
        ERR(ERR_ARG, "%s %s: shape (%s), the model's samples need %s", flag, path, sh, w);
        return ERR_ARG;
    }
    *rows = off ? shape[0] : 1;
    size_t total = *rows * m->ss.D;
    for (size_t i = 0; i < total; i++) {
        if (u8 && scale_u8) v[i] = v[i] / 127.5f - 1.0f;
        if (!isfinite(v[i])) {
            xfree(v);
            return ERR(ERR_NUMERIC, "%s %s: value %zu is not finite", flag, path, i);
        }
    }
    *out = v;
    return ERR_OK;
}

/* The rows a per-sample input fixes as the sample count, checked against *n (0 = not given). */
static int agree_count(size_t rows, const char *flag, const char *path, size_t *n)
{
    if (*n && *n != rows) {
        ERR(ERR_ARG, "%s %s holds %zu samples, --n asks for %zu", flag, path, rows, *n);
        err_hint("leave out --n: the file's first axis sets the count");
        return ERR_ARG;
    }
    *n = rows;
    return ERR_OK;
}

int sample_model_inputs(SampleModel *m, const char *noise, const char *image, const char *mask,
                        size_t *n)
{
    size_t rows;
    if (!image != !mask) {
        ERR(ERR_ARG, "inpainting needs both --inpaint IMAGE.npy and --mask MASK.npy");
        return ERR_ARG;
    }
    if (noise) {
        TRY(read_rows(m, noise, "--noise", 0, 0, &m->noise, &rows));
        TRY(agree_count(rows, "--noise", noise, n));
        m->ss.noise = m->noise;
        m->ss.n_noise = rows;
    }
    if (image) {
        size_t ri, rm;
        const size_t D = m->ss.D;
        TRY(read_rows(m, image, "--inpaint", 1, 1, &m->known, &ri));
        TRY(read_rows(m, mask, "--mask", 1, 0, &m->mask, &rm));
        for (size_t i = 0; i < rm * D; i++)
            if (m->mask[i] != 0.0f && m->mask[i] != 1.0f)
                return ERR(ERR_ARG, "--mask %s: entry %zu is %g; a mask holds 1 (keep) or 0 "
                           "(generate)", mask, i, (double)m->mask[i]);
        if (ri > 1 && rm > 1 && ri != rm)
            return ERR(ERR_ARG, "--inpaint %s holds %zu images, --mask %s %zu masks", image, ri,
                       mask, rm);
        rows = ri > rm ? ri : rm;
        if (rows > 1) TRY(agree_count(rows, ri > 1 ? "--inpaint" : "--mask", ri > 1 ? image : mask, n));
        /* one image with per-sample masks, or the reverse: repeat the single one */
        float **one = ri < rows ? &m->known : rm < rows ? &m->mask : NULL;
        if (one) {
            float *r = xmalloc(sizeof(float) * rows * D);
            for (size_t i = 0; i < rows; i++) memcpy(r + i * D, *one, sizeof(float) * D);
            xfree(*one);
            *one = r;
        }
        m->ss.known = m->known;
        m->ss.mask = m->mask;
        m->ss.n_known = rows;
    }
    return ERR_OK;
}

void sample_model_free(SampleModel *m)
{
    sample_setup_free(&m->ss);
    jobspec_free(&m->js);
    xfree_aligned(m->params);
    xfree(m->noise);
    xfree(m->known);
    xfree(m->mask);
    memset(m, 0, sizeof *m);
}

int sample_model_draw(SampleModel *m, uint64_t first, size_t count, float *out)
{
    uint64_t *idx = xmalloc(sizeof(uint64_t) * (count + 1));
    for (size_t i = 0; i < count; i++) idx[i] = first + i;
    int rc = sample_draw_local(&m->ss, m->params, idx, count, out);
    xfree(idx);
    return rc;
}

static int draw_work(void *ctx, uint64_t first, size_t count, void *out)
{
    return sample_model_draw(ctx, first, count, out);
}

int samplerun(SampleModel *m, const SampleRunOut *o)
{
    const size_t D = m->ss.D;
    float *x = dist_rank() == 0 ? xmalloc(sizeof(float) * (o->n ? o->n : 1) * D) : NULL;
    CoordStats st;
    double t0 = core_now();
    m->ss.nfe_total = m->ss.nfe_max = m->ss.n_drawn = 0;
    int rc = coord_run(o->n, o->chunk, sizeof(float) * D, draw_work, m, x, &st);
    double wall = core_now() - t0;
    /* network evaluations per sample over all ranks (adaptive solvers: the mean and the most) */
    double nfe[2] = {(double)m->ss.nfe_total, (double)m->ss.n_drawn};
    int64_t nfe_max = (int64_t)m->ss.nfe_max;
    if (rc == ERR_OK) rc = dist_allreduce_sum_f64(nfe, 2);
    if (rc == ERR_OK) rc = dist_allreduce_max_i64(&nfe_max, 1);
    if (rc == ERR_OK && dist_rank() == 0) {
        const JobSpec *js = &m->js;
        int image = js->data.dataset != JOB_DATA_TOY2D;
        size_t shape[4] = {o->n, D, 0, 0};
        int nd = 2;
        if (image) {
            shape[1] = (size_t)js->data.img_channels;
            shape[2] = shape[3] = (size_t)js->data.img_size;
            nd = 4;
        }
        if (o->npy && o->npy_u8) {
            uint8_t *u = xmalloc(o->n * D + 1);
            for (size_t i = 0; i < o->n * D; i++) {
                double v = floor(((double)x[i] + 1.0) * 127.5 + 0.5);
                u[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
            rc = npy_write_u8(o->npy, u, shape, nd);
            xfree(u);
        } else if (o->npy) {
            rc = npy_write_f32(o->npy, x, shape, nd);
        }
        if (rc == ERR_OK && o->png)
            rc = sample_write(js, o->png, x, o->n < SAMPLERUN_PNG_MAX ? o->n : SAMPLERUN_PNG_MAX);
        if (rc == ERR_OK) {
            printf("dfm sample: %zu samples in %.2f s (%.2f samples/s) on %d rank%s, chunk %zu, %s weights of %s\n",
                   o->n, wall, wall > 0 ? (double)o->n / wall : 0.0, dist_size(),
                   dist_size() > 1 ? "s" : "", o->chunk, m->used_ema ? "EMA" : "trained", m->from);
            printf("  network evaluations per sample: %.1f on average, at most %lld (sampler %s)\n",
                   nfe[1] > 0 ? nfe[0] / nfe[1] : 0.0, (long long)nfe_max,
                   sampler_kind_name(m->ss.cfg.kind));
            for (int r = 0; r < st.nranks && dist_size() > 1; r++)
                printf("  rank %d: %llu chunks, %llu samples\n", r,
                       (unsigned long long)st.chunks[r], (unsigned long long)st.items[r]);
            if (o->npy) printf("  %s (%s)\n", o->npy, o->npy_u8 ? "uint8" : "float32");
            if (o->png) printf("  %s\n", o->png);
        }
    }
    coord_stats_free(&st);
    xfree(x);
    return rc;
}
