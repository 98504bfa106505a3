/* tests/dist/mpi_coord.c - the coordinator: results for every chunk size, a slow rank, failure.
 *
 * Item i's result is 16 bytes that depend on i only. Checks on 1, 2 and 4 ranks: rank 0
 * collects exactly the expected bytes for chunk sizes 1, 7, 64 and one larger than n; with one
 * rank 50x slower than the others (uneven chunk costs) the run still completes with the right
 * bytes and the slow rank computes only a small share; when one rank's work fails, every rank
 * returns an error (the failing rank its own, the others ERR_STATE naming it) and nobody hangs.
 * Resuming: chunks marked as had are handed to nobody and left as they are, and rank 0's done
 * callback sees every other chunk exactly once with its bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/mem.h"
#include "dist/coord.h"
#include "dist/dist.h"

static int g_fail;

static void check(int ok, const char *what)
{
    if (!ok) {
        g_fail = 1;
        fprintf(stderr, "mpi_coord: [rank %d/%d] FAILED: %s\n", dist_rank(), dist_size(), what);
    }
}

static void expected(uint64_t i, uint64_t out[2])
{
    out[0] = i * 0x9E3779B97F4A7C15ULL ^ 0xD1B54A32D192ED03ULL;
    out[1] = ~i;
}

typedef struct {
    long slow_ns, fast_ns; /* per item: on rank slow_rank, elsewhere */
    int slow_rank;
    int fail_rank;         /* -1: none */
    int calls;             /* chunks this rank was asked for; the failing rank fails the 2nd */
} Work;

static int work(void *ctx, uint64_t first, size_t count, void *out)
{
    Work *w = ctx;
    uint64_t *o = out;
    long ns = dist_rank() == w->slow_rank ? w->slow_ns : w->fast_ns;
    /* every worker holds COORD_DEPTH chunks from the start, so a 2nd call always comes */
    if (dist_rank() == w->fail_rank && ++w->calls == 2)
        return ERR(ERR_IO, "item %llu cannot be computed", (unsigned long long)first);
    for (size_t k = 0; k < count; k++) {
        if (ns > 0) {
            struct timespec ts = {0, ns};
            nanosleep(&ts, NULL);
        }
        expected(first + k, o + 2 * k);
    }
    return ERR_OK;
}

static void run(uint64_t n, size_t chunk, Work *w, int want_ok, const char *what)
{
    uint64_t *res = xcalloc(n * 2 + 2, sizeof(uint64_t));
    CoordStats st;
    int rc = coord_run(n, chunk, 16, work, w, dist_rank() == 0 ? res : NULL, &st);
    char msg[256];
    snprintf(msg, sizeof msg, "%s (chunk %zu): rc %d: %s", what, chunk, rc, err_message());
    if (want_ok) {
        check(rc == ERR_OK, msg);
        if (dist_rank() == 0) {
            int same = 1;
            for (uint64_t i = 0; i < n && same; i++) {
                uint64_t e[2];
                expected(i, e);
                same = res[2 * i] == e[0] && res[2 * i + 1] == e[1];
            }
            check(same, "collected bytes differ from the expected ones");
            uint64_t total = 0;
            for (int r = 0; r < dist_size(); r++) total += st.items[r];
            check(total == n, "items per rank do not add up to n");
            if (w->slow_rank > 0 && w->slow_rank < dist_size()) {
                snprintf(msg, sizeof msg, "slow rank computed %llu of %llu items",
                         (unsigned long long)st.items[w->slow_rank], (unsigned long long)n);
                check(st.items[w->slow_rank] <= n / 4, msg);
            }
        }
    } else {
        check(rc != ERR_OK, msg);
        if (dist_rank() == w->fail_rank)
            check(rc == ERR_IO && strstr(err_message(), "cannot be computed"), msg);
        else if (dist_size() > 1)
            check(rc == ERR_STATE && strstr(err_message(), "rank"), msg);
    }
    err_clear();
    coord_stats_free(&st);
    xfree(res);
}

typedef struct {
    uint64_t nchunks;
    int *seen;
    int bad_bytes;
} Done;

static int on_done(void *ctx, uint64_t k, uint64_t first, size_t count, const void *bytes)
{
    Done *d = ctx;
    const uint64_t *o = bytes;
    if (k >= d->nchunks) return ERR(ERR_STATE, "chunk %llu out of range", (unsigned long long)k);
    d->seen[k]++;
    for (size_t j = 0; j < count; j++) {
        uint64_t e[2];
        expected(first + j, e);
        if (o[2 * j] != e[0] || o[2 * j + 1] != e[1]) d->bad_bytes = 1;
    }
    return ERR_OK;
}

static void run_resume(uint64_t n, size_t chunk)
{
    Work even = {.slow_rank = -1, .fail_rank = -1};
    uint64_t nch = (n + chunk - 1) / chunk;
    uint64_t *res = xcalloc(n * 2 + 2, sizeof(uint64_t));
    unsigned char *have = xcalloc(nch, 1);
    Done d = {.nchunks = nch, .seen = xcalloc(nch, sizeof(int))};
    for (uint64_t k = 0; k < nch; k += 3) have[k] = 1; /* as if loaded: marked, bytes 0xAB */
    for (uint64_t k = 0; k < nch; k += 3)
        for (uint64_t i = k * chunk; i < n && i < (k + 1) * chunk; i++) res[2 * i] = res[2 * i + 1] = 0xAB;
    CoordResume r = {.have = have, .done = on_done, .ctx = &d};
    int rc = coord_run_resume(n, chunk, 16, work, &even, dist_rank() == 0 ? res : NULL, NULL, &r);
    check(rc == ERR_OK, "resume run");
    if (dist_rank() == 0) {
        int ok = !d.bad_bytes;
        for (uint64_t k = 0; k < nch; k++) ok &= d.seen[k] == (have[k] ? 0 : 1);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t e[2];
            expected(i, e);
            int had = have[i / chunk];
            ok &= had ? res[2 * i] == 0xAB : res[2 * i] == e[0] && res[2 * i + 1] == e[1];
        }
        check(ok, "resume: had chunks untouched, the others computed and reported once");
    }
    xfree(res);
    xfree(have);
    xfree(d.seen);
}

/* As many chunks as ranks: every rank computes exactly one, rank 0 too (the chunks sent ahead
 * to hide the round trip must not leave rank 0 idle while one worker holds two). */
static void spread(void)
{
    Work even = {.slow_rank = -1, .fail_rank = -1};
    const size_t chunk = 5;
    uint64_t n = (uint64_t)dist_size() * chunk;
    uint64_t *res = xcalloc(n * 2 + 2, sizeof(uint64_t));
    CoordStats st;
    int rc = coord_run(n, chunk, 16, work, &even, dist_rank() == 0 ? res : NULL, &st);
    check(rc == ERR_OK, "spread run");
    if (dist_rank() == 0) {
        int one_each = 1;
        for (int r = 0; r < dist_size(); r++) one_each &= st.chunks[r] == 1;
        char msg[128];
        snprintf(msg, sizeof msg, "%d chunks on %d ranks: rank 0 computed %llu, rank %d %llu",
                 dist_size(), dist_size(), (unsigned long long)st.chunks[0], dist_size() - 1,
                 (unsigned long long)st.chunks[dist_size() - 1]);
        check(one_each, msg);
    }
    err_clear();
    coord_stats_free(&st);
    xfree(res);
}

int main(int argc, char **argv)
{
    if (dist_init(&argc, &argv) != ERR_OK) {
        fprintf(stderr, "mpi_coord: %s\n", err_message());
        return 1;
    }
    Work even = {.slow_rank = -1, .fail_rank = -1};
    const size_t chunks[] = {1, 7, 64, 1000};
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) run(203, chunks[c], &even, 1, "even");
    run(0, 5, &even, 1, "no items");
    spread();
    Work uneven = {.slow_ns = 10000000, .fast_ns = 200000, .slow_rank = 1, .fail_rank = -1};
    run(240, 4, &uneven, 1, "one slow rank");
    Work failing = {.slow_rank = -1, .fail_rank = dist_size() - 1};
    run(400, 8, &failing, 0, "failing rank");
    run(400, 3, &even, 1, "after a failure");
    run_resume(203, 7);
    run_resume(50, 1);
    int64_t bad = g_fail;
    dist_allreduce_max_i64(&bad, 1);
    if (dist_rank() == 0) printf("mpi_coord: %s on %d ranks\n", bad ? "FAILED" : "ok", dist_size());
    dist_finalize();
    return bad ? 1 : 0;
}
