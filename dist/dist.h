/* dist/dist.h - the only door to MPI (CONTRIBUTING.md, MPI and other libraries).
 *
 * dist_init starts MPI at thread level MPI_THREAD_FUNNELED (every MPI call comes from the main
 * thread; OpenMP workers and any I/O thread never call MPI) and fails when the library provides
 * less, installs an abort hook so ASSERT and out-of-memory take the whole job down (MPI_Abort on
 * the main thread; on another thread, which may not call MPI, the process exits and the
 * launcher ends the job), and tells core/log who we are. A binary started without mpirun runs as a singleton: every
 * collective below is then the identity. Commands that need no MPI (help, validate) never call
 * dist_init.
 *
 * All collectives return ERR_OK or ERR_MPI with a message naming the call and the MPI error.
 */
#ifndef DFM_DIST_DIST_H
#define DFM_DIST_DIST_H

#include <stddef.h>
#include <stdint.h>

int dist_init(int *argc, char ***argv);
void dist_finalize(void);
int dist_initialized(void);
/* 1 on the thread that called dist_init (or before dist_init): the only one that may call MPI. */
int dist_on_main_thread(void);

int dist_rank(void);
int dist_size(void);
/* Ranks on this node (MPI_COMM_TYPE_SHARED split) and this rank's index among them. */
int dist_local_rank(void);
int dist_local_size(void);
/* Threads this rank should use when the job spec says "auto": online cores of the node divided
 * by the ranks on it, at least 1. */
int dist_default_threads(void);

/* Call before dist_init, with the job's thread count (0 = auto). When this node's ranks x
 * threads, plus the load already on the node (1-minute load average), exceed its cores, an
 * OpenMP thread spinning at a barrier takes the core from the thread it waits for (training
 * then runs many times slower). libgomp reads its wait policy once at start-up, so the process
 * restarts itself (same pid, same arguments) with OMP_WAIT_POLICY=passive and says so. Does
 * nothing when OMP_WAIT_POLICY is already set (the user's choice, or the restarted process). */
void dist_choose_wait_policy(int threads);

/* Fail with ERR_MPI when the MPI launcher promised a different world size
 * (OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_SIZE), or, with no MPI launcher variable and a world of
 * one, when Slurm started several tasks (SLURM_STEP_NUM_TASKS, else SLURM_NTASKS): ranks
 * started as separate singletons. The MPI launcher's variables are trusted first: SLURM_NTASKS
 * is the allocation, which `mpirun -np 2` inside `sbatch -n 4` rightly uses only part of. */
int dist_check_world(void);

/* Collective, before the ranks exchange anything job-dependent: compare this rank's SHA-256 of
 * the resolved job spec (64 hex digits), dfm commit and parameter count with every other
 * rank's. ERR_OK when all agree; otherwise ERR_MPI on every rank, with one message naming each
 * field that differs, rank 0's value and the ranks that differ from it. A reducer built on
 * different sizes hangs or fails inside MPI (MPI_ERR_IN_STATUS); this says why instead. */
int dist_job_agree(const char *spec_sha256, const char *commit, uint64_t n_params);

int dist_allreduce_sum_f32(float *buf, size_t n);
int dist_allreduce_sum_f64(double *buf, size_t n);
int dist_allreduce_max_i64(int64_t *buf, size_t n);
int dist_allreduce_min_i64(int64_t *buf, size_t n);
int dist_bcast(void *buf, size_t nbytes, int root);
/* Gather nbytes from every rank into out (size * nbytes bytes) on every rank. Any size: large
 * buffers go in chunks, like the other collectives. */
int dist_allgather(const void *in, void *out, size_t nbytes);
/* Largest message of the chunked collectives in elements (default and maximum 2^28); tests set
 * a small one to exercise the chunking without gigabytes of memory. */
void dist_set_chunk(size_t elements);
int dist_barrier(void);
/* Barrier among the ranks of this node only (dist_local_size of them). */
int dist_node_barrier(void);

/* Record ERR_MPI for a failed MPI call: "<what> failed: <MPI error string>". Returns ERR_MPI.
 * For the other dist/ modules, which call MPI directly but share one message format. */
int dist_mpi_fail(int mpi_rc, const char *what);

/* Print nothing, take every rank down with status (MPI_Abort under MPI, exit otherwise). */
_Noreturn void dist_abort(int status);

const char *dist_mpi_library_version(void);

#endif
