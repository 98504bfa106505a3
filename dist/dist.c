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

/* A launcher variable as a positive task count, or 0 when unset or not a number. */
static long env_count(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    char *end;
    long n = strtol(v, &end, 10);
    return *end || n <= 0 ? 0 : n;
}

/* ranks on this node as the launcher announces them before MPI starts */
static long launcher_local_size(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS",
                                       "SLURM_NTASKS_PER_NODE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (env_count(vars[i]) > 0) return env_count(vars[i]);
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
    /* The MPI launcher's own variables describe this job: trust them first. (Slurm's
     * SLURM_NTASKS describes the allocation, which a job may use only part of: `sbatch -n 4`
     * then `mpirun -np 2` inside it is legitimate.) */
    static const char *const mpi_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    int launcher = 0;
    for (size_t i = 0; i < sizeof mpi_vars / sizeof mpi_vars[0]; i++) {
        long n = env_count(mpi_vars[i]);
        if (n == 0) continue;
        launcher = 1;
        if (n == g_size) continue;
        ERR(ERR_MPI, "the MPI launcher promised %s=%ld ranks but MPI_COMM_WORLD has %d",
            mpi_vars[i], n, g_size);
        if (g_size == 1)
            err_hint("the ranks were started as separate singletons: this dfm's MPI library is "
                     "not the one the launcher belongs to (check 'which mpirun' and 'dfm "
                     "--version')");
        else
            err_hint("start dfm with the mpirun of the MPI library it was built with");
        return ERR_MPI;
    }
    if (launcher || g_size > 1) return ERR_OK;
    /* No MPI launcher in sight and a world of one: if Slurm started several tasks (srun sets
     * SLURM_STEP_NUM_TASKS; SLURM_NTASKS is the allocation's), each became a singleton. */
    long step = env_count("SLURM_STEP_NUM_TASKS"), ntasks = env_count("SLURM_NTASKS");
    long promised = step ? step : ntasks;
    if (promised > 1) {
        ERR(ERR_MPI, "Slurm promised %s=%ld tasks but this rank is a world of its own "
            "(MPI_COMM_WORLD has 1 rank)", step ? "SLURM_STEP_NUM_TASKS" : "SLURM_NTASKS",
            promised);
        err_hint("the ranks were started as separate singletons: launch with srun --mpi=pmix "
                 "(or MpiDefault=pmix in slurm.conf), or with mpirun inside the allocation");
        return ERR_MPI;
    }
    return ERR_OK;
}

/* ---- ranks agree on the job --------------------------------------------------------------- */

typedef struct {
    char spec[65];   /* SHA-256 of the resolved job spec, hex */
    char commit[41]; /* the dfm build */
    char pad[6];
    uint64_t n_params;
} JobId;

/* Append "; " and a field's disagreement to msg: rank 0's value and the first ranks that
 * differ from it. */
static void describe(char *msg, size_t cap, const char *what, const JobId *all, int P, int field)
{
    size_t len = strlen(msg);
    char v0[72];
    if (field == 2) snprintf(v0, sizeof v0, "%llu", (unsigned long long)all[0].n_params);
    else snprintf(v0, sizeof v0, "%.12s", field == 0 ? all[0].spec : all[0].commit);
    len += (size_t)snprintf(msg + len, len < cap ? cap - len : 0, "%s%s differs (rank 0: %s",
                            len ? "; " : "", what, v0);
    int listed = 0, more = 0;
    for (int r = 1; r < P; r++) {
        int same = field == 2 ? all[r].n_params == all[0].n_params
                   : field == 0 ? !strcmp(all[r].spec, all[0].spec)
                                : !strcmp(all[r].commit, all[0].commit);
        if (same) continue;
        if (listed == 4) {
            more++;
            continue;
        }
        char v[72];
        if (field == 2) snprintf(v, sizeof v, "%llu", (unsigned long long)all[r].n_params);
        else snprintf(v, sizeof v, "%.12s", field == 0 ? all[r].spec : all[r].commit);
        len += (size_t)snprintf(msg + len, len < cap ? cap - len : 0, ", rank %d: %s", r, v);
        listed++;
    }
    if (more) len += (size_t)snprintf(msg + len, len < cap ? cap - len : 0, ", and %d more", more);
    snprintf(msg + len, len < cap ? cap - len : 0, ")");
}

int dist_job_agree(const char *spec_sha256, const char *commit, uint64_t n_params)
{
    if (!g_init || g_size == 1) return ERR_OK;
    JobId me;
    memset(&me, 0, sizeof me);
    snprintf(me.spec, sizeof me.spec, "%s", spec_sha256);
    snprintf(me.commit, sizeof me.commit, "%s", commit);
    me.n_params = n_params;
    JobId *all = xmalloc((size_t)g_size * sizeof *all);
    int rc = dist_allgather(&me, all, sizeof me);
    if (rc != ERR_OK) {
        xfree(all);
        return rc;
    }
    char msg[ERR_MSG_MAX - 64] = "";
    int spec_bad = 0, commit_bad = 0, n_bad = 0;
    for (int r = 1; r < g_size; r++) {
        spec_bad |= strcmp(all[r].spec, all[0].spec) != 0;
        commit_bad |= strcmp(all[r].commit, all[0].commit) != 0;
        n_bad |= all[r].n_params != all[0].n_params;
    }
    if (commit_bad) describe(msg, sizeof msg, "the dfm build (commit)", all, g_size, 1);
    if (spec_bad) describe(msg, sizeof msg, "the resolved job spec (SHA-256)", all, g_size, 0);
    if (n_bad) describe(msg, sizeof msg, "the parameter count", all, g_size, 2);
    xfree(all);
    if (!msg[0]) return ERR_OK;
    ERR(ERR_MPI, "the %d ranks do not agree on the job, so none starts: %s", g_size, msg);
    err_hint("every rank must run the same dfm build on the same job file with the same --set "
             "options (an MPMD launch 'mpirun A : B' or a per-rank script must not change them); "
             "compare 'dfm validate JOB --set ...' as each rank runs it");
    return ERR_MPI;
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
