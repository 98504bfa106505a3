/* dist/sample.c - sampling spread over the ranks. See dist/sample.h for the contract. */
#include "dist/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "dist/dist.h"
#include "dist/jobconf.h"
#include "io/dataset.h"
#include "io/fsutil.h"
#include "io/image.h"
#include "model/metrics.h"

int sample_setup_init(SampleSetup *ss, const JobSpec *js, Net *net)
{
    memset(ss, 0, sizeof *ss);
    if (net) {
        ss->net = net;
    } else {
        NetConfig nc;
        jobconf_net(js, &nc);
        ss->net = net_create(&nc);
        if (!ss->net)
            return err_code() != ERR_OK ? (int)err_code()
                                        : ERR(ERR_SPEC, "invalid model configuration");
        ss->own_net = 1;
        net_set_threads(ss->net, js->train.threads > 0 ? js->train.threads : dist_default_threads());
    }
    int rc = jobconf_schedule(js, &ss->sched);
    if (rc != ERR_OK) {
        sample_setup_free(ss);
        return rc;
    }
    jobconf_sampler(js, &ss->cfg);
    ss->time_scale = jobconf_time_scale(js);
    ss->D = (size_t)js->data.data_dim;
    ss->num_classes = js->model.num_classes;
    ss->label = js->sample.label;
    ss->batch = (size_t)js->sample.batch;
    return ERR_OK;
}

void sample_setup_free(SampleSetup *ss)
{
    if (ss->own_net) net_destroy(&ss->net);
    sched_free(&ss->sched);
    xfree_aligned(ss->saved);
    memset(ss, 0, sizeof *ss);
}

/* ---- the network as a sampler callback ---------------------------------------------------- */

typedef struct {
    Net *net;
    double time_scale;
    float *t;
    size_t cap;
} NetFnCtx;

/* Fault injection for the tests: DFM_FAULT_SAMPLE_NAN=1 puts a NaN into the network's output
 * while sampling, as diverged weights would. */
static int fault_sample_nan(void)
{
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("DFM_FAULT_SAMPLE_NAN");
        on = e && *e == '1';
    }
    return on;
}

static int net_fn(void *vctx, const float *x, const double *t, const int *labels, size_t B,
                  size_t D, float *out)
{
    NetFnCtx *c = vctx;
    (void)D;
    if (B > c->cap) {
        c->t = xrealloc(c->t, sizeof(float) * B);
        c->cap = B;
    }
    for (size_t b = 0; b < B; b++) c->t[b] = (float)(t[b] * c->time_scale);
    net_infer(c->net, x, c->t, labels, B, out);
    if (fault_sample_nan()) out[0] = NAN;
    return ERR_OK;
}

/* This rank's samples: idx[0..count) into out (count, D). */
static int draw_local(SampleSetup *ss, const uint64_t *idx, size_t count, float *out)
{
    size_t bs = ss->batch > 0 ? ss->batch : 1;
    const size_t D = ss->D;
    int *labels = xmalloc(sizeof(int) * bs);
    float *x0 = ss->noise ? xmalloc(sizeof(float) * bs * D) : NULL;
    float *mask = ss->mask ? xmalloc(sizeof(float) * bs * D) : NULL;
    float *known = ss->mask ? xmalloc(sizeof(float) * bs * D) : NULL;
    NetFnCtx ctx = {.net = ss->net, .time_scale = ss->time_scale};
    int rc = ERR_OK, nclass = ss->num_classes;
    for (size_t s = 0; s < count && rc == ERR_OK; s += bs) {
        size_t nb = count - s < bs ? count - s : bs;
        for (size_t j = 0; j < nb; j++) {
            uint64_t i = idx[s + j];
            labels[j] = ss->label >= 0 ? ss->label
                                       : (nclass > 0 ? (int)(i % (uint64_t)nclass) : -1);
            if (x0) {
                ASSERT(i < ss->n_noise);
                memcpy(x0 + j * D, ss->noise + i * D, sizeof(float) * D);
            }
            if (mask) {
                size_t r = ss->n_known > 1 ? (size_t)i : 0;
                ASSERT(r < ss->n_known);
                memcpy(mask + j * D, ss->mask + r * D, sizeof(float) * D);
                memcpy(known + j * D, ss->known + r * D, sizeof(float) * D);
            }
        }
        SampleStats st;
        rc = sched_sample_from(&ss->cfg, &ss->sched, net_fn, &ctx, idx + s, nb, D,
                               nclass > 0 ? labels : NULL, mask, known, x0, out + s * D, &st);
        if (rc == ERR_OK) {
            ss->nfe_total += st.nfe_total;
            ss->nfe_max = st.nfe > ss->nfe_max ? st.nfe : ss->nfe_max;
            ss->n_drawn += nb;
        }
    }
    xfree(ctx.t);
    xfree(labels);
    xfree(x0);
    xfree(mask);
    xfree(known);
    return rc;
}

int sample_draw(SampleSetup *ss, const float *params, const uint64_t *idx, size_t count,
                float *out)
{
    int size = dist_size(), rank = dist_rank();
    size_t D = ss->D;
    /* Rank r draws the contiguous part [r * chunk, (r + 1) * chunk) of the list. */
    size_t chunk = (count + (size_t)size - 1) / (size_t)size;
    size_t first = (size_t)rank * chunk;
    size_t mine = first >= count ? 0 : (count - first < chunk ? count - first : chunk);
    float *local = xcalloc(chunk * D + 1, sizeof(float));
    float *all = xcalloc((size_t)size * chunk * D + 1, sizeof(float));

    size_t n = net_num_params(ss->net);
    float *p = net_params(ss->net);
    int swap = params && params != p;
    if (swap) {
        if (!ss->saved) ss->saved = xalloc_aligned(sizeof(float) * n);
        memcpy(ss->saved, p, sizeof(float) * n);
        memcpy(p, params, sizeof(float) * n);
    }
    int rc = mine > 0 ? draw_local(ss, idx + first, mine, local) : ERR_OK;
    if (swap) memcpy(p, ss->saved, sizeof(float) * n);

    /* Every rank takes part in the gather even after a local failure, then all agree. */
    int64_t bad = rc != ERR_OK;
    int grc = dist_allgather(local, all, sizeof(float) * chunk * D);
    if (grc == ERR_OK) grc = dist_allreduce_max_i64(&bad, 1);
    if (grc == ERR_OK && bad && rc == ERR_OK)
        grc = ERR(ERR_STATE, "sampling failed on another rank");
    if (rc == ERR_OK) rc = grc;
    if (rc == ERR_OK) memcpy(out, all, sizeof(float) * count * D);
    xfree(local);
    xfree(all);
    return rc;
}

int sample_draw_local(SampleSetup *ss, const float *params, const uint64_t *idx, size_t count,
                      float *out)
{
    size_t n = net_num_params(ss->net);
    float *p = net_params(ss->net);
    int swap = params && params != p;
    if (swap) {
        if (!ss->saved) ss->saved = xalloc_aligned(sizeof(float) * n);
        memcpy(ss->saved, p, sizeof(float) * n);
        memcpy(p, params, sizeof(float) * n);
    }
    int rc = count > 0 ? draw_local(ss, idx, count, out) : ERR_OK;
    if (swap) memcpy(p, ss->saved, sizeof(float) * n);
    return rc;
}

int sample_draw_range(SampleSetup *ss, const float *params, uint64_t first, size_t count,
                      float *out)
{
    uint64_t *idx = xmalloc(sizeof(uint64_t) * (count + 1));
    for (size_t i = 0; i < count; i++) idx[i] = first + i;
    int rc = sample_draw(ss, params, idx, count, out);
    xfree(idx);
    return rc;
}

/* ---- writing and scoring samples ---------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

int sample_write(const JobSpec *js, const char *path, const float *x, size_t count)
{
    if (js->data.dataset != JOB_DATA_TOY2D)
        return image_write_grid_png(path, x, count, (size_t)js->data.img_channels,
                                    (size_t)js->data.img_size, (size_t)js->data.img_size, 0);
    if (!ends_with(path, ".csv")) return image_write_scatter_png(path, x, count, 512, 3.0);
    AtomicFile af;
    TRY(fs_atomic_open(&af, path));
    fprintf(af.f, "x,y\n");
    for (size_t i = 0; i < count; i++)
        fprintf(af.f, "%.7g,%.7g\n", (double)x[2 * i], (double)x[2 * i + 1]);
    return fs_atomic_commit(&af);
}

int sample_toy_distance(const JobSpec *js, const float *x, size_t count, double *swd,
                        double *floor_swd)
{
    Dataset a = {0}, b = {0};
    const char *name = jobconf_dataset_name(js);
    uint64_t seed = js->run.seed;
    size_t D = (size_t)js->data.data_dim;
    TRY(dataset_toy(&a, name, count, seed ^ UINT64_C(0x5eed0001)));
    int rc = dataset_toy(&b, name, count, seed ^ UINT64_C(0x5eed0002));
    if (rc == ERR_OK) {
        *swd = metrics_swd(x, count, a.f32, count, D, 256, seed);
        *floor_swd = metrics_swd(b.f32, count, a.f32, count, D, 256, seed);
    }
    dataset_free(&a);
    dataset_free(&b);
    return rc;
}
