/* dist/runfiles.c - the files a training run writes. See dist/runfiles.h. */
#include "dist/runfiles.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/mem.h"
#include "io/fsutil.h"
#include "io/json.h"
#include "io/weights.h"

/* Before step 1 (rank 0, which writes every output): each output can be created, so a typo in
 * run.out_dir or sample.out costs seconds, not the run. Directories are created as needed. */
static int check_writable(const char *key, const char *path)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (fs_mkdir_p(dir) != ERR_OK) return err_context("%s", key);
    }
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return ERR(ERR_IO, "%s: %s is a directory, not a file", key, path);
    AtomicFile af;
    if (fs_atomic_open(&af, path) != ERR_OK) return err_context("%s", key);
    fs_atomic_abort(&af);
    return ERR_OK;
}

int runfiles_check(const JobSpec *js)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/weights.bin", js->run.out_dir);
    TRY(check_writable("run.out_dir", path));
    return check_writable("sample.out", js->sample.out);
}

int runfiles_weights(Trainer *tr)
{
    char path[4200];
    size_t nt;
    const ParamEntry *pe = net_param_table(tr->net, &nt);
    WeightsTensor *wt = xcalloc(nt, sizeof *wt);
    for (size_t i = 0; i < nt; i++) {
        snprintf(wt[i].name, sizeof wt[i].name, "%s", pe[i].name);
        wt[i].ndim = pe[i].ndim;
        memcpy(wt[i].shape, pe[i].shape, sizeof wt[i].shape);
        wt[i].offset = pe[i].offset;
        wt[i].count = pe[i].count;
    }
    snprintf(path, sizeof path, "%s/weights.bin", tr->js->run.out_dir);
    int rc = weights_write(path, wt, nt, net_params(tr->net), tr->opt.ema, tr->n);
    xfree(wt);
    return rc;
}

int runfiles_final(Trainer *tr, const TrainResult *res)
{
    const JobSpec *js = tr->js;
    char path[4200];
    int rc;
    AtomicFile af;
    snprintf(path, sizeof path, "%s/final.json", js->run.out_dir);
    TRY(fs_atomic_open(&af, path));
    ReducerStats rs;
    reducer_stats(tr->red, &rs);
    JsonWriter w;
    json_init(&w, af.f);
    json_object_begin(&w);
    json_kv_int(&w, "steps", res->steps_done);
    json_kv_int(&w, "ranks", tr->size);
    json_kv_int(&w, "threads", tr->threads);
    json_kv_uint(&w, "params", tr->n);
    json_kv_num(&w, "loss", res->last_loss);
    json_kv_int(&w, "nonfinite", res->nonfinite);
    json_kv_num(&w, "img_per_s", res->img_per_s);
    json_kv_hex64(&w, "param_hash", res->param_hash);
    json_kv_hex64(&w, "ema_hash", res->ema_hash);
    json_kv_bool(&w, "bitwise_rank_invariant", reducer_bitwise(tr->red));
    json_kv_num(&w, "comm_s_per_step", rs.steps ? rs.comm_s / (double)rs.steps : 0.0);
    json_kv_uint(&w, "buckets", rs.buckets);
    json_kv_uint(&w, "buckets_started_in_backward", rs.buckets_early);
    if (js->data.dataset == JOB_DATA_TOY2D) {
        json_kv_num(&w, "swd", res->swd);
        json_kv_num(&w, "swd_floor", res->swd_floor);
        json_kv_num(&w, "swd_ratio", res->swd / res->swd_floor);
    }
    json_object_end(&w);
    rc = json_end_line(&w, path);
    if (rc != ERR_OK) {
        fs_atomic_abort(&af);
        return rc;
    }
    return fs_atomic_commit(&af);
}

/* Samples 0..count-1 from the EMA weights (or the live ones), written by rank 0: progress grids
 * to <out_dir>/samples.png, the final ones to sample.out (toy2d with a .csv sample.out: also a
 * scatter plot to <out_dir>/samples.png). */
int runfiles_samples(Trainer *tr, TrainResult *res, int final)
{
    const JobSpec *js = tr->js;
    size_t count = (size_t)(final ? js->sample.count : js->train.sample_count);
    float *x = xmalloc(sizeof(float) * count * tr->D);
    const float *params = js->sample.use_ema && tr->opt.ema ? tr->opt.ema : NULL;
    int rc = sample_draw_range(&tr->smp, params, 0, count, x);
    if (rc == ERR_OK && final && js->data.dataset == JOB_DATA_TOY2D)
        rc = sample_toy_distance(js, x, count, &res->swd, &res->swd_floor);
    if (rc == ERR_OK && tr->rank == 0) {
        const char *out = js->sample.out;
        size_t L = strlen(out);
        int csv = js->data.dataset == JOB_DATA_TOY2D && L > 4 && !strcmp(out + L - 4, ".csv");
        char png[4200];
        snprintf(png, sizeof png, "%s/samples.png", js->run.out_dir);
        if (final) rc = sample_write(js, out, x, count);
        if (rc == ERR_OK && (!final || csv)) rc = sample_write(js, png, x, count);
    }
    xfree(x);
    return rc;
}

void runfiles_report(Trainer *tr, const TrainResult *res)
{
    const JobSpec *js = tr->js;
    runlog_note(&tr->rl, "done: %ld step%s in %.1f min, final loss %.4f, %.1f img/s",
                res->steps_done, res->steps_done == 1 ? "" : "s", res->wall_s / 60.0,
                res->last_loss, res->img_per_s);
    runlog_note(&tr->rl, "samples: %s", js->sample.out);
    runlog_note(&tr->rl, "metrics: %s/metrics.jsonl (one JSON line per step)", js->run.out_dir);
    runlog_note(&tr->rl, "weights: %s/weights.bin (summary in final.json)", js->run.out_dir);
    if (isfinite(res->swd))
        runlog_note(&tr->rl, "sliced Wasserstein distance to held-out data %.4f (data-to-data "
                    "floor %.4f, ratio %.2f)", res->swd, res->swd_floor, res->swd / res->swd_floor);
}

int runfiles_spec(const JobSpec *js)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/job.yaml", js->run.out_dir);
    AtomicFile af;
    TRY(fs_atomic_open(&af, path));
    int rc = jobspec_emit(js, af.f);
    if (rc != ERR_OK) {
        fs_atomic_abort(&af);
        return rc;
    }
    return fs_atomic_commit(&af);
}
