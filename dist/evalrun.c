/* dist/evalrun.c - `dfm eval` on a .npy of samples. */
#include "dist/evalrun.h"

#include <math.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "dist/coord.h"
#include "dist/dist.h"
#include "io/npy.h"

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
    evaluation_records(w->ev, w->x + first * w->ev->C * w->ev->H * w->ev->W, count, out);
    return ERR_OK;
}

int evalrun_npy(const EvalRunArgs *a, FILE *out)
{
    const EvaluatorInfo *info = evaluator_find(a->evaluator);
    if (!info) return err_code();
    Evaluation ev;
    int rc = evaluation_init(&ev, info, a->data_dir, a->weights, a->n_ref);
    if (rc != ERR_OK) {
        evaluation_free(&ev);
        return rc;
    }
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
        rc = coord_run(n, ev.chunk, evaluation_record_bytes(&ev), npy_work, &w, rec, NULL);
    }
    if (rc == ERR_OK) rc = evaluation_score(&ev, rec, n, labels, &s);
    if (rc == ERR_OK && a->floor) rc = evaluation_floor(&ev, n, &f);
    if (rc == ERR_OK && dist_rank() == 0) evalrun_print(out, &ev, &s, a->floor ? &f : NULL);
    eval_score_free(&s);
    eval_score_free(&f);
    xfree(rec);
    xfree(x);
    xfree(lab);
    xfree(labels);
    evaluation_free(&ev);
    return rc;
}
