/* tests/dist/mpi_reduce_error.c - MPI error paths: a reducer destroyed with reductions in flight,
 * the thread level, and an all-gather larger than one message.
 *
 * 1. Destroy in flight (overlap mode). The last rank starts its last micro-shard and marks the
 *    whole gradient ready, which posts every bucket's all-reduce, then destroys the reducer as
 *    an error path would, without finishing. The other ranks have not started: a destroy that
 *    waited for the all-reduce would hang here (they wait in a barrier for it). Afterwards they
 *    do their part of the step, which completes the all-reduce into the last rank's buffers.
 *    mpirun's --timeout turns a hang into a failure.
 *    Deterministic mode: every rank posts its first exchange and destroys at once; the
 *    partners' messages then land in buffers that must still be allocated (a destroy that freed
 *    them lets the messages land in freed memory: `make asan` reports it).
 * 2. dist_init provided at least MPI_THREAD_FUNNELED and this is the main thread.
 * 3. dist_allgather of an odd number of bytes in chunks of 7 bytes gives every rank's bytes in
 *    rank order.
 * Exit status 0 when all ranks pass.
 */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "dist/dist.h"
#include "dist/reduce.h"

#define N ((size_t)100000)

static int g_fail;

static void check(int ok, const char *what)
{
    if (!ok) {
        g_fail = 1;
        fprintf(stderr, "mpi_reduce_error: [rank %d/%d] FAILED: %s\n", dist_rank(), dist_size(),
                what);
    }
}

/* Overlap mode: the last rank posts every bucket's all-reduce and destroys its reducer; the
 * others join the all-reduce only after that destroy has returned. */
static void destroy_while_peers_lag(void)
{
    int P = dist_size(), me = dist_rank();
    ReducerConfig cfg = {.n = N, .M = (size_t)P, .mode = REDUCE_OVERLAP, .bucket_floats = 16384};
    GradReducer *red = NULL;
    check(reducer_create(&red, &cfg) == ERR_OK, "reducer_create");
    size_t first, end;
    reducer_local_shards(red, &first, &end);
    if (me == P - 1 && P > 1) {
        float *g = reducer_leaf_begin(red, first);
        for (size_t i = 0; i < N; i++) g[i] = 1.0f;
        check(reducer_mark_ready(red, 0, N) == ERR_OK, "mark_ready");
        reducer_destroy(&red); /* the error path: must neither wait nor free */
        check(red == NULL, "destroy leaves the handle set");
    }
    check(dist_barrier() == ERR_OK, "barrier after the destroy");
    if (me != P - 1 || P == 1) {
        for (size_t s = first; s < end; s++) {
            float *g = reducer_leaf_begin(red, s);
            for (size_t i = 0; i < N; i++) g[i] = 1.0f;
            check(reducer_leaf_end(red) == ERR_OK, "leaf_end");
        }
        float *sum;
        check(reducer_finish(red, &sum) == ERR_OK, "finish");
        check(sum[0] == (float)P && sum[N - 1] == (float)P, "sum after a peer's destroy");
        reducer_destroy(&red);
    }
    check(dist_barrier() == ERR_OK, "barrier after the step");
}

/* Deterministic mode: every rank posts its first exchange and destroys at once; the partners'
 * messages arrive after the destroy, into buffers that must still be allocated. */
static void destroy_with_receives_posted(void)
{
    int P = dist_size();
    ReducerConfig cfg = {.n = N, .M = (size_t)P, .mode = REDUCE_DETERMINISTIC,
                         .bucket_floats = 16384};
    GradReducer *red = NULL;
    check(reducer_create(&red, &cfg) == ERR_OK, "reducer_create");
    size_t first, end;
    reducer_local_shards(red, &first, &end);
    float *g = reducer_leaf_begin(red, first);
    for (size_t i = 0; i < N; i++) g[i] = 1.0f;
    check(reducer_mark_ready(red, 0, N) == ERR_OK, "mark_ready");
    if (P == 1) {
        check(reducer_leaf_end(red) == ERR_OK, "leaf_end");
        float *sum;
        check(reducer_finish(red, &sum) == ERR_OK && sum[0] == 1.0f, "finish on one rank");
    }
    reducer_destroy(&red);
    check(red == NULL, "destroy leaves the handle set");
    check(dist_barrier() == ERR_OK, "barrier after the destroy");
}

int main(int argc, char **argv)
{
    if (dist_init(&argc, &argv) != ERR_OK) {
        fprintf(stderr, "mpi_reduce_error: %s\n", err_message());
        return 1;
    }
    int provided = 0;
    MPI_Query_thread(&provided);
    check(provided >= MPI_THREAD_FUNNELED, "thread level below FUNNELED");
    check(dist_on_main_thread(), "dist_on_main_thread on the main thread");

    destroy_while_peers_lag();
    destroy_with_receives_posted();

    int P = dist_size(), me = dist_rank();
    size_t nb = 1001;
    unsigned char *in = xmalloc(nb), *out = xmalloc(nb * (size_t)P);
    for (size_t i = 0; i < nb; i++) in[i] = (unsigned char)(me * 31 + (int)i);
    dist_set_chunk(7);
    check(dist_allgather(in, out, nb) == ERR_OK, "chunked allgather");
    dist_set_chunk(0);
    for (int r = 0; r < P; r++)
        for (size_t i = 0; i < nb; i++)
            if (out[(size_t)r * nb + i] != (unsigned char)(r * 31 + (int)i)) {
                check(0, "chunked allgather put a byte in the wrong place");
                r = P;
                break;
            }
    xfree(in);
    xfree(out);

    int64_t bad = g_fail;
    if (dist_allreduce_max_i64(&bad, 1) != ERR_OK) bad = 1;
    if (dist_rank() == 0) printf("mpi_reduce_error: %s on %d ranks\n", bad ? "FAILED" : "ok", P);
    dist_finalize();
    return bad ? 1 : 0;
}
