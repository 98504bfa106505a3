/* dist/evaluate.c - records per image, scores in fixed order, the real-data floor. */
#include "dist/evaluate.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "dist/coord.h"
#include "dist/dist.h"
#include "io/dataset.h"
#include "io/plot.h"
#include "model/metrics.h"
#include "model/spectral.h"

/* record: spectrum (nbins doubles), features (F floats), predicted class (int32), pad (int32) */
size_t evaluation_record_bytes(const Evaluation *ev)
{
    return ev->nbins * sizeof(double) + ev->F * sizeof(float) + 2 * sizeof(int32_t);
}

static const double *rec_spec(const Evaluation *ev, const unsigned char *r) { (void)ev; return (const double *)(const void *)r; }
static const float *rec_feat(const Evaluation *ev, const unsigned char *r)
{
    return (const float *)(const void *)(r + ev->nbins * sizeof(double));
}
static int32_t rec_class(const Evaluation *ev, const unsigned char *r)
{
    int32_t k;
    memcpy(&k, r + ev->nbins * sizeof(double) + ev->F * sizeof(float), sizeof k);
    return k;
}

void eval_score_free(EvalScore *s)
{
    xfree(s->hist);
    xfree(s->spectrum);
    xfree(s->ref_spectrum);
    memset(s, 0, sizeof *s);
}

int evaluation_init(Evaluation *ev, const EvaluatorInfo *info, const char *data_dir,
                    const char *weights_path, size_t n_ref)
{
    memset(ev, 0, sizeof *ev);
    ev->info = info;
    snprintf(ev->data_dir, sizeof ev->data_dir, "%s", data_dir);
    if (weights_path) TRY(evaluator_read(&ev->clf, weights_path));
    else TRY(evaluator_load(&ev->clf, info));
    const ClfConfig *c = clf_config(ev->clf);
    ev->C = (size_t)c->in_ch;
    ev->H = ev->W = (size_t)c->size;
    ev->F = (size_t)c->feat;
    ev->K = c->num_classes;
    ev->nbins = spectral_nbins(ev->H, ev->W);
    ev->chunk = 64;
    EvalKey k;
    evalkey_init(&k, "evaluator");
    evalkey_str(&k, info->name);
    evalkey_add(&k, c, sizeof *c);
    evalkey_add(&k, clf_params(ev->clf), sizeof(float) * clf_num_params(ev->clf));
    evalkey_final(&k, ev->fingerprint);
    ev->n_ref = n_ref;
    return ERR_OK;
}

void evaluation_free(Evaluation *ev)
{
    clf_destroy(&ev->clf);
    xfree(ev->ref);
    memset(ev, 0, sizeof *ev);
}

void evaluation_records(Evaluation *ev, const float *x, size_t count, unsigned char *rec)
{
    const size_t rb = evaluation_record_bytes(ev), D = ev->C * ev->H * ev->W;
    const size_t piece = 64;
    float *feat = xmalloc(sizeof(float) * piece * ev->F);
    float *lg = xmalloc(sizeof(float) * piece * (size_t)ev->K);
    double *spec = xmalloc(sizeof(double) * ev->nbins);
    for (size_t lo = 0; lo < count; lo += piece) {
        size_t nb = count - lo < piece ? count - lo : piece;
        clf_forward(ev->clf, x + lo * D, nb, feat, lg);
        for (size_t b = 0; b < nb; b++) {
            unsigned char *r = rec + (lo + b) * rb;
            memset(spec, 0, sizeof(double) * ev->nbins);
            int rc = spectral_power_sum(spec, x + (lo + b) * D, 1, ev->C, ev->H, ev->W);
            ASSERT(rc == ERR_OK); /* shapes were checked at init */
            for (size_t k = 0; k < ev->nbins; k++) spec[k] /= (double)ev->C;
            memcpy(r, spec, sizeof(double) * ev->nbins);
            memcpy(r + ev->nbins * sizeof(double), feat + b * ev->F, sizeof(float) * ev->F);
            int32_t cls[2] = {clf_argmax(lg + b * (size_t)ev->K, ev->K), 0};
            memcpy(r + ev->nbins * sizeof(double) + ev->F * sizeof(float), cls, sizeof cls);
        }
    }
    xfree(feat);
    xfree(lg);
    xfree(spec);
}

/* ---- records of a dataset split over the ranks ------------------------------------------- */

typedef struct {
    Evaluation *ev;
    const Dataset *ds;
    float *x;
    size_t cap;
} DsWork;

static int ds_work(void *vctx, uint64_t first, size_t count, void *out)
{
    DsWork *w = vctx;
    const size_t D = w->ev->C * w->ev->H * w->ev->W;
    if (count > w->cap) {
        w->x = xrealloc(w->x, sizeof(float) * count * D);
        w->cap = count;
    }
    evalpart_fault_delay();
    clf_u8_to_float(w->x, w->ds->u8 + first * D, count * D);
    evaluation_records(w->ev, w->x, count, out);
    return ERR_OK;
}

int evaluation_dataset_records(Evaluation *ev, int split, size_t n, unsigned char *rec)
{
    Dataset ds;
    TRY(dataset_open(&ds, ev->info->dataset, ev->data_dir, split ? DATASET_TEST : DATASET_TRAIN));
    int rc = ERR_OK;
    if (ds.c != ev->C || ds.h != ev->H || ds.w != ev->W)
        rc = ERR(ERR_ARG, "the %s classifier takes %zux%zux%zu images, %s has %zux%zux%zu",
                 ev->info->metric, ev->C, ev->H, ev->W, ev->info->dataset, ds.c, ds.h, ds.w);
    else if (n > ds.n)
        rc = ERR(ERR_ARG, "%zu images requested from the %s split of %s, which has %zu",
                 n, split ? "test" : "train", ev->info->dataset, ds.n);
    if (rc == ERR_OK) {
        DsWork w = {.ev = ev, .ds = &ds};
        EvalKey k;
        char key[65];
        evalkey_init(&k, "dataset");
        evalkey_str(&k, ev->fingerprint);
        evalkey_str(&k, ev->info->dataset);
        evalkey_u64(&k, (uint64_t)split);
        evalkey_u64(&k, (uint64_t)ds.n);
        evalkey_u64(&k, (uint64_t)n);
        evalkey_u64(&k, (uint64_t)ev->chunk);
        evalkey_u64(&k, (uint64_t)evaluation_record_bytes(ev));
        evalkey_final(&k, key);
        rc = evalpart_run(ev->part, split ? "the test-split records" : "the train-split records",
                          key, n, ev->chunk, evaluation_record_bytes(ev), ds_work, &w,
                          dist_rank() == 0 ? rec : NULL);
        xfree(w.x);
    }
    dataset_free(&ds);
    return rc;
}

static int ensure_ref(Evaluation *ev)
{
    if (ev->ref) return ERR_OK;
    if (ev->n_ref == 0) {
        Dataset ds;
        TRY(dataset_open(&ds, ev->info->dataset, ev->data_dir, DATASET_TEST));
        ev->n_ref = ds.n;
        dataset_free(&ds);
    }
    unsigned char *ref = xmalloc(evaluation_record_bytes(ev) * ev->n_ref);
    int rc = evaluation_dataset_records(ev, 1, ev->n_ref, ref);
    if (rc != ERR_OK) {
        xfree(ref);
        return rc;
    }
    ev->ref = ref;
    return ERR_OK;
}

int evaluation_prepare(Evaluation *ev) { return ensure_ref(ev); }

/* Frechet statistics and spectrum sum of n records, blocks of FD_BLOCK merged in order. */
static void fold(const Evaluation *ev, const unsigned char *rec, size_t n, FdStats *tot,
                 double *spec_mean)
{
    const size_t rb = evaluation_record_bytes(ev), nb = ev->nbins;
    FdStats blk;
    fd_stats_init(&blk, ev->F);
    double *bs = xmalloc(sizeof(double) * nb);
    memset(spec_mean, 0, sizeof(double) * nb);
    fd_stats_clear(tot);
    for (size_t lo = 0; lo < n; lo += FD_BLOCK) {
        size_t hi = lo + FD_BLOCK < n ? lo + FD_BLOCK : n;
        fd_stats_clear(&blk);
        memset(bs, 0, sizeof(double) * nb);
        for (size_t i = lo; i < hi; i++) {
            const unsigned char *r = rec + i * rb;
            fd_stats_add(&blk, rec_feat(ev, r), 1);
            const double *s = rec_spec(ev, r);
            for (size_t k = 0; k < nb; k++) bs[k] += s[k];
        }
        fd_stats_merge(tot, &blk);
        for (size_t k = 0; k < nb; k++) spec_mean[k] += bs[k];
    }
    for (size_t k = 0; k < nb; k++) spec_mean[k] /= (double)(n ? n : 1);
    fd_stats_free(&blk);
    xfree(bs);
}

static float *gather_feat(const Evaluation *ev, const unsigned char *rec, size_t n)
{
    float *f = xmalloc(sizeof(float) * (n ? n : 1) * ev->F);
    for (size_t i = 0; i < n; i++)
        memcpy(f + i * ev->F, rec_feat(ev, rec + i * evaluation_record_bytes(ev)), sizeof(float) * ev->F);
    return f;
}

int evaluation_score(Evaluation *ev, const unsigned char *rec, size_t n, const int *labels,
                     EvalScore *out)
{
    memset(out, 0, sizeof *out);
    TRY(ensure_ref(ev));
    if (dist_rank() != 0) return ERR_OK;
    if (n < 2) return ERR(ERR_ARG, "scoring needs at least 2 samples (have %zu)", n);
    out->n = n;
    out->hist = xcalloc((size_t)ev->K, sizeof(uint64_t));
    out->spectrum = xmalloc(sizeof(double) * ev->nbins);
    FdStats g, r;
    fd_stats_init(&g, ev->F);
    fd_stats_init(&r, ev->F);
    double *ref_spec = xmalloc(sizeof(double) * ev->nbins);
    fold(ev, rec, n, &g, out->spectrum);
    fold(ev, ev->ref, ev->n_ref, &r, ref_spec);
    int rc = fd_stats_distance(&g, &r, &out->fd);
    out->spec_db = spectral_distance(out->spectrum, ref_spec, ev->nbins);
    const size_t rb = evaluation_record_bytes(ev);
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t k = rec_class(ev, rec + i * rb);
        out->hist[k]++;
        if (labels) ok += labels[i] == k;
    }
    out->hist_tv = metrics_hist_tv_uniform(out->hist, ev->K);
    out->class_acc = labels ? (double)ok / (double)n : -1.0;
    if (rc == ERR_OK) {
        size_t ng = n < EVAL_PR_MAX ? n : EVAL_PR_MAX;
        size_t nr = ev->n_ref < EVAL_PR_MAX ? ev->n_ref : EVAL_PR_MAX;
        float *fg = gather_feat(ev, rec, ng), *fr = gather_feat(ev, ev->ref, nr);
        rc = metrics_precision_recall(fr, nr, fg, ng, ev->F, EVAL_PR_K, &out->precision,
                                      &out->recall);
        xfree(fg);
        xfree(fr);
    }
    fd_stats_free(&g);
    fd_stats_free(&r);
    out->ref_spectrum = ref_spec;
    out->nbins = ev->nbins;
    return rc;
}

int evaluation_plot_spectra(const Evaluation *ev, const EvalScore *s, size_t ns,
                            const char *const *labels, const char *path)
{
    if (ns == 0 || !s[0].ref_spectrum) return ERR(ERR_ARG, "no spectra to plot");
    const size_t nb = ev->nbins;
    double *x = xmalloc(sizeof(double) * nb);
    double *y = xmalloc(sizeof(double) * nb * (ns + 1));
    PlotSeries *ser = xcalloc(ns + 1, sizeof *ser);
    char ref[96];
    snprintf(ref, sizeof ref, "real (%s test)", ev->info->dataset);
    for (size_t k = 0; k < nb; k++) x[k] = (double)k;
    for (size_t i = 0; i <= ns; i++) {
        const double *sp = i == 0 ? s[0].ref_spectrum : s[i - 1].spectrum;
        for (size_t k = 0; k < nb; k++) y[i * nb + k] = sp && sp[k] > 0 ? 10.0 * log10(sp[k]) : (double)NAN;
        ser[i] = (PlotSeries){.x = x, .y = y + i * nb, .n = nb,
                              .label = i == 0 ? ref : labels && labels[i - 1] ? labels[i - 1] : "generated"};
    }
    PlotAxes ax = {.title = "radially averaged power spectrum", .xlabel = "radial frequency (cycles per image)",
                   .ylabel = "power (dB)"};
    int rc = plot_write_png(path, &ax, ser, ns + 1);
    xfree(x);
    xfree(y);
    xfree(ser);
    return rc;
}

int evaluation_floor(Evaluation *ev, size_t n, EvalScore *out)
{
    memset(out, 0, sizeof *out);
    unsigned char *rec = dist_rank() == 0 ? xmalloc(evaluation_record_bytes(ev) * (n ? n : 1)) : NULL;
    int rc = evaluation_dataset_records(ev, 0, n, rec);
    if (rc == ERR_OK) rc = evaluation_score(ev, rec, n, NULL, out);
    xfree(rec);
    return rc;
}
