/* dist/dist.c - MPI start-up, rank topology and the collectives dfm needs. */
#include "dist/dist.h"

#include <limits.h>
#include <mpi.h>
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

int dist_mpi_fail(int rc, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return ERR(ERR_MPI, "%s failed: %.*s", what, len, msg);
}

#define MPI_TRY(call) \
    do { int mpi_rc_ = (call); if (mpi_rc_ != MPI_SUCCESS) return dist_mpi_fail(mpi_rc_, #call); } while (0)

static void abort_hook(int status)
{
    if (g_init) MPI_Abort(MPI_COMM_WORLD, status);
    _exit(status);
}

int dist_init(int *argc, char ***argv)
{
    int provided = 0, flag = 0;
    MPI_Initialized(&flag);
    if (!flag) MPI_TRY(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided));
    g_init = 1;
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

/* ranks on this node as the launcher announces them before MPI starts */
static long launcher_local_size(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS",
                                       "SLURM_NTASKS_PER_NODE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        char *end;
        long n = v && *v ? strtol(v, &end, 10) : 0;
        if (n > 0 && !*end) return n;
    }
    return 1;
}

void dist_choose_wait_policy(int threads)
{
    if (getenv("OMP_WAIT_POLICY")) return;
    long cores = sysconf(_SC_NPROCESSORS_ONLN), ranks = launcher_local_size();
    if (cores < 1) cores = 1;
    long t = threads > 0 ? threads : (cores / ranks > 0 ? cores / ranks : 1);
    double load = 0.0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &load) != 1) load = 0.0;
        fclose(f);
    }
    long demand = ranks * t;
    if (t < 2 || ((double)demand + load <= (double)cores + 0.5)) return;
    /* rebuild argv from /proc/self/cmdline (NUL-separated) */
    char buf[65536];
    size_t len = 0;
    f = fopen("/proc/self/cmdline", "rb");
    if (f) {
        len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
    }
    if (len == 0 || len == sizeof buf - 1) return;
    buf[len] = '\0';
    char *av[1024];
    int ac = 0;
    for (size_t i = 0; i < len && ac < 1023; i += strlen(buf + i) + 1) av[ac++] = buf + i;
    av[ac] = NULL;
    const char *r = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    if (!r || !strcmp(r, "0"))
        fprintf(stderr,
                "dfm: %ld rank(s) x %ld threads on %ld cores with load %.1f: OpenMP threads "
                "wait passively (OMP_WAIT_POLICY=passive; set OMP_WAIT_POLICY to choose)\n",
                ranks, t, cores, load);
    fflush(NULL);
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", av);
    unsetenv("OMP_WAIT_POLICY"); /* exec failed: carry on as we are */
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

/* MPI counts are ints: split large buffers into chunks. */
#define CHUNK ((size_t)1 << 28)

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
    ASSERT(nbytes < (size_t)INT_MAX);
    MPI_TRY(MPI_Allgather(in, (int)nbytes, MPI_BYTE, out, (int)nbytes, MPI_BYTE, MPI_COMM_WORLD));
    return ERR_OK;
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
