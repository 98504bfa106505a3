/* io/ckpt.c - checkpoint shards, manifest.yaml, listing and verification (see io/ckpt.h). */
#include "io/ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "core/err.h"
#include "core/mem.h"
#include "io/fsutil.h"
#include "io/sha256.h"

#define SHARD_MAGIC "DFMSHRD1"
#define SHARD_VERSION 1u
#define ENDIAN_TAG 0x01020304u
#define IO_CHUNK ((size_t)4 << 20)
#define MANIFEST_MAX ((size_t)256 << 20)

/* out = a "/" b; 0 when it does not fit */
static int join(char *out, size_t size, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la + lb + 2 > size) return 0;
    memcpy(out, a, la);
    out[la] = '/';
    memcpy(out + la + 1, b, lb + 1);
    return 1;
}

/* ---- checked arithmetic ---------------------------------------------------------------- */

static int mul_u64(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_mul_overflow(a, b, r); }
static int add_u64(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_add_overflow(a, b, r); }

/* Bytes of a shard with nbuf buffers of `count` values, 0 on overflow. */
static uint64_t shard_bytes(uint64_t nbuf, uint64_t count)
{
    uint64_t a, b, c;
    if (!mul_u64(nbuf, count, &a) || !mul_u64(a, 4, &b) || !add_u64(b, CKPT_SHARD_HEADER, &c))
        return 0;
    return c;
}

const char *ckpt_kind_name(CkptKind k)
{
    static const char *const names[] = {"params", "ema", "m", "v"};
    return (unsigned)k < CKPT_NKINDS ? names[k] : "?";
}

int ckpt_kind_index(CkptKind k, int has_ema)
{
    switch (k) {
    case CKPT_PARAMS: return 0;
    case CKPT_EMA: return has_ema ? 1 : -1;
    case CKPT_M: return has_ema ? 2 : 1;
    case CKPT_V: return has_ema ? 3 : 2;
    default: return -1;
    }
}

void ckpt_shard_name(char *buf, size_t size, uint32_t rank, uint32_t world)
{
    snprintf(buf, size, "shard-%05u-of-%05u.bin", rank, world);
}

void ckpt_step_name(char *buf, size_t size, uint64_t step)
{
    snprintf(buf, size, "step-%08" PRIu64, step);
}

/* ---- shards ------------------------------------------------------------------------------ */

static void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static int write_all(int fd, const void *p, size_t n, const char *path, uint64_t done,
                     uint64_t total)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            ERR(ERR_IO, "writing %s failed after %" PRIu64 " of %" PRIu64 " bytes: %s", path,
                done, total, strerror(e));
            if (e == ENOSPC || e == EDQUOT)
                err_hint("the file system holding %s is full: free space or point checkpoint.dir "
                         "elsewhere", path);
            return ERR_IO;
        }
        c += w;
        n -= (size_t)w;
        done += (uint64_t)w;
    }
    return ERR_OK;
}

int ckpt_shard_write(const char *path, const CkptShardHeader *h, const float *const *bufs,
                     uint64_t *bytes, char sha256[65], CkptChunkHook hook, void *hook_ctx)
{
    ASSERT(h->lo <= h->hi && h->hi <= h->n && (h->nbuf == 3 || h->nbuf == 4));
    uint64_t count = h->hi - h->lo, total = shard_bytes(h->nbuf, count);
    ASSERT(total != 0);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return ERR(ERR_IO, "cannot create %s: %s", path, strerror(errno));
    unsigned char hdr[CKPT_SHARD_HEADER] = {0};
    memcpy(hdr, SHARD_MAGIC, 8);
    put32(hdr + 8, SHARD_VERSION);
    put32(hdr + 12, ENDIAN_TAG);
    put32(hdr + 16, h->rank);
    put32(hdr + 20, h->world);
    put32(hdr + 24, h->nbuf);
    put32(hdr + 28, h->has_ema ? 1u : 0u);
    put64(hdr + 32, h->n);
    put64(hdr + 40, h->lo);
    put64(hdr + 48, h->hi);
    put64(hdr + 56, h->step);
    Sha256 *sh = sha256_create();
    uint64_t done = 0;
    int rc = write_all(fd, hdr, sizeof hdr, path, done, total);
    if (rc == ERR_OK) {
        sha256_update(sh, hdr, sizeof hdr);
        done += sizeof hdr;
    }
    for (uint32_t b = 0; rc == ERR_OK && b < h->nbuf; b++) {
        const char *p = (const char *)bufs[b];
        uint64_t left = count * 4;
        while (rc == ERR_OK && left > 0) {
            size_t c = left < IO_CHUNK ? (size_t)left : IO_CHUNK;
            rc = write_all(fd, p, c, path, done, total);
            if (rc != ERR_OK) break;
            sha256_update(sh, p, c);
            p += c;
            left -= c;
            done += c;
            if (hook) hook(hook_ctx, done, total);
        }
    }
    if (rc == ERR_OK && fsync(fd) != 0) {
        int e = errno;
        rc = ERR(ERR_IO, "fsync of %s failed: %s", path, strerror(e));
        if (e == ENOSPC || e == EDQUOT) err_hint("the file system holding %s is full", path);
    }
    if (close(fd) != 0 && rc == ERR_OK)
        rc = ERR(ERR_IO, "closing %s failed: %s", path, strerror(errno));
    char hex[65];
    sha256_final_hex(sh, hex);
    if (rc != ERR_OK) {
        unlink(path);
        return rc;
    }
    *bytes = done;
    memcpy(sha256, hex, 65);
    return ERR_OK;
}

static int pread_all(int fd, void *p, size_t n, uint64_t off)
{
    char *c = p;
    while (n > 0) {
        ssize_t r = pread(fd, c, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return 0;
        c += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 1;
}

int ckpt_shard_open(CkptShard *s, const char *path)
{
    memset(s, 0, sizeof *s);
    s->fd = -1;
    snprintf(s->path, sizeof s->path, "%s", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ERR(ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    unsigned char hdr[CKPT_SHARD_HEADER];
    int rc = ERR_OK;
    if (fstat(fd, &st) != 0) {
        rc = ERR(ERR_IO, "cannot stat %s: %s", path, strerror(errno));
    } else if ((uint64_t)st.st_size < CKPT_SHARD_HEADER || !pread_all(fd, hdr, sizeof hdr, 0)) {
        rc = ERR(ERR_FORMAT, "%s: truncated shard (%lld bytes, shorter than its header)", path,
                 (long long)st.st_size);
    } else if (memcmp(hdr, SHARD_MAGIC, 8) != 0) {
        rc = ERR(ERR_FORMAT, "%s is not a dfm checkpoint shard (bad magic)", path);
    } else if (get32(hdr + 8) != SHARD_VERSION) {
        rc = ERR(ERR_FORMAT, "%s: shard format version %u, this dfm reads version %u", path,
                 get32(hdr + 8), SHARD_VERSION);
    } else if (get32(hdr + 12) != ENDIAN_TAG) {
        rc = ERR(ERR_FORMAT, "%s: written on a machine of the other endianness", path);
    } else {
        CkptShardHeader *h = &s->h;
        h->rank = get32(hdr + 16);
        h->world = get32(hdr + 20);
        h->nbuf = get32(hdr + 24);
        h->has_ema = get32(hdr + 28);
        h->n = get64(hdr + 32);
        h->lo = get64(hdr + 40);
        h->hi = get64(hdr + 48);
        h->step = get64(hdr + 56);
        uint64_t want;
        if (h->world == 0 || h->world > CKPT_MAX_WORLD || h->rank >= h->world ||
            h->has_ema > 1 || h->nbuf != 3 + h->has_ema || h->n == 0 || h->n > CKPT_MAX_N ||
            h->lo > h->hi || h->hi > h->n) {
            rc = ERR(ERR_FORMAT, "%s: implausible shard header (rank %u of %u, %u buffers, "
                     "[%" PRIu64 ", %" PRIu64 ") of %" PRIu64 ")", path, h->rank, h->world,
                     h->nbuf, h->lo, h->hi, h->n);
        } else if ((want = shard_bytes(h->nbuf, h->hi - h->lo)) != (uint64_t)st.st_size) {
            rc = ERR(ERR_INTEGRITY, "%s: %lld bytes, its header implies %" PRIu64 "%s", path,
                     (long long)st.st_size, want,
                     (uint64_t)st.st_size < want ? " (truncated)" : " (trailing bytes)");
        }
    }
    if (rc != ERR_OK) {
        close(fd);
        return rc;
    }
    s->fd = fd;
    return ERR_OK;
}

int ckpt_shard_read(const CkptShard *s, CkptKind k, uint64_t i0, uint64_t i1, float *out)
{
    const CkptShardHeader *h = &s->h;
    int b = ckpt_kind_index(k, (int)h->has_ema);
    if (b < 0) return ERR(ERR_FORMAT, "%s holds no %s buffer", s->path, ckpt_kind_name(k));
    if (i0 > i1 || i0 < h->lo || i1 > h->hi)
        return ERR(ERR_ARG, "%s: range [%" PRIu64 ", %" PRIu64 ") outside its slice", s->path, i0,
                   i1);
    uint64_t count = h->hi - h->lo;
    /* bounded by the header check: nbuf * count * 4 + 64 did not overflow */
    uint64_t off = CKPT_SHARD_HEADER + 4 * ((uint64_t)b * count + (i0 - h->lo));
    if (!pread_all(s->fd, out, (size_t)(i1 - i0) * 4, off))
        return ERR(ERR_IO, "reading %s failed: %s", s->path, errno ? strerror(errno) : "short read");
    return ERR_OK;
}

void ckpt_shard_close(CkptShard *s)
{
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
}

int ckpt_file_sha256(const char *path, char hex[65], uint64_t *bytes)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ERR(ERR_IO, "cannot open %s: %s", path, strerror(errno));
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    char *buf = xmalloc(IO_CHUNK);
    Sha256 *sh = sha256_create();
    uint64_t total = 0;
    int rc = ERR_OK;
    for (;;) {
        ssize_t r = read(fd, buf, IO_CHUNK);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = ERR(ERR_IO, "reading %s failed: %s", path, strerror(errno));
            break;
        }
        if (r == 0) break;
        sha256_update(sh, buf, (size_t)r);
        total += (uint64_t)r;
    }
    sha256_final_hex(sh, hex);
    xfree(buf);
    close(fd);
    if (bytes) *bytes = total;
    return rc;
}

/* ---- manifest: writing -------------------------------------------------------------------- */

typedef struct {
    yaml_emitter_t em;
    int ok;
} Emit;

static void ev(Emit *e, yaml_event_t *event)
{
    if (e->ok && !yaml_emitter_emit(&e->em, event)) e->ok = 0;
}

static void scalar_style(Emit *e, const char *s, yaml_scalar_style_t style)
{
    yaml_event_t event;
    if (!e->ok) return;
    if (!yaml_scalar_event_initialize(&event, NULL, NULL, (yaml_char_t *)(uintptr_t)s,
                                      (int)strlen(s), 1, 1, style)) {
        e->ok = 0;
        return;
    }
    ev(e, &event);
}

static void scalar(Emit *e, const char *s) { scalar_style(e, s, YAML_ANY_SCALAR_STYLE); }

static void kv(Emit *e, const char *k, const char *v)
{
    scalar(e, k);
    scalar(e, v);
}

static void kv_u64(Emit *e, const char *k, uint64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "%" PRIu64, v);
    kv(e, k, b);
}

static void map_start(Emit *e, int flow)
{
    yaml_event_t event;
    if (!e->ok) return;
    yaml_mapping_start_event_initialize(&event, NULL, NULL, 1,
                                        flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE);
    ev(e, &event);
}

static void map_end(Emit *e)
{
    yaml_event_t event;
    if (!e->ok) return;
    yaml_mapping_end_event_initialize(&event);
    ev(e, &event);
}

static void seq_start(Emit *e, int flow)
{
    yaml_event_t event;
    if (!e->ok) return;
    yaml_sequence_start_event_initialize(&event, NULL, NULL, 1,
                                         flow ? YAML_FLOW_SEQUENCE_STYLE
                                              : YAML_BLOCK_SEQUENCE_STYLE);
    ev(e, &event);
}

static void seq_end(Emit *e)
{
    yaml_event_t event;
    if (!e->ok) return;
    yaml_sequence_end_event_initialize(&event);
    ev(e, &event);
}

static int file_write_handler(void *data, unsigned char *buffer, size_t size)
{
    return fwrite(buffer, 1, size, (FILE *)data) == size;
}

int ckpt_manifest_write(const char *dir, const CkptManifest *m)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/manifest.yaml", dir);
    AtomicFile af;
    TRY(fs_atomic_open(&af, path));
    Emit e = {.ok = 1};
    yaml_event_t event;
    if (!yaml_emitter_initialize(&e.em)) {
        fs_atomic_abort(&af);
        return ERR(ERR_NOMEM, "cannot initialise the YAML emitter");
    }
    yaml_emitter_set_output(&e.em, file_write_handler, af.f);
    yaml_emitter_set_unicode(&e.em, 1);
    yaml_emitter_set_width(&e.em, 100);
    yaml_stream_start_event_initialize(&event, YAML_UTF8_ENCODING);
    ev(&e, &event);
    yaml_document_start_event_initialize(&event, NULL, NULL, NULL, 1);
    ev(&e, &event);
    map_start(&e, 0);
    kv(&e, "format", "dfm-checkpoint");
    kv_u64(&e, "format_version", (uint64_t)m->format_version);
    kv(&e, "dfm_version", m->dfm_version);
    kv(&e, "dfm_commit", m->dfm_commit);
    kv_u64(&e, "step", m->step);
    kv(&e, "time", m->time);
    kv_u64(&e, "world_size", m->world);
    kv_u64(&e, "n", m->n);
    scalar(&e, "buffers");
    seq_start(&e, 1);
    for (int k = 0; k < CKPT_NKINDS; k++)
        if (ckpt_kind_index((CkptKind)k, m->has_ema) >= 0) scalar(&e, ckpt_kind_name((CkptKind)k));
    seq_end(&e);
    kv(&e, "zero1", m->zero1 ? "true" : "false");
    scalar(&e, "counters");
    map_start(&e, 0);
    kv_u64(&e, "optim_step", m->counters.optim_step);
    kv_u64(&e, "ema_updates", m->counters.ema_updates);
    kv_u64(&e, "nonfinite", m->counters.nonfinite);
    kv_u64(&e, "consecutive_bad", m->counters.consecutive_bad);
    kv_u64(&e, "steps_done", m->counters.steps_done);
    map_end(&e);
    scalar(&e, "shards");
    seq_start(&e, 0);
    for (uint32_t r = 0; r < m->world; r++) {
        const CkptShardInfo *s = &m->shards[r];
        map_start(&e, 1);
        kv(&e, "file", s->file);
        kv_u64(&e, "rank", s->rank);
        kv_u64(&e, "lo", s->lo);
        kv_u64(&e, "hi", s->hi);
        kv_u64(&e, "bytes", s->bytes);
        kv(&e, "sha256", s->sha256);
        map_end(&e);
    }
    seq_end(&e);
    scalar(&e, "params");
    seq_start(&e, 0);
    for (size_t i = 0; i < m->n_tensors; i++) {
        const CkptTensor *t = &m->tensors[i];
        map_start(&e, 1);
        kv(&e, "name", t->name);
        scalar(&e, "shape");
        seq_start(&e, 1);
        for (int d = 0; d < t->ndim; d++) {
            char b[16];
            snprintf(b, sizeof b, "%d", t->shape[d]);
            scalar(&e, b);
        }
        seq_end(&e);
        kv_u64(&e, "offset", t->offset);
        kv_u64(&e, "count", t->count);
        map_end(&e);
    }
    seq_end(&e);
    kv(&e, "spec_sha256", m->spec_sha256);
    scalar(&e, "spec");
    scalar_style(&e, m->spec ? m->spec : "", YAML_LITERAL_SCALAR_STYLE);
    map_end(&e);
    yaml_document_end_event_initialize(&event, 1);
    ev(&e, &event);
    yaml_stream_end_event_initialize(&event);
    ev(&e, &event);
    if (e.ok && !yaml_emitter_flush(&e.em)) e.ok = 0;
    yaml_emitter_delete(&e.em);
    if (!e.ok || ferror(af.f)) {
        int err = errno;
        fs_atomic_abort(&af);
        return ERR(ERR_IO, "writing %s failed: %s", path, err ? strerror(err) : "YAML emitter");
    }
    return fs_atomic_commit(&af);
}

/* ---- manifest: reading -------------------------------------------------------------------- */

typedef struct {
    yaml_document_t doc;
    const char *name;
} Doc;

static yaml_node_t *map_get(Doc *d, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(&d->doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE && k->data.scalar.length == strlen(key) &&
            !memcmp(k->data.scalar.value, key, k->data.scalar.length))
            return yaml_document_get_node(&d->doc, p->value);
    }
    return NULL;
}

static int get_str(Doc *d, yaml_node_t *map, const char *key, char *out, size_t size,
                   const char *where)
{
    yaml_node_t *n = map_get(d, map, key);
    if (!n || n->type != YAML_SCALAR_NODE)
        return ERR(ERR_FORMAT, "%s: %s: missing or not a scalar: %s", d->name, where, key);
    if (n->data.scalar.length >= size)
        return ERR(ERR_FORMAT, "%s: %s: %s is too long", d->name, where, key);
    memcpy(out, n->data.scalar.value, n->data.scalar.length);
    out[n->data.scalar.length] = '\0';
    return ERR_OK;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!*s || *s < '0' || *s > '9') return 0;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return 0;
        if (!mul_u64(v, 10, &v) || !add_u64(v, (uint64_t)(*s - '0'), &v)) return 0;
    }
    if (v > max) return 0;
    *out = v;
    return 1;
}

static int get_u64(Doc *d, yaml_node_t *map, const char *key, uint64_t max, uint64_t *out,
                   const char *where)
{
    char b[32];
    TRY(get_str(d, map, key, b, sizeof b, where));
    if (!parse_u64(b, max, out))
        return ERR(ERR_FORMAT, "%s: %s: %s = '%s' is not an integer in [0, %" PRIu64 "]", d->name,
                   where, key, b, max);
    return ERR_OK;
}

static int check_hex(const Doc *d, const char *hex, const char *where)
{
    if (strlen(hex) != 64) return ERR(ERR_FORMAT, "%s: %s: sha256 is not 64 hex digits", d->name, where);
    for (int i = 0; i < 64; i++)
        if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
            return ERR(ERR_FORMAT, "%s: %s: sha256 is not lowercase hex", d->name, where);
    return ERR_OK;
}

static int seq_len(yaml_node_t *n, size_t *len)
{
    if (!n || n->type != YAML_SEQUENCE_NODE) return 0;
    *len = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    return 1;
}

static int manifest_from_doc(CkptManifest *m, Doc *d)
{
    yaml_node_t *root = yaml_document_get_root_node(&d->doc);
    if (!root || root->type != YAML_MAPPING_NODE)
        return ERR(ERR_FORMAT, "%s: not a YAML mapping", d->name);
    char buf[64];
    uint64_t u;
    TRY(get_str(d, root, "format", buf, sizeof buf, "top level"));
    if (strcmp(buf, "dfm-checkpoint") != 0)
        return ERR(ERR_FORMAT, "%s: format '%s', expected dfm-checkpoint", d->name, buf);
    TRY(get_u64(d, root, "format_version", 1000000, &u, "top level"));
    m->format_version = (int)u;
    if (u != CKPT_FORMAT_VERSION) {
        ERR(ERR_FORMAT, "%s: checkpoint format version %" PRIu64 ", this dfm reads version %d",
            d->name, u, CKPT_FORMAT_VERSION);
        err_hint("use the dfm version that wrote it (see dfm_version in the manifest)");
        return ERR_FORMAT;
    }
    TRY(get_str(d, root, "dfm_version", m->dfm_version, sizeof m->dfm_version, "top level"));
    TRY(get_str(d, root, "dfm_commit", m->dfm_commit, sizeof m->dfm_commit, "top level"));
    TRY(get_u64(d, root, "step", UINT64_C(1) << 62, &m->step, "top level"));
    TRY(get_str(d, root, "time", m->time, sizeof m->time, "top level"));
    TRY(get_u64(d, root, "world_size", CKPT_MAX_WORLD, &u, "top level"));
    if (u == 0) return ERR(ERR_FORMAT, "%s: world_size is 0", d->name);
    m->world = (uint32_t)u;
    TRY(get_u64(d, root, "n", CKPT_MAX_N, &m->n, "top level"));
    if (m->n == 0) return ERR(ERR_FORMAT, "%s: n is 0", d->name);
    TRY(get_str(d, root, "zero1", buf, sizeof buf, "top level"));
    m->zero1 = !strcmp(buf, "true");
    /* buffers */
    yaml_node_t *bl = map_get(d, root, "buffers");
    size_t nb;
    if (!seq_len(bl, &nb) || (nb != 3 && nb != 4))
        return ERR(ERR_FORMAT, "%s: buffers must list 3 or 4 names", d->name);
    m->has_ema = nb == 4;
    for (size_t i = 0; i < nb; i++) {
        yaml_node_t *s = yaml_document_get_node(&d->doc, bl->data.sequence.items.start[i]);
        static const CkptKind with[] = {CKPT_PARAMS, CKPT_EMA, CKPT_M, CKPT_V};
        static const CkptKind without[] = {CKPT_PARAMS, CKPT_M, CKPT_V};
        const char *want = ckpt_kind_name(nb == 4 ? with[i] : without[i]);
        if (!s || s->type != YAML_SCALAR_NODE || s->data.scalar.length != strlen(want) ||
            memcmp(s->data.scalar.value, want, s->data.scalar.length))
            return ERR(ERR_FORMAT, "%s: buffers must be [params, ema, m, v] or [params, m, v]",
                       d->name);
    }
    /* counters */
    yaml_node_t *c = map_get(d, root, "counters");
    if (!c || c->type != YAML_MAPPING_NODE)
        return ERR(ERR_FORMAT, "%s: counters: missing or not a mapping", d->name);
    uint64_t big = UINT64_C(1) << 62;
    TRY(get_u64(d, c, "optim_step", big, &m->counters.optim_step, "counters"));
    TRY(get_u64(d, c, "ema_updates", big, &m->counters.ema_updates, "counters"));
    TRY(get_u64(d, c, "nonfinite", big, &m->counters.nonfinite, "counters"));
    TRY(get_u64(d, c, "consecutive_bad", big, &m->counters.consecutive_bad, "counters"));
    TRY(get_u64(d, c, "steps_done", big, &m->counters.steps_done, "counters"));
    /* shards: one per rank, in rank order, tiling [0, n) */
    yaml_node_t *sl = map_get(d, root, "shards");
    size_t ns;
    if (!seq_len(sl, &ns) || ns != m->world)
        return ERR(ERR_FORMAT, "%s: shards must list world_size = %u entries", d->name, m->world);
    m->shards = xcalloc(ns, sizeof *m->shards);
    uint64_t expect = 0;
    for (size_t i = 0; i < ns; i++) {
        yaml_node_t *s = yaml_document_get_node(&d->doc, sl->data.sequence.items.start[i]);
        CkptShardInfo *si = &m->shards[i];
        char where[48];
        snprintf(where, sizeof where, "shards[%zu]", i);
        if (!s || s->type != YAML_MAPPING_NODE)
            return ERR(ERR_FORMAT, "%s: %s is not a mapping", d->name, where);
        TRY(get_str(d, s, "file", si->file, sizeof si->file, where));
        TRY(get_u64(d, s, "rank", CKPT_MAX_WORLD, &u, where));
        si->rank = (uint32_t)u;
        TRY(get_u64(d, s, "lo", m->n, &si->lo, where));
        TRY(get_u64(d, s, "hi", m->n, &si->hi, where));
        TRY(get_u64(d, s, "bytes", UINT64_MAX, &si->bytes, where));
        TRY(get_str(d, s, "sha256", si->sha256, sizeof si->sha256, where));
        TRY(check_hex(d, si->sha256, where));
        char want[CKPT_NAME_MAX];
        ckpt_shard_name(want, sizeof want, (uint32_t)i, m->world);
        if (si->rank != i || strcmp(si->file, want) != 0)
            return ERR(ERR_FORMAT, "%s: %s must be rank %zu in file %s", d->name, where, i, want);
        if (si->lo != expect || si->hi < si->lo)
            return ERR(ERR_FORMAT, "%s: %s: slice [%" PRIu64 ", %" PRIu64 ") does not follow %"
                       PRIu64, d->name, where, si->lo, si->hi, expect);
        if (si->bytes != shard_bytes(nb, si->hi - si->lo))
            return ERR(ERR_FORMAT, "%s: %s: %" PRIu64 " bytes do not match its slice", d->name,
                       where, si->bytes);
        expect = si->hi;
    }
    if (expect != m->n)
        return ERR(ERR_FORMAT, "%s: shards cover %" PRIu64 " of %" PRIu64 " values", d->name,
                   expect, m->n);
    /* parameter table, tiling [0, n) */
    yaml_node_t *pl = map_get(d, root, "params");
    size_t nt;
    if (!seq_len(pl, &nt) || nt == 0 || nt > CKPT_MAX_TENSORS)
        return ERR(ERR_FORMAT, "%s: params must list 1..%d tensors", d->name, CKPT_MAX_TENSORS);
    m->n_tensors = nt;
    m->tensors = xcalloc(nt, sizeof *m->tensors);
    expect = 0;
    for (size_t i = 0; i < nt; i++) {
        yaml_node_t *s = yaml_document_get_node(&d->doc, pl->data.sequence.items.start[i]);
        CkptTensor *t = &m->tensors[i];
        char where[48];
        snprintf(where, sizeof where, "params[%zu]", i);
        if (!s || s->type != YAML_MAPPING_NODE)
            return ERR(ERR_FORMAT, "%s: %s is not a mapping", d->name, where);
        TRY(get_str(d, s, "name", t->name, sizeof t->name, where));
        yaml_node_t *sh = map_get(d, s, "shape");
        size_t nd;
        if (!seq_len(sh, &nd) || nd < 1 || nd > 4)
            return ERR(ERR_FORMAT, "%s: %s: shape must list 1 to 4 sizes", d->name, where);
        t->ndim = (int)nd;
        uint64_t prod = 1;
        for (size_t k = 0; k < nd; k++) {
            yaml_node_t *x = yaml_document_get_node(&d->doc, sh->data.sequence.items.start[k]);
            char b[24];
            if (!x || x->type != YAML_SCALAR_NODE || x->data.scalar.length >= sizeof b)
                return ERR(ERR_FORMAT, "%s: %s: bad shape entry", d->name, where);
            memcpy(b, x->data.scalar.value, x->data.scalar.length);
            b[x->data.scalar.length] = '\0';
            if (!parse_u64(b, INT32_MAX, &u) || u == 0 || !mul_u64(prod, u, &prod))
                return ERR(ERR_FORMAT, "%s: %s: bad shape entry '%s'", d->name, where, b);
            t->shape[k] = (int)u;
        }
        for (size_t k = nd; k < 4; k++) t->shape[k] = 1;
        TRY(get_u64(d, s, "offset", m->n, &t->offset, where));
        TRY(get_u64(d, s, "count", m->n, &t->count, where));
        uint64_t end;
        if (t->offset != expect || t->count != prod || !add_u64(t->offset, t->count, &end) ||
            end > m->n)
            return ERR(ERR_FORMAT, "%s: %s (%s) does not tile the buffer (offset %" PRIu64
                       ", count %" PRIu64 ")", d->name, where, t->name, t->offset, t->count);
        expect = end;
    }
    if (expect != m->n)
        return ERR(ERR_FORMAT, "%s: tensors cover %" PRIu64 " of %" PRIu64 " values", d->name,
                   expect, m->n);
    TRY(get_str(d, root, "spec_sha256", m->spec_sha256, sizeof m->spec_sha256, "top level"));
    TRY(check_hex(d, m->spec_sha256, "spec_sha256"));
    yaml_node_t *sp = map_get(d, root, "spec");
    if (!sp || sp->type != YAML_SCALAR_NODE)
        return ERR(ERR_FORMAT, "%s: spec: missing or not a string", d->name);
    m->spec = xmalloc(sp->data.scalar.length + 1);
    memcpy(m->spec, sp->data.scalar.value, sp->data.scalar.length);
    m->spec[sp->data.scalar.length] = '\0';
    Sha256 *sh = sha256_create();
    sha256_update(sh, m->spec, sp->data.scalar.length);
    char hex[65];
    sha256_final_hex(sh, hex);
    if (strcmp(hex, m->spec_sha256) != 0)
        return ERR(ERR_INTEGRITY, "%s: the job spec does not match its spec_sha256", d->name);
    return ERR_OK;
}

/* Refuse aliases outright: a manifest never has them, and they can multiply work. */
static int has_alias(const char *text, size_t len, const char *name)
{
    yaml_parser_t p;
    yaml_event_t e;
    int found = 0, done = 0;
    if (!yaml_parser_initialize(&p)) return ERR(ERR_NOMEM, "cannot initialise the YAML parser");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int rc = ERR_OK;
    while (!done) {
        if (!yaml_parser_parse(&p, &e)) {
            rc = ERR(ERR_FORMAT, "%s: YAML error at line %zu: %s", name, p.problem_mark.line + 1,
                     p.problem ? p.problem : "?");
            break;
        }
        if (e.type == YAML_ALIAS_EVENT) found = 1;
        if ((e.type == YAML_SCALAR_EVENT && e.data.scalar.anchor) ||
            (e.type == YAML_MAPPING_START_EVENT && e.data.mapping_start.anchor) ||
            (e.type == YAML_SEQUENCE_START_EVENT && e.data.sequence_start.anchor))
            found = 1;
        done = e.type == YAML_STREAM_END_EVENT || found;
        yaml_event_delete(&e);
    }
    yaml_parser_delete(&p);
    if (rc == ERR_OK && found) rc = ERR(ERR_FORMAT, "%s: anchors and aliases are not allowed", name);
    return rc;
}

int ckpt_manifest_parse(CkptManifest *m, const char *text, size_t len, const char *name)
{
    memset(m, 0, sizeof *m);
    if (len > MANIFEST_MAX) return ERR(ERR_FORMAT, "%s: larger than %zu bytes", name, MANIFEST_MAX);
    TRY(has_alias(text, len, name));
    Doc d = {.name = name};
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return ERR(ERR_NOMEM, "cannot initialise the YAML parser");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &d.doc)) {
        int rc = ERR(ERR_FORMAT, "%s: YAML error at line %zu: %s", name, p.problem_mark.line + 1,
                     p.problem ? p.problem : "?");
        yaml_parser_delete(&p);
        return rc;
    }
    yaml_parser_delete(&p);
    int rc = manifest_from_doc(m, &d);
    yaml_document_delete(&d.doc);
    if (rc != ERR_OK) ckpt_manifest_free(m);
    return rc;
}

static int read_file(const char *path, size_t max, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return ERR(ERR_IO, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 65536, n = 0;
    char *b = xmalloc(cap);
    for (;;) {
        if (n == cap) {
            if (cap >= max) {
                fclose(f);
                xfree(b);
                return ERR(ERR_FORMAT, "%s: larger than %zu bytes", path, max);
            }
            cap *= 2;
            b = xrealloc(b, cap);
        }
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        xfree(b);
        return ERR(ERR_IO, "reading %s failed", path);
    }
    *out = b;
    *len = n;
    return ERR_OK;
}

int ckpt_manifest_read(CkptManifest *m, const char *dir)
{
    char path[4200];
    memset(m, 0, sizeof *m);
    snprintf(path, sizeof path, "%s/manifest.yaml", dir);
    if (!fs_exists(path)) return ERR(ERR_FORMAT, "%s: no manifest.yaml (not a committed checkpoint)", dir);
    char *text = NULL;
    size_t len = 0;
    TRY(read_file(path, MANIFEST_MAX, &text, &len));
    int rc = ckpt_manifest_parse(m, text, len, path);
    xfree(text);
    return rc;
}

void ckpt_manifest_free(CkptManifest *m)
{
    xfree(m->tensors);
    xfree(m->shards);
    xfree(m->spec);
    memset(m, 0, sizeof *m);
}

/* ---- resharded reads and verification ------------------------------------------------------ */

int ckpt_read_range(const char *dir, const CkptManifest *m, CkptKind k, uint64_t i0, uint64_t i1,
                    float *out)
{
    if (i0 > i1 || i1 > m->n) return ERR(ERR_ARG, "range [%" PRIu64 ", %" PRIu64 ") outside [0, %"
                                         PRIu64 ")", i0, i1, m->n);
    if (ckpt_kind_index(k, m->has_ema) < 0)
        return ERR(ERR_FORMAT, "%s holds no %s buffer", dir, ckpt_kind_name(k));
    for (uint32_t r = 0; r < m->world && i0 < i1; r++) {
        const CkptShardInfo *si = &m->shards[r];
        if (si->hi <= i0 || si->lo >= i1 || si->lo == si->hi) continue;
        uint64_t a = si->lo > i0 ? si->lo : i0, b = si->hi < i1 ? si->hi : i1;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, si->file);
        CkptShard s;
        TRY(ckpt_shard_open(&s, path));
        int rc = ERR_OK;
        if (s.h.world != m->world || s.h.rank != r || s.h.lo != si->lo || s.h.hi != si->hi ||
            s.h.n != m->n || (int)s.h.has_ema != m->has_ema || s.h.step != m->step)
            rc = ERR(ERR_FORMAT, "%s: its header disagrees with the manifest", path);
        if (rc == ERR_OK) rc = ckpt_shard_read(&s, k, a, b, out + (a - i0));
        ckpt_shard_close(&s);
        TRY(rc);
    }
    return ERR_OK;
}

int ckpt_verify(const char *dir, const CkptManifest *m, uint32_t first, uint32_t stride,
                uint64_t *bytes)
{
    uint64_t total = 0;
    if (stride == 0) stride = 1;
    for (uint32_t r = first; r < m->world; r += stride) {
        const CkptShardInfo *si = &m->shards[r];
        char path[4200], hex[65];
        uint64_t got = 0;
        snprintf(path, sizeof path, "%s/%s", dir, si->file);
        TRY(ckpt_file_sha256(path, hex, &got));
        total += got;
        if (got != si->bytes)
            return ERR(ERR_INTEGRITY, "%s: %" PRIu64 " bytes, the manifest says %" PRIu64 "%s",
                       path, got, si->bytes, got < si->bytes ? " (truncated)" : "");
        if (strcmp(hex, si->sha256) != 0)
            return ERR(ERR_INTEGRITY, "%s: SHA-256 mismatch over its %" PRIu64 " bytes (manifest "
                       "%.12s..., file %.12s...)", path, got, si->sha256, hex);
    }
    if (bytes) *bytes = total;
    return ERR_OK;
}

/* ---- the checkpoint directory -------------------------------------------------------------- */

/* "step-<digits>" or "step-<digits>.tmp"; returns 1 and the step, *tmp set. */
static int parse_name(const char *name, uint64_t *step, int *tmp)
{
    if (strncmp(name, "step-", 5) != 0) return 0;
    const char *p = name + 5;
    char digits[24];
    size_t k = 0;
    while (p[k] >= '0' && p[k] <= '9' && k < 20) k++;
    if (k == 0 || k >= sizeof digits) return 0;
    memcpy(digits, p, k);
    digits[k] = '\0';
    if (!parse_u64(digits, UINT64_C(1) << 62, step)) return 0;
    if (p[k] == '\0') *tmp = 0;
    else if (!strcmp(p + k, ".tmp")) *tmp = 1;
    else return 0;
    return 1;
}

static uint64_t dir_bytes(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return 0;
    uint64_t total = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[4400];
        struct stat st;
        if (!join(p, sizeof p, path, e->d_name)) continue;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

static int cmp_entry(const void *a, const void *b)
{
    const CkptEntry *x = a, *y = b;
    if (x->step != y->step) return x->step < y->step ? -1 : 1;
    return strcmp(x->name, y->name);
}

int ckpt_latest_name(const char *ckdir, char name[CKPT_NAME_MAX])
{
    char path[4200];
    name[0] = '\0';
    snprintf(path, sizeof path, "%s/latest", ckdir);
    FILE *f = fopen(path, "r");
    if (!f) return ERR_OK;
    char buf[CKPT_NAME_MAX + 2] = {0};
    if (fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\n")] = '\0';
        uint64_t s;
        int tmp;
        size_t len = strlen(buf);
        if (parse_name(buf, &s, &tmp) && !tmp && len < CKPT_NAME_MAX) memcpy(name, buf, len + 1);
    }
    fclose(f);
    return ERR_OK;
}

int ckpt_set_latest(const char *ckdir, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/latest", ckdir);
    AtomicFile af;
    TRY(fs_atomic_open(&af, path));
    fprintf(af.f, "%s\n", name);
    return fs_atomic_commit(&af);
}

int ckpt_list(const char *ckdir, CkptEntry **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    DIR *d = opendir(ckdir);
    if (!d) {
        if (errno == ENOENT) return ERR_OK;
        return ERR(ERR_IO, "cannot open directory %s: %s", ckdir, strerror(errno));
    }
    char latest[CKPT_NAME_MAX];
    ckpt_latest_name(ckdir, latest);
    size_t cap = 0, n = 0;
    CkptEntry *v = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        uint64_t step;
        int tmp;
        if (!parse_name(e->d_name, &step, &tmp) || strlen(e->d_name) >= CKPT_NAME_MAX) continue;
        char path[4400];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", ckdir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            v = xrealloc(v, cap * sizeof *v);
        }
        CkptEntry *c = &v[n++];
        memset(c, 0, sizeof *c);
        memcpy(c->name, e->d_name, strlen(e->d_name) + 1); /* length checked above */
        c->step = step;
        c->bytes = dir_bytes(path);
        c->latest = !strcmp(latest, c->name);
        if (tmp) {
            snprintf(c->problem, sizeof c->problem, "partial (save not committed)");
            continue;
        }
        CkptManifest m;
        if (ckpt_manifest_read(&m, path) == ERR_OK) {
            c->committed = 1;
            c->world = m.world;
            snprintf(c->time, sizeof c->time, "%s", m.time);
            if (m.step != step)
                snprintf(c->problem, sizeof c->problem, "manifest says step %" PRIu64, m.step),
                    c->committed = 0;
            ckpt_manifest_free(&m);
        } else {
            snprintf(c->problem, sizeof c->problem, "%s", err_message());
            err_clear();
        }
    }
    closedir(d);
    if (n) qsort(v, n, sizeof *v, cmp_entry);
    *out = v;
    *count = n;
    return ERR_OK;
}

int ckpt_resolve(const char *arg, char *ckdir, size_t ckdir_size, char *one, size_t one_size)
{
    char path[4200];
    struct stat st;
    one[0] = '\0';
    if (stat(arg, &st) != 0) return ERR(ERR_IO, "%s: %s", arg, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return ERR(ERR_ARG, "%s is not a directory", arg);
    snprintf(path, sizeof path, "%s/manifest.yaml", arg);
    const char *base = strrchr(arg, '/');
    base = base ? base + 1 : arg;
    uint64_t s;
    int tmp;
    if (fs_exists(path) || parse_name(base, &s, &tmp)) {
        snprintf(one, one_size, "%s", arg);
        snprintf(ckdir, ckdir_size, "%s", arg);
        char *slash = strrchr(ckdir, '/');
        if (slash) *slash = '\0'; else snprintf(ckdir, ckdir_size, ".");
        return ERR_OK;
    }
    snprintf(path, sizeof path, "%s/ckpt", arg);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(ckdir, ckdir_size, "%s", path);
        return ERR_OK;
    }
    snprintf(ckdir, ckdir_size, "%s", arg);
    return ERR_OK;
}

int ckpt_remove_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        if (errno == ENOENT) return ERR_OK;
        return ERR(ERR_IO, "cannot open directory %s: %s", path, strerror(errno));
    }
    struct dirent *e;
    int rc = ERR_OK;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        if (unlink(p) != 0 && errno != ENOENT && rc == ERR_OK)
            rc = ERR(ERR_IO, "cannot remove %s: %s", p, strerror(errno));
    }
    closedir(d);
    if (rmdir(path) != 0 && errno != ENOENT && rc == ERR_OK)
        rc = ERR(ERR_IO, "cannot remove directory %s: %s", path, strerror(errno));
    return rc;
}

int ckpt_clean_stale(const char *ckdir, const char *except)
{
    DIR *d = opendir(ckdir);
    if (!d) return ERR_OK;
    struct dirent *e;
    int rc = ERR_OK;
    while ((e = readdir(d))) {
        size_t L = strlen(e->d_name);
        if (L < 5 || strcmp(e->d_name + L - 4, ".tmp") != 0 || strncmp(e->d_name, "step-", 5))
            continue;
        if (except && !strcmp(e->d_name, except)) continue;
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", ckdir, e->d_name);
        int r = ckpt_remove_dir(p);
        if (r != ERR_OK && rc == ERR_OK) rc = r;
    }
    closedir(d);
    return rc;
}

int ckpt_retain(const char *ckdir, int keep, int keep_every, const char *protect)
{
    CkptEntry *v;
    size_t n;
    TRY(ckpt_list(ckdir, &v, &n));
    size_t seen = 0; /* committed ones from the newest down */
    int rc = ERR_OK;
    for (size_t j = n; j-- > 0;) {
        CkptEntry *c = &v[j];
        if (!c->committed) continue;
        seen++;
        if (keep <= 0 || seen <= (size_t)keep) continue;
        if (keep_every > 0 && c->step % (uint64_t)keep_every == 0) continue;
        if (protect && !strcmp(protect, c->name)) continue;
        if (c->latest) continue;
        /* Rename first, so a crash mid-removal leaves a *.tmp that the next save cleans. */
        char from[4400], to[4400];
        snprintf(from, sizeof from, "%s/%s", ckdir, c->name);
        snprintf(to, sizeof to, "%s/%s.del.tmp", ckdir, c->name);
        if (rename(from, to) != 0) {
            if (rc == ERR_OK) rc = ERR(ERR_IO, "cannot rename %s: %s", from, strerror(errno));
            continue;
        }
        int r = ckpt_remove_dir(to);
        if (r != ERR_OK && rc == ERR_OK) rc = r;
    }
    xfree(v);
    return rc;
}

/* ---- YAML flattening (the job spec inside a manifest) ----------------------------------- */

static void kv_push(CkptKV *kv, const char *k, const char *v)
{
    kv->keys = xrealloc(kv->keys, (kv->n + 1) * sizeof *kv->keys);
    kv->vals = xrealloc(kv->vals, (kv->n + 1) * sizeof *kv->vals);
    kv->keys[kv->n] = xstrdup(k);
    kv->vals[kv->n] = xstrdup(v);
    kv->n++;
}

static void flat_value(Doc *d, yaml_node_t *n, char *out, size_t size)
{
    out[0] = '\0';
    if (!n) return;
    if (n->type == YAML_SCALAR_NODE) {
        size_t L = n->data.scalar.length < size - 1 ? n->data.scalar.length : size - 1;
        memcpy(out, n->data.scalar.value, L);
        out[L] = '\0';
        return;
    }
    if (n->type == YAML_SEQUENCE_NODE) {
        size_t pos = 0;
        pos += (size_t)snprintf(out + pos, size - pos, "[");
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            char b[256];
            flat_value(d, yaml_document_get_node(&d->doc, *it), b, sizeof b);
            if (pos < size)
                pos += (size_t)snprintf(out + pos, size - pos, "%s%s",
                                        it == n->data.sequence.items.start ? "" : ", ", b);
        }
        if (pos < size) snprintf(out + pos, size - pos, "]");
    }
}

static void flatten(Doc *d, yaml_node_t *map, const char *prefix, CkptKV *kv, int depth)
{
    if (depth > 8) return;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(&d->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&d->doc, p->value);
        if (!k || k->type != YAML_SCALAR_NODE || !v) continue;
        char key[512];
        snprintf(key, sizeof key, "%s%s%.*s", prefix, *prefix ? "." : "",
                 (int)k->data.scalar.length, (const char *)k->data.scalar.value);
        if (v->type == YAML_MAPPING_NODE) {
            flatten(d, v, key, kv, depth + 1);
        } else {
            char val[2048];
            flat_value(d, v, val, sizeof val);
            kv_push(kv, key, val);
        }
    }
}

int ckpt_yaml_flatten(const char *text, size_t len, CkptKV *kv)
{
    memset(kv, 0, sizeof *kv);
    TRY(has_alias(text, len, "job spec"));
    Doc d = {.name = "job spec"};
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return ERR(ERR_NOMEM, "cannot initialise the YAML parser");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &d.doc)) {
        yaml_parser_delete(&p);
        return ERR(ERR_FORMAT, "the saved job spec is not valid YAML");
    }
    yaml_parser_delete(&p);
    yaml_node_t *root = yaml_document_get_root_node(&d.doc);
    if (root && root->type == YAML_MAPPING_NODE) flatten(&d, root, "", kv, 0);
    yaml_document_delete(&d.doc);
    return ERR_OK;
}

const char *ckpt_kv_get(const CkptKV *kv, const char *key)
{
    for (size_t i = 0; i < kv->n; i++)
        if (!strcmp(kv->keys[i], key)) return kv->vals[i];
    return NULL;
}

void ckpt_kv_free(CkptKV *kv)
{
    for (size_t i = 0; i < kv->n; i++) {
        xfree(kv->keys[i]);
        xfree(kv->vals[i]);
    }
    xfree(kv->keys);
    xfree(kv->vals);
    memset(kv, 0, sizeof *kv);
}
