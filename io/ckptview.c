/* io/ckptview.c - `dfm ckpt` operations (see io/ckptview.h). */
#include "io/ckptview.h"

#include <inttypes.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "io/ckpt.h"
#include "io/safetensors.h"
#include "io/weights.h"

static void human(char *b, size_t n, uint64_t bytes)
{
    if (bytes >= ((uint64_t)1 << 30)) snprintf(b, n, "%.2f GiB", (double)bytes / (1 << 30));
    else if (bytes >= ((uint64_t)1 << 20)) snprintf(b, n, "%.2f MiB", (double)bytes / (1 << 20));
    else if (bytes >= 1024) snprintf(b, n, "%.1f KiB", (double)bytes / 1024);
    else snprintf(b, n, "%" PRIu64 " B", bytes);
}

int ckptview_list(FILE *out, const char *arg)
{
    char ckdir[4200], one[4200];
    TRY(ckpt_resolve(arg, ckdir, sizeof ckdir, one, sizeof one));
    CkptEntry *v;
    size_t n;
    TRY(ckpt_list(ckdir, &v, &n));
    fprintf(out, "%-22s %10s  %-20s %10s %5s  %s\n", "checkpoint", "step", "time (UTC)", "size",
            "world", "state");
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        const CkptEntry *c = &v[i];
        if (one[0] && strcmp(strrchr(one, '/') ? strrchr(one, '/') + 1 : one, c->name) != 0)
            continue;
        char sz[32], world[16];
        human(sz, sizeof sz, c->bytes);
        snprintf(world, sizeof world, c->world ? "%u" : "-", c->world);
        fprintf(out, "%-22s %10" PRIu64 "  %-20s %10s %5s  %s%s%s\n", c->name, c->step,
                c->time[0] ? c->time : "-", sz, world,
                c->committed ? "committed" : (strstr(c->name, ".tmp") ? "partial" : "corrupt"),
                c->latest ? " (latest)" : "",
                c->committed ? "" : "");
        if (!c->committed && c->problem[0]) fprintf(out, "%22s   %s\n", "", c->problem);
        shown++;
    }
    if (!shown) fprintf(out, "no checkpoints in %s\n", ckdir);
    xfree(v);
    return ERR_OK;
}

static int verify_one(FILE *out, const char *path, uint64_t *bytes, double *secs)
{
    CkptManifest m;
    double t0 = core_now();
    TRY(ckpt_manifest_read(&m, path));
    uint64_t b = 0;
    int rc = ckpt_verify(path, &m, 0, 1, &b);
    double dt = core_now() - t0;
    if (rc == ERR_OK) {
        char sz[32];
        human(sz, sizeof sz, b);
        fprintf(out, "ok   %s: step %" PRIu64 ", %u shard%s, %s, %.1f MB/s\n", path, m.step,
                m.world, m.world > 1 ? "s" : "", sz, dt > 0 ? (double)b / 1e6 / dt : 0.0);
    }
    ckpt_manifest_free(&m);
    *bytes += b;
    *secs += dt;
    return rc;
}

int ckptview_verify(FILE *out, const char *arg)
{
    char ckdir[4200], one[4200];
    TRY(ckpt_resolve(arg, ckdir, sizeof ckdir, one, sizeof one));
    uint64_t bytes = 0;
    double secs = 0;
    if (one[0]) {
        int rc = verify_one(out, one, &bytes, &secs);
        if (rc != ERR_OK) fprintf(out, "BAD  %s\n", one);
        return rc;
    }
    CkptEntry *v;
    size_t n;
    TRY(ckpt_list(ckdir, &v, &n));
    int first_bad = ERR_OK, checked = 0;
    char msg[ERR_MSG_MAX] = "";
    for (size_t i = 0; i < n; i++) {
        if (strstr(v[i].name, ".tmp")) continue; /* partial saves are not checkpoints */
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", ckdir, v[i].name);
        checked++;
        int rc = verify_one(out, p, &bytes, &secs);
        if (rc != ERR_OK) {
            fprintf(out, "BAD  %s: %s\n", p, err_message());
            if (first_bad == ERR_OK) {
                first_bad = rc;
                snprintf(msg, sizeof msg, "%s", err_message());
            }
        }
    }
    xfree(v);
    if (!checked) return ERR(ERR_STATE, "no checkpoints in %s", ckdir);
    if (first_bad != ERR_OK) return ERR(first_bad, "%s", msg);
    fprintf(out, "all %d checkpoint%s verified: %.1f MB in %.2f s (%.1f MB/s)\n", checked,
            checked > 1 ? "s" : "", (double)bytes / 1e6, secs,
            secs > 0 ? (double)bytes / 1e6 / secs : 0.0);
    return ERR_OK;
}

/* One checkpoint: the one given, or the newest committed one of the directory. */
static int pick(const char *arg, char *path, size_t size)
{
    char ckdir[4000];
    TRY(ckpt_resolve(arg, ckdir, sizeof ckdir, path, size));
    if (path[0]) return ERR_OK;
    CkptEntry *v;
    size_t n;
    TRY(ckpt_list(ckdir, &v, &n));
    for (size_t i = n; i-- > 0;) {
        if (v[i].committed) {
            snprintf(path, size, "%s/%s", ckdir, v[i].name);
            break;
        }
    }
    xfree(v);
    if (!path[0]) return ERR(ERR_STATE, "no committed checkpoint in %s", ckdir);
    return ERR_OK;
}

int ckptview_inspect(FILE *out, const char *arg, int show_spec)
{
    char path[4200];
    TRY(pick(arg, path, sizeof path));
    CkptManifest m;
    TRY(ckpt_manifest_read(&m, path));
    fprintf(out, "checkpoint:   %s\n", path);
    fprintf(out, "format:       dfm-checkpoint version %d (written by dfm %s, commit %s)\n",
            m.format_version, m.dfm_version, m.dfm_commit);
    fprintf(out, "step:         %" PRIu64 "\ntime:         %s\n", m.step, m.time);
    fprintf(out, "parameters:   %" PRIu64 " in %zu tensors\n", m.n, m.n_tensors);
    fprintf(out, "buffers:      params%s, m, v%s\n", m.has_ema ? ", ema" : "",
            m.zero1 ? " (saved from a ZeRO-1 run)" : "");
    fprintf(out, "counters:     optimizer step %" PRIu64 ", EMA updates %" PRIu64
            ", non-finite steps %" PRIu64 " (%" PRIu64 " in a row), updates %" PRIu64 "\n",
            m.counters.optim_step, m.counters.ema_updates, m.counters.nonfinite,
            m.counters.consecutive_bad, m.counters.steps_done);
    fprintf(out, "job spec:     sha256 %s\n", m.spec_sha256);
    fprintf(out, "shards:       %u\n", m.world);
    for (uint32_t r = 0; r < m.world; r++) {
        const CkptShardInfo *s = &m.shards[r];
        fprintf(out, "  %s  [%" PRIu64 ", %" PRIu64 ")  %" PRIu64 " bytes  sha256 %s\n", s->file,
                s->lo, s->hi, s->bytes, s->sha256);
    }
    fprintf(out, "tensors:\n");
    for (size_t i = 0; i < m.n_tensors; i++) {
        const CkptTensor *t = &m.tensors[i];
        char shape[64] = "";
        size_t pos = 0;
        for (int d = 0; d < t->ndim; d++)
            pos += (size_t)snprintf(shape + pos, sizeof shape - pos, "%s%d", d ? "x" : "",
                                    t->shape[d]);
        fprintf(out, "  %-40s %-16s offset %10" PRIu64 "  count %9" PRIu64 "\n", t->name, shape,
                t->offset, t->count);
    }
    if (show_spec) fprintf(out, "spec: |\n%s", m.spec);
    ckpt_manifest_free(&m);
    return ERR_OK;
}

int ckptview_export(FILE *out, const char *arg, const char *dest, const char *format, int use_ema)
{
    char path[4200];
    TRY(pick(arg, path, sizeof path));
    CkptManifest m;
    TRY(ckpt_manifest_read(&m, path));
    int rc = ckpt_verify(path, &m, 0, 1, NULL);
    if (rc == ERR_OK && use_ema && !m.has_ema)
        rc = ERR(ERR_STATE, "%s has no EMA weights (the run had train.ema.decay 0): export the "
                 "live weights with --live", path);
    float *params = NULL, *ema = NULL;
    WeightsTensor *wt = NULL;
    if (rc == ERR_OK) {
        params = xmalloc(sizeof(float) * m.n);
        rc = ckpt_read_range(path, &m, CKPT_PARAMS, 0, m.n, params);
    }
    if (rc == ERR_OK && m.has_ema) {
        ema = xmalloc(sizeof(float) * m.n);
        rc = ckpt_read_range(path, &m, CKPT_EMA, 0, m.n, ema);
    }
    if (rc == ERR_OK) {
        wt = xcalloc(m.n_tensors, sizeof *wt);
        for (size_t i = 0; i < m.n_tensors; i++) {
            memcpy(wt[i].name, m.tensors[i].name, sizeof wt[i].name);
            wt[i].ndim = m.tensors[i].ndim;
            memcpy(wt[i].shape, m.tensors[i].shape, sizeof wt[i].shape);
            wt[i].offset = (size_t)m.tensors[i].offset;
            wt[i].count = (size_t)m.tensors[i].count;
        }
        if (!strcmp(format, "weights")) {
            rc = weights_write(dest, wt, m.n_tensors, params, ema, m.n);
        } else {
            char step[32], n[32];
            snprintf(step, sizeof step, "%" PRIu64, m.step);
            snprintf(n, sizeof n, "%" PRIu64, m.n);
            const char *meta[] = {"format", "pt", "producer", "dfm", "dfm_version", m.dfm_version,
                                  "step", step, "weights", use_ema ? "ema" : "live",
                                  "spec_sha256", m.spec_sha256};
            rc = safetensors_write(dest, wt, m.n_tensors, use_ema ? ema : params, meta, 6);
        }
    }
    if (rc == ERR_OK)
        fprintf(out, "exported %s weights of %s (step %" PRIu64 ", %zu tensors) to %s (%s)\n",
                !strcmp(format, "weights") ? (m.has_ema ? "live and EMA" : "live")
                                           : (use_ema ? "EMA" : "live"),
                path, m.step, m.n_tensors, dest, format);
    xfree(wt);
    xfree(params);
    xfree(ema);
    ckpt_manifest_free(&m);
    return rc;
}
