/* io/runlog.c - progress line, log lines and metrics.jsonl. */
#include "io/runlog.h"

#include <errno.h>
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
        json_object_end(&w);
        TRY(json_end_line(&w, "metrics.jsonl"));
    }
    double eta = r->img_per_s > 0 && r->step > 0
                     ? (r->wall_s / (double)r->step) * (double)(r->steps - r->step)
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
