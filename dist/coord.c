/* dist/coord.c - dynamic chunk distribution with a computing coordinator (see dist/coord.h). */
#include "dist/coord.h"

#include <limits.h>
#include <mpi.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "dist/dist.h"

enum { TAG_ASSIGN = 7101, TAG_RESULT = 7102 };
enum { HDR = 3 }; /* result header: first, count, failed (uint64 each) */

#define MPI_TRY(call) \
    do { int mpi_rc_ = (call); if (mpi_rc_ != MPI_SUCCESS) return dist_mpi_fail(mpi_rc_, #call); } while (0)

void coord_stats_free(CoordStats *st)
{
    xfree(st->chunks);
    xfree(st->items);
    memset(st, 0, sizeof *st);
}

/* ---- rank 0 ----------------------------------------------------------------------------- */

typedef struct {
    uint64_t n, nchunks, next; /* next chunk to hand out */
    uint64_t left;             /* chunks not yet handed out (nor had) */
    size_t chunk, item_bytes;
    int size;
    int *outstanding;          /* chunks held by each worker */
    int *stopped;              /* worker told to stop */
    int active;                /* workers not yet stopped */
    uint64_t (*msgs)[2];       /* assignment buffers, one per message sent */
    MPI_Request *reqs;
    size_t nmsgs, cap;
    int failed_rank;           /* -1: none */
    CoordStats *st;
    int done_rc;               /* the caller's done() error, rank 0 */
    const CoordResume *res;    /* NULL: compute every chunk */
} Coord;

static void chunk_range(const Coord *c, uint64_t k, uint64_t *first, size_t *count)
{
    *first = k * c->chunk;
    *count = (size_t)(c->n - *first < c->chunk ? c->n - *first : c->chunk);
}

/* Skip the chunks the caller already has; 1 when a chunk is left to hand out. */
static int chunks_left(Coord *c)
{
    while (c->next < c->nchunks && c->res && c->res->have && c->res->have[c->next]) c->next++;
    return c->next < c->nchunks;
}

/* A chunk's bytes arrived on rank 0: tell the caller (to persist them). */
static int chunk_done(Coord *c, uint64_t first, size_t count, const void *bytes)
{
    if (!c->res || !c->res->done) return ERR_OK;
    return c->res->done(c->res->ctx, first / c->chunk, first, count, bytes);
}

static int send_assign(Coord *c, int w, uint64_t first, uint64_t count)
{
    ASSERT(c->nmsgs < c->cap);
    uint64_t *m = c->msgs[c->nmsgs];
    m[0] = first;
    m[1] = count;
    MPI_TRY(MPI_Isend(m, 2, MPI_UINT64_T, w, TAG_ASSIGN, MPI_COMM_WORLD, &c->reqs[c->nmsgs]));
    c->nmsgs++;
    if (count == 0) {
        c->stopped[w] = 1;
        c->active--;
    } else {
        c->outstanding[w]++;
    }
    return ERR_OK;
}

/* Hand out the next chunk that is not had: its range. */
static void take_chunk(Coord *c, uint64_t *first, size_t *count)
{
    ASSERT(chunks_left(c) && c->left > 0);
    chunk_range(c, c->next++, first, count);
    c->left--;
}

/* Give worker w more work up to the depth, or stop it when it has none left. A second chunk
 * is sent ahead only while every rank (rank 0 too) could still get one: with as many chunks as
 * ranks, each rank computes one instead of the first worker taking two and rank 0 none. */
static int feed(Coord *c, int w)
{
    while (c->outstanding[w] < COORD_DEPTH && chunks_left(c) && c->failed_rank < 0) {
        if (c->outstanding[w] > 0 && c->left < (uint64_t)c->size) break;
        uint64_t first;
        size_t count;
        take_chunk(c, &first, &count);
        TRY(send_assign(c, w, first, count));
    }
    if (c->outstanding[w] == 0 && !c->stopped[w]) TRY(send_assign(c, w, 0, 0));
    return ERR_OK;
}

/* Receive one result message (known to be there) into result. */
static int take_result(Coord *c, MPI_Status *probe, unsigned char *buf, size_t bufsz,
                       unsigned char *result)
{
    int w = probe->MPI_SOURCE, bytes = 0;
    MPI_TRY(MPI_Get_count(probe, MPI_BYTE, &bytes));
    ASSERT(bytes >= (int)(HDR * sizeof(uint64_t)) && (size_t)bytes <= bufsz);
    MPI_TRY(MPI_Recv(buf, bytes, MPI_BYTE, w, TAG_RESULT, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
    uint64_t hdr[HDR];
    memcpy(hdr, buf, sizeof hdr);
    c->outstanding[w]--;
    if (hdr[2]) {
        if (c->failed_rank < 0) c->failed_rank = w;
    } else {
        ASSERT(hdr[0] + hdr[1] <= c->n &&
               (size_t)bytes == sizeof hdr + (size_t)hdr[1] * c->item_bytes);
        if (result) memcpy(result + hdr[0] * c->item_bytes, buf + sizeof hdr, (size_t)hdr[1] * c->item_bytes);
        c->st->chunks[w]++;
        c->st->items[w] += hdr[1];
        if (chunk_done(c, hdr[0], (size_t)hdr[1], buf + sizeof hdr) != ERR_OK && c->failed_rank < 0) {
            c->failed_rank = 0; /* rank 0 could not keep the result: stop as if it failed */
            c->done_rc = err_code();
        }
    }
    return feed(c, w);
}

static int run_root(uint64_t n, size_t chunk, size_t item_bytes, CoordWorkFn fn, void *ctx,
                    unsigned char *result, CoordStats *st, const CoordResume *res, int *my_rc)
{
    Coord c = {.n = n, .chunk = chunk, .item_bytes = item_bytes, .size = dist_size(),
               .failed_rank = -1, .st = st, .res = res};
    c.nchunks = (n + chunk - 1) / chunk;
    for (uint64_t k = 0; k < c.nchunks; k++) c.left += !(res && res->have && res->have[k]);
    c.outstanding = xcalloc((size_t)c.size, sizeof(int));
    c.stopped = xcalloc((size_t)c.size, sizeof(int));
    c.cap = (size_t)c.nchunks + (size_t)c.size;
    c.msgs = xmalloc(sizeof *c.msgs * c.cap);
    c.reqs = xmalloc(sizeof *c.reqs * c.cap);
    c.active = c.size - 1;
    size_t bufsz = HDR * sizeof(uint64_t) + chunk * item_bytes;
    unsigned char *buf = xmalloc(bufsz);
    unsigned char *own = result ? NULL : xmalloc(chunk * item_bytes + 1);
    int rc = ERR_OK;
    for (int w = 1; w < c.size && rc == ERR_OK; w++) rc = feed(&c, w);
    while (rc == ERR_OK) {
        /* serve every message that has arrived */
        for (;;) {
            int flag = 0;
            MPI_Status stt;
            int mrc = MPI_Iprobe(MPI_ANY_SOURCE, TAG_RESULT, MPI_COMM_WORLD, &flag, &stt);
            if (mrc != MPI_SUCCESS) {
                rc = dist_mpi_fail(mrc, "MPI_Iprobe");
                break;
            }
            if (!flag) break;
            rc = take_result(&c, &stt, buf, bufsz, result);
            if (rc != ERR_OK) break;
        }
        if (rc != ERR_OK) break;
        if (c.failed_rank < 0 && chunks_left(&c)) { /* compute one chunk here */
            uint64_t first;
            size_t count;
            take_chunk(&c, &first, &count);
            unsigned char *dst = result ? result + first * item_bytes : own;
            int frc = fn(ctx, first, count, dst);
            if (frc == ERR_OK) frc = chunk_done(&c, first, count, dst);
            if (frc != ERR_OK) {
                *my_rc = frc;
                c.failed_rank = 0;
            } else {
                st->chunks[0]++;
                st->items[0] += count;
            }
            if (c.failed_rank >= 0) /* stop the workers that hold nothing */
                for (int w = 1; w < c.size && rc == ERR_OK; w++) rc = feed(&c, w);
            continue;
        }
        if (c.failed_rank >= 0)
            for (int w = 1; w < c.size && rc == ERR_OK; w++) rc = feed(&c, w);
        if (rc != ERR_OK || c.active == 0) break;
        MPI_Status stt; /* nothing to compute: wait for the next result */
        int mrc = MPI_Probe(MPI_ANY_SOURCE, TAG_RESULT, MPI_COMM_WORLD, &stt);
        if (mrc != MPI_SUCCESS) {
            rc = dist_mpi_fail(mrc, "MPI_Probe");
            break;
        }
        rc = take_result(&c, &stt, buf, bufsz, result);
    }
    if (rc == ERR_OK && c.nmsgs > 0) {
        int mrc = MPI_Waitall((int)c.nmsgs, c.reqs, MPI_STATUSES_IGNORE);
        if (mrc != MPI_SUCCESS) rc = dist_mpi_fail(mrc, "MPI_Waitall");
    }
    int failed = c.failed_rank;
    if (failed == 0 && *my_rc == ERR_OK) *my_rc = c.done_rc;
    xfree(c.outstanding);
    xfree(c.stopped);
    xfree(c.msgs);
    xfree(c.reqs);
    xfree(buf);
    xfree(own);
    if (rc != ERR_OK) return rc;
    return failed < 0 ? ERR_OK : -1 - failed; /* negative: the failing rank, encoded */
}

/* ---- workers ------------------------------------------------------------------------------ */

static int run_worker(size_t chunk, size_t item_bytes, CoordWorkFn fn, void *ctx, int *my_rc)
{
    size_t bufsz = HDR * sizeof(uint64_t) + chunk * item_bytes;
    unsigned char *buf[COORD_DEPTH];
    MPI_Request req[COORD_DEPTH];
    for (int s = 0; s < COORD_DEPTH; s++) {
        buf[s] = xmalloc(bufsz);
        req[s] = MPI_REQUEST_NULL;
    }
    int rc = ERR_OK, slot = 0;
    for (;;) {
        uint64_t m[2];
        int mrc = MPI_Recv(m, 2, MPI_UINT64_T, 0, TAG_ASSIGN, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (mrc != MPI_SUCCESS) {
            rc = dist_mpi_fail(mrc, "MPI_Recv (assignment)");
            break;
        }
        if (m[1] == 0) break;
        mrc = MPI_Wait(&req[slot], MPI_STATUS_IGNORE); /* the buffer's previous send */
        if (mrc != MPI_SUCCESS) {
            rc = dist_mpi_fail(mrc, "MPI_Wait");
            break;
        }
        ASSERT(m[1] <= chunk);
        uint64_t hdr[HDR] = {m[0], m[1], 0};
        size_t bytes = sizeof hdr;
        if (*my_rc == ERR_OK) {
            *my_rc = fn(ctx, m[0], (size_t)m[1], buf[slot] + sizeof hdr);
            if (*my_rc == ERR_OK) bytes += (size_t)m[1] * item_bytes;
        }
        hdr[2] = *my_rc != ERR_OK;
        memcpy(buf[slot], hdr, sizeof hdr);
        mrc = MPI_Isend(buf[slot], (int)bytes, MPI_BYTE, 0, TAG_RESULT, MPI_COMM_WORLD, &req[slot]);
        if (mrc != MPI_SUCCESS) {
            rc = dist_mpi_fail(mrc, "MPI_Isend (result)");
            break;
        }
        slot = (slot + 1) % COORD_DEPTH;
    }
    if (rc == ERR_OK) {
        int mrc = MPI_Waitall(COORD_DEPTH, req, MPI_STATUSES_IGNORE);
        if (mrc != MPI_SUCCESS) rc = dist_mpi_fail(mrc, "MPI_Waitall");
    }
    for (int s = 0; s < COORD_DEPTH; s++) xfree(buf[s]);
    return rc;
}

int coord_run(uint64_t n, size_t chunk, size_t item_bytes, CoordWorkFn fn, void *ctx,
              void *result, CoordStats *st)
{
    return coord_run_resume(n, chunk, item_bytes, fn, ctx, result, st, NULL);
}

int coord_run_resume(uint64_t n, size_t chunk, size_t item_bytes, CoordWorkFn fn, void *ctx,
                     void *result, CoordStats *st, const CoordResume *res)
{
    if (chunk == 0) return ERR(ERR_ARG, "chunk size must be at least 1");
    if (item_bytes == 0 || chunk > (size_t)(INT_MAX / 2) / item_bytes)
        return ERR(ERR_ARG, "a chunk of %zu items of %zu bytes is too large for one message",
                   chunk, item_bytes);
    CoordStats local = {0};
    if (!st) st = &local;
    double t0 = core_now();
    const int size = dist_size(), rank = dist_rank();
    st->nranks = size;
    st->chunks = xcalloc((size_t)size, sizeof(uint64_t));
    st->items = xcalloc((size_t)size, sizeof(uint64_t));
    int my_rc = ERR_OK, rc;
    if (size == 1 || !dist_initialized()) {
        for (uint64_t first = 0; first < n && my_rc == ERR_OK; first += chunk) {
            size_t count = (size_t)(n - first < chunk ? n - first : chunk);
            if (res && res->have && res->have[first / chunk]) continue;
            unsigned char *dst = (unsigned char *)result + first * item_bytes;
            my_rc = fn(ctx, first, count, dst);
            if (my_rc == ERR_OK && res && res->done)
                my_rc = res->done(res->ctx, first / chunk, first, count, dst);
            st->chunks[0]++;
            st->items[0] += count;
        }
        st->wall_s = core_now() - t0;
        if (st == &local) coord_stats_free(&local);
        return my_rc;
    }
    int64_t failed = -1;
    if (rank == 0) {
        rc = run_root(n, chunk, item_bytes, fn, ctx, result, st, res, &my_rc);
        if (rc < 0) {
            failed = -1 - rc;
            rc = ERR_OK;
        }
    } else {
        rc = run_worker(chunk, item_bytes, fn, ctx, &my_rc);
    }
    /* every rank learns who failed (an MPI failure above is already fatal for the job) */
    if (rc == ERR_OK) rc = dist_bcast(&failed, sizeof failed, 0);
    st->wall_s = core_now() - t0;
    if (st == &local) coord_stats_free(&local);
    if (rc != ERR_OK) return rc;
    if (my_rc != ERR_OK) return my_rc;
    if (failed >= 0)
        return ERR(ERR_STATE, "rank %lld failed; the work was stopped on every rank",
                   (long long)failed);
    return ERR_OK;
}
