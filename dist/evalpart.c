/* dist/evalpart.c - partial evaluation results persisted per chunk (see dist/evalpart.h). */
#include "dist/evalpart.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "dist/dist.h"
#include "io/chunkfile.h"
#include "io/fsutil.h"
#include "io/sha256.h"

void evalkey_init(EvalKey *k, const char *kind)
{
    k->s = sha256_create();
    evalkey_str(k, "dfm-eval-partial-1");
    evalkey_str(k, kind);
}

void evalkey_add(EvalKey *k, const void *p, size_t n) { sha256_update(k->s, p, n); }

void evalkey_str(EvalKey *k, const char *s) { sha256_update(k->s, s, strlen(s) + 1); }

void evalkey_u64(EvalKey *k, uint64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
    sha256_update(k->s, b, 8);
}

void evalkey_final(EvalKey *k, char hex[65])
{
    sha256_final_hex(k->s, hex);
    k->s = NULL;
}

void evalpart_init(EvalPart *p, const char *dir)
{
    memset(p, 0, sizeof *p);
    if (dir) snprintf(p->dir, sizeof p->dir, "%s", dir);
}

void evalpart_fault_delay(void)
{
    static long ms = -1;
    if (ms < 0) {
        const char *e = getenv("DFM_FAULT_EVAL_CHUNK_MS");
        ms = e ? atol(e) : 0;
        if (ms < 0) ms = 0;
    }
    if (ms > 0) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    }
}

typedef struct {
    ChunkFile cf;
    unsigned char *have;
    unsigned char *result;
    uint64_t n, nchunks;
    size_t chunk, item_bytes;
    unsigned char *buf; /* one padded record */
} Part;

/* A record: the chunk's bytes, padded to a whole chunk (the last chunk is shorter). */
static void on_record(void *vctx, uint64_t k, const void *payload)
{
    Part *p = vctx;
    if (k >= p->nchunks) return; /* cannot happen under the same key; ignore */
    uint64_t first = k * p->chunk;
    size_t count = (size_t)(p->n - first < p->chunk ? p->n - first : p->chunk);
    memcpy(p->result + first * p->item_bytes, payload, count * p->item_bytes);
    p->have[k] = 1;
}

static int on_done(void *vctx, uint64_t k, uint64_t first, size_t count, const void *bytes)
{
    Part *p = vctx;
    memset(p->buf, 0, p->chunk * p->item_bytes);
    memcpy(p->buf, bytes, count * p->item_bytes);
    (void)first;
    return chunkfile_append(&p->cf, k, p->buf);
}

int evalpart_run(EvalPart *ep, const char *what, const char key[65], uint64_t n, size_t chunk,
                 size_t item_bytes, CoordWorkFn fn, void *ctx, void *result)
{
    if (!ep || !ep->dir[0] || n == 0 || chunk == 0)
        return coord_run(n, chunk, item_bytes, fn, ctx, result, NULL);
    Part p = {.n = n, .chunk = chunk, .item_bytes = item_bytes, .result = result};
    p.cf.fd = -1;
    p.nchunks = (n + chunk - 1) / chunk;
    int rc = ERR_OK;
    char path[4200];
    if (dist_rank() == 0) {
        p.have = xcalloc((size_t)p.nchunks, 1);
        p.buf = xmalloc(chunk * item_bytes);
        snprintf(path, sizeof path, "%s/partial-%.16s.bin", ep->dir, key);
        size_t loaded = 0;
        rc = fs_mkdir_p(ep->dir);
        if (rc == ERR_OK)
            rc = chunkfile_open(&p.cf, path, key, chunk * item_bytes, on_record, &p, &loaded);
        if (rc == ERR_OK) {
            ep->paths = xrealloc(ep->paths, sizeof *ep->paths * (ep->n_paths + 1));
            snprintf(ep->paths[ep->n_paths++], sizeof *ep->paths, "%s", path);
            size_t had = 0;
            for (uint64_t k = 0; k < p.nchunks; k++) had += p.have[k];
            if (had > 0)
                log_info("resuming %s: %zu of %llu chunks from %s", what, had,
                         (unsigned long long)p.nchunks, path);
        }
    }
    /* every rank learns whether rank 0 could set up the file before the work starts */
    int64_t bad = rc != ERR_OK;
    int grc = dist_bcast(&bad, sizeof bad, 0);
    if (grc == ERR_OK && bad && dist_rank() != 0)
        grc = ERR(ERR_STATE, "rank 0 could not open the partial results of the evaluation");
    if (rc == ERR_OK) rc = grc;
    if (rc == ERR_OK) {
        CoordResume res = {.have = p.have, .done = on_done, .ctx = &p};
        rc = coord_run_resume(n, chunk, item_bytes, fn, ctx, result, NULL, &res);
    }
    chunkfile_close(&p.cf);
    xfree(p.have);
    xfree(p.buf);
    return rc;
}

void evalpart_finish(EvalPart *p, int ok)
{
    for (size_t i = 0; i < p->n_paths && ok; i++)
        if (unlink(p->paths[i]) != 0 && errno != ENOENT)
            log_warn("cannot remove %s: %s", p->paths[i], strerror(errno));
    xfree(p->paths);
    memset(p, 0, sizeof *p);
}
