/* io/weights.c - write and read weights files (see io/weights.h). */
#include "io/weights.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/ckd.h"
#include "core/err.h"
#include "core/mem.h"
#include "io/fsutil.h"

#define MAGIC "DFMWGHT1"
#define VERSION 1u
#define ENDIAN_TAG 0x01020304u

static int put(FILE *f, const void *p, size_t n, int *rc)
{
    if (*rc == 0 && fwrite(p, 1, n, f) != n) *rc = 1;
    return *rc;
}

int weights_write(const char *path, const WeightsTensor *t, size_t nt, const float *params,
                  const float *ema, size_t n)
{
    AtomicFile af;
    TRY(fs_atomic_open(&af, path));
    int bad = 0;
    uint32_t u32;
    uint64_t u64;
    put(af.f, MAGIC, 8, &bad);
    u32 = VERSION; put(af.f, &u32, 4, &bad);
    u32 = ENDIAN_TAG; put(af.f, &u32, 4, &bad);
    u64 = nt; put(af.f, &u64, 8, &bad);
    u64 = n; put(af.f, &u64, 8, &bad);
    u32 = ema ? 2 : 1; put(af.f, &u32, 4, &bad);
    u32 = 0; put(af.f, &u32, 4, &bad);
    for (size_t i = 0; i < nt; i++) {
        u32 = (uint32_t)strnlen(t[i].name, sizeof t[i].name);
        put(af.f, &u32, 4, &bad);
        put(af.f, t[i].name, u32, &bad);
        u32 = (uint32_t)t[i].ndim; put(af.f, &u32, 4, &bad);
        for (int d = 0; d < 4; d++) {
            u32 = (uint32_t)(d < t[i].ndim ? t[i].shape[d] : 1);
            put(af.f, &u32, 4, &bad);
        }
        u64 = t[i].offset; put(af.f, &u64, 8, &bad);
        u64 = t[i].count; put(af.f, &u64, 8, &bad);
    }
    put(af.f, params, sizeof(float) * n, &bad);
    if (ema) put(af.f, ema, sizeof(float) * n, &bad);
    if (bad) {
        int e = errno;
        fs_atomic_abort(&af);
        return ERR(ERR_IO, "writing %s failed: %s", path, strerror(e));
    }
    return fs_atomic_commit(&af);
}

static int get(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n; }

/* Tensor names are printable ASCII without spaces ("down.0.res.0.conv1.weight"): a name read
 * from a file is quoted in messages, so it must not carry control characters. */
static int name_ok(const char *s, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++)
        if (s[i] <= ' ' || s[i] > '~') return 0;
    return 1;
}

/* Fixed part of the header, and the smallest table entry (empty name). */
#define HEADER_BYTES 40u
#define ENTRY_MIN_BYTES 40u

int weights_read_stream(Weights *w, FILE *f, uint64_t size, const char *path)
{
    memset(w, 0, sizeof *w);
    char magic[8];
    uint32_t version, tag, nbuf, reserved;
    uint64_t nt, n;
    int rc = ERR_OK;
    if (!get(f, magic, 8) || memcmp(magic, MAGIC, 8) != 0) {
        rc = ERR(ERR_FORMAT, "%s is not a dfm weights file (bad magic)", path);
        goto done;
    }
    if (!get(f, &version, 4) || !get(f, &tag, 4) || !get(f, &nt, 8) || !get(f, &n, 8) ||
        !get(f, &nbuf, 4) || !get(f, &reserved, 4)) {
        rc = ERR(ERR_FORMAT, "%s: truncated header", path);
        goto done;
    }
    if (version != VERSION) {
        rc = ERR(ERR_FORMAT, "%s: weights format version %u, this dfm reads %u", path, version,
                 VERSION);
        goto done;
    }
    if (tag != ENDIAN_TAG) {
        rc = ERR(ERR_FORMAT, "%s: written on a machine of the other endianness", path);
        goto done;
    }
    /* Every count is checked against the file's real size before anything is allocated, so a
     * crafted header cannot make the reader allocate more than the file holds. */
    uint64_t table_min, data_bytes, need;
    if (nt == 0 || n == 0 || (nbuf != 1 && nbuf != 2) || ckd_mul_u64(&table_min, nt, ENTRY_MIN_BYTES) ||
        ckd_mul_u64(&data_bytes, n, (uint64_t)nbuf * sizeof(float)) ||
        ckd_add_u64(&need, table_min, data_bytes) || ckd_add_u64(&need, need, HEADER_BYTES) ||
        need > size || n > SIZE_MAX / sizeof(float)) {
        rc = ERR(ERR_FORMAT, "%s: implausible header (%llu tensors, %llu floats, %u buffers) "
                 "for a file of %llu bytes", path, (unsigned long long)nt, (unsigned long long)n,
                 nbuf, (unsigned long long)size);
        goto done;
    }
    w->n_tensors = (size_t)nt;
    w->n = (size_t)n;
    w->tensors = xcalloc(w->n_tensors, sizeof *w->tensors);
    uint64_t expect = 0, pos = HEADER_BYTES;
    for (size_t i = 0; i < w->n_tensors; i++) {
        WeightsTensor *t = &w->tensors[i];
        uint32_t len, ndim, shape[4];
        uint64_t off, cnt;
        if (!get(f, &len, 4) || len == 0 || len >= sizeof t->name || !get(f, t->name, len) ||
            !name_ok(t->name, len) || !get(f, &ndim, 4) || ndim < 1 || ndim > 4 ||
            !get(f, shape, 16) || !get(f, &off, 8) || !get(f, &cnt, 8)) {
            rc = ERR(ERR_FORMAT, "%s: corrupt parameter table at tensor %zu", path, i);
            goto done;
        }
        pos += 40u + len;
        /* The count is the exact product of the shape (no wrap-around), every dimension a
         * positive int, unused dimensions 1; tensors follow each other without gaps or overlap
         * and stay inside [0, n). */
        uint64_t prod = 1;
        int bad = 0;
        for (uint32_t d = 0; d < 4; d++) {
            if (d >= ndim) bad |= shape[d] != 1;
            else bad |= shape[d] == 0 || shape[d] > INT32_MAX || ckd_mul_u64(&prod, prod, shape[d]);
        }
        if (bad || cnt != prod) {
            rc = ERR(ERR_FORMAT, "%s: tensor %zu (%s): count %llu does not match its shape",
                     path, i, t->name, (unsigned long long)cnt);
            goto done;
        }
        if (off != expect || !ckd_range_ok(off, cnt, n)) {
            rc = ERR(ERR_FORMAT, "%s: tensor %s does not tile the buffer (offset %llu, count %llu, "
                     "%llu floats)", path, t->name, (unsigned long long)off,
                     (unsigned long long)cnt, (unsigned long long)n);
            goto done;
        }
        expect = off + cnt; /* <= n: no overflow */
        t->ndim = (int)ndim;
        for (int d = 0; d < 4; d++) t->shape[d] = (int)shape[d];
        t->offset = (size_t)off;
        t->count = (size_t)cnt;
    }
    if (expect != n) {
        rc = ERR(ERR_FORMAT, "%s: tensors cover %llu of %llu floats", path,
                 (unsigned long long)expect, (unsigned long long)n);
        goto done;
    }
    if (pos > size || size - pos != data_bytes) {
        rc = ERR(ERR_FORMAT, "%s: %llu bytes after the parameter table, expected %llu (%s)", path,
                 (unsigned long long)(pos > size ? 0 : size - pos), (unsigned long long)data_bytes,
                 pos > size || size - pos < data_bytes ? "truncated parameters"
                                                       : "trailing bytes after the weights");
        goto done;
    }
    w->params = xmalloc(sizeof(float) * w->n);
    if (!get(f, w->params, sizeof(float) * w->n)) {
        rc = ERR(ERR_FORMAT, "%s: truncated parameters", path);
        goto done;
    }
    if (nbuf == 2) {
        w->ema = xmalloc(sizeof(float) * w->n);
        if (!get(f, w->ema, sizeof(float) * w->n)) {
            rc = ERR(ERR_FORMAT, "%s: truncated EMA weights", path);
            goto done;
        }
    }
    if (fgetc(f) != EOF) rc = ERR(ERR_FORMAT, "%s: trailing bytes after the weights", path);
done:
    if (rc) weights_free(w);
    return rc;
}

int weights_read(Weights *w, const char *path)
{
    memset(w, 0, sizeof *w);
    FILE *f = fopen(path, "rb");
    if (!f) return ERR(ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        return ERR(ERR_IO, "cannot stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        fclose(f);
        return ERR(ERR_IO, "%s is not a regular file", path);
    }
    int rc = weights_read_stream(w, f, (uint64_t)st.st_size, path);
    fclose(f);
    return rc;
}

void weights_free(Weights *w)
{
    xfree(w->tensors);
    xfree(w->params);
    xfree(w->ema);
    memset(w, 0, sizeof *w);
}
