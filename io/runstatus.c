/* io/runstatus.c - gather and print the status of a run or a sweep (see runstatus.h). */
#include "io/runstatus.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "io/fsutil.h"
#include "io/jobspec.h"
#include "io/json.h"
#include "io/proc.h"
#include "io/submit.h"

#define SLURM_TIMEOUT_S 30.0
#define DIR_MAX 4096 /* run directories */
#define PATH_MAX_ 4400 /* files in them */

typedef struct {
    char dir[DIR_MAX];
    int has_spec;
    char job_name[80];
    long steps, batch;
    char ckpt_dir[PATH_MAX_];
    char output_pattern[PATH_MAX_];

    /* slurm-history.log */
    long job_id;      /* the last submitted job (array job id for a sweep task), -1 none */
    int task;         /* array task, -1 when not an array task */
    int n_starts, last_restart;
    char last_start[32], last_end[256];

    /* Slurm */
    char job_ref[48]; /* "123" or "123_4" */
    char state[48], reason[96], run_time[32], time_limit[32], exit_code[16];
    char log_path[PATH_MAX_];
    int restarts;     /* -1 unknown */
    const char *source; /* where state came from: scontrol, sacct, history, none */
    char note[320];   /* why the state is not known, when it is not */

    /* checkpoints */
    int n_ckpt;
    long ckpt_step;
    char ckpt_path[PATH_MAX_ + 300];

    /* metrics */
    int has_metrics;
    long step;
    double loss, img_per_s, eta_s;

    char *log_tail; /* owned; NULL when no log */
} RunInfo;

/* ---- small text helpers ---------------------------------------------------------------------------- */

static char *read_tail(const char *path, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        if (size > (long)max) fseek(f, size - (long)max, SEEK_SET);
        else fseek(f, 0, SEEK_SET);
    }
    char *s = xmalloc(max + 1);
    size_t n = fread(s, 1, max, f);
    fclose(f);
    s[n] = '\0';
    return s;
}

/* The value of " key=" in a one-line `scontrol show job -o` record (up to the next blank). */
static int kv_get(const char *line, const char *key, char *buf, size_t n)
{
    size_t kl = strlen(key);
    for (const char *p = line; (p = strstr(p, key)) != NULL; p += kl) {
        if ((p != line && p[-1] != ' ') || p[kl] != '=') continue;
        const char *v = p + kl + 1, *e = v;
        while (*e && *e != ' ' && *e != '\n') e++;
        snprintf(buf, n, "%.*s", (int)(e - v), v);
        return 1;
    }
    buf[0] = '\0';
    return 0;
}

/* ---- gathering ------------------------------------------------------------------------------------- */

static void read_spec(RunInfo *ri)
{
    char path[PATH_MAX_ + 16];
    snprintf(path, sizeof path, "%s/job.yaml", ri->dir);
    snprintf(ri->ckpt_dir, sizeof ri->ckpt_dir, "%s/ckpt", ri->dir);
    snprintf(ri->output_pattern, sizeof ri->output_pattern, "%s/slurm-%%j.out", ri->dir);
    ri->steps = -1;
    if (!fs_exists(path)) return;
    JobSpec js;
    if (jobspec_load(&js, path) != ERR_OK) {
        log_warn("%s: %s", path, err_message());
        err_clear();
        return;
    }
    ri->has_spec = 1;
    ri->steps = js.train.steps;
    ri->batch = js.train.batch;
    snprintf(ri->job_name, sizeof ri->job_name, "%s", js.slurm.job_name);
    snprintf(ri->ckpt_dir, sizeof ri->ckpt_dir, "%s", js.checkpoint.dir);
    snprintf(ri->output_pattern, sizeof ri->output_pattern, "%s", js.slurm.output);
    jobspec_free(&js);
}

static void read_history(RunInfo *ri, const char *hist_dir)
{
    char path[PATH_MAX_ + 32];
    snprintf(path, sizeof path, "%s/slurm-history.log", hist_dir);
    char *text = read_tail(path, 1u << 20);
    if (!text) return;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        const char *p;
        if ((p = strstr(line, " submit job=")) != NULL) {
            ri->job_id = strtol(p + 12, NULL, 10);
        } else if ((p = strstr(line, " start job=")) != NULL) {
            ri->n_starts++;
            snprintf(ri->last_start, sizeof ri->last_start, "%.*s", (int)(p - line), line);
            const char *r = strstr(line, " restart=");
            if (r) ri->last_restart = atoi(r + 9);
        } else if ((p = strstr(line, " end job=")) != NULL) {
            snprintf(ri->last_end, sizeof ri->last_end, "%s", line);
        }
    }
    xfree(text);
}

static int accounting_enabled(char *why, size_t n)
{
    const char *argv[] = {"scontrol", "show", "config", NULL};
    ProcResult r;
    if (proc_run(argv, SLURM_TIMEOUT_S, &r) != ERR_OK) {
        err_clear();
        snprintf(why, n, "cannot run scontrol");
        return 0;
    }
    int on = 0;
    const char *p = r.status == 0 ? strstr(r.out, "AccountingStorageType") : NULL;
    if (p) {
        const char *v = strchr(p, '=');
        on = v && !strstr(v, "accounting_storage/none") && strncmp(v, "= (null)", 8) != 0;
        if (!on) snprintf(why, n, "no accounting on this cluster (AccountingStorageType = none)");
    } else {
        snprintf(why, n, "scontrol show config did not answer");
    }
    proc_result_free(&r);
    return on;
}

static void query_slurm(RunInfo *ri)
{
    ri->restarts = -1;
    ri->source = "none";
    if (ri->job_id < 0) {
        snprintf(ri->note, sizeof ri->note, "never submitted with dfm submit (no slurm-history.log)");
        return;
    }
    if (ri->task >= 0)
        snprintf(ri->job_ref, sizeof ri->job_ref, "%ld_%d", ri->job_id, ri->task);
    else
        snprintf(ri->job_ref, sizeof ri->job_ref, "%ld", ri->job_id);

    const char *argv[] = {"scontrol", "-o", "show", "job", ri->job_ref, NULL};
    ProcResult r;
    if (proc_run(argv, SLURM_TIMEOUT_S, &r) != ERR_OK) {
        snprintf(ri->note, sizeof ri->note, "%s", err_message());
        err_clear();
        return;
    }
    if (r.status == 0 && strstr(r.out, "JobState=")) {
        /* A pending array may answer with the meta record of several tasks: take the line of
         * this task when there is one. */
        char *line = r.out, *best = r.out;
        char want[32];
        snprintf(want, sizeof want, "ArrayTaskId=%d ", ri->task);
        for (char *l = strtok(line, "\n"); l; l = strtok(NULL, "\n"))
            if (ri->task < 0 || strstr(l, want)) {
                best = l;
                break;
            }
        char v[64];
        kv_get(best, "JobState", ri->state, sizeof ri->state);
        kv_get(best, "Reason", ri->reason, sizeof ri->reason);
        kv_get(best, "RunTime", ri->run_time, sizeof ri->run_time);
        kv_get(best, "TimeLimit", ri->time_limit, sizeof ri->time_limit);
        kv_get(best, "ExitCode", ri->exit_code, sizeof ri->exit_code);
        kv_get(best, "StdOut", ri->log_path, sizeof ri->log_path);
        if (kv_get(best, "Restarts", v, sizeof v)) ri->restarts = atoi(v);
        ri->source = "scontrol";
        proc_result_free(&r);
        return;
    }
    if (r.status == PROC_NOT_FOUND) {
        snprintf(ri->note, sizeof ri->note, "no Slurm commands on PATH (scontrol not found)");
        proc_result_free(&r);
        return;
    }
    char why[256];
    snprintf(why, sizeof why, "%s", r.n_err ? r.err : "no answer");
    proc_result_free(&r);
    /* The controller has forgotten the job (MinJobAge) or is unreachable: ask the accounting. */
    char acct_why[160];
    if (!accounting_enabled(acct_why, sizeof acct_why)) {
        snprintf(ri->note, sizeof ri->note, "scontrol: %.100s; sacct: %s", why, acct_why);
        ri->source = "history";
        return;
    }
    const char *sa[] = {"sacct", "-n", "-P", "-X", "-j", ri->job_ref, "-o",
                        "State,ExitCode,Elapsed,Timelimit", NULL};
    if (proc_run(sa, SLURM_TIMEOUT_S, &r) != ERR_OK) {
        err_clear();
        ri->source = "history";
        return;
    }
    if (r.status == 0 && r.n_out > 0) {
        char *f[4] = {0};
        char *s = strtok(r.out, "\n");
        for (int i = 0; i < 4 && s; i++) {
            f[i] = s;
            s = strchr(s, '|');
            if (s) *s++ = '\0';
        }
        if (f[0]) snprintf(ri->state, sizeof ri->state, "%s", f[0]);
        if (f[1]) snprintf(ri->exit_code, sizeof ri->exit_code, "%s", f[1]);
        if (f[2]) snprintf(ri->run_time, sizeof ri->run_time, "%s", f[2]);
        if (f[3]) snprintf(ri->time_limit, sizeof ri->time_limit, "%s", f[3]);
        ri->source = "sacct";
    } else {
        snprintf(ri->note, sizeof ri->note, "neither scontrol nor sacct knows job %s", ri->job_ref);
        ri->source = "history";
    }
    proc_result_free(&r);
}

static void find_checkpoint(RunInfo *ri)
{
    ri->ckpt_step = -1;
    DIR *d = opendir(ri->ckpt_dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        if (strncmp(n, "step-", 5) != 0 || !isdigit((unsigned char)n[5])) continue;
        char *end;
        long step = strtol(n + 5, &end, 10);
        if (*end) continue; /* step-N.tmp: a save that did not finish */
        char man[PATH_MAX_ + 300];
        snprintf(man, sizeof man, "%s/%s/manifest.yaml", ri->ckpt_dir, n);
        if (!fs_exists(man)) continue;
        ri->n_ckpt++;
        if (step > ri->ckpt_step) {
            ri->ckpt_step = step;
            snprintf(ri->ckpt_path, sizeof ri->ckpt_path, "%s/%s", ri->ckpt_dir, n);
        }
    }
    closedir(d);
}

static void read_metrics(RunInfo *ri)
{
    char path[PATH_MAX_ + 16];
    snprintf(path, sizeof path, "%s/metrics.jsonl", ri->dir);
    char *text = read_tail(path, 64 * 1024);
    if (!text) return;
    char *last = NULL;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        if (strstr(line, "\"step\":") && strstr(line, "\"loss\":")) last = line; /* not an eval line */
    double v;
    if (last && json_line_num(last, "step", &v)) {
        ri->has_metrics = 1;
        ri->step = (long)v;
        ri->loss = json_line_num(last, "loss", &v) ? v : (double)NAN;
        ri->img_per_s = json_line_num(last, "img_per_s", &v) ? v : (double)NAN;
        ri->eta_s = NAN;
        if (ri->steps > 0 && ri->batch > 0 && ri->img_per_s > 0)
            ri->eta_s = (double)(ri->steps - ri->step) * (double)ri->batch / ri->img_per_s;
    }
    xfree(text);
}

static void read_log(RunInfo *ri, int lines)
{
    if (!ri->log_path[0] && ri->job_id >= 0)
        submit_expand_output(ri->output_pattern, ri->job_id, ri->task >= 0 ? ri->job_id : -1,
                             ri->task, ri->job_name, ri->log_path, sizeof ri->log_path);
    if (!ri->log_path[0] || lines <= 0) return;
    char *text = read_tail(ri->log_path, 16 * 1024);
    if (!text) return;
    size_t n = strlen(text);
    while (n > 0 && text[n - 1] == '\n') text[--n] = '\0';
    const char *p = text + n;
    int k = 0;
    while (p > text && k < lines) {
        p--;
        if (*p == '\n') k++;
    }
    if (*p == '\n') p++;
    ri->log_tail = xstrdup(p);
    xfree(text);
}

static void gather(RunInfo *ri, const char *dir, const char *hist_dir, long array_id, int task,
                   int log_lines)
{
    memset(ri, 0, sizeof *ri);
    snprintf(ri->dir, sizeof ri->dir, "%s", dir);
    ri->job_id = -1;
    ri->task = task;
    read_spec(ri);
    read_history(ri, hist_dir);
    if (array_id >= 0) ri->job_id = array_id;
    query_slurm(ri);
    find_checkpoint(ri);
    read_metrics(ri);
    read_log(ri, log_lines);
}

/* ---- output --------------------------------------------------------------------------------------- */

/* A string value, null when absent or empty. */
static void kv_opt_str(JsonWriter *w, const char *key, const char *s)
{
    json_kv_str(w, key, s && s[0] ? s : NULL);
}

static void print_json(const RunInfo *ri, JsonWriter *w)
{
    json_object_begin(w);
    json_kv_str(w, "run_dir", ri->dir);
    kv_opt_str(w, "job_id", ri->job_ref);
    json_key(w, "slurm");
    json_object_begin(w);
    kv_opt_str(w, "state", ri->state);
    kv_opt_str(w, "reason", ri->reason);
    kv_opt_str(w, "run_time", ri->run_time);
    kv_opt_str(w, "time_limit", ri->time_limit);
    kv_opt_str(w, "exit_code", ri->exit_code);
    json_key(w, "restarts");
    if (ri->restarts >= 0) json_int(w, ri->restarts);
    else if (ri->n_starts > 0) json_int(w, ri->last_restart);
    else json_null(w);
    json_kv_str(w, "source", ri->source);
    kv_opt_str(w, "note", ri->note);
    json_object_end(w);
    json_kv_int(w, "starts", ri->n_starts);
    kv_opt_str(w, "last_start", ri->last_start);
    kv_opt_str(w, "last_end", ri->last_end);
    json_key(w, "checkpoint");
    if (ri->ckpt_step >= 0) {
        json_object_begin(w);
        json_kv_str(w, "path", ri->ckpt_path);
        json_kv_int(w, "step", ri->ckpt_step);
        json_kv_int(w, "count", ri->n_ckpt);
        json_object_end(w);
    } else {
        json_null(w);
    }
    json_key(w, "metrics");
    if (ri->has_metrics) {
        json_object_begin(w);
        json_kv_int(w, "step", ri->step);
        json_key(w, "steps");
        if (ri->steps >= 0) json_int(w, ri->steps);
        else json_null(w);
        json_kv_num(w, "loss", ri->loss);
        json_kv_num(w, "img_per_s", ri->img_per_s);
        json_kv_num(w, "eta_s", ri->eta_s);
        json_object_end(w);
    } else {
        json_null(w);
    }
    json_key(w, "log");
    if (ri->log_path[0]) {
        json_object_begin(w);
        json_kv_str(w, "path", ri->log_path);
        kv_opt_str(w, "tail", ri->log_tail);
        json_object_end(w);
    } else {
        json_null(w);
    }
    json_object_end(w);
}

static void fmt_duration(char *buf, size_t n, double s)
{
    if (!isfinite(s) || s < 0) {
        snprintf(buf, n, "--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

static void restarts_text(const RunInfo *ri, char *buf, size_t n)
{
    if (ri->restarts >= 0) snprintf(buf, n, "%d", ri->restarts);
    else if (ri->n_starts > 0) snprintf(buf, n, "%d (from the history)", ri->last_restart);
    else snprintf(buf, n, "-");
}

static void print_text(const RunInfo *ri, FILE *f)
{
    char rs[64];
    restarts_text(ri, rs, sizeof rs);
    fprintf(f, "run:        %s%s\n", ri->dir,
            ri->has_spec ? "" : " (no job.yaml: not submitted by dfm submit)");
    if (ri->job_ref[0]) {
        if (ri->state[0]) {
            fprintf(f, "slurm job:  %s  %s", ri->job_ref, ri->state);
            if (ri->reason[0] && strcmp(ri->reason, "None") != 0) fprintf(f, " (%s)", ri->reason);
            fprintf(f, "  restarts %s", rs);
            if (ri->run_time[0]) fprintf(f, "  run time %s", ri->run_time);
            if (ri->time_limit[0]) fprintf(f, " of %s", ri->time_limit);
            if (ri->exit_code[0]) fprintf(f, "  exit code %s", ri->exit_code);
            fprintf(f, "  [%s]\n", ri->source);
        } else {
            fprintf(f, "slurm job:  %s  state unknown: %s; restarts %s\n", ri->job_ref, ri->note, rs);
        }
    } else {
        fprintf(f, "slurm job:  none (%s)\n", ri->note);
    }
    if (ri->n_starts > 0) {
        fprintf(f, "starts:     %d, last at %s\n", ri->n_starts, ri->last_start);
        if (ri->last_end[0]) fprintf(f, "last end:   %s\n", ri->last_end);
    }
    if (ri->ckpt_step >= 0)
        fprintf(f, "checkpoint: %s (step %ld; %d checkpoint%s)\n", ri->ckpt_path, ri->ckpt_step,
                ri->n_ckpt, ri->n_ckpt > 1 ? "s" : "");
    else
        fprintf(f, "checkpoint: none in %s\n", ri->ckpt_dir);
    if (ri->has_metrics) {
        char eta[32];
        fmt_duration(eta, sizeof eta, ri->eta_s);
        fprintf(f, "progress:   step %ld", ri->step);
        if (ri->steps > 0) fprintf(f, "/%ld", ri->steps);
        fprintf(f, "  loss %.4f  %.1f img/s  eta %s\n", ri->loss, ri->img_per_s, eta);
    } else {
        fprintf(f, "progress:   no metrics.jsonl yet\n");
    }
    if (ri->log_path[0]) {
        if (ri->log_tail) {
            fprintf(f, "log:        %s\n", ri->log_path);
            const char *p = ri->log_tail;
            while (*p) {
                const char *e = strchr(p, '\n');
                int len = e ? (int)(e - p) : (int)strlen(p);
                fprintf(f, "  | %.*s\n", len, p);
                p += len + (e ? 1 : 0);
            }
        } else {
            fprintf(f, "log:        %s (not there yet)\n", ri->log_path);
        }
    }
}

/* ---- sweeps ---------------------------------------------------------------------------------------- */

typedef struct {
    char **cols; /* header fields */
    int n_cols;
    char ***rows;
    int n_rows;
} Table;

static char **split_tabs(char *line, int *n)
{
    char **f = NULL;
    *n = 0;
    for (char *p = line;;) {
        char *t = strchr(p, '\t');
        if (t) *t = '\0';
        f = xrealloc(f, (size_t)(*n + 1) * sizeof *f);
        f[(*n)++] = xstrdup(p);
        if (!t) break;
        p = t + 1;
    }
    return f;
}

static void table_free(Table *t)
{
    for (int i = 0; i < t->n_cols; i++) xfree(t->cols[i]);
    xfree(t->cols);
    for (int r = 0; r < t->n_rows; r++) {
        for (int i = 0; i < t->n_cols; i++) xfree(t->rows[r][i]);
        xfree(t->rows[r]);
    }
    xfree(t->rows);
}

static int read_points(const char *path, Table *t)
{
    memset(t, 0, sizeof *t);
    char *text = read_tail(path, 8u << 20);
    if (!text) return ERR(ERR_IO, "cannot read %s: %s", path, strerror(errno));
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int n;
        char **f = split_tabs(line, &n);
        if (!t->cols) {
            t->cols = f;
            t->n_cols = n;
            continue;
        }
        if (n != t->n_cols) {
            for (int i = 0; i < n; i++) xfree(f[i]);
            xfree(f);
            xfree(text);
            table_free(t);
            return ERR(ERR_FORMAT, "%s: a row has %d fields, the header %d", path, n, t->n_cols);
        }
        t->rows = xrealloc(t->rows, (size_t)(t->n_rows + 1) * sizeof *t->rows);
        t->rows[t->n_rows++] = f;
    }
    xfree(text);
    if (t->n_cols < 2) {
        table_free(t);
        return ERR(ERR_FORMAT, "%s: expected the columns task, dir, ...", path);
    }
    return ERR_OK;
}

static int print_sweep(const char *dir, const char *points, int json, int log_lines, FILE *out)
{
    Table t;
    TRY(read_points(points, &t));
    RunInfo base;
    memset(&base, 0, sizeof base);
    base.job_id = -1;
    read_history(&base, dir);
    JsonWriter w;
    json_init(&w, out);
    if (json) {
        json_object_begin(&w);
        json_kv_str(&w, "sweep", dir);
        json_key(&w, "array_job_id");
        if (base.job_id >= 0) {
            char id[32];
            snprintf(id, sizeof id, "%ld", base.job_id);
            json_str(&w, id);
        } else {
            json_null(&w);
        }
        json_key(&w, "tasks");
        json_array_begin(&w);
    } else {
        fprintf(out, "sweep:      %s, %d tasks", dir, t.n_rows);
        if (base.job_id >= 0) fprintf(out, ", array job %ld", base.job_id);
        fprintf(out, " (points.tsv)\n\n%-5s", "task");
        for (int c = 2; c < t.n_cols; c++) fprintf(out, " %-12s", t.cols[c]);
        fprintf(out, " %-11s %-8s %-13s %-9s %-10s %s\n", "state", "restarts", "step", "loss",
                "checkpoint", "dir");
    }
    for (int r = 0; r < t.n_rows; r++) {
        RunInfo ri;
        int task = atoi(t.rows[r][0]);
        gather(&ri, t.rows[r][1], t.rows[r][1], base.job_id, task, json ? log_lines : 0);
        if (json) {
            json_object_begin(&w);
            json_kv_int(&w, "task", task);
            json_key(&w, "point");
            json_object_begin(&w);
            for (int c = 2; c < t.n_cols; c++) json_kv_str(&w, t.cols[c], t.rows[r][c]);
            json_object_end(&w);
            json_key(&w, "status");
            print_json(&ri, &w);
            json_object_end(&w);
        } else {
            char rs[64], step[48], loss[32], ck[32];
            restarts_text(&ri, rs, sizeof rs);
            if (ri.has_metrics && ri.steps > 0) snprintf(step, sizeof step, "%ld/%ld", ri.step, ri.steps);
            else if (ri.has_metrics) snprintf(step, sizeof step, "%ld", ri.step);
            else snprintf(step, sizeof step, "-");
            if (ri.has_metrics) snprintf(loss, sizeof loss, "%.4f", ri.loss);
            else snprintf(loss, sizeof loss, "-");
            if (ri.ckpt_step >= 0) snprintf(ck, sizeof ck, "step %ld", ri.ckpt_step);
            else snprintf(ck, sizeof ck, "-");
            fprintf(out, "%-5d", task);
            for (int c = 2; c < t.n_cols; c++) fprintf(out, " %-12s", t.rows[r][c]);
            fprintf(out, " %-11s %-8s %-13s %-9s %-10s %s\n", ri.state[0] ? ri.state : "?", rs, step,
                    loss, ck, ri.dir);
        }
        xfree(ri.log_tail);
    }
    int rc = ERR_OK;
    if (json) {
        json_array_end(&w);
        json_object_end(&w);
        rc = json_end_line(&w, "the status");
    }
    table_free(&t);
    return rc;
}

int runstatus_print(const char *dir, int json, int log_lines, FILE *out)
{
    struct stat st;
    if (stat(dir, &st) != 0) return ERR(ERR_ARG, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return ERR(ERR_ARG, "%s is not a directory (dfm status takes a run directory)", dir);
    char path[PATH_MAX_ + 32];
    snprintf(path, sizeof path, "%s/points.tsv", dir);
    if (fs_exists(path)) {
        TRY(print_sweep(dir, path, json, log_lines, out));
    } else {
        static const char *const known[] = {"job.yaml", "slurm-history.log", "metrics.jsonl", "final.json"};
        int any = 0;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
            snprintf(path, sizeof path, "%s/%s", dir, known[i]);
            any |= fs_exists(path);
        }
        if (!any) {
            ERR(ERR_ARG, "%s is not a run directory: no job.yaml, slurm-history.log or metrics.jsonl", dir);
            err_hint("pass the run.out_dir of a job (dfm submit prints it), e.g. runs/<name>");
            return ERR_ARG;
        }
        RunInfo ri;
        gather(&ri, dir, dir, -1, -1, log_lines);
        if (json) {
            JsonWriter w;
            json_init(&w, out);
            print_json(&ri, &w);
            TRY(json_end_line(&w, "the status"));
        } else {
            print_text(&ri, out);
        }
        xfree(ri.log_tail);
    }
    if (fflush(out) != 0) return ERR(ERR_IO, "cannot write the status: %s", strerror(errno));
    return ERR_OK;
}
