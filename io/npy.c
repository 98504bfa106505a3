/* io/npy.c - .npy writer and reader (format 1.0). */
#include "io/npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "io/fsutil.h"

static const unsigned char MAGIC[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

static int write_any(const char *path, const void *x, size_t elem, const char *descr,
                     const size_t *shape, int ndim)
{
    if (ndim < 1 || ndim > NPY_MAX_DIMS) return ERR(ERR_ARG, "npy: %d axes (1..%d)", ndim, NPY_MAX_DIMS);
    char hdr[512];
    int len = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    size_t n = 1;
    for (int d = 0; d < ndim; d++) {
        len += snprintf(hdr + len, sizeof hdr - (size_t)len, "%zu%s", shape[d],
                        ndim == 1 ? "," : (d + 1 < ndim ? ", " : ""));
        n *= shape[d];
    }
    len += snprintf(hdr + len, sizeof hdr - (size_t)len, "), }");
    /* magic (6) + version (2) + header length (2) + header, padded to 64 with '\n' last */
    size_t total = 10 + (size_t)len + 1;
    size_t pad = (64 - total % 64) % 64;
    memset(hdr + len, ' ', pad);
    hdr[(size_t)len + pad] = '\n';
    size_t hlen = (size_t)len + pad + 1;
    AtomicFile af;
    TRY(fs_atomic_open(&af, path));
    unsigned char pre[10];
    memcpy(pre, MAGIC, 6);
    pre[6] = 1;
    pre[7] = 0;
    pre[8] = (unsigned char)(hlen & 0xff);
    pre[9] = (unsigned char)(hlen >> 8);
    int bad = fwrite(pre, 1, 10, af.f) != 10 || fwrite(hdr, 1, hlen, af.f) != hlen ||
              (n > 0 && fwrite(x, elem, n, af.f) != n);
    if (bad) {
        int e = errno;
        fs_atomic_abort(&af);
        return ERR(ERR_IO, "writing %s failed: %s", path, strerror(e));
    }
    return fs_atomic_commit(&af);
}

int npy_write_f32(const char *path, const float *x, const size_t *shape, int ndim)
{
    return write_any(path, x, sizeof(float), "<f4", shape, ndim);
}

int npy_write_u8(const char *path, const uint8_t *x, const size_t *shape, int ndim)
{
    return write_any(path, x, 1, "|u1", shape, ndim);
}

int npy_read_f32(const char *path, float **out, size_t *shape, int *ndim, int *is_u8)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return ERR(ERR_IO, "cannot open %s: %s", path, strerror(errno));
    unsigned char pre[10];
    char hdr[4096];
    int rc = ERR_OK;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, MAGIC, 6)) {
        rc = ERR(ERR_FORMAT, "%s is not a .npy file (bad magic)", path);
        goto done;
    }
    if (pre[6] != 1) {
        rc = ERR(ERR_FORMAT, "%s: .npy format version %d.%d, dfm reads 1.0", path, pre[6], pre[7]);
        goto done;
    }
    size_t hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    if (hlen >= sizeof hdr || fread(hdr, 1, hlen, f) != hlen) {
        rc = ERR(ERR_FORMAT, "%s: truncated or oversized header", path);
        goto done;
    }
    hdr[hlen] = '\0';
    int f32 = strstr(hdr, "'descr': '<f4'") != NULL, u8 = strstr(hdr, "'descr': '|u1'") != NULL;
    if (!f32 && !u8) {
        rc = ERR(ERR_FORMAT, "%s: dtype must be float32 ('<f4') or uint8 ('|u1')", path);
        goto done;
    }
    if (!strstr(hdr, "'fortran_order': False")) {
        rc = ERR(ERR_FORMAT, "%s: only C-order arrays are read (fortran_order must be False)", path);
        goto done;
    }
    const char *s = strstr(hdr, "'shape': (");
    if (!s) {
        rc = ERR(ERR_FORMAT, "%s: header has no shape", path);
        goto done;
    }
    s += 10;
    *ndim = 0;
    size_t n = 1;
    while (*s && *s != ')') {
        char *end;
        if (*s == ' ' || *s == ',') { s++; continue; }
        unsigned long long v = strtoull(s, &end, 10);
        if (end == s || *ndim >= NPY_MAX_DIMS || v > (1ull << 40)) {
            rc = ERR(ERR_FORMAT, "%s: bad shape in header", path);
            goto done;
        }
        shape[(*ndim)++] = (size_t)v;
        n *= (size_t)v;
        s = end;
    }
    if (*s != ')' || *ndim == 0) {
        rc = ERR(ERR_FORMAT, "%s: bad shape in header", path);
        goto done;
    }
    size_t elem = f32 ? 4 : 1;
    if (is_u8) *is_u8 = !f32;
    long here = ftell(f);
    fseek(f, 0, SEEK_END);
    long flen = ftell(f);
    if (flen < 0 || (size_t)(flen - here) != n * elem) {
        rc = ERR(ERR_FORMAT, "%s: %ld data bytes, the shape needs %zu", path, flen - here, n * elem);
        goto done;
    }
    fseek(f, here, SEEK_SET);
    float *x = xmalloc(sizeof(float) * (n ? n : 1));
    if (f32) {
        if (fread(x, 4, n, f) != n) rc = ERR(ERR_IO, "reading %s failed", path);
    } else {
        uint8_t *b = xmalloc(n ? n : 1);
        if (fread(b, 1, n, f) != n) rc = ERR(ERR_IO, "reading %s failed", path);
        for (size_t i = 0; i < n; i++) x[i] = (float)b[i];
        xfree(b);
    }
    if (rc == ERR_OK) *out = x;
    else xfree(x);
done:
    fclose(f);
    return rc;
}
