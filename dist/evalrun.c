/* dist/evalrun.c - `dfm eval` on a .npy of samples. */
#include "dist/evalrun.h"

#include <math.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "dist/coord.h"
#include "dist/dist.h"
#include "dist/jobagree.h"
#include "io/fsutil.h"
#include "io/npy.h"
#include "io/plot.h"
#include "core/log.h"
#include <stdlib.h>

void evalrun_args_default(EvalRunArgs *a)
{
    memset(a, 0, sizeof *a);
    a->evaluator = "fmnist";
    a->data_dir = "data";
    a->chunk = 64;
    a->floor = 1;
}

int evalrun_load_images(const char *path, size_t C, size_t H, size_t W, float **x, size_t *n)
{
    size_t shape[NPY_MAX_DIMS];
    int nd, u8;
    float *v;
    TRY(npy_read_f32(path, &v, shape, &nd, &u8));
    int fits = (nd == 4 && shape[1] == C && shape[2] == H && shape[3] == W) ||
               (nd == 3 && C == 1 && shape[1] == H && shape[2] == W);
    if (!fits) {
        xfree(v);
        return ERR(ERR_ARG, "%s: images of shape (%zu%s%s), the evaluator wants (N, %zu, %zu, %zu)", path,
                   shape[0], nd > 1 ? ", ..." : "", nd > 4 ? " (too many axes)" : "", C, H, W);
    }
    size_t total = shape[0] * C * H * W;
    for (size_t i = 0; i < total; i++) {
        if (u8) v[i] = v[i] / 127.5f - 1.0f;
        else if (!isfinite(v[i])) {
            xfree(v);
            return ERR(ERR_NUMERIC, "%s: value %zu is not finite", path, i);
        }
    }
    *x = v;
    *n = shape[0];
    return ERR_OK;
}

static void row(FILE *out, const char *name, double v, const EvalScore *floor, double fv)
{
    fprintf(out, "| %-22s | %10.4f | ", name, v);
    if (floor) fprintf(out, "%10.4f", fv);
    else fprintf(out, "%10s", "-");
    fprintf(out, " |\n");
}

void evalrun_print(FILE *out, const Evaluation *ev, const EvalScore *s, const EvalScore *f)
{
    char name[64];
    fprintf(out, "| %-22s | %10s | %10s |\n", "score", "samples", "real floor");
    fprintf(out, "|------------------------|------------|------------|\n");
    snprintf(name, sizeof name, "%s", ev->info->metric);
    row(out, name, s->fd, f, f ? f->fd : 0);
    row(out, "precision (k=3)", s->precision, f, f ? f->precision : 0);
    row(out, "recall (k=3)", s->recall, f, f ? f->recall : 0);
    row(out, "spectral distance (dB)", s->spec_db, f, f ? f->spec_db : 0);
    row(out, "class histogram TV", s->hist_tv, f, f ? f->hist_tv : 0);
    if (s->class_acc >= 0) row(out, "class accuracy", s->class_acc, NULL, 0);
    fprintf(out, "(%zu samples; reference: %zu %s test images; floor: %zu train images)\n", s->n,
            ev->n_ref, ev->info->dataset, f ? f->n : (size_t)0);
}

typedef struct {
    Evaluation *ev;
    const float *x;
} NpyWork;

static int npy_work(void *vctx, uint64_t first, size_t count, void *out)
{
    NpyWork *w = vctx;
    evalpart_fault_delay();
    evaluation_records(w->ev, w->x + first * w->ev->C * w->ev->H * w->ev->W, count, out);
    return ERR_OK;
}

int evalrun_npy(const EvalRunArgs *a, const char *out_dir, FILE *out)
{
    const EvaluatorInfo *info = evaluator_find(a->evaluator);
    if (!info) return err_code();
    Evaluation ev;
    int rc = evaluation_init(&ev, info, a->data_dir, a->weights, a->n_ref);
    if (rc != ERR_OK) {
        evaluation_free(&ev);
        return rc;
    }
    EvalPart part;
    evalpart_init(&part, out_dir);
    ev.part = &part;
    ev.chunk = a->chunk;
    float *x = NULL, *lab = NULL;
    int *labels = NULL;
    size_t n = 0;
    unsigned char *rec = NULL;
    EvalScore s = {0}, f = {0};
    rc = evalrun_load_images(a->samples, ev.C, ev.H, ev.W, &x, &n);
    if (rc == ERR_OK && a->labels) {
        size_t shape[NPY_MAX_DIMS];
        int nd;
        rc = npy_read_f32(a->labels, &lab, shape, &nd, NULL);
        if (rc == ERR_OK && (nd != 1 || shape[0] != n))
            rc = ERR(ERR_ARG, "%s: labels must have shape (%zu,) like the samples", a->labels, n);
        if (rc == ERR_OK) {
            labels = xmalloc(sizeof(int) * n);
            for (size_t i = 0; i < n && rc == ERR_OK; i++) {
                labels[i] = (int)lab[i];
                if ((float)labels[i] != lab[i] || labels[i] < 0 || labels[i] >= ev.K)
                    rc = ERR(ERR_ARG, "%s: label %zu is %g, not a class in 0..%d", a->labels, i,
                             (double)lab[i], ev.K - 1);
            }
        }
    }
    if (rc == ERR_OK) {
        rec = dist_rank() == 0 ? xmalloc(evaluation_record_bytes(&ev) * (n ? n : 1)) : NULL;
        NpyWork w = {.ev = &ev, .x = x};
        EvalKey k;
        char key[65];
        evalkey_init(&k, "images");
        evalkey_str(&k, ev.fingerprint);
        evalkey_u64(&k, (uint64_t)n);
        evalkey_add(&k, x, sizeof(float) * n * ev.C * ev.H * ev.W);
        evalkey_u64(&k, (uint64_t)ev.chunk);
        evalkey_u64(&k, (uint64_t)evaluation_record_bytes(&ev));
        evalkey_final(&k, key);
        rc = evalpart_run(&part, "the samples' records", key, n, ev.chunk,
                          evaluation_record_bytes(&ev), npy_work, &w, rec);
    }
    if (rc == ERR_OK) rc = evaluation_score(&ev, rec, n, labels, &s);
    if (rc == ERR_OK && a->floor) rc = evaluation_floor(&ev, n, &f);
    if (rc == ERR_OK && dist_rank() == 0) {
        evalrun_print(out, &ev, &s, a->floor ? &f : NULL);
        char png[4300];
        size_t len = strlen(a->samples);
        if (out_dir) snprintf(png, sizeof png, "%s/spectrum.png", out_dir);
        else snprintf(png, sizeof png, "%.*s.spectrum.png", (int)(len > 4 ? len - 4 : len), a->samples);
        rc = out_dir ? fs_mkdir_p(out_dir) : ERR_OK;
        if (rc == ERR_OK) rc = evaluation_plot_spectra(&ev, &s, 1, NULL, png);
        if (rc == ERR_OK) fprintf(out, "spectra: %s\n", png);
    }
    evalpart_finish(&part, rc == ERR_OK);
    eval_score_free(&s);
    eval_score_free(&f);
    xfree(rec);
    xfree(x);
    xfree(lab);
    xfree(labels);
    evaluation_free(&ev);
    return rc;
}

/* ---- dfm eval RUN: sample and score, optionally over a sweep ------------------------------ */

typedef struct {
    SampleModel *m;
    Evaluation *ev;
    float *x;
    size_t cap;
} ModelWork;

static int model_work(void *vctx, uint64_t first, size_t count, void *out)
{
    ModelWork *w = vctx;
    const size_t D = w->m->ss.D;
    if (count > w->cap) {
        w->x = xrealloc(w->x, sizeof(float) * count * D);
        w->cap = count;
    }
    evalpart_fault_delay();
    TRY(sample_model_draw(w->m, first, count, w->x));
    evaluation_records(w->ev, w->x, count, out);
    return ERR_OK;
}

/* Parse "key=v1,v2,..." into a sweep axis. */
int evalrun_sweep_parse(EvalSweep *sw, const char *spec)
{
    if (sw->n_axes >= EVAL_SWEEP_AXES)
        return ERR(ERR_ARG, "at most %d --sweep axes", EVAL_SWEEP_AXES);
    const char *eq = strchr(spec, '=');
    static const char *const keys[] = {"steps", "eta", "guidance"};
    int k = -1;
    for (int i = 0; i < 3 && eq; i++)
        if ((size_t)(eq - spec) == strlen(keys[i]) && !strncmp(spec, keys[i], (size_t)(eq - spec))) k = i;
    if (k < 0) return ERR(ERR_ARG, "--sweep '%s': expected steps=..., eta=... or guidance=... with comma-separated values", spec);
    EvalSweepAxis *ax = &sw->axes[sw->n_axes];
    ax->key = k;
    ax->n = 0;
    const char *p = eq + 1;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || (*end && *end != ',') || ax->n >= EVAL_SWEEP_VALUES || !isfinite(v) ||
            (k == 0 && (v < 1 || v != floor(v))) || (k != 0 && v < 0))
            return ERR(ERR_ARG, "--sweep '%s': bad value list (numbers, comma-separated, steps >= 1)", spec);
        ax->v[ax->n++] = v;
        p = *end ? end + 1 : end;
    }
    if (ax->n == 0) return ERR(ERR_ARG, "--sweep '%s': no values", spec);
    sw->n_axes++;
    return ERR_OK;
}

/* The value of axis i at sweep point p (row-major, the last axis fastest). */
static double sweep_value(const EvalSweep *sw, int i, size_t p)
{
    for (int j = sw->n_axes - 1; j > i; j--) p /= (size_t)sw->axes[j].n;
    return sw->axes[i].v[p % (size_t)sw->axes[i].n];
}

/* spectrum.png (every point's spectrum and the reference's) and, for a sweep, sweep.png: the
 * score against NFE, one line per combination of the axes other than steps. Rank 0. */
static int plot_model(const Evaluation *ev, const SampleModel *m, const EvalSweep *sw,
                      const EvalScore *sc, const double *nfe, size_t npts, const char *out_dir,
                      FILE *out)
{
    static const char *const keys[] = {"steps", "eta", "guidance"};
    char path[4300];
    TRY(fs_mkdir_p(out_dir));
    char (*lab)[96] = xcalloc(npts, sizeof *lab);
    const char **labp = xcalloc(npts, sizeof *labp);
    for (size_t p = 0; p < npts; p++) {
        int o = 0;
        for (int i = 0; i < sw->n_axes && o < 80; i++)
            o += snprintf(lab[p] + o, sizeof lab[p] - (size_t)o, "%s%s %g", i ? ", " : "",
                          keys[sw->axes[i].key], sweep_value(sw, i, p));
        if (!sw->n_axes) snprintf(lab[p], sizeof lab[p], "generated (%s)", sampler_kind_name(m->ss.cfg.kind));
        labp[p] = lab[p];
    }
    snprintf(path, sizeof path, "%s/spectrum.png", out_dir);
    int rc = evaluation_plot_spectra(ev, sc, npts, labp, path);
    if (rc == ERR_OK) fprintf(out, "spectra: %s\n", path);
    if (rc == ERR_OK && sw->n_axes > 0) {
        /* group the points by the values of the other axes; x = NFE */
        PlotSeries *ser = xcalloc(npts, sizeof *ser);
        double *xs = xmalloc(sizeof(double) * npts), *ys = xmalloc(sizeof(double) * npts);
        char (*glab)[96] = xcalloc(npts, sizeof *glab);
        int *done = xcalloc(npts, sizeof *done);
        size_t ns = 0, used = 0;
        double lo = INFINITY, hi = 0;
        for (size_t p = 0; p < npts; p++) {
            if (done[p]) continue;
            ser[ns].x = xs + used;
            ser[ns].y = ys + used;
            int o = 0;
            for (int i = 0; i < sw->n_axes; i++)
                if (sw->axes[i].key != 0 && o < 80)
                    o += snprintf(glab[ns] + o, sizeof glab[ns] - (size_t)o, "%s%s %g", o ? ", " : "",
                                  keys[sw->axes[i].key], sweep_value(sw, i, p));
            for (size_t q = p; q < npts; q++) {
                int same = 1;
                for (int i = 0; i < sw->n_axes && same; i++)
                    if (sw->axes[i].key != 0) same = sweep_value(sw, i, q) == sweep_value(sw, i, p);
                if (!same || done[q]) continue;
                done[q] = 1;
                /* insert sorted by NFE */
                size_t j = ser[ns].n;
                while (j > 0 && ser[ns].x[j - 1] > nfe[q]) {
                    xs[used - ser[ns].n + j] = ser[ns].x[j - 1];
                    ys[used - ser[ns].n + j] = ser[ns].y[j - 1];
                    j--;
                }
                xs[used - ser[ns].n + j] = nfe[q];
                ys[used - ser[ns].n + j] = sc[q].fd;
                ser[ns].n++;
                used++;
                if (nfe[q] < lo) lo = nfe[q];
                if (nfe[q] > hi) hi = nfe[q];
            }
            ser[ns].label = glab[ns][0] ? glab[ns] : NULL;
            ns++;
        }
        char title[128];
        snprintf(title, sizeof title, "%s against NFE (%s, %zu samples)", ev->info->metric,
                 sampler_kind_name(m->ss.cfg.kind), sc[0].n);
        PlotAxes ax = {.title = title, .xlabel = "network evaluations per sample (NFE)",
                       .ylabel = ev->info->metric, .logx = hi >= 8 * lo};
        snprintf(path, sizeof path, "%s/sweep.png", out_dir);
        rc = plot_write_png(path, &ax, ser, ns);
        if (rc == ERR_OK) fprintf(out, "sweep plot: %s\n", path);
        xfree(ser);
        xfree(xs);
        xfree(ys);
        xfree(glab);
        xfree(done);
    }
    xfree(lab);
    xfree(labp);
    return rc;
}

int evalrun_model(SampleModel *m, const EvalRunArgs *a, const EvalSweep *sw, const char *out_dir,
                  FILE *out)
{
    const EvaluatorInfo *info = evaluator_find(a->evaluator);
    if (!info) return err_code();
    Evaluation ev;
    TRY(evaluation_init(&ev, info, a->data_dir, a->weights, a->n_ref));
    ev.chunk = a->chunk;
    EvalPart part;
    evalpart_init(&part, out_dir);
    ev.part = &part;
    const size_t n = a->n, D = m->ss.D;
    char spec_hex[65];
    int rc = job_spec_sha256(&m->js, spec_hex);
    if (D != ev.C * ev.H * ev.W)
        rc = ERR(ERR_ARG, "the model draws %zu values per sample, the %s classifier takes %zux%zux%zu images",
                 D, info->metric, ev.C, ev.H, ev.W);
    /* points: the product of the axes (one point without a sweep) */
    size_t npts = 1;
    for (int i = 0; i < sw->n_axes; i++) npts *= (size_t)sw->axes[i].n;
    EvalScore floor_s = {0};
    if (rc == ERR_OK && a->floor) rc = evaluation_floor(&ev, n, &floor_s);
    int *labels = NULL;
    if (m->ss.num_classes > 0) {
        labels = xmalloc(sizeof(int) * (n ? n : 1));
        for (size_t i = 0; i < n; i++)
            labels[i] = m->ss.label >= 0 ? m->ss.label : (int)(i % (size_t)m->ss.num_classes);
    }
    FILE *md = NULL, *csv = NULL;
    char path[4200];
    if (rc == ERR_OK && dist_rank() == 0 && sw->n_axes > 0) {
        rc = fs_mkdir_p(out_dir);
        snprintf(path, sizeof path, "%s/sweep.md", out_dir);
        if (rc == ERR_OK && !(md = fopen(path, "w"))) rc = ERR(ERR_IO, "cannot write %s", path);
        snprintf(path, sizeof path, "%s/sweep.csv", out_dir);
        if (rc == ERR_OK && !(csv = fopen(path, "w"))) rc = ERR(ERR_IO, "cannot write %s", path);
        if (rc == ERR_OK) {
            fprintf(md, "| sampler | steps | eta | guidance | NFE | wall s | %s | precision | recall | spectral dB | class acc |\n"
                        "|---|---|---|---|---|---|---|---|---|---|---|\n", info->metric);
            fprintf(csv, "sampler,steps,eta,guidance,nfe,wall_s,fd,precision,recall,spectral_db,class_acc\n");
        }
    }
    const SamplerConfig base = m->ss.cfg;
    EvalScore *scores = xcalloc(npts, sizeof *scores);
    double *nfes = xcalloc(npts, sizeof *nfes);
    unsigned char *rec = dist_rank() == 0 ? xmalloc(evaluation_record_bytes(&ev) * (n ? n : 1)) : NULL;
    for (size_t p = 0; p < npts && rc == ERR_OK; p++) {
        m->ss.cfg = base;
        size_t q = p;
        for (int i = sw->n_axes - 1; i >= 0; i--) {
            const EvalSweepAxis *ax = &sw->axes[i];
            double v = ax->v[q % (size_t)ax->n];
            q /= (size_t)ax->n;
            if (ax->key == 0) m->ss.cfg.steps = (int)v;
            else if (ax->key == 1) m->ss.cfg.eta = v;
            else m->ss.cfg.guidance = v;
        }
        uint64_t nfe = 0;
        rc = sampler_nfe(&m->ss.cfg, &m->ss.sched, &nfe);
        if (rc != ERR_OK) break;
        if (sched_guide_mode(1, m->ss.cfg.guidance) == GUIDE_BLEND) nfe *= 2;
        ModelWork w = {.m = m, .ev = &ev};
        /* everything a record depends on (dist/evalpart.h) */
        const SamplerConfig *c = &m->ss.cfg;
        EvalKey k;
        char key[65];
        evalkey_init(&k, "model");
        evalkey_str(&k, ev.fingerprint);
        evalkey_str(&k, spec_hex);
        evalkey_add(&k, m->params, sizeof(float) * m->n_params);
        uint64_t cv[] = {(uint64_t)c->kind, (uint64_t)c->steps, (uint64_t)c->spacing,
                         (uint64_t)c->var, (uint64_t)c->clip_x0, (uint64_t)c->resample, c->seed,
                         (uint64_t)(int64_t)m->ss.label, (uint64_t)m->ss.num_classes, n,
                         ev.chunk, evaluation_record_bytes(&ev)};
        double dv[] = {c->eta, c->clip, c->guidance, m->ss.time_scale};
        for (size_t i = 0; i < sizeof cv / sizeof cv[0]; i++) evalkey_u64(&k, cv[i]);
        evalkey_add(&k, dv, sizeof dv);
        evalkey_final(&k, key);
        double t0 = core_now();
        rc = evalpart_run(&part, "the samples' records", key, n, ev.chunk,
                          evaluation_record_bytes(&ev), model_work, &w, rec);
        double wall = core_now() - t0;
        xfree(w.x);
        EvalScore s = {0};
        if (rc == ERR_OK) rc = evaluation_score(&ev, rec, n, labels, &s);
        nfes[p] = (double)nfe;
        if (rc == ERR_OK && dist_rank() == 0) {
            const char *sn = sampler_kind_name(m->ss.cfg.kind);
            fprintf(out, "\n%s, %d steps, eta %g, guidance %g: %llu NFE, %.1f s\n", sn, m->ss.cfg.steps,
                    m->ss.cfg.eta, m->ss.cfg.guidance, (unsigned long long)nfe, wall);
            evalrun_print(out, &ev, &s, a->floor ? &floor_s : NULL);
            if (md) {
                char acc[32] = "-";
                if (s.class_acc >= 0) snprintf(acc, sizeof acc, "%.3f", s.class_acc);
                fprintf(md, "| %s | %d | %g | %g | %llu | %.1f | %.3f | %.3f | %.3f | %.2f | %s |\n", sn,
                        m->ss.cfg.steps, m->ss.cfg.eta, m->ss.cfg.guidance, (unsigned long long)nfe,
                        wall, s.fd, s.precision, s.recall, s.spec_db, acc);
                fprintf(csv, "%s,%d,%g,%g,%llu,%.3f,%.6f,%.6f,%.6f,%.6f,%.6f\n", sn, m->ss.cfg.steps,
                        m->ss.cfg.eta, m->ss.cfg.guidance, (unsigned long long)nfe, wall, s.fd,
                        s.precision, s.recall, s.spec_db, s.class_acc);
                fflush(md);
                fflush(csv);
            }
        }
        scores[p] = s;
    }
    if (rc == ERR_OK && dist_rank() == 0) rc = plot_model(&ev, m, sw, scores, nfes, npts, out_dir, out);
    for (size_t p = 0; p < npts; p++) eval_score_free(&scores[p]);
    xfree(scores);
    xfree(nfes);
    if (md && a->floor && rc == ERR_OK)
        fprintf(md, "| real data (train split) | | | | | | %.3f | %.3f | %.3f | %.2f | |\n", floor_s.fd,
                floor_s.precision, floor_s.recall, floor_s.spec_db);
    if (md) fclose(md);
    if (csv) fclose(csv);
    m->ss.cfg = base;
    evalpart_finish(&part, rc == ERR_OK);
    eval_score_free(&floor_s);
    xfree(rec);
    xfree(labels);
    evaluation_free(&ev);
    return rc;
}
