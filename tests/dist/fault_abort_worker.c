/* tests/dist/fault_abort_worker.c - an abort (ASSERT, out of memory) that fires on an OpenMP
 * worker thread must end the whole job with its status: under MPI_THREAD_FUNNELED the worker
 * may not call MPI, so the hook ends its process, and the launcher takes the other ranks down.
 *
 * Usage: fault_abort_worker RANK STATUS. Rank RANK enters a two-thread parallel region whose
 * worker (thread 1) calls core_abort(STATUS) while the main thread waits at the region's end;
 * every other rank waits in a barrier that can only complete if the job goes on, so a hook that
 * did nothing, returned, or deadlocked leaves a hang (caught by the caller's timeout). Not an
 * mpi_* program: its expected exit status is STATUS, not 0; tests/dist/t_abort_worker.sh runs it.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/mem.h"
#include "dist/dist.h"

int main(int argc, char **argv)
{
    if (dist_init(&argc, &argv) != ERR_OK) return 1;
    int who = argc > 1 ? atoi(argv[1]) : 0;
    int status = argc > 2 ? atoi(argv[2]) : 7;
    if (dist_rank() == who) {
        int threads = 0;
#pragma omp parallel num_threads(2)
        {
#pragma omp single
            threads = omp_get_num_threads();
            if (omp_get_thread_num() == 1) {
                fprintf(stderr, "fault_abort_worker: rank %d, worker thread %d aborts with %d\n",
                        dist_rank(), omp_get_thread_num(), status);
                core_abort(status);
            }
        }
        /* Only reached when the region had one thread: the test cannot run. */
        fprintf(stderr, "fault_abort_worker: the parallel region got %d thread(s), not 2\n",
                threads);
        dist_finalize();
        return 77;
    }
    dist_barrier();
    fprintf(stderr, "fault_abort_worker: rank %d passed the barrier: the job went on\n",
            dist_rank());
    dist_finalize();
    return 0;
}
