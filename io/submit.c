/* io/submit.c - render, record and submit a batch job (see submit.h). */
#include "io/submit.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "io/fsutil.h"
#include "io/proc.h"
#include "io/sbatch.h"

#define SBATCH_TIMEOUT_S 60.0
#define SQUEUE_TIMEOUT_S 30.0

/* ---- sweeps ---------------------------------------------------------------------------------------- */

typedef struct {
    char *key;
    char **values;
    int n;
} Sweep;

static void sweeps_free(Sweep *sw, int n)
{
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < sw[i].n; k++) xfree(sw[i].values[k]);
        xfree(sw[i].values);
        xfree(sw[i].key);
    }
    xfree(sw);
}

static int sweep_parse(const char *arg, Sweep *sw)
{
    memset(sw, 0, sizeof *sw);
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return ERR(ERR_ARG, "--sweep %s: expected KEY=V1,V2,... (e.g. train.lr=1e-4,2e-4)", arg);
    sw->key = xmalloc((size_t)(eq - arg) + 1);
    memcpy(sw->key, arg, (size_t)(eq - arg));
    sw->key[eq - arg] = '\0';
    if (!strncmp(sw->key, "slurm.", 6) || !strcmp(sw->key, "run.out_dir"))
        return ERR(ERR_ARG, "--sweep %s: %s cannot vary across the tasks of one array job", arg,
                   sw->key);
    const char *p = eq + 1;
    for (;;) {
        const char *q = p;
        int depth = 0;
        while (*q && !(*q == ',' && depth == 0)) {
            if (*q == '[') depth++;
            if (*q == ']' && depth > 0) depth--;
            q++;
        }
        if (q == p) return ERR(ERR_ARG, "--sweep %s: empty value", arg);
        sw->values = xrealloc(sw->values, (size_t)(sw->n + 1) * sizeof *sw->values);
        char *v = xmalloc((size_t)(q - p) + 1);
        memcpy(v, p, (size_t)(q - p));
        v[q - p] = '\0';
        sw->values[sw->n++] = v;
        if (!*q) break;
        p = q + 1;
    }
    return ERR_OK;
}

/* YAML single-quoted scalar of s (for --set style assignments of paths). */
static char *yaml_quote(const char *s)
{
    size_t n = strlen(s), k = 0;
    char *q = xmalloc(2 * n + 3);
    q[k++] = '\'';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\'') q[k++] = '\'';
        q[k++] = s[i];
    }
    q[k++] = '\'';
    q[k] = '\0';
    return q;
}

static int set_path(JobSpec *js, const char *key, const char *path)
{
    char *q = yaml_quote(path);
    size_t n = strlen(key) + strlen(q) + 2;
    char *a = xmalloc(n);
    snprintf(a, n, "%s=%s", key, q);
    int rc = jobspec_set(js, a);
    xfree(a);
    xfree(q);
    return rc;
}

/* ---- small helpers ----------------------------------------------------------------------------------- */

static void now_iso(char *buf, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int write_text(const char *path, const char *text)
{
    AtomicFile af;
    TRY(fs_atomic_open(&af, path));
    if (fputs(text, af.f) == EOF) {
        fs_atomic_abort(&af);
        return ERR(ERR_IO, "writing %s: %s", path, strerror(errno));
    }
    return fs_atomic_commit(&af);
}

static int write_spec(const char *path, const JobSpec *js)
{
    AtomicFile af;
    TRY(fs_atomic_open(&af, path));
    int rc = jobspec_emit(js, af.f);
    if (rc != ERR_OK) {
        fs_atomic_abort(&af);
        return err_context("writing %s", path);
    }
    return fs_atomic_commit(&af);
}

static int append_line(const char *path, const char *line)
{
    FILE *f = fopen(path, "a");
    if (!f) return ERR(ERR_IO, "cannot open %s: %s", path, strerror(errno));
    int bad = fprintf(f, "%s\n", line) < 0;
    if (fclose(f) != 0) bad = 1;
    if (bad) return ERR(ERR_IO, "writing %s: %s", path, strerror(errno));
    return ERR_OK;
}

static char *read_small(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    char *s = xmalloc(cap);
    size_t got;
    while ((got = fread(s + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (len + 1 >= cap) {
            if (cap >= (16u << 20)) break;
            cap *= 2;
            s = xrealloc(s, cap);
        }
    }
    fclose(f);
    s[len] = '\0';
    return s;
}

void submit_expand_output(const char *pattern, long job_id, long array_id, int task,
                          const char *job_name, char *buf, size_t n)
{
    size_t o = 0;
    const char *user = NULL;
    for (const char *p = pattern; *p && o + 1 < n; p++) {
        if (*p != '%' || !p[1]) {
            buf[o++] = *p;
            continue;
        }
        const char *q = p + 1;
        int width = 0;
        while (isdigit((unsigned char)*q)) width = width * 10 + (*q++ - '0');
        if (width > 10) width = 10;
        char tmp[256];
        tmp[0] = '\0';
        switch (*q) {
        case '%': snprintf(tmp, sizeof tmp, "%%"); break;
        case 'j':
        case 'J': snprintf(tmp, sizeof tmp, "%0*ld", width, job_id); break;
        case 'A': snprintf(tmp, sizeof tmp, "%0*ld", width, array_id >= 0 ? array_id : job_id); break;
        case 'a':
            if (array_id >= 0)
                snprintf(tmp, sizeof tmp, "%0*d", width, task);
            else
                snprintf(tmp, sizeof tmp, "4294967294");
            break;
        case 'x': snprintf(tmp, sizeof tmp, "%s", job_name); break;
        case 'u':
            if (!user) {
                struct passwd *pw = getpwuid(getuid());
                user = pw ? pw->pw_name : "unknown";
            }
            snprintf(tmp, sizeof tmp, "%s", user);
            break;
        default: /* not known here: keep it */
            snprintf(tmp, sizeof tmp, "%.*s", (int)(q - p + 1), p);
            break;
        }
        for (const char *t = tmp; *t && o + 1 < n; t++) buf[o++] = *t;
        p = *q ? q : q - 1;
    }
    buf[o] = '\0';
}

/* The job id of the last "submit" line of a history file, or -1. */
static long last_submitted(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/slurm-history.log", dir);
    char *text = read_small(path);
    if (!text) return -1;
    long id = -1;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        const char *p = strstr(line, " submit job=");
        if (p) id = strtol(p + 12, NULL, 10);
    }
    xfree(text);
    return id;
}

/* ERR_STATE when job `id` is still known to squeue as pending or running. */
static int refuse_if_active(const char *dir, long id)
{
    if (id < 0) return ERR_OK;
    char ids[32];
    snprintf(ids, sizeof ids, "%ld", id);
    const char *argv[] = {"squeue", "-h", "-j", ids, "-o", "%i %T", NULL};
    ProcResult r;
    TRY(proc_run(argv, SQUEUE_TIMEOUT_S, &r));
    int rc = ERR_OK;
    if (r.status == 0) {
        for (char *line = strtok(r.out, "\n"); line; line = strtok(NULL, "\n")) {
            if (strstr(line, "PENDING") || strstr(line, "RUNNING") || strstr(line, "REQUEUE") ||
                strstr(line, "SUSPENDED") || strstr(line, "CONFIGURING") || strstr(line, "COMPLETING")) {
                rc = ERR(ERR_STATE, "%s: job %ld, submitted earlier for this run directory, is still "
                         "queued or running (%s)", dir, id, line);
                err_hint("wait for it (dfm status %s) or cancel it (scancel %ld) first: two jobs "
                         "must not train into one run directory", dir, id);
                break;
            }
        }
    } else {
        char why[512];
        proc_describe(&r, "squeue", SQUEUE_TIMEOUT_S, why, sizeof why);
        log_debug("cannot check whether job %ld is still active: %s", id, why);
    }
    proc_result_free(&r);
    return rc;
}

/* ---- submit ------------------------------------------------------------------------------------------ */

typedef struct {
    JobSpec *pts;
    char **dirs;
    int n;
    Sweep *sw;
    int n_sw;
    int width; /* digits of the point directories */
} Points;

static void points_free(Points *p)
{
    for (int i = 0; i < p->n; i++) {
        jobspec_free(&p->pts[i]);
        xfree(p->dirs[i]);
    }
    xfree(p->pts);
    xfree(p->dirs);
    sweeps_free(p->sw, p->n_sw);
    memset(p, 0, sizeof *p);
}

static int make_points(const JobSpec *js, const SubmitOptions *o, Points *p)
{
    memset(p, 0, sizeof *p);
    p->sw = xcalloc((size_t)(o->n_sweeps > 0 ? o->n_sweeps : 1), sizeof *p->sw);
    long total = 1;
    for (int i = 0; i < o->n_sweeps; i++) {
        p->n_sw++;
        TRY(sweep_parse(o->sweeps[i], &p->sw[i]));
        for (int k = 0; k < i; k++)
            if (!strcmp(p->sw[k].key, p->sw[i].key))
                return ERR(ERR_ARG, "--sweep %s: %s is swept twice", o->sweeps[i], p->sw[i].key);
        total *= p->sw[i].n;
        if (total > SUBMIT_MAX_POINTS)
            return ERR(ERR_ARG, "the sweep has more than %d points", SUBMIT_MAX_POINTS);
    }
    p->pts = xcalloc((size_t)total, sizeof *p->pts);
    p->dirs = xcalloc((size_t)total, sizeof *p->dirs);
    p->width = 3;
    for (long t = total - 1; t >= 1000; t /= 10) p->width++;
    for (long i = 0; i < total; i++) {
        JobSpec *pt = &p->pts[i];
        jobspec_copy(pt, js);
        p->n++;
        if (o->n_sweeps == 0) {
            p->dirs[i] = xstrdup(js->run.out_dir);
            break;
        }
        long rest = i;
        for (int k = p->n_sw - 1; k >= 0; k--) {
            const Sweep *s = &p->sw[k];
            const char *v = s->values[rest % s->n];
            rest /= s->n;
            size_t len = strlen(s->key) + strlen(v) + 2;
            char *a = xmalloc(len);
            snprintf(a, len, "%s=%s", s->key, v);
            int rc = jobspec_set(pt, a);
            xfree(a);
            if (rc != ERR_OK) return err_context("sweep point %ld", i);
        }
        char dir[4200], out[4300];
        snprintf(dir, sizeof dir, "%s/p%0*ld", js->run.out_dir, p->width, i);
        snprintf(out, sizeof out, "%s/slurm-%%A_%%a.out", dir);
        p->dirs[i] = xstrdup(dir);
        TRY(set_path(pt, "run.out_dir", dir));
        TRY(set_path(pt, "slurm.output", out));
    }
    return ERR_OK;
}

static int write_points_table(const char *path, const Points *p)
{
    size_t cap = 256, len = 0;
    char *s = xmalloc(cap);
    s[0] = '\0';
#define ADD(...)                                                                                 \
    do {                                                                                         \
        int need_ = snprintf(NULL, 0, __VA_ARGS__);                                              \
        while (len + (size_t)need_ + 1 > cap) s = xrealloc(s, cap *= 2);                         \
        snprintf(s + len, cap - len, __VA_ARGS__);                                               \
        len += (size_t)need_;                                                                    \
    } while (0)
    ADD("task\tdir");
    for (int k = 0; k < p->n_sw; k++) ADD("\t%s", p->sw[k].key);
    ADD("\n");
    for (int i = 0; i < p->n; i++) {
        ADD("%d\t%s", i, p->dirs[i]);
        long rest = i;
        const char *vals[64];
        for (int k = p->n_sw - 1; k >= 0; k--) {
            vals[k] = p->sw[k].values[rest % p->sw[k].n];
            rest /= p->sw[k].n;
        }
        for (int k = 0; k < p->n_sw; k++) ADD("\t%s", vals[k]);
        ADD("\n");
    }
#undef ADD
    int rc = write_text(path, s);
    xfree(s);
    return rc;
}

int submit_job(const JobSpec *js, const SubmitOptions *o, FILE *out)
{
    if (o->n_sweeps > 64) return ERR(ERR_ARG, "at most 64 --sweep keys");
    Points p;
    char *tmpl = NULL, *script = NULL;
    int rc = make_points(js, o, &p);
    if (rc != ERR_OK) goto done;

    int warnings = 0;
    rc = sbatch_check(js, o->spec_path, &warnings);
    for (int i = 0; rc == ERR_OK && o->n_sweeps > 0 && i < p.n; i++) {
        char what[4400];
        snprintf(what, sizeof what, "%s (sweep point %d, %s)", o->spec_path, i, p.dirs[i]);
        rc = sbatch_check(&p.pts[i], what, NULL);
    }
    if (rc != ERR_OK) goto done;

    if (o->template_path) {
        tmpl = read_small(o->template_path);
        if (!tmpl) {
            rc = ERR(ERR_IO, "cannot read the template %s: %s", o->template_path, strerror(errno));
            goto done;
        }
    }
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) {
        rc = ERR(ERR_IO, "cannot get the current directory: %s", strerror(errno));
        goto done;
    }
    char array_out[4400];
    snprintf(array_out, sizeof array_out, "%s/p%%%da/slurm-%%A_%%a.out", js->run.out_dir, p.width);
    char self[4096];
    const char *dfm = o->dfm_path;
    if (!dfm) {
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0) {
            rc = ERR(ERR_IO, "cannot find the dfm binary (/proc/self/exe): %s", strerror(errno));
            goto done;
        }
        self[n] = '\0';
        dfm = self;
    }
    SbatchJob job = {dfm, cwd, o->spec_path, o->version, o->commit,
                     (const char *const *)p.dirs, p.n, o->n_sweeps > 0 ? array_out : NULL};
    rc = sbatch_render(js, &job, tmpl, o->template_path, &script);
    if (rc != ERR_OK) goto done;

    if (o->dry_run) {
        if (fputs(script, out) == EOF || fflush(out) != 0)
            rc = ERR(ERR_IO, "cannot write the script: %s", strerror(errno));
        goto done;
    }

    const char *base = js->run.out_dir;
    rc = refuse_if_active(base, last_submitted(base));
    if (rc != ERR_OK) goto done;

    /* Everything on record before sbatch sees it. */
    char path[4400];
    rc = fs_mkdir_p(base);
    for (int i = 0; rc == ERR_OK && i < p.n; i++) {
        rc = fs_mkdir_p(p.dirs[i]);
        snprintf(path, sizeof path, "%s/job.yaml", p.dirs[i]);
        if (rc == ERR_OK) rc = write_spec(path, &p.pts[i]);
    }
    if (rc == ERR_OK && o->n_sweeps > 0) {
        snprintf(path, sizeof path, "%s/points.tsv", base);
        rc = write_points_table(path, &p);
    }
    char script_path[4400];
    snprintf(script_path, sizeof script_path, "%s/job.sbatch", base);
    if (rc == ERR_OK) rc = write_text(script_path, script);
    if (rc != ERR_OK) goto done;

    const char *argv[] = {"sbatch", "--parsable", script_path, NULL};
    ProcResult r;
    rc = proc_run(argv, SBATCH_TIMEOUT_S, &r);
    if (rc != ERR_OK) goto done;
    long id = -1;
    if (r.status == 0 && isdigit((unsigned char)r.out[0])) id = strtol(r.out, NULL, 10);
    if (id < 0) {
        char why[2048];
        proc_describe(&r, "sbatch", SBATCH_TIMEOUT_S, why, sizeof why);
        if (r.status == 0) snprintf(why, sizeof why, "sbatch printed no job id: '%.200s'", r.out);
        rc = ERR(ERR_IO, "submitting %s failed: %s", script_path, why);
        if (r.status == PROC_NOT_FOUND)
            err_hint("dfm submit needs the Slurm client commands (Debian package slurm-client) on "
                     "PATH; 'dfm submit --dry-run' prints the script without them");
        else
            err_hint("the script and the resolved spec are kept in %s; fix the slurm section and "
                     "submit again", base);
        proc_result_free(&r);
        goto done;
    }
    proc_result_free(&r);

    char when[32], line[4800];
    now_iso(when, sizeof when);
    if (o->n_sweeps > 0)
        snprintf(line, sizeof line, "%s submit job=%ld array=0-%d script=%s", when, id, p.n - 1,
                 script_path);
    else
        snprintf(line, sizeof line, "%s submit job=%ld script=%s", when, id, script_path);
    snprintf(path, sizeof path, "%s/slurm-history.log", base);
    rc = append_line(path, line);
    if (rc != ERR_OK) log_warn("job %ld is queued, but %s", id, err_message());
    rc = ERR_OK;

    const JobSlurm *sl = &js->slurm;
    char log0[4400];
    if (o->n_sweeps > 0) {
        submit_expand_output(array_out, id, id, 0, sl->job_name, log0, sizeof log0);
        fprintf(out, "submitted array job %ld (%s): %d tasks, each %d node%s x %d task%s x %d CPU%s, "
                     "time limit %s\n",
                id, sl->job_name, p.n, sl->nodes, sl->nodes > 1 ? "s" : "", sl->ntasks_per_node,
                sl->ntasks_per_node > 1 ? "s" : "", sl->cpus_per_task, sl->cpus_per_task > 1 ? "s" : "",
                sl->time);
        fprintf(out, "  points:  %s/points.tsv (task i trains %s/p%0*d.../job.yaml)\n", base, base,
                p.width, 0);
        fprintf(out, "  logs:    %s, ... (one per task)\n", log0);
    } else {
        submit_expand_output(sl->output, id, -1, 0, sl->job_name, log0, sizeof log0);
        fprintf(out, "submitted job %ld (%s): %d node%s x %d task%s x %d CPU%s, time limit %s\n", id,
                sl->job_name, sl->nodes, sl->nodes > 1 ? "s" : "", sl->ntasks_per_node,
                sl->ntasks_per_node > 1 ? "s" : "", sl->cpus_per_task, sl->cpus_per_task > 1 ? "s" : "",
                sl->time);
        fprintf(out, "  spec:    %s/job.yaml\n", base);
        fprintf(out, "  log:     %s\n", log0);
    }
    fprintf(out, "  script:  %s\n", script_path);
    fprintf(out, "  status:  dfm status %s\n", base);
    if (fflush(out) != 0) rc = ERR(ERR_IO, "cannot write to stdout: %s", strerror(errno));

done:
    xfree(script);
    xfree(tmpl);
    points_free(&p);
    return rc;
}
