/* dist/samplerun.c - `dfm sample`: weights + spec -> samples over the ranks -> .npy and PNG. */
#include "dist/samplerun.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
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

/* The weights must be laid out exactly as the network the spec builds. */
static int check_table(const Weights *w, const Net *net, const char *path)
{
    size_t nt;
    const ParamEntry *pt = net_param_table(net, &nt);
    if (w->n != net_num_params(net) || w->n_tensors != nt) {
        ERR(ERR_FORMAT, "%s holds %zu tensors (%zu parameters); the job's network has %zu (%zu)",
            path, w->n_tensors, w->n, nt, net_num_params(net));
        err_hint("give the job spec these weights were trained with (--job)");
        return ERR_FORMAT;
    }
    for (size_t i = 0; i < nt; i++) {
        const WeightsTensor *t = &w->tensors[i];
        int same = !strcmp(t->name, pt[i].name) && t->ndim == pt[i].ndim &&
                   t->offset == pt[i].offset && t->count == pt[i].count;
        for (int d = 0; d < pt[i].ndim && same; d++) same = t->shape[d] == pt[i].shape[d];
        if (!same) {
            ERR(ERR_FORMAT, "%s: tensor %zu is '%s' with %zu values; the job's network has '%s' "
                "with %zu there", path, i, t->name, t->count, pt[i].name, pt[i].count);
            err_hint("give the job spec these weights were trained with (--job)");
            return ERR_FORMAT;
        }
    }
    return ERR_OK;
}

int sample_model_init(SampleModel *m, const char *source, const char *job,
                      const char *const *sets, int n_sets, int use_ema)
{
    memset(m, 0, sizeof *m);
    char spec[4096];
    if (is_dir(source)) {
        snprintf(m->run_dir, sizeof m->run_dir, "%s", source);
        snprintf(m->weights_path, sizeof m->weights_path, "%s/weights.bin", source);
        if (!job) {
            snprintf(spec, sizeof spec, "%s/job.yaml", source);
            if (!fs_exists(spec)) {
                ERR(ERR_ARG, "%s has no job.yaml (the resolved job spec dfm train writes)", source);
                err_hint("give the job spec the run was trained with: --job JOB.yaml");
                return ERR_ARG;
            }
            job = spec;
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
    if (rc == ERR_OK) rc = check_table(&w, m->ss.net, m->weights_path);
    if (rc == ERR_OK) {
        int want = use_ema >= 0 ? use_ema : (int)m->js.sample.use_ema;
        if (want && !w.ema) {
            if (use_ema == 1) {
                rc = ERR(ERR_ARG, "%s holds no EMA weights", m->weights_path);
                err_hint("sample with the trained weights: --no-ema");
            }
            want = 0;
        }
        m->used_ema = want;
        m->n_params = w.n;
        m->params = xalloc_aligned(sizeof(float) * w.n);
        memcpy(m->params, want ? w.ema : w.params, sizeof(float) * w.n);
    }
    weights_free(&w);
    return rc;
}

void sample_model_free(SampleModel *m)
{
    sample_setup_free(&m->ss);
    jobspec_free(&m->js);
    xfree_aligned(m->params);
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
            printf("dfm sample: %zu samples in %.2f s (%.2f samples/s) on %d rank%s, chunk %zu, %s weights\n",
                   o->n, wall, wall > 0 ? (double)o->n / wall : 0.0, dist_size(),
                   dist_size() > 1 ? "s" : "", o->chunk, m->used_ema ? "EMA" : "trained");
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
