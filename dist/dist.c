/* dist/dist.c - MPI start-up, rank topology and the collectives dfm needs. */
#include "dist/dist.h"

#include <limits.h>
#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"

static int g_init, g_rank, g_size = 1, g_local_rank, g_local_size = 1;
static MPI_Comm g_node = MPI_COMM_NULL; /* ranks sharing this node's memory */
static char g_libver[MPI_MAX_LIBRARY_VERSION_STRING];
static pthread_t g_main_thread;
/* Largest message of the chunked collectives, in elements (MPI counts are ints). */
static size_t g_chunk = (size_t)1 << 28;

int dist_mpi_fail(int rc, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return ERR(ERR_MPI, "%s failed: %.*s", what, len, msg);
}

#define MPI_TRY(call) \
    do { int mpi_rc_ = (call); if (mpi_rc_ != MPI_SUCCESS) return dist_mpi_fail(mpi_rc_, #call); } while (0)

int dist_on_main_thread(void) { return !g_init || pthread_equal(pthread_self(), g_main_thread); }

/* ASSERT and out-of-memory end here, possibly on an OpenMP worker. Under MPI_THREAD_FUNNELED
 * only the main thread may call MPI, so a worker just ends the process: a rank that exits
 * non-zero without MPI_Finalize makes mpirun (and srun) take the whole job down. */
static void abort_hook(int status)
{
    if (g_init && dist_on_main_thread()) MPI_Abort(MPI_COMM_WORLD, status);
    fflush(stderr);
    _exit(status);
}

int dist_init(int *argc, char ***argv)
{
    /* Every MPI call is made by the main thread: OpenMP workers only compute, and the overlap
     * reducer is progressed from the backward's layer callbacks, which run between parallel
     * regions on the main thread (reducer_mark_ready asserts it). A thread that does file
     * I/O only needs no more. */
    int provided = 0, flag = 0;
    MPI_Initialized(&flag);
    if (!flag) MPI_TRY(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
    else MPI_Query_thread(&provided);
    g_main_thread = pthread_self();
    g_init = 1;
    if (provided < MPI_THREAD_FUNNELED) {
        ERR(ERR_MPI, "the MPI library provides thread level %d, dfm needs MPI_THREAD_FUNNELED "
            "(%d): its ranks run OpenMP threads", provided, MPI_THREAD_FUNNELED);
        err_hint("use an MPI library built with thread support (Open MPI provides it)");
        return ERR_MPI;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_TRY(MPI_Comm_rank(MPI_COMM_WORLD, &g_rank));
    MPI_TRY(MPI_Comm_size(MPI_COMM_WORLD, &g_size));
    MPI_TRY(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL,
                                &g_node));
    MPI_Comm_set_errhandler(g_node, MPI_ERRORS_RETURN);
    MPI_Comm_rank(g_node, &g_local_rank);
    MPI_Comm_size(g_node, &g_local_size);
    core_set_abort_hook(abort_hook);
    log_init(g_rank, g_size);
    return ERR_OK;
}

void dist_finalize(void)
{
    int fin = 0;
    if (!g_init) return;
    MPI_Finalized(&fin);
    if (!fin && g_node != MPI_COMM_NULL) MPI_Comm_free(&g_node);
    if (!fin) MPI_Finalize();
    g_init = 0;
}

int dist_initialized(void) { return g_init; }
int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
int dist_local_rank(void) { return g_local_rank; }
int dist_local_size(void) { return g_local_size; }

int dist_default_threads(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) cores = 1;
    long t = cores / (g_local_size > 0 ? g_local_size : 1);
    return t < 1 ? 1 : (int)t;
}

int dist_check_world(void)
{
    static const char *const vars[] = {"SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (!v || !*v) continue;
        char *end;
        long n = strtol(v, &end, 10);
        if (*end || n <= 0) continue;
        if (n != g_size) {
            ERR(ERR_MPI, "the launcher promised %s=%ld ranks but MPI_COMM_WORLD has %d", vars[i],
                n, g_size);
            err_hint("the ranks were started as separate singletons: launch with mpirun, or with "
                     "srun --mpi=pmix under Slurm, from an Open MPI built with that support");
            return ERR_MPI;
        }
    }
    return ERR_OK;
}

/* MPI counts are ints: split large buffers into chunks (dist_set_chunk). */
#define CHUNK g_chunk

int dist_allreduce_sum_f32(float *buf, size_t n)
{
    if (!g_init || g_size == 1) return ERR_OK;
    for (size_t off = 0; off < n; off += CHUNK) {
        int c = (int)(n - off < CHUNK ? n - off : CHUNK);
        MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, buf + off, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    }
    return ERR_OK;
}

int dist_allreduce_sum_f64(double *buf, size_t n)
{
    if (!g_init || g_size == 1) return ERR_OK;
    for (size_t off = 0; off < n; off += CHUNK) {
        int c = (int)(n - off < CHUNK ? n - off : CHUNK);
        MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, buf + off, c, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
    }
    return ERR_OK;
}

static int allreduce_i64(int64_t *buf, size_t n, MPI_Op op)
{
    if (!g_init || g_size == 1) return ERR_OK;
    ASSERT(n < (size_t)INT_MAX);
    MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_INT64_T, op, MPI_COMM_WORLD));
    return ERR_OK;
}

int dist_allreduce_max_i64(int64_t *buf, size_t n) { return allreduce_i64(buf, n, MPI_MAX); }
int dist_allreduce_min_i64(int64_t *buf, size_t n) { return allreduce_i64(buf, n, MPI_MIN); }

int dist_bcast(void *buf, size_t nbytes, int root)
{
    if (!g_init || g_size == 1) return ERR_OK;
    for (size_t off = 0; off < nbytes; off += CHUNK) {
        int c = (int)(nbytes - off < CHUNK ? nbytes - off : CHUNK);
        MPI_TRY(MPI_Bcast((char *)buf + off, c, MPI_BYTE, root, MPI_COMM_WORLD));
    }
    return ERR_OK;
}

int dist_allgather(const void *in, void *out, size_t nbytes)
{
    if (!g_init || g_size == 1) {
        memmove(out, in, nbytes);
        return ERR_OK;
    }
    if (nbytes <= g_chunk) {
        MPI_TRY(MPI_Allgather(in, (int)nbytes, MPI_BYTE, out, (int)nbytes, MPI_BYTE,
                              MPI_COMM_WORLD));
        return ERR_OK;
    }
    /* In chunks: chunk [off, off + c) of every rank lands at out + r * nbytes + off, through a
     * receive type of c bytes whose extent is nbytes (an MPI_Aint, not an int). */
    for (size_t off = 0; off < nbytes; off += g_chunk) {
        size_t c = nbytes - off < g_chunk ? nbytes - off : g_chunk;
        MPI_Datatype block, spaced;
        MPI_TRY(MPI_Type_contiguous((int)c, MPI_BYTE, &block));
        int rc = MPI_Type_create_resized(block, 0, (MPI_Aint)nbytes, &spaced);
        MPI_Type_free(&block);
        if (rc != MPI_SUCCESS) return dist_mpi_fail(rc, "MPI_Type_create_resized");
        rc = MPI_Type_commit(&spaced);
        if (rc == MPI_SUCCESS)
            rc = MPI_Allgather((const char *)in + off, (int)c, MPI_BYTE, (char *)out + off, 1,
                               spaced, MPI_COMM_WORLD);
        MPI_Type_free(&spaced);
        if (rc != MPI_SUCCESS) return dist_mpi_fail(rc, "MPI_Allgather(chunk)");
    }
    return ERR_OK;
}

void dist_set_chunk(size_t elements)
{
    g_chunk = elements >= 1 && elements <= ((size_t)1 << 28) ? elements : (size_t)1 << 28;
}

int dist_barrier(void)
{
    if (!g_init || g_size == 1) return ERR_OK;
    MPI_TRY(MPI_Barrier(MPI_COMM_WORLD));
    return ERR_OK;
}

int dist_node_barrier(void)
{
    if (!g_init || g_local_size == 1) return ERR_OK;
    MPI_TRY(MPI_Barrier(g_node));
    return ERR_OK;
}

_Noreturn void dist_abort(int status)
{
    fflush(stdout);
    fflush(stderr);
    if (g_init && g_size > 1) MPI_Abort(MPI_COMM_WORLD, status);
    dist_finalize();
    exit(status);
}

const char *dist_mpi_library_version(void)
{
    int len = 0;
    if (!g_libver[0]) {
        MPI_Get_library_version(g_libver, &len);
        char *nl = strchr(g_libver, '\n');
        if (nl) *nl = '\0';
        char *comma = strchr(g_libver, ',');
        if (comma) *comma = '\0';
    }
    return g_libver;
}
