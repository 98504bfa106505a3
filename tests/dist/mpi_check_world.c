/* tests/dist/mpi_check_world.c - dist_check_world against the launch environments of real use.
 *
 * The program runs under mpirun (so OMPI_COMM_WORLD_SIZE is the real world size) and sets the
 * Slurm and PMI variables a launcher would set before each call:
 *   - `sbatch -n 4` then `mpirun -np P` inside the allocation: SLURM_NTASKS=4 (and =P+1):
 *     accepted, the MPI launcher's variables come first;
 *   - the MPI launcher's own count disagreeing with the world: refused, naming the variable;
 *   - srun starting P+1 tasks that each became a singleton (no MPI launcher variable,
 *     SLURM_STEP_NUM_TASKS=P+1, world size 1), or a world of one with SLURM_NTASKS > 1 and no
 *     launcher at all: refused as a singleton problem; with a world larger than 1, accepted.
 * Exit status 0 when all ranks pass.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "dist/dist.h"

static int g_fail;

static void check(int ok, const char *what)
{
    if (!ok) {
        g_fail = 1;
        fprintf(stderr, "mpi_check_world: [rank %d/%d] FAILED: %s (%s)\n", dist_rank(),
                dist_size(), what, err_message());
    }
}

static void setnum(const char *name, long v)
{
    char b[32];
    snprintf(b, sizeof b, "%ld", v);
    setenv(name, b, 1);
}

int main(int argc, char **argv)
{
    if (dist_init(&argc, &argv) != ERR_OK) {
        fprintf(stderr, "mpi_check_world: %s\n", err_message());
        return 1;
    }
    long P = dist_size();
    char *ompi = getenv("OMPI_COMM_WORLD_SIZE");
    ompi = ompi ? strdup(ompi) : NULL;
    unsetenv("SLURM_STEP_NUM_TASKS");
    unsetenv("PMI_SIZE");
    unsetenv("PMIX_SIZE");

    /* mpirun -np P inside an allocation of 4 (and of P + 1) tasks */
    setnum("OMPI_COMM_WORLD_SIZE", P);
    setnum("SLURM_NTASKS", 4);
    check(dist_check_world() == ERR_OK, "mpirun inside sbatch -n 4 refused");
    setnum("SLURM_NTASKS", P + 1);
    check(dist_check_world() == ERR_OK, "mpirun inside a larger allocation refused");

    /* the MPI launcher's own count is wrong */
    setnum("OMPI_COMM_WORLD_SIZE", P + 1);
    check(dist_check_world() == ERR_MPI && strstr(err_message(), "OMPI_COMM_WORLD_SIZE"),
          "a wrong OMPI_COMM_WORLD_SIZE accepted");
    setnum("OMPI_COMM_WORLD_SIZE", P);
    setnum("PMI_SIZE", P + 2);
    check(dist_check_world() == ERR_MPI && strstr(err_message(), "PMI_SIZE"),
          "a wrong PMI_SIZE accepted");
    unsetenv("PMI_SIZE");

    /* srun without MPI support: each task a world of one */
    unsetenv("OMPI_COMM_WORLD_SIZE");
    setnum("SLURM_NTASKS", P + 1);
    setnum("SLURM_STEP_NUM_TASKS", P + 1);
    int rc = dist_check_world();
    if (P == 1)
        check(rc == ERR_MPI && strstr(err_message(), "world of its own"),
              "srun singletons accepted");
    else
        check(rc == ERR_OK, "a real world refused over SLURM_STEP_NUM_TASKS");
    setnum("SLURM_STEP_NUM_TASKS", P);
    setnum("SLURM_NTASKS", P);
    check(dist_check_world() == ERR_OK, "srun with a matching step refused");
    /* a plain start inside `sbatch -n P+1`, no launcher at all */
    unsetenv("SLURM_STEP_NUM_TASKS");
    setnum("SLURM_NTASKS", P + 1);
    rc = dist_check_world();
    check(P == 1 ? rc == ERR_MPI && strstr(err_message(), "SLURM_NTASKS") : rc == ERR_OK,
          "a world of one in a larger allocation");

    if (ompi) setenv("OMPI_COMM_WORLD_SIZE", ompi, 1);
    free(ompi);
    int64_t bad = g_fail;
    if (dist_allreduce_max_i64(&bad, 1) != ERR_OK) bad = 1;
    if (dist_rank() == 0) printf("mpi_check_world: %s on %ld ranks\n", bad ? "FAILED" : "ok", P);
    dist_finalize();
    return bad ? 1 : 0;
}
