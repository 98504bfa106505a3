/* dist/evaltrain.c - periodic evaluation during training (see dist/evaltrain.h). */
#include "dist/evaltrain.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "dist/coord.h"
#include "dist/dist.h"
#include "dist/evaluate.h"
#include "dist/sample.h"
#include "io/json.h"

struct EvalTrain {
    const JobSpec *js;
    int image;              /* 1: evaluator scores; 0: toy2d sliced Wasserstein */
    Evaluation ev;
    SampleSetup ss;         /* borrows the trainer's network */
    size_t n, D, chunk;
    int *labels;            /* (n) intended classes, or NULL */
    float *x;               /* scratch of one chunk of samples */
    size_t xcap;
    /* rank 0: the scoring in flight */
    unsigned char *rec, *floor_rec; /* records (image) or points (toy2d), n items each */
    pthread_t th;
    int busy;
    atomic_int done;
    long step;
    double t_sample, t_score;
    int have_floor;
    EvalScore s, floor;
    double swd, swd_floor;
    int rc;
    char err[512];
};

static size_t item_bytes(const EvalTrain *et)
{
    return et->image ? evaluation_record_bytes(&et->ev) : sizeof(float) * et->D;
}

static int work(void *ctx, uint64_t first, size_t count, void *out)
{
    EvalTrain *et = ctx;
    if (count > et->xcap) {
        et->x = xrealloc(et->x, sizeof(float) * count * et->D);
        et->xcap = count;
    }
    uint64_t *idx = xmalloc(sizeof(uint64_t) * count);
    for (size_t i = 0; i < count; i++) idx[i] = first + i;
    int rc = sample_draw_local(&et->ss, NULL, idx, count, et->image ? et->x : out);
    xfree(idx);
    if (rc == ERR_OK && et->image) evaluation_records(&et->ev, et->x, count, out);
    return rc;
}

/* The scoring thread (rank 0; no MPI). */
static void *score_main(void *arg)
{
    EvalTrain *et = arg;
    double t0 = core_now();
    int rc = ERR_OK;
    if (et->image) {
        if (!et->have_floor) {
            rc = evaluation_score(&et->ev, et->floor_rec, et->n, NULL, &et->floor);
            et->have_floor = rc == ERR_OK;
        }
        if (rc == ERR_OK) rc = evaluation_score(&et->ev, et->rec, et->n, et->labels, &et->s);
    } else {
        rc = sample_toy_distance(et->js, (const float *)(const void *)et->rec, et->n, &et->swd,
                                 &et->swd_floor);
    }
    if (rc != ERR_OK) snprintf(et->err, sizeof et->err, "%s", err_message());
    et->rc = rc;
    et->t_score = core_now() - t0;
    atomic_store(&et->done, 1);
    return NULL;
}

/* Rank 0: join a finished (or, with wait, any) scoring and append its line. */
static int collect(EvalTrain *et, Trainer *tr, int wait)
{
    if (!et->busy || (!wait && !atomic_load(&et->done))) return ERR_OK;
    pthread_join(et->th, NULL);
    et->busy = 0;
    if (et->rc != ERR_OK)
        return ERR(et->rc, "evaluation at step %ld: %s", et->step, et->err);
    JsonWriter w;
    json_init(&w, tr->rl.metrics);
    json_object_begin(&w);
    json_kv_int(&w, "step", et->step);
    json_key(&w, "eval");
    json_object_begin(&w);
    json_kv_int(&w, "n", (long long)et->n);
    if (et->image) {
        const char *m = et->ev.info->metric;
        char key[64];
        snprintf(key, sizeof key, "%s", m);
        for (char *c = key; *c; c++) *c = *c == '-' ? '_' : (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
        json_kv_num(&w, key, et->s.fd);
        strncat(key, "_floor", sizeof key - strlen(key) - 1);
        json_kv_num(&w, key, et->floor.fd);
        json_kv_num(&w, "precision", et->s.precision);
        json_kv_num(&w, "precision_floor", et->floor.precision);
        json_kv_num(&w, "recall", et->s.recall);
        json_kv_num(&w, "recall_floor", et->floor.recall);
        json_kv_num(&w, "spectral_db", et->s.spec_db);
        json_kv_num(&w, "spectral_db_floor", et->floor.spec_db);
        json_kv_num(&w, "class_hist_tv", et->s.hist_tv);
        if (et->s.class_acc >= 0) json_kv_num(&w, "class_acc", et->s.class_acc);
        json_kv_int(&w, "ref", (long long)et->ev.n_ref);
    } else {
        json_kv_num(&w, "swd", et->swd);
        json_kv_num(&w, "swd_floor", et->swd_floor);
    }
    json_kv_num(&w, "sample_s", et->t_sample);
    json_kv_num(&w, "score_s", et->t_score);
    json_object_end(&w);
    json_object_end(&w);
    TRY(json_end_line(&w, "metrics.jsonl"));
    if (et->image)
        runlog_note(&tr->rl, "eval at step %ld: %s %.3f (floor %.3f), %zu samples", et->step,
                    et->ev.info->metric, et->s.fd, et->floor.fd, et->n);
    else
        runlog_note(&tr->rl, "eval at step %ld: swd %.4f (floor %.4f), %zu samples", et->step,
                    et->swd, et->swd_floor, et->n);
    eval_score_free(&et->s);
    return ERR_OK;
}

/* Collective set-up at the first evaluation. */
static int setup(EvalTrain **out, Trainer *tr)
{
    const JobSpec *js = tr->js;
    EvalTrain *et = xcalloc(1, sizeof *et);
    *out = et;
    et->js = js;
    et->image = js->data.dataset != JOB_DATA_TOY2D;
    et->n = (size_t)js->eval.count;
    et->chunk = (size_t)js->eval.batch;
    TRY(sample_setup_init(&et->ss, js, tr->net));
    et->ss.batch = (size_t)js->eval.batch;
    et->D = et->ss.D;
    if (et->ss.num_classes > 0) {
        et->labels = xmalloc(sizeof(int) * et->n);
        for (size_t i = 0; i < et->n; i++)
            et->labels[i] = et->ss.label >= 0 ? et->ss.label : (int)(i % (size_t)et->ss.num_classes);
    }
    if (et->image) {
        const EvaluatorInfo *info = evaluator_find(jobspec_data_name(js));
        if (!info) return err_code();
        TRY(evaluation_init(&et->ev, info, js->data.dir, NULL, (size_t)js->eval.ref));
        et->ev.chunk = et->chunk;
        if (et->D != et->ev.C * et->ev.H * et->ev.W)
            return ERR(ERR_ARG, "the model draws %zu values per sample, the %s classifier takes "
                       "%zux%zux%zu images", et->D, info->metric, et->ev.C, et->ev.H, et->ev.W);
        /* the reference and the floor's records, once, over the ranks */
        TRY(evaluation_prepare(&et->ev));
        if (dist_rank() == 0) et->floor_rec = xmalloc(item_bytes(et) * et->n);
        TRY(evaluation_dataset_records(&et->ev, 0, et->n, et->floor_rec));
    }
    if (dist_rank() == 0) et->rec = xmalloc(item_bytes(et) * et->n);
    return ERR_OK;
}

int evaltrain_boundary(EvalTrain **pet, Trainer *tr)
{
    const JobSpec *js = tr->js;
    if (js->eval.every <= 0) return ERR_OK;
    /* set up at the first boundary, so a missing evaluator or dataset stops the run at once */
    if (!*pet) TRY(setup(pet, tr));
    if (tr->rank == 0) TRY(collect(*pet, tr, 0));
    long step = tr->ctr.step;
    if (step % js->eval.every != 0) return ERR_OK;
    EvalTrain *et = *pet;
    if (tr->rank == 0) TRY(collect(et, tr, 1)); /* the previous one, before reusing its buffers */
    /* sample with the weights samples are drawn with: swap them into the network */
    const float *params = js->sample.use_ema && tr->opt.ema ? tr->opt.ema : NULL;
    float *p = net_params(tr->net);
    size_t n = net_num_params(tr->net);
    if (params) {
        if (!et->ss.saved) et->ss.saved = xalloc_aligned(sizeof(float) * n);
        memcpy(et->ss.saved, p, sizeof(float) * n);
        memcpy(p, params, sizeof(float) * n);
    }
    double t0 = core_now();
    int rc = coord_run(et->n, et->chunk, item_bytes(et), work, et, et->rec, NULL);
    if (params) memcpy(p, et->ss.saved, sizeof(float) * n);
    TRY(rc);
    if (tr->rank == 0) {
        et->step = step;
        et->t_sample = core_now() - t0;
        atomic_store(&et->done, 0);
        et->rc = ERR_OK;
        if (pthread_create(&et->th, NULL, score_main, et) != 0)
            return ERR(ERR_STATE, "cannot start the evaluation's scoring thread");
        et->busy = 1;
    }
    return ERR_OK;
}

int evaltrain_end(EvalTrain **pet, Trainer *tr)
{
    EvalTrain *et = *pet;
    if (!et) return ERR_OK;
    int rc = tr->rank == 0 ? collect(et, tr, 1) : ERR_OK;
    if (et->busy) pthread_join(et->th, NULL);
    sample_setup_free(&et->ss);
    evaluation_free(&et->ev);
    eval_score_free(&et->s);
    eval_score_free(&et->floor);
    xfree(et->labels);
    xfree(et->x);
    xfree(et->rec);
    xfree(et->floor_rec);
    xfree(et);
    *pet = NULL;
    return rc;
}
