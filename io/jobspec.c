/* io/jobspec.c - the job-spec loader: a YAML tree walked against the schema
 * (io/jobspec_keys.c), --set overrides, emission of the resolved spec, copy/equal/free, and the
 * key tables of jobs/README.md. See io/jobspec.h for the contract, io/jobspec_int.h for how the
 * module is split. */
#include "io/jobspec.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"  /* ERR, TRY, err codes */
#include "core/mem.h"  /* xmalloc, xcalloc, xstrdup, xfree */
#include "io/jobspec_int.h"

#define INF HUGE_VAL

/* ---- the schema's keys ---------------------------------------------------------------------- */

size_t jobspec_nkeys(void) { return g_nfields; }
const char *jobspec_key(size_t i) { return i < g_nfields ? g_fields[i].path : NULL; }

int field_index(const char *path, size_t len)
{
    for (size_t i = 0; i < g_nfields; i++)
        if (strlen(g_fields[i].path) == len && !memcmp(g_fields[i].path, path, len)) return (int)i;
    return -1;
}

const RemovedKey *removed_key(const char *path, size_t len)
{
    for (size_t i = 0; i < g_nremoved; i++)
        if (strlen(g_removed[i].path) == len && !memcmp(g_removed[i].path, path, len))
            return &g_removed[i];
    return NULL;
}

int is_section(const char *path, size_t len)
{
    for (size_t i = 0; i < g_nfields; i++) {
        const char *p = g_fields[i].path;
        if (strlen(p) > len && !memcmp(p, path, len) && p[len] == '.') return 1;
    }
    return 0;
}

int key_of(const char *path)
{
    int i = field_index(path, strlen(path));
    ASSERT(i >= 0);
    return i;
}

int field_active(const JobSpec *js, size_t fi, int *sub)
{
    *sub = -1;
    for (size_t s = 0; s < g_nsubsections; s++) {
        const Subsection *ss = &g_subsections[s];
        if (strncmp(g_fields[fi].path, ss->prefix, strlen(ss->prefix))) continue;
        *sub = (int)s;
        return *CVAL(js, &g_fields[key_of(ss->selector)], int) == ss->active_when;
    }
    return 1;
}

int explicit_key(const JobSpec *js, int fi)
{
    return js->loc && (js->loc[fi].line > 0 || js->loc[fi].set > 0);
}

int jobspec_explicit(const JobSpec *js, const char *key)
{
    int fi = field_index(key, strlen(key));
    return fi >= 0 && explicit_key(js, fi);
}

/* ---- value parsing -------------------------------------------------------------------------- */

static void describe_node(char *buf, size_t n, const YNode *y)
{
    if (ynode_is_null(y)) {
        snprintf(buf, n, "null (no value)");
    } else if (y->kind == YN_SEQ) {
        snprintf(buf, n, "a list");
    } else if (y->kind == YN_MAP) {
        snprintf(buf, n, "a mapping");
    } else {
        char s[2 * KEY_SHOW_MAX + 16];
        js_show(s, sizeof s, y->str, y->len);
        snprintf(buf, n, "%s\"%s\"", y->plain ? "" : "the quoted string ", s);
    }
}

static void fmt_num(char *buf, size_t n, double v)
{
    if (v == floor(v) && fabs(v) < 1e15) snprintf(buf, n, "%.0f", v);
    else snprintf(buf, n, "%g", v);
}

static void describe_expect(char *buf, size_t n, const Field *f)
{
    char lo[32], hi[32];
    fmt_num(lo, sizeof lo, f->lo);
    fmt_num(hi, sizeof hi, f->hi);
    switch (f->type) {
    case F_INT:
    case F_INTLIST:
        snprintf(buf, n, "%s integer%s in [%s, %s]", f->type == F_INT ? "an" : "a list of",
                 f->type == F_INT ? "" : "s", lo, hi);
        if (f->type == F_INT && (f->fl & FL_EVEN)) strncat(buf, " (even)", n - strlen(buf) - 1);
        break;
    case F_DBL:
        if (f->hi == INF)
            snprintf(buf, n, "a number %s %s", (f->fl & FL_LO_OPEN) ? ">" : ">=", lo);
        else
            snprintf(buf, n, "a number in %c%s, %s%c", (f->fl & FL_LO_OPEN) ? '(' : '[', lo, hi,
                     (f->fl & FL_HI_OPEN) ? ')' : ']');
        break;
    case F_U64: snprintf(buf, n, "an integer in [0, 18446744073709551615]"); break;
    case F_BOOL: snprintf(buf, n, "true or false"); break;
    case F_STR: snprintf(buf, n, "a string"); break;
    case F_STRLIST: snprintf(buf, n, "a list of strings"); break;
    case F_ENUM:
    case F_ENUMLIST: {
        size_t o = (size_t)snprintf(buf, n, "%s", f->type == F_ENUM ? "one of " : "a list of ");
        for (int i = 0; i < f->nnames && o < n; i++)
            o += (size_t)snprintf(buf + o, n - o, "%s%s", i ? ", " : "", f->names[i]);
        break;
    }
    }
}

static int bad_value(const Ctx *c, const Field *f, const YNode *y, const char *path, const char *extra)
{
    char want[512], got[256];
    describe_expect(want, sizeof want, f);
    describe_node(got, sizeof got, y);
    return ctx_err(c, ERR_SPEC, y->line, y->col, "%s: expected %s, got %s%s", path, want, got,
                   extra ? extra : "");
}

/* Plain decimal integer: optional sign, digits, no leading zeros. Returns 0 ok, 1 bad syntax,
 * 2 out of range of long long. */
static int parse_ll(const YNode *y, long long *out)
{
    const char *s = y->str;
    if (y->kind != YN_SCALAR || !y->plain || y->len == 0 || strlen(s) != y->len) return 1;
    size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
    if (i == y->len) return 1;
    if (s[i] == '0' && y->len > i + 1) return 1;
    for (size_t k = i; k < y->len; k++)
        if (!isdigit((unsigned char)s[k])) return 1;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE) return 2;
    *out = v;
    return 0;
}

static int parse_u64(const YNode *y, uint64_t *out)
{
    const char *s = y->str;
    if (y->kind != YN_SCALAR || !y->plain || y->len == 0 || strlen(s) != y->len) return 1;
    size_t i = s[0] == '+' ? 1 : 0;
    if (i == y->len) return 1;
    if (s[i] == '0' && y->len > i + 1) return 1;
    for (size_t k = i; k < y->len; k++)
        if (!isdigit((unsigned char)s[k])) return 1;
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno == ERANGE) return 2;
    *out = (uint64_t)v;
    return 0;
}

/* Decimal floating point (no hex, inf, nan). 0 ok, 1 bad syntax, 2 not finite. */
static int parse_dbl(const YNode *y, double *out)
{
    const char *s = y->str;
    if (y->kind != YN_SCALAR || !y->plain || y->len == 0 || strlen(s) != y->len) return 1;
    int digits = 0;
    for (size_t k = 0; k < y->len; k++) {
        char ch = s[k];
        if (isdigit((unsigned char)ch)) digits = 1;
        else if (!strchr("+-.eE", ch)) return 1;
    }
    if (!digits) return 1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end != s + y->len) return 1;
    if (!isfinite(v)) return 2;
    *out = v;
    return 0;
}

static int in_range(const Field *f, double v)
{
    if (f->fl & FL_LO_OPEN ? !(v > f->lo) : !(v >= f->lo)) return 0;
    if (f->fl & FL_HI_OPEN ? !(v < f->hi) : !(v <= f->hi)) return 0;
    return 1;
}

static int enum_value(const Field *f, const YNode *y)
{
    if (y->kind != YN_SCALAR || strlen(y->str) != y->len) return -1;
    for (int i = 0; i < f->nnames; i++)
        if (!strcmp(y->str, f->names[i])) return i;
    return -1;
}

/* Choices that were renamed: the old spelling is refused with the new one named. */
static const char *const g_renamed[][3] = {
    {"fid_fmnist", "fd_fmnist", " (a Frechet distance of dfm's Fashion-MNIST classifier, not FID)"},
};

static int bad_enum(const Ctx *c, const Field *f, const YNode *y, const char *path)
{
    char extra[160] = "";
    for (size_t i = 0; y->kind == YN_SCALAR && i < sizeof g_renamed / sizeof g_renamed[0]; i++)
        for (int j = 0; j < f->nnames; j++)
            if (!strcmp(y->str, g_renamed[i][0]) && !strcmp(f->names[j], g_renamed[i][1])) {
                snprintf(extra, sizeof extra, "; it was renamed '%s'%s", g_renamed[i][1],
                         g_renamed[i][2]);
                return bad_value(c, f, y, path, extra);
            }
    if (y->kind == YN_SCALAR) {
        size_t best = (size_t)-1;
        int bi = -1;
        for (int i = 0; i < f->nnames; i++) {
            size_t d = js_edit_distance(y->str, y->len, f->names[i], strlen(f->names[i]));
            if (d < best) best = d, bi = i;
        }
        if (bi >= 0 && js_close_enough(best, strlen(f->names[bi])))
            snprintf(extra, sizeof extra, "; did you mean '%s'?", f->names[bi]);
    }
    return bad_value(c, f, y, path, extra);
}

/* Validate a string scalar; on success *out is a new owned copy. */
static int get_string(const Ctx *c, const Field *f, const YNode *y, const char *path, char **out)
{
    char why[256];
    if (y->kind != YN_SCALAR) return bad_value(c, f, y, path, NULL);
    const char *s = ynode_is_null(y) ? "" : y->str;
    size_t len = ynode_is_null(y) ? 0 : y->len;
    size_t maxlen = f->hi > 0 ? (size_t)f->hi : JOB_MAX_STR;
    if ((f->fl & FL_PATH) == FL_PATH && len == 0)
        return ctx_err(c, ERR_SPEC, y->line, y->col,
                       "%s: expected a path, got an empty string (an unset variable?)", path);
    if ((f->fl & FL_NONEMPTY) && len == 0)
        return ctx_err(c, ERR_SPEC, y->line, y->col, "%s: expected a non-empty string", path);
    if (len > maxlen)
        return ctx_err(c, ERR_SPEC, y->line, y->col, "%s: string longer than %zu bytes", path, maxlen);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f)
            return ctx_err(c, ERR_SPEC, y->line, y->col,
                           "%s: control character 0x%02x in a string value", path, ch);
    }
    if (f->check && len > 0 && f->check(s, why, sizeof why)) {
        char shown[2 * KEY_SHOW_MAX + 16];
        js_show(shown, sizeof shown, s, len);
        return ctx_err(c, ERR_SPEC, y->line, y->col, "%s: %s, got \"%s\"", path, why, shown);
    }
    *out = xstrdup(s);
    return ERR_OK;
}

static void free_strlist(char **v, int n)
{
    for (int i = 0; i < n; i++) xfree(v[i]);
    xfree(v);
}

/* Set field fi of c->js from node y (already located). */
static int set_field(const Ctx *c, int fi, const YNode *y)
{
    const Field *f = &g_fields[fi];
    JobSpec *js = c->js;
    const char *path = f->path;
    char ipath[128];
    switch (f->type) {
    case F_STR: {
        char *s = NULL;
        TRY(get_string(c, f, y, path, &s));
        xfree(*VAL(js, f, char *));
        *VAL(js, f, char *) = s;
        break;
    }
    case F_STRLIST: {
        if (y->kind != YN_SEQ && !ynode_is_null(y)) return bad_value(c, f, y, path, NULL);
        int n = y->kind == YN_SEQ ? (int)y->n : 0;
        if (y->kind == YN_SEQ && y->n > (size_t)f->maxn)
            return ctx_err(c, ERR_SPEC, y->line, y->col, "%s: at most %d entries, got %zu", path,
                           f->maxn, y->n);
        char **v = n ? xcalloc((size_t)n, sizeof *v) : NULL;
        for (int i = 0; i < n; i++) {
            snprintf(ipath, sizeof ipath, "%s[%d]", path, i);
            const YNode *e = y->kid[i];
            int rc;
            if (ynode_is_null(e))
                rc = ctx_err(c, ERR_SPEC, e->line, e->col, "%s: expected a non-empty string", ipath);
            else if (e->kind != YN_SCALAR)
                rc = ctx_err(c, ERR_SPEC, e->line, e->col, "%s: expected a string, got %s", ipath,
                             e->kind == YN_SEQ ? "a list" : "a mapping");
            else
                rc = get_string(c, f, e, ipath, &v[i]);
            if (rc != ERR_OK) {
                free_strlist(v, n);
                return rc;
            }
        }
        free_strlist(*VAL(js, f, char **), *CNT(js, f));
        *VAL(js, f, char **) = v;
        *CNT(js, f) = n;
        break;
    }
    case F_INT: {
        long long v = 0;
        int r = parse_ll(y, &v);
        if (r == 0 && (!in_range(f, (double)v) || ((f->fl & FL_EVEN) && (v & 1))))
            r = 2;
        if (r) return bad_value(c, f, y, path, r == 2 ? " (out of range)" : NULL);
        *VAL(js, f, int) = (int)v;
        break;
    }
    case F_U64: {
        uint64_t v = 0;
        int r = parse_u64(y, &v);
        if (r) return bad_value(c, f, y, path, r == 2 ? " (out of range)" : NULL);
        *VAL(js, f, uint64_t) = v;
        break;
    }
    case F_DBL: {
        double v = 0;
        int r = parse_dbl(y, &v);
        if (r == 0 && !in_range(f, v)) r = 2;
        if (r) return bad_value(c, f, y, path, r == 2 ? " (out of range)" : NULL);
        *VAL(js, f, double) = v;
        break;
    }
    case F_BOOL: {
        if (y->kind != YN_SCALAR || !y->plain) return bad_value(c, f, y, path, NULL);
        if (!strcmp(y->str, "true") || !strcmp(y->str, "True") || !strcmp(y->str, "TRUE"))
            *VAL(js, f, bool) = true;
        else if (!strcmp(y->str, "false") || !strcmp(y->str, "False") || !strcmp(y->str, "FALSE"))
            *VAL(js, f, bool) = false;
        else
            return bad_value(c, f, y, path, NULL);
        break;
    }
    case F_ENUM: {
        int v = enum_value(f, y);
        if (v < 0) return bad_enum(c, f, y, path);
        *VAL(js, f, int) = v;
        break;
    }
    case F_INTLIST:
    case F_ENUMLIST: {
        if (y->kind != YN_SEQ) return bad_value(c, f, y, path, NULL);
        if (y->n > (size_t)f->maxn)
            return ctx_err(c, ERR_SPEC, y->line, y->col, "%s: at most %d entries, got %zu", path,
                           f->maxn, y->n);
        if ((f->fl & FL_NONEMPTY) && y->n == 0)
            return ctx_err(c, ERR_SPEC, y->line, y->col, "%s: expected at least one entry", path);
        int tmp[64];
        for (size_t i = 0; i < y->n; i++) {
            const YNode *e = y->kid[i];
            snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
            if (f->type == F_INTLIST) {
                long long v = 0;
                int r = parse_ll(e, &v);
                if (r == 0 && !in_range(f, (double)v)) r = 2;
                if (r) {
                    Field fe = *f;
                    fe.type = F_INT;
                    return bad_value(c, &fe, e, ipath, r == 2 ? " (out of range)" : NULL);
                }
                tmp[i] = (int)v;
            } else {
                Field fe = *f;
                fe.type = F_ENUM;
                int v = enum_value(f, e);
                if (v < 0) return bad_enum(c, &fe, e, ipath);
                for (size_t j = 0; j < i; j++)
                    if (tmp[j] == v)
                        return ctx_err(c, ERR_SPEC, e->line, e->col, "%s: '%s' is listed twice",
                                       ipath, f->names[v]);
                tmp[i] = v;
            }
        }
        int *dst = VAL(js, f, int);
        for (size_t i = 0; i < y->n; i++) dst[i] = tmp[i];
        *CNT(js, f) = (int)y->n;
        break;
    }
    }
    JobSpecLoc *l = &js->loc[fi];
    if (c->is_default) {
        l->line = l->col = l->set = 0;
    } else if (c->set) {
        l->set = c->set_index;
        l->line = l->col = 0;
    } else {
        l->line = y->line;
        l->col = y->col;
        l->set = 0;
    }
    return ERR_OK;
}

/* ---- the walk ------------------------------------------------------------------------------- */

/* Immediate children of section `prefix` ("" = top level), each once, into names[]. */
static int children(const char *prefix, const char **names, size_t *lens, int cap)
{
    size_t pl = strlen(prefix);
    int n = 0;
    for (size_t i = 0; i < g_nfields; i++) {
        const char *p = g_fields[i].path;
        if (pl) {
            if (strncmp(p, prefix, pl) || p[pl] != '.') continue;
            p += pl + 1;
        }
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        int dup = 0;
        for (int k = 0; k < n; k++)
            if (lens[k] == l && !memcmp(names[k], p, l)) dup = 1;
        if (!dup && n < cap) {
            names[n] = p;
            lens[n] = l;
            n++;
        }
    }
    return n;
}

static int unknown_key(const Ctx *c, const char *prefix, const YNode *k)
{
    const char *names[64];
    size_t lens[64];
    int n = children(prefix, names, lens, 64);
    size_t best = (size_t)-1;
    int bi = -1;
    for (int i = 0; i < n; i++) {
        size_t d = js_edit_distance(k->str, k->len, names[i], lens[i]);
        if (d < best) best = d, bi = i;
    }
    char shown[2 * KEY_SHOW_MAX + 16], where[96], tail[1024];
    js_show(shown, sizeof shown, k->str, k->len);
    if (*prefix) snprintf(where, sizeof where, "in section '%s'", prefix);
    else snprintf(where, sizeof where, "at top level");
    if (bi >= 0 && js_close_enough(best, lens[bi])) {
        snprintf(tail, sizeof tail, "; did you mean '%.*s'?", (int)lens[bi], names[bi]);
    } else {
        size_t o = (size_t)snprintf(tail, sizeof tail, "; valid keys: ");
        for (int i = 0; i < n && o < sizeof tail; i++)
            o += (size_t)snprintf(tail + o, sizeof tail - o, "%s%.*s", i ? ", " : "", (int)lens[i],
                                  names[i]);
    }
    return ctx_err(c, ERR_SPEC, k->line, k->col, "unknown key '%s' %s%s", shown, where, tail);
}

static int walk_map(const Ctx *c, const YNode *map, const char *prefix)
{
    char full[128];
    size_t pl = strlen(prefix);
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const YNode *k = map->kid[i], *v = map->kid[i + 1];
        if (k->kind != YN_SCALAR || ynode_is_null(k)) {
            char got[256];
            describe_node(got, sizeof got, k);
            return ctx_err(c, ERR_SPEC, k->line, k->col, "expected a key name %s%s, got %s",
                           *prefix ? "in section " : "at top level", prefix, got);
        }
        for (size_t j = 0; j < i; j += 2) {
            const YNode *o = map->kid[j];
            if (o->len == k->len && !memcmp(o->str, k->str, k->len)) {
                char shown[2 * KEY_SHOW_MAX + 16];
                js_show(shown, sizeof shown, k->str, k->len);
                return ctx_err(c, ERR_SPEC, k->line, k->col,
                               "%s%s%s: duplicate key (first given at line %d, column %d)", prefix,
                               pl ? "." : "", shown, o->line, o->col);
            }
        }
        if (memchr(k->str, '.', k->len)) {
            char shown[2 * KEY_SHOW_MAX + 16];
            js_show(shown, sizeof shown, k->str, k->len);
            return ctx_err(c, ERR_SPEC, k->line, k->col,
                           "key '%s' contains '.'; dotted paths are for --set, in a file nest the "
                           "key under its section", shown);
        }
        if (pl + 1 + k->len >= sizeof full || strlen(k->str) != k->len) return unknown_key(c, prefix, k);
        if (pl) snprintf(full, sizeof full, "%s.%s", prefix, k->str);
        else snprintf(full, sizeof full, "%s", k->str);
        int fi = field_index(full, strlen(full));
        const RemovedKey *gone = removed_key(full, strlen(full));
        if (gone) {
            return ctx_err(c, ERR_SPEC, k->line, k->col, "%s was removed: %s", full, gone->why);
        } else if (fi >= 0) {
            TRY(set_field(c, fi, v));
        } else if (is_section(full, strlen(full))) {
            if (ynode_is_null(v)) continue; /* "train:" with nothing under it: all defaults */
            if (v->kind != YN_MAP) {
                char got[256];
                describe_node(got, sizeof got, v);
                return ctx_err(c, ERR_SPEC, v->line, v->col, "%s: expected a mapping (a section), got %s",
                               full, got);
            }
            TRY(walk_map(c, v, full));
        } else {
            return unknown_key(c, prefix, k);
        }
    }
    return ERR_OK;
}


/* ---- defaults ------------------------------------------------------------------------------- */

/* Every row's default parsed like a value in a file (positions not recorded), then derived. */
static int fill_defaults(JobSpec *js)
{
    memset(js, 0, sizeof *js);
    js->loc = xcalloc(g_nfields, sizeof *js->loc);
    Ctx c = {.file = "<default>", .set = NULL, .js = js, .set_index = 0, .is_default = 1};
    YNode empty = {.kind = YN_SCALAR, .line = 1, .col = 1, .str = (char *)"", .len = 0, .plain = 1};
    for (size_t i = 0; i < g_nfields; i++) {
        const Field *f = &g_fields[i];
        if (!f->def) continue;
        YNode *root = NULL;
        int rc = yaml_tree(&c, f->def, strlen(f->def), &root);
        if (rc == ERR_OK) rc = set_field(&c, (int)i, root ? root : &empty);
        ynode_free(root);
        if (rc != ERR_OK) {
            err_context("the schema's default of %s", f->path);
            jobspec_free(js);
            return rc;
        }
    }
    jobspec_resolve(js);
    return ERR_OK;
}

int jobspec_defaults(JobSpec *js)
{
    /* Parsed once per process; every spec starts as a copy. */
    static JobSpec tmpl;
    static int have;
    if (!have) {
        int rc = fill_defaults(&tmpl);
        if (rc != ERR_OK) {
            memset(js, 0, sizeof *js);
            return rc;
        }
        have = 1;
    }
    jobspec_copy(js, &tmpl);
    return ERR_OK;
}

/* ---- copy, equal, free ---------------------------------------------------------------------- */

static char **dup_strlist(char *const *v, int n)
{
    if (n == 0) return NULL;
    char **o = xcalloc((size_t)n, sizeof *o);
    for (int i = 0; i < n; i++) o[i] = xstrdup(v[i]);
    return o;
}

void jobspec_copy(JobSpec *dst, const JobSpec *src)
{
    *dst = *src;
    for (size_t i = 0; i < g_nfields; i++) {
        const Field *f = &g_fields[i];
        if (f->type == F_STR) {
            const char *s = *CVAL(src, f, Str);
            *VAL(dst, f, char *) = s ? xstrdup(s) : NULL;
        } else if (f->type == F_STRLIST) {
            *VAL(dst, f, char **) = dup_strlist(*CVAL(src, f, StrList), *CCNT(src, f));
        }
    }
    dst->file = src->file ? xstrdup(src->file) : NULL;
    if (src->loc) {
        dst->loc = xmalloc(g_nfields * sizeof *dst->loc);
        memcpy(dst->loc, src->loc, g_nfields * sizeof *dst->loc);
    }
    dst->sets = dup_strlist(src->sets, src->n_sets);
}

static int str_eq(const char *a, const char *b)
{
    return (a ? a : "")[0] == (b ? b : "")[0] && !strcmp(a ? a : "", b ? b : "");
}

int jobspec_equal(const JobSpec *a, const JobSpec *b)
{
    for (size_t i = 0; i < g_nfields; i++) {
        const Field *f = &g_fields[i];
        switch (f->type) {
        case F_STR:
            if (!str_eq(*CVAL(a, f, Str), *CVAL(b, f, Str))) return 0;
            break;
        case F_STRLIST: {
            int n = *CCNT(a, f);
            if (n != *CCNT(b, f)) return 0;
            for (int k = 0; k < n; k++)
                if (!str_eq((*CVAL(a, f, StrList))[k], (*CVAL(b, f, StrList))[k])) return 0;
            break;
        }
        case F_INT:
        case F_ENUM:
            if (*CVAL(a, f, int) != *CVAL(b, f, int)) return 0;
            break;
        case F_U64:
            if (*CVAL(a, f, uint64_t) != *CVAL(b, f, uint64_t)) return 0;
            break;
        case F_DBL:
            if (*CVAL(a, f, double) != *CVAL(b, f, double)) return 0;
            break;
        case F_BOOL:
            if (*CVAL(a, f, bool) != *CVAL(b, f, bool)) return 0;
            break;
        case F_INTLIST:
        case F_ENUMLIST: {
            int n = *CCNT(a, f);
            if (n != *CCNT(b, f)) return 0;
            for (int k = 0; k < n; k++)
                if (CVAL(a, f, int)[k] != CVAL(b, f, int)[k]) return 0;
            break;
        }
        }
    }
    return 1;
}

void jobspec_free(JobSpec *js)
{
    if (!js) return;
    for (size_t i = 0; i < g_nfields; i++) {
        const Field *f = &g_fields[i];
        if (f->type == F_STR) {
            xfree(*VAL(js, f, char *));
        } else if (f->type == F_STRLIST) {
            free_strlist(*VAL(js, f, char **), *CNT(js, f));
        }
    }
    xfree(js->file);
    xfree(js->loc);
    free_strlist(js->sets, js->n_sets);
    memset(js, 0, sizeof *js);
}

/* ---- loading -------------------------------------------------------------------------------- */

/* Parse and apply one "path=value" onto js (no resolve, no cross-check). */
static int apply_set(JobSpec *js, const char *assignment)
{
    Ctx c = {.file = NULL, .set = assignment, .js = js, .set_index = js->n_sets + 1, .is_default = 0};
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return ctx_err(&c, ERR_SPEC, 0, 0, "expected section.key=value");
    size_t plen = (size_t)(eq - assignment);
    int fi = field_index(assignment, plen);
    const RemovedKey *gone = removed_key(assignment, plen);
    if (gone) return ctx_err(&c, ERR_SPEC, 0, 0, "%s was removed: %s", gone->path, gone->why);
    if (fi < 0) {
        char shown[2 * KEY_SHOW_MAX + 16];
        js_show(shown, sizeof shown, assignment, plen);
        if (is_section(assignment, plen))
            return ctx_err(&c, ERR_SPEC, 0, 0, "'%s' is a section; set one of its keys (section.key=value)",
                           shown);
        size_t best = (size_t)-1;
        int bi = -1;
        for (size_t i = 0; i < g_nfields; i++) {
            size_t dd = js_edit_distance(assignment, plen, g_fields[i].path, strlen(g_fields[i].path));
            if (dd < best) best = dd, bi = (int)i;
        }
        if (bi >= 0 && js_close_enough(best, strlen(g_fields[bi].path)))
            return ctx_err(&c, ERR_SPEC, 0, 0, "unknown key '%s'; did you mean '%s'?", shown,
                           g_fields[bi].path);
        return ctx_err(&c, ERR_SPEC, 0, 0, "unknown key '%s' (see jobs/README.md for the keys)", shown);
    }
    const char *val = eq + 1;
    size_t vlen = strlen(val);
    if (vlen > JOB_MAX_STR * 2) return ctx_err(&c, ERR_SPEC, 0, 0, "value too long");
    YNode *root = NULL;
    int rc = yaml_tree(&c, val, vlen, &root);
    if (rc != ERR_OK) return rc;
    YNode empty = {.kind = YN_SCALAR, .line = 1, .col = 1, .str = (char *)"", .len = 0, .plain = 1};
    rc = set_field(&c, fi, root ? root : &empty);
    ynode_free(root);
    if (rc != ERR_OK) return rc;
    js->sets = xrealloc(js->sets, (size_t)(js->n_sets + 1) * sizeof *js->sets);
    js->sets[js->n_sets++] = xstrdup(assignment);
    return ERR_OK;
}

static int load_text(JobSpec *js, const char *text, size_t len, const char *name,
                     const char *const *sets, int n_sets)
{
    Ctx c = {.file = name, .set = NULL, .js = js, .set_index = 0, .is_default = 0};
    TRY(jobspec_defaults(js));
    js->file = xstrdup(name);
    if (len > JOBSPEC_MAX_BYTES)
        return ctx_err(&c, ERR_PARSE, 1, 1, "job spec larger than %u bytes", JOBSPEC_MAX_BYTES);
    YNode *root = NULL;
    TRY(yaml_tree(&c, text, len, &root));
    int rc = ERR_OK;
    if (!root) {
        rc = ctx_err(&c, ERR_SPEC, 1, 1, "empty job spec; expected a mapping of sections (run, data, "
                                         "model, objective, train, ...)");
    } else if (root->kind != YN_MAP) {
        char got[256];
        describe_node(got, sizeof got, root);
        rc = ctx_err(&c, ERR_SPEC, root->line, root->col,
                     "expected a mapping of sections (run, data, model, ...) at top level, got %s", got);
    } else {
        rc = walk_map(&c, root, "");
    }
    ynode_free(root);
    if (rc != ERR_OK) return rc;
    for (int i = 0; i < n_sets; i++) TRY(apply_set(js, sets[i]));
    jobspec_resolve(js);
    TRY(jobspec_check(js));
    return ERR_OK;
}

int jobspec_load_string(JobSpec *js, const char *text, size_t len, const char *name)
{
    int rc = load_text(js, text, len, name ? name : "<string>", NULL, 0);
    if (rc != ERR_OK) jobspec_free(js);
    return rc;
}

int jobspec_load_with(JobSpec *js, const char *path, const char *const *sets, int n_sets)
{
    memset(js, 0, sizeof *js);
    FILE *f = fopen(path, "rb");
    if (!f) return ERR(ERR_IO, "cannot open job spec '%s': %s", path, strerror(errno));
    char *buf = xmalloc(JOBSPEC_MAX_BYTES + 1);
    size_t n = fread(buf, 1, JOBSPEC_MAX_BYTES + 1, f);
    int rd_err = ferror(f), e = errno;
    fclose(f);
    if (rd_err) {
        xfree(buf);
        return ERR(ERR_IO, "cannot read job spec '%s': %s", path, strerror(e));
    }
    int rc = load_text(js, buf, n, path, sets, n_sets);
    xfree(buf);
    if (rc != ERR_OK) jobspec_free(js);
    return rc;
}

int jobspec_load(JobSpec *js, const char *path) { return jobspec_load_with(js, path, NULL, 0); }

int jobspec_set(JobSpec *js, const char *assignment)
{
    JobSpec tmp;
    jobspec_copy(&tmp, js);
    if (!tmp.loc) tmp.loc = xcalloc(g_nfields, sizeof *tmp.loc);
    int rc = apply_set(&tmp, assignment);
    if (rc == ERR_OK) {
        jobspec_resolve(&tmp);
        rc = jobspec_check(&tmp);
    }
    if (rc != ERR_OK) {
        jobspec_free(&tmp);
        return rc;
    }
    jobspec_free(js);
    *js = tmp;
    return ERR_OK;
}


/* ---- emission ------------------------------------------------------------------------------- */

/* Shortest %g form that reads back to exactly v. */
static void fmt_double(char *buf, size_t n, double v)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

static void emit_value(YamlWriter *w, const JobSpec *js, const Field *f)
{
    char buf[64];
    switch (f->type) {
    case F_STR: yw_string(w, *CVAL(js, f, Str) ? *CVAL(js, f, Str) : ""); break;
    case F_STRLIST:
        yw_seq_start(w);
        for (int k = 0; k < *CCNT(js, f); k++) yw_string(w, (*CVAL(js, f, StrList))[k]);
        yw_seq_end(w);
        break;
    case F_INT:
        snprintf(buf, sizeof buf, "%d", *CVAL(js, f, int));
        yw_plain(w, buf);
        break;
    case F_U64:
        snprintf(buf, sizeof buf, "%" PRIu64, *CVAL(js, f, uint64_t));
        yw_plain(w, buf);
        break;
    case F_DBL:
        fmt_double(buf, sizeof buf, *CVAL(js, f, double));
        yw_plain(w, buf);
        break;
    case F_BOOL: yw_plain(w, *CVAL(js, f, bool) ? "true" : "false"); break;
    case F_ENUM:
        ASSERT(*CVAL(js, f, int) >= 0 && *CVAL(js, f, int) < f->nnames);
        yw_plain(w, f->names[*CVAL(js, f, int)]);
        break;
    case F_INTLIST:
    case F_ENUMLIST:
        yw_seq_start(w);
        for (int k = 0; k < *CCNT(js, f); k++) {
            int v = CVAL(js, f, int)[k];
            if (f->type == F_INTLIST) {
                snprintf(buf, sizeof buf, "%d", v);
                yw_plain(w, buf);
            } else {
                ASSERT(v >= 0 && v < f->nnames);
                yw_plain(w, f->names[v]);
            }
        }
        yw_seq_end(w);
        break;
    }
}

int jobspec_emit(const JobSpec *js, FILE *out)
{
    YamlWriter *w = yw_open(out);
    yw_map_start(w);
    /* open[] holds the currently open section names ("train", "ema"). */
    char open[4][32];
    int nopen = 0;
    for (size_t i = 0; i < g_nfields; i++) {
        const Field *f = &g_fields[i];
        int sub;
        if (!field_active(js, i, &sub)) continue;
        char comp[4][32];
        int nc = 0;
        const char *p = f->path;
        for (;;) {
            const char *dot = strchr(p, '.');
            size_t l = dot ? (size_t)(dot - p) : strlen(p);
            ASSERT(nc < 4 && l < 32);
            memcpy(comp[nc], p, l);
            comp[nc][l] = '\0';
            nc++;
            if (!dot) break;
            p = dot + 1;
        }
        int common = 0; /* sections shared with the open path */
        while (common < nopen && common < nc - 1 && !strcmp(open[common], comp[common])) common++;
        while (nopen > common) {
            yw_map_end(w);
            nopen--;
        }
        while (nopen < nc - 1) {
            yw_plain(w, comp[nopen]);
            yw_map_start(w);
            snprintf(open[nopen], sizeof open[nopen], "%s", comp[nopen]);
            nopen++;
        }
        yw_plain(w, comp[nc - 1]);
        emit_value(w, js, f);
    }
    while (nopen-- > 0) yw_map_end(w);
    yw_map_end(w);
    return yw_close(w);
}

/* ---- the key tables of jobs/README.md ------------------------------------------------------- */

static const char *type_name(FType t)
{
    switch (t) {
    case F_STR: return "string";
    case F_STRLIST: return "list of strings";
    case F_INT: return "int";
    case F_U64: return "u64";
    case F_DBL: return "number";
    case F_BOOL: return "bool";
    case F_ENUM: return "choice";
    case F_INTLIST: return "list of int";
    case F_ENUMLIST: return "list of choices";
    }
    return "?";
}

/* The range as the table states it: generated from the row unless .allowed replaces it, with
 * .also appended. */
static void allowed_text(char *buf, size_t n, const Field *f)
{
    char lo[32], hi[32];
    size_t o = 0;
    buf[0] = '\0';
    fmt_num(lo, sizeof lo, f->lo);
    fmt_num(hi, sizeof hi, f->hi);
    if (f->allowed) {
        o = (size_t)snprintf(buf, n, "%s", f->allowed);
    } else {
        switch (f->type) {
        case F_INT:
            o = (size_t)snprintf(buf, n, "%s%s .. %s", (f->fl & FL_EVEN) ? "even, " : "", lo, hi);
            break;
        case F_U64: o = (size_t)snprintf(buf, n, "0 .. 2^64-1"); break;
        case F_DBL:
            o = (size_t)snprintf(buf, n, "%c%s, %s%c", (f->fl & FL_LO_OPEN) ? '(' : '[', lo, hi,
                                 (f->fl & FL_HI_OPEN) ? ')' : ']');
            break;
        case F_BOOL: break;
        case F_STR:
            o = (size_t)snprintf(buf, n, "%s<= %s bytes",
                                 (f->fl & FL_PATH) == FL_PATH ? "a non-empty path, "
                                 : (f->fl & FL_NONEMPTY)      ? "non-empty, "
                                                              : "",
                                 hi);
            break;
        case F_STRLIST: o = (size_t)snprintf(buf, n, "up to %d entries", f->maxn); break;
        case F_ENUM:
        case F_ENUMLIST:
            if (f->type == F_ENUMLIST) o = (size_t)snprintf(buf, n, "distinct entries of ");
            for (int i = 0; i < f->nnames && o < n; i++)
                o += (size_t)snprintf(buf + o, n - o, "%s`%s`", i ? ", " : "", f->names[i]);
            break;
        case F_INTLIST:
            if (f->fl & FL_NONEMPTY)
                o = (size_t)snprintf(buf, n, "1..%d entries, each %s .. %s", f->maxn, lo, hi);
            else
                o = (size_t)snprintf(buf, n, "up to %d entries, each %s .. %s", f->maxn, lo, hi);
            break;
        }
    }
    if (f->also && o < n) snprintf(buf + o, n - o, "%s%s", o ? "; " : "", f->also);
}

int jobspec_doc_table(FILE *out, const char *section)
{
    size_t sl = strlen(section);
    const char *only = NULL;
    int n = 0, same = 1;
    for (size_t i = 0; i < g_nfields; i++) {
        const Field *f = &g_fields[i];
        if (strncmp(f->path, section, sl) || f->path[sl] != '.') continue;
        if (n == 0) only = f->only;
        else if ((only == NULL) != (f->only == NULL) || (only && strcmp(only, f->only))) same = 0;
        n++;
    }
    if (n == 0) return ERR(ERR_ARG, "no job-spec section '%s'", section);
    if (same && only) fprintf(out, "Read only by `%s`; a local run ignores them.\n\n", only);
    fprintf(out, "| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n");
    for (size_t i = 0; i < g_nfields; i++) {
        const Field *f = &g_fields[i];
        if (strncmp(f->path, section, sl) || f->path[sl] != '.') continue;
        char allowed[1024];
        allowed_text(allowed, sizeof allowed, f);
        fprintf(out, "| `%s` | %s | ", f->path, type_name(f->type));
        if (f->def) fprintf(out, "`%s`", f->def);
        else fprintf(out, "derived: %s", f->derive);
        fprintf(out, " | %s | %s", allowed, f->doc);
        if (f->only && !same) fprintf(out, " (read only by `%s`)", f->only);
        if (f->pending) fprintf(out, " (not acted on yet: %s)", f->pending);
        fprintf(out, " |\n");
    }
    return ferror(out) ? ERR(ERR_IO, "cannot write the key table of '%s'", section) : ERR_OK;
}
