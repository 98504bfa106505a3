/* io/safetensors.c - safetensors writer and reader (see io/safetensors.h). */
#include "io/safetensors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "io/fsutil.h"

#define HEADER_MAX ((uint64_t)100 << 20)

/* ---- writer ------------------------------------------------------------------------------ */

typedef struct {
    char *b;
    size_t n, cap;
} Buf;

static void bput(Buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->b = xrealloc(b->b, b->cap);
    }
    memcpy(b->b + b->n, s, n);
    b->n += n;
    b->b[b->n] = '\0';
}

static void bprintf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(Buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    ASSERT(n >= 0 && (size_t)n < sizeof tmp);
    bput(b, tmp, (size_t)n);
}

static int plain(const char *s)
{
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20) return 0;
    return 1;
}

int safetensors_write(const char *path, const WeightsTensor *t, size_t nt, const float *data,
                      const char *const *meta, size_t n_meta)
{
    Buf h = {0};
    bput(&h, "{", 1);
    if (n_meta) {
        bput(&h, "\"__metadata__\":{", 16);
        for (size_t i = 0; i < n_meta; i++) {
            ASSERT(plain(meta[2 * i]) && plain(meta[2 * i + 1]));
            bprintf(&h, "%s\"%s\":\"%s\"", i ? "," : "", meta[2 * i], meta[2 * i + 1]);
        }
        bput(&h, "}", 1);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < nt; i++) {
        ASSERT(plain(t[i].name));
        bprintf(&h, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[", (n_meta || i) ? "," : "",
                t[i].name);
        for (int d = 0; d < t[i].ndim; d++) bprintf(&h, "%s%d", d ? "," : "", t[i].shape[d]);
        uint64_t bytes = (uint64_t)t[i].count * 4;
        bprintf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                (unsigned long long)(off + bytes));
        off += bytes;
    }
    bput(&h, "}", 1);
    while (h.n % 8) bput(&h, " ", 1);
    AtomicFile af;
    int rc = fs_atomic_open(&af, path);
    if (rc != ERR_OK) {
        xfree(h.b);
        return rc;
    }
    uint64_t len = h.n;
    int bad = fwrite(&len, 8, 1, af.f) != 1 || fwrite(h.b, 1, h.n, af.f) != h.n;
    for (size_t i = 0; i < nt && !bad; i++)
        bad = fwrite(data + t[i].offset, sizeof(float), t[i].count, af.f) != t[i].count;
    xfree(h.b);
    if (bad) {
        int e = errno;
        fs_atomic_abort(&af);
        return ERR(ERR_IO, "writing %s failed: %s", path, strerror(e));
    }
    return fs_atomic_commit(&af);
}

/* ---- reader: a small JSON scanner for the header ------------------------------------------ */

typedef struct {
    const char *p, *end;
} Js;

static void ws(Js *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r'))
        j->p++;
}

static int lit(Js *j, char c)
{
    ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 1;
    }
    return 0;
}

/* A string without escapes into out (size bytes). */
static int str(Js *j, char *out, size_t size)
{
    if (!lit(j, '"')) return 0;
    size_t n = 0;
    while (j->p < j->end && *j->p != '"') {
        if (*j->p == '\\' || n + 1 >= size) return 0;
        out[n++] = *j->p++;
    }
    if (j->p >= j->end) return 0;
    j->p++;
    out[n] = '\0';
    return 1;
}

static int u64(Js *j, uint64_t *v)
{
    ws(j);
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return 0;
    uint64_t x = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        if (__builtin_mul_overflow(x, 10, &x) || __builtin_add_overflow(x, (uint64_t)(*j->p - '0'), &x))
            return 0;
        j->p++;
    }
    *v = x;
    return 1;
}

/* Skip an object of string values (the metadata). */
static int skip_string_object(Js *j)
{
    char k[1024], v[1024];
    if (!lit(j, '{')) return 0;
    if (lit(j, '}')) return 1;
    do {
        if (!str(j, k, sizeof k) || !lit(j, ':') || !str(j, v, sizeof v)) return 0;
    } while (lit(j, ','));
    return lit(j, '}');
}

int safetensors_read(Weights *w, const char *path)
{
    memset(w, 0, sizeof *w);
    FILE *f = fopen(path, "rb");
    if (!f) return ERR(ERR_IO, "cannot open %s: %s", path, strerror(errno));
    int rc = ERR_OK;
    char *hdr = NULL;
    uint64_t len;
    size_t cap = 0;
    if (fseek(f, 0, SEEK_END) != 0) {
        rc = ERR(ERR_IO, "cannot seek in %s", path);
        goto done;
    }
    long fsize = ftell(f);
    rewind(f);
    if (fsize < 8 || fread(&len, 8, 1, f) != 1 || len < 2 || len > HEADER_MAX ||
        len > (uint64_t)fsize - 8) {
        rc = ERR(ERR_FORMAT, "%s: not a safetensors file (bad header length)", path);
        goto done;
    }
    hdr = xmalloc((size_t)len);
    if (fread(hdr, 1, (size_t)len, f) != len) {
        rc = ERR(ERR_FORMAT, "%s: truncated header", path);
        goto done;
    }
    uint64_t data_bytes = (uint64_t)fsize - 8 - len, expect = 0;
    Js j = {hdr, hdr + len};
    if (!lit(&j, '{')) {
        rc = ERR(ERR_FORMAT, "%s: header is not a JSON object", path);
        goto done;
    }
    int first = 1;
    while (!lit(&j, '}')) {
        if (!first && !lit(&j, ',')) goto bad;
        first = 0;
        char name[256];
        if (!str(&j, name, sizeof name) || !lit(&j, ':')) goto bad;
        if (!strcmp(name, "__metadata__")) {
            if (!skip_string_object(&j)) goto bad;
            continue;
        }
        if (w->n_tensors == cap) {
            cap = cap ? 2 * cap : 64;
            if (cap > 100000) goto bad;
            w->tensors = xrealloc(w->tensors, cap * sizeof *w->tensors);
        }
        WeightsTensor *t = &w->tensors[w->n_tensors];
        memset(t, 0, sizeof *t);
        if (strlen(name) >= sizeof t->name) goto bad;
        memcpy(t->name, name, strlen(name) + 1);
        uint64_t a = UINT64_MAX, b = 0, count = 1;
        int have_dtype = 0, have_shape = 0;
        if (!lit(&j, '{')) goto bad;
        int f2 = 1;
        while (!lit(&j, '}')) {
            char key[32];
            if (!f2 && !lit(&j, ',')) goto bad;
            f2 = 0;
            if (!str(&j, key, sizeof key) || !lit(&j, ':')) goto bad;
            if (!strcmp(key, "dtype")) {
                char dt[16];
                if (!str(&j, dt, sizeof dt)) goto bad;
                if (strcmp(dt, "F32") != 0) {
                    rc = ERR(ERR_FORMAT, "%s: tensor %s has dtype %s (only F32 is read)", path,
                             name, dt);
                    goto done;
                }
                have_dtype = 1;
            } else if (!strcmp(key, "shape")) {
                if (!lit(&j, '[')) goto bad;
                while (!lit(&j, ']')) {
                    uint64_t d;
                    if (t->ndim && !lit(&j, ',')) goto bad;
                    if (t->ndim >= 4 || !u64(&j, &d) || d == 0 || d > INT32_MAX ||
                        __builtin_mul_overflow(count, d, &count))
                        goto bad;
                    t->shape[t->ndim++] = (int)d;
                }
                have_shape = 1;
            } else if (!strcmp(key, "data_offsets")) {
                if (!lit(&j, '[') || !u64(&j, &a) || !lit(&j, ',') || !u64(&j, &b) || !lit(&j, ']'))
                    goto bad;
            } else {
                goto bad;
            }
        }
        uint64_t bytes;
        if (!have_dtype || !have_shape || t->ndim == 0 || a != expect || b < a ||
            __builtin_mul_overflow(count, 4, &bytes) || b - a != bytes || b > data_bytes) {
            rc = ERR(ERR_FORMAT, "%s: tensor %s: bad dtype, shape or data_offsets", path, name);
            goto done;
        }
        for (int d = t->ndim; d < 4; d++) t->shape[d] = 1;
        t->offset = (size_t)(a / 4);
        t->count = (size_t)count;
        expect = b;
        w->n_tensors++;
    }
    ws(&j);
    if (j.p != j.end || expect != data_bytes || w->n_tensors == 0) {
        rc = ERR(ERR_FORMAT, "%s: data does not match the header (%llu of %llu bytes described)",
                 path, (unsigned long long)expect, (unsigned long long)data_bytes);
        goto done;
    }
    w->n = (size_t)(expect / 4);
    w->params = xmalloc(sizeof(float) * w->n + 1);
    if (fread(w->params, 4, w->n, f) != w->n) rc = ERR(ERR_FORMAT, "%s: truncated data", path);
    goto done;
bad:
    rc = ERR(ERR_FORMAT, "%s: malformed safetensors header near byte %ld", path,
             (long)(j.p - hdr));
done:
    xfree(hdr);
    fclose(f);
    if (rc != ERR_OK) weights_free(w);
    return rc;
}
