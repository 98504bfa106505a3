/* tests/dist/test_keys.c - no inert job keys.
 *
 * Walks the schema (io/jobspec_keys.c) and proves, for every key, one of:
 *   1. it changes what the run is built from: set to another valid value, the configurations
 *      dist/jobconf.c derives (network, schedule, sampler, targets, learning rate, optimizer,
 *      loader, dataset) differ - their fingerprint changes;
 *   2. the run's code reads it by name: `section.key` (e.g. js->train.log_every) appears in the
 *      code of dist/ or cmd/, comments and string literals removed;
 *   3. its row says that another command reads it (.only = "dfm submit"), which the README
 *      tables show.
 * A row may instead declare that its code is not written yet (.pending); the README says so,
 * and this test fails as soon as such a key is read, so that the note goes when the code comes.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "dist/jobconf.h"
#include "io/jobspec_int.h" /* the schema rows */

/* ---- fingerprint of the derived configurations ----------------------------------------------- */

static void fnv(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) *h = (*h ^ b[i]) * UINT64_C(1099511628211);
}

static uint64_t fingerprint(const JobSpec *js)
{
    uint64_t h = UINT64_C(14695981039346656037);
    NetConfig nc;
    memset(&nc, 0, sizeof nc);
    jobconf_net(js, &nc);
    fnv(&h, &nc, sizeof nc);
    Schedule s;
    memset(&s, 0, sizeof s);
    if (jobconf_schedule(js, &s) == ERR_OK) {
        fnv(&h, &s.family, sizeof s.family);
        fnv(&h, &s.pred, sizeof s.pred);
        fnv(&h, &s.T, sizeof s.T);
        fnv(&h, &s.sigma_min, sizeof s.sigma_min);
        if (s.beta) fnv(&h, s.beta, sizeof(double) * (size_t)(s.T + 1));
        if (s.family == SCHED_SDE) {
            fnv(&h, &s.sde.kind, sizeof s.sde.kind);
            fnv(&h, &s.sde.bmin, sizeof(double));
            fnv(&h, &s.sde.bmax, sizeof(double));
            fnv(&h, &s.sde.smin, sizeof(double));
            fnv(&h, &s.sde.smax, sizeof(double));
            fnv(&h, &s.sde.t_eps, sizeof(double));
            fnv(&h, &s.sde_out, sizeof s.sde_out);
        }
        sched_free(&s);
    }
    double ts = jobconf_time_scale(js);
    fnv(&h, &ts, sizeof ts);
    SamplerConfig sc;
    memset(&sc, 0, sizeof sc);
    jobconf_sampler(js, &sc);
    fnv(&h, &sc, sizeof sc);
    TrainTargetConfig tc;
    memset(&tc, 0, sizeof tc);
    jobconf_targets(js, &tc);
    fnv(&h, &tc, sizeof tc);
    LrSchedule lr;
    memset(&lr, 0, sizeof lr);
    (void)jobconf_lr(js, &lr);
    fnv(&h, &lr, sizeof lr);
    OptimConfig oc;
    memset(&oc, 0, sizeof oc);
    (void)jobconf_optim(js, &oc);
    fnv(&h, &oc, sizeof oc);
    LoaderConfig lc;
    memset(&lc, 0, sizeof lc);
    jobconf_loader(js, &lc);
    fnv(&h, &lc, sizeof lc);
    const char *name = jobconf_dataset_name(js);
    fnv(&h, name, strlen(name));
    err_clear();
    return h;
}

/* ---- other valid values for a key ----------------------------------------------------------- */

/* Writes up to cap "key=value" candidates for field f of js; returns how many. */
static int candidates(const JobSpec *js, const Field *f, char out[][512], int cap)
{
    int n = 0;
#define ADD(...) \
    do { if (n < cap) snprintf(out[n++], 512, __VA_ARGS__); } while (0)
    switch (f->type) {
    case F_INT: {
        long v = *CVAL(js, f, int);
        long c[] = {v + 1, v - 1, v * 2, v / 2, v + 2, (long)f->lo, (long)f->hi};
        for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
            if (c[i] != v && c[i] >= f->lo && c[i] <= f->hi) ADD("%s=%ld", f->path, c[i]);
        break;
    }
    case F_U64: ADD("%s=%llu", f->path, (unsigned long long)(*CVAL(js, f, uint64_t) + 1)); break;
    case F_DBL: {
        double v = *CVAL(js, f, double);
        double c[] = {v * 0.5, v * 2, v + 0.1, v - 0.1, (f->lo + f->hi) / 2, f->lo + 1e-3};
        for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
            if (c[i] != v) ADD("%s=%.17g", f->path, c[i]);
        break;
    }
    case F_BOOL: ADD("%s=%s", f->path, *CVAL(js, f, bool) ? "false" : "true"); break;
    case F_ENUM:
        for (int i = 0; i < f->nnames; i++)
            if (i != *CVAL(js, f, int)) ADD("%s=%s", f->path, f->names[i]);
        break;
    case F_ENUMLIST:
        for (int i = 0; i < f->nnames; i++) ADD("%s=[%s]", f->path, f->names[i]);
        ADD("%s=[]", f->path);
        break;
    case F_STR: {
        const char *v = *CVAL(js, f, Str);
        ADD("%s=%salt", f->path, v && *v ? v : "");
        ADD("%s=/tmp/alt", f->path);
        break;
    }
    case F_STRLIST: ADD("%s=[https://alt.example/]", f->path); break;
    case F_INTLIST: {
        const int *v = CVAL(js, f, int);
        int k = *CCNT(js, f);
        char cur[128] = "";
        size_t o = 0;
        for (int i = 0; i < k; i++) o += (size_t)snprintf(cur + o, sizeof cur - o, "%s%d", i ? ", " : "", v[i]);
        if (k > 1) { /* drop the last entry */
            char d[128];
            snprintf(d, sizeof d, "%s", cur);
            *strrchr(d, ',') = '\0';
            ADD("%s=[%s]", f->path, d);
        }
        if (k > 0) ADD("%s=[%s, %d]", f->path, cur, v[k - 1]);
        static const int extra[] = {2, 1, 4, 7, 8, 14, 16, 28, 32};
        for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
            ADD("%s=[%s%s%d]", f->path, cur, k ? ", " : "", extra[i]);
        break;
    }
    }
#undef ADD
    return n;
}

/* ---- the run's code, without comments and string literals ----------------------------------- */

static char *g_code; /* dist/ and cmd/ sources, concatenated */

static void strip_append(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    size_t len = 0, cap = 4096, n;
    char *s = xmalloc(cap);
    while ((n = fread(s + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) s = xrealloc(s, cap *= 2);
    }
    fclose(f);
    size_t have = g_code ? strlen(g_code) : 0;
    g_code = xrealloc(g_code, have + len + 2);
    char *o = g_code + have;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '/' && i + 1 < len && s[i + 1] == '*') {
            for (i += 2; i + 1 < len && !(s[i] == '*' && s[i + 1] == '/'); i++) {}
            i++;
        } else if (s[i] == '/' && i + 1 < len && s[i + 1] == '/') {
            while (i < len && s[i] != '\n') i++;
        } else if (s[i] == '"' || s[i] == '\'') {
            char q = s[i];
            for (i++; i < len && s[i] != q; i++)
                if (s[i] == '\\') i++;
            *o++ = ' ';
        } else {
            *o++ = s[i];
        }
    }
    *o++ = '\n';
    *o = '\0';
    xfree(s);
}

static void load_code(void)
{
    const char *root = getenv("DFM_ROOT");
    static const char *const dirs[] = {"dist", "cmd"};
    for (size_t d = 0; d < 2; d++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", root && *root ? root : ".", dirs[d]);
        DIR *dp = opendir(dir);
        cr_assert_not_null(dp, "cannot open %s (set DFM_ROOT)", dir);
        struct dirent *e;
        while ((e = readdir(dp))) {
            size_t l = strlen(e->d_name);
            if (l < 3 || strcmp(e->d_name + l - 2, ".c")) continue;
            char p[8192];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            strip_append(p);
        }
        closedir(dp);
    }
}

/* "train.ema.decay" -> is "ema.decay" (the last two components) read as a member chain? */
static int read_by_name(const char *path)
{
    const char *last = strrchr(path, '.'), *p = last;
    while (p > path && p[-1] != '.') p--;
    size_t n = strlen(p);
    for (const char *h = strstr(g_code, p); h; h = strstr(h + 1, p)) {
        char before = h > g_code ? h[-1] : ' ', after = h[n];
        if ((before == '.' || before == '>') && !isalnum((unsigned char)after) && after != '_')
            return 1;
    }
    return 0;
}

/* ---- the walk ------------------------------------------------------------------------------- */

static const char *const g_bases[] = {
    "run:\n  name: base\n",
    "data:\n  dataset: toy2d\nmodel:\n  type: mlp\nobjective:\n  type: flow\n",
    "data:\n  dataset: toy2d\nmodel:\n  type: mlp\nobjective:\n  type: sde\n",
    "data:\n  dataset: toy2d\nmodel:\n  type: mlp\nobjective:\n  type: sde\n  sde:\n    kind: ve\n",
    "data:\n  conditional: true\nobjective:\n  label_dropout: 0.1\n"
    "  ddpm:\n    schedule: cosine\ntrain:\n  lr_schedule: cosine\nsample:\n  guidance: 2\n",
};

/* 1 when some valid change of key fi, on some base, changes the fingerprint. */
static int changes_the_run(size_t fi, char *tried, size_t ntried)
{
    const Field *f = &g_fields[fi];
    int valid = 0;
    for (size_t b = 0; b < sizeof g_bases / sizeof g_bases[0]; b++) {
        JobSpec base;
        err_clear();
        cr_assert_eq(jobspec_load_string(&base, g_bases[b], strlen(g_bases[b]), "base.yaml"), ERR_OK,
                     "%s", err_message());
        int sub;
        if (!field_active(&base, fi, &sub)) {
            jobspec_free(&base);
            continue;
        }
        uint64_t h0 = fingerprint(&base);
        char cand[24][512];
        int nc = candidates(&base, f, cand, 24);
        for (int i = 0; i < nc; i++) {
            JobSpec js;
            jobspec_copy(&js, &base);
            err_clear();
            if (jobspec_set(&js, cand[i]) == ERR_OK && !jobspec_equal(&js, &base)) {
                valid = 1;
                uint64_t h1 = fingerprint(&js);
                jobspec_free(&js);
                if (h1 != h0) {
                    jobspec_free(&base);
                    return 1;
                }
            } else {
                jobspec_free(&js);
            }
        }
        jobspec_free(&base);
    }
    snprintf(tried, ntried, "%s", valid ? "its valid changes leave the derived configurations as "
                                          "they are" : "no valid change found");
    return 0;
}

Test(keys, every_key_acts_or_names_its_command)
{
    load_code();
    int by_conf = 0, by_name = 0, other = 0, pending = 0;
    for (size_t i = 0; i < g_nfields; i++) {
        const Field *f = &g_fields[i];
        char why[128] = "";
        if (f->only) {
            cr_expect(!strncmp(f->only, "dfm ", 4), "%s: .only names a command (\"dfm submit\")",
                      f->path);
            other++;
            continue;
        }
        int conf = changes_the_run(i, why, sizeof why);
        int named = read_by_name(f->path);
        if (f->pending) {
            cr_expect(!conf && !named,
                      "%s is read by the run now: delete its .pending note in io/jobspec_keys.c",
                      f->path);
            pending++;
            continue;
        }
        cr_expect(conf || named,
                  "%s changes nothing the run is built from (%s) and no code in dist/ or cmd/ reads "
                  "it: make it act, give its row .only = \"dfm <command>\" if another command reads "
                  "it, or move it to g_removed with what replaces it", f->path, why);
        by_conf += conf;
        by_name += !conf && named;
    }
    cr_log_info("keys: %d change the derived configurations, %d are read by name, %d belong to "
                "another command, %d pending", by_conf, by_name, other, pending);
    cr_assert_geq(by_conf, 40); /* the fingerprint sees the configurations */
    xfree(g_code);
    g_code = NULL;
}

Test(keys, the_fingerprint_sees_a_change)
{
    /* The check itself: an inert key would not move the fingerprint. */
    JobSpec a, b;
    cr_assert_eq(jobspec_load_string(&a, g_bases[0], strlen(g_bases[0]), "a"), ERR_OK);
    jobspec_copy(&b, &a);
    cr_assert_eq(fingerprint(&a), fingerprint(&b));
    cr_assert_eq(jobspec_set(&b, "train.log_every=7"), ERR_OK);
    cr_assert_eq(fingerprint(&a), fingerprint(&b)); /* read by the loop, not a configuration */
    cr_assert_eq(jobspec_set(&b, "model.unet.channels=32"), ERR_OK, "%s", err_message());
    cr_assert_neq(fingerprint(&a), fingerprint(&b));
    jobspec_free(&a);
    jobspec_free(&b);
}
