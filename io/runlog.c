/* io/runlog.c - progress line, log lines and metrics.jsonl. */
#include "io/runlog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "io/fsutil.h"
#include "io/json.h"

int runlog_open(RunLog *rl, const char *run_dir, int log_every)
{
    char path[4200];
    memset(rl, 0, sizeof *rl);
    TRY(fs_mkdir_p(run_dir));
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    rl->metrics = fopen(path, "a");
    if (!rl->metrics) return ERR(ERR_IO, "cannot open %s: %s", path, strerror(errno));
    rl->tty = isatty(STDERR_FILENO);
    rl->log_every = log_every > 0 ? log_every : 100;
    return ERR_OK;
}

static void fmt_eta(char *buf, size_t n, double s)
{
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, n, "--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else
        snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

int runlog_record(RunLog *rl, const RunRecord *r)
{
    if (rl->metrics) {
        JsonWriter w;
        json_init(&w, rl->metrics);
        json_object_begin(&w);
        json_kv_int(&w, "step", r->step);
        json_kv_num(&w, "loss", r->loss);
        json_key(&w, "loss_q");
        json_array_begin(&w);
        for (int q = 0; q < 4; q++) json_num(&w, r->loss_q[q]);
        json_array_end(&w);
        json_kv_num(&w, "grad_norm", r->grad_norm);
        json_kv_num(&w, "lr", r->lr);
        json_kv_num(&w, "img_per_s", r->img_per_s);
        json_kv_num(&w, "wall_s", r->wall_s);
        json_kv_int(&w, "nonfinite", r->nonfinite);
        if (r->ckpt_step > 0) {
            json_key(&w, "checkpoint");
            json_object_begin(&w);
            json_kv_int(&w, "step", r->ckpt_step);
            json_kv_num(&w, "stall_s", r->ckpt_stall_s);
            json_kv_num(&w, "save_s", r->ckpt_save_s);
            json_kv_uint(&w, "bytes", r->ckpt_bytes);
            json_object_end(&w);
        }
        json_object_end(&w);
        TRY(json_end_line(&w, "metrics.jsonl"));
    }
    long done_here = r->step - r->first_step;
    double eta = r->img_per_s > 0 && done_here > 0
                     ? (r->wall_s / (double)done_here) * (double)(r->steps - r->step)
                     : -1.0;
    char etas[32];
    fmt_eta(etas, sizeof etas, eta);
    if (rl->tty) {
        double now = core_now();
        if (now - rl->last_draw < 0.2 && r->step != r->steps) return ERR_OK;
        rl->last_draw = now;
        fprintf(stderr, "\r\033[Kstep %ld/%ld  loss %.4f  %.1f img/s  lr %.2e  eta %s", r->step,
                r->steps, r->loss, r->img_per_s, r->lr, etas);
        rl->line_open = 1;
        if (r->step == r->steps) {
            fputc('\n', stderr);
            rl->line_open = 0;
        }
        fflush(stderr);
    } else if (r->step % rl->log_every == 0 || r->step == r->steps || r->step == 1) {
        log_info("step %ld/%ld  loss %.4f  grad-norm %.3g  %.1f img/s  lr %.2e  eta %s", r->step,
                 r->steps, r->loss, r->grad_norm, r->img_per_s, r->lr, etas);
    }
    return ERR_OK;
}

void runlog_note(RunLog *rl, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (rl->line_open) {
        fputc('\n', stderr);
        rl->line_open = 0;
    }
    log_info("%s", line);
}

void runlog_close(RunLog *rl)
{
    if (rl->line_open) fputc('\n', stderr);
    if (rl->metrics) fclose(rl->metrics);
    memset(rl, 0, sizeof *rl);
}

int runlog_trim(const char *run_dir, long keep_step, long *dropped)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    if (dropped) *dropped = 0;
    FILE *in = fopen(path, "rb");
    if (!in) return errno == ENOENT ? ERR_OK : ERR(ERR_IO, "cannot open %s: %s", path, strerror(errno));
    AtomicFile af;
    int rc = fs_atomic_open(&af, path);
    if (rc != ERR_OK) {
        fclose(in);
        return rc;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long drop = 0;
    while ((len = getline(&line, &cap, in)) > 0) {
        long step = -1;
        /* complete lines only: a crash can leave the last one without its newline */
        int whole = line[len - 1] == '\n' && len >= 2 && line[len - 2] == '}';
        if (whole && sscanf(line, "{\"step\":%ld", &step) == 1 && step >= 1 && step <= keep_step)
            fwrite(line, 1, (size_t)len, af.f);
        else
            drop++;
    }
    free(line);
    int bad = ferror(in);
    fclose(in);
    if (bad) {
        fs_atomic_abort(&af);
        return ERR(ERR_IO, "reading %s failed", path);
    }
    if (dropped) *dropped = drop;
    return fs_atomic_commit(&af);
}
