/* dist/dist.h - the only door to MPI (CONTRIBUTING.md, MPI and other libraries).
 *
 * dist_init starts MPI (thread level FUNNELED is enough; MULTIPLE is requested when the overlap
 * mode needs it), installs an abort hook so ASSERT and out-of-memory take the whole job down,
 * and tells core/log who we are. A binary started without mpirun runs as a singleton: every
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

int dist_rank(void);
int dist_size(void);
/* Ranks on this node (MPI_COMM_TYPE_SHARED split) and this rank's index among them. */
int dist_local_rank(void);
int dist_local_size(void);
/* Threads this rank should use when the job spec says "auto": online cores of the node divided
 * by the ranks on it, at least 1. */
int dist_default_threads(void);

/* Fail with ERR_MPI when a launcher promised a different world size (SLURM_NTASKS,
 * OMPI_COMM_WORLD_SIZE, PMI_SIZE): the sign of ranks started as separate singletons. */
int dist_check_world(void);

int dist_allreduce_sum_f32(float *buf, size_t n);
int dist_allreduce_sum_f64(double *buf, size_t n);
int dist_allreduce_max_i64(int64_t *buf, size_t n);
int dist_allreduce_min_i64(int64_t *buf, size_t n);
int dist_bcast(void *buf, size_t nbytes, int root);
/* Gather nbytes from every rank into out (size * nbytes bytes) on every rank. */
int dist_allgather(const void *in, void *out, size_t nbytes);
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
