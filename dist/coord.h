/* dist/coord.h - a coordinator rank that hands out work dynamically.
 *
 * coord_run computes items 0 .. n-1 (samples, feature vectors: anything whose result is a
 * fixed number of bytes per item and a pure function of the item's index) on every rank of the
 * job and collects the results on rank 0. Rank 0 cuts [0, n) into chunks of `chunk` items and
 * hands them out as ranks become free: each worker holds up to COORD_DEPTH chunks at a time
 * (so it never waits for the coordinator between two chunks), sends a chunk's results back with
 * a nonblocking send as soon as it is done, and gets the next chunk in reply; a chunk is sent
 * ahead only while at least one chunk per rank is left, so that few chunks are spread over
 * all ranks rather than queued on the first workers. Rank 0 computes
 * chunks too and serves the workers' messages between two of its own chunks; when no chunk is
 * left it only serves. A slow rank therefore takes fewer chunks and nobody waits for it longer
 * than one chunk.
 *
 * Because an item's result depends only on its index, the collected bytes are the same for any
 * number of ranks and any chunk size. Messages: assignments (first, count; count 0 = stop) from
 * rank 0, results (first, count, status, then count * item_bytes bytes) to rank 0; all sends are
 * nonblocking (MPI_Isend) and completed before coord_run returns.
 *
 * Failure: when fn fails on a rank, that rank computes nothing more (it answers further
 * assignments without computing), rank 0 stops handing out work, every rank is told to stop,
 * and coord_run returns an error on every rank: the failing rank its own, the others ERR_STATE
 * naming it. Collective: every rank calls coord_run with the same n, chunk and item_bytes.
 */
#ifndef DFM_DIST_COORD_H
#define DFM_DIST_COORD_H

#include <stddef.h>
#include <stdint.h>

#define COORD_DEPTH 2

/* Compute items [first, first + count) into out (count * item_bytes bytes). Returns ERR_OK or
 * an error code after ERR(). Called on the calling rank's thread, one chunk at a time. */
typedef int (*CoordWorkFn)(void *ctx, uint64_t first, size_t count, void *out);

typedef struct {
    int nranks;
    uint64_t *chunks;   /* (nranks) chunks computed by each rank (filled on rank 0) */
    uint64_t *items;    /* (nranks) items computed by each rank (filled on rank 0) */
    double wall_s;      /* this rank's time in coord_run */
} CoordStats;

void coord_stats_free(CoordStats *st); /* zeroed struct accepted */

/* result: n * item_bytes bytes on rank 0 (ignored elsewhere, may be NULL). st may be NULL. */
int coord_run(uint64_t n, size_t chunk, size_t item_bytes, CoordWorkFn fn, void *ctx,
              void *result, CoordStats *st);

/* Resuming (read on rank 0 only): chunk k is items [k * chunk, min((k + 1) * chunk, n)).
 * have (ceil(n / chunk) flags, or NULL): chunks whose bytes are already in result, which are
 * handed to nobody. done (or NULL): called on rank 0 with each chunk's bytes as they arrive
 * (rank 0's own and the workers', in arrival order), to persist them; an error from it stops
 * the work as a failure of rank 0 would. */
typedef int (*CoordDoneFn)(void *ctx, uint64_t k, uint64_t first, size_t count, const void *bytes);
typedef struct {
    const unsigned char *have;
    CoordDoneFn done;
    void *ctx;
} CoordResume;

int coord_run_resume(uint64_t n, size_t chunk, size_t item_bytes, CoordWorkFn fn, void *ctx,
                     void *result, CoordStats *st, const CoordResume *res);

#endif
