/* tests/dist/mpi_params_agree.c - the parameter-agreement check catches a diverged rank.
 *
 * Every rank runs the same 6 "training steps" (a deterministic update of 65537 parameters) and
 * calls dist_params_agree after each. At step 4 the last rank nudges one parameter by one ulp.
 * Checks: steps 1-3 agree on every rank; step 4 fails with ERR_MPI on EVERY rank, with a message
 * that names step 4, the diverged rank and the hashes, and a hint. On one rank (nothing can
 * diverge) it checks instead that the hash sees a one-ulp change, -0.0 versus +0.0 and a change
 * in the odd tail value, and that the check passes. Exit status 0 when all ranks pass.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "dist/dist.h"
#include "dist/reduce.h"

#define N ((size_t)65537)
#define BAD_STEP 4
#define BAD_INDEX ((size_t)40961)

static int g_fail;

static void check(int ok, const char *what)
{
    if (!ok) {
        g_fail = 1;
        fprintf(stderr, "mpi_params_agree: [rank %d/%d] FAILED: %s\n", dist_rank(), dist_size(),
                what);
    }
}

static void single_rank_checks(float *p)
{
    uint64_t h0 = dist_hash_f32(p, N), h1;
    float keep = p[BAD_INDEX];
    p[BAD_INDEX] = nextafterf(keep, INFINITY);
    check(dist_hash_f32(p, N) != h0, "hash blind to a one-ulp change");
    p[BAD_INDEX] = keep;
    check(dist_hash_f32(p, N) == h0, "hash not a function of the bits");
    keep = p[7];
    p[7] = 0.0f;
    h1 = dist_hash_f32(p, N);
    p[7] = -0.0f;
    check(dist_hash_f32(p, N) != h1, "hash blind to -0.0 versus +0.0");
    p[7] = keep;
    keep = p[N - 1]; /* N is odd: the last value is hashed on its own */
    p[N - 1] = nextafterf(keep, -INFINITY);
    check(dist_hash_f32(p, N) != h0, "hash blind to a change in the odd tail value");
    p[N - 1] = keep;
    check(dist_hash_f32(p, N - 1) != h0, "hash blind to the length");
    check(dist_params_agree(p, N, 1, &h1) == ERR_OK && h1 == h0, "single-rank check failed");
}

int main(int argc, char **argv)
{
    if (dist_init(&argc, &argv) != ERR_OK) {
        fprintf(stderr, "mpi_params_agree: %s\n", err_message());
        return 1;
    }
    int P = dist_size(), me = dist_rank();
    float *p = xmalloc(N * sizeof(float));
    for (size_t i = 0; i < N; i++) p[i] = sinf((float)i * 0.001f);

    if (P == 1) {
        single_rank_checks(p);
    } else {
        char want[128], what[1400];
        for (long step = 1; step <= 6; step++) {
            for (size_t i = 0; i < N; i++) p[i] -= 1e-3f * cosf(p[i] + (float)step);
            if (step == BAD_STEP && me == P - 1) p[BAD_INDEX] = nextafterf(p[BAD_INDEX], INFINITY);
            uint64_t h = 0;
            err_clear();
            int rc = dist_params_agree(p, N, step, &h);
            if (step < BAD_STEP) {
                snprintf(what, sizeof what, "step %ld: identical ranks reported as disagreeing: "
                         "%s", step, err_message());
                check(rc == ERR_OK, what);
                continue;
            }
            if (step > BAD_STEP) break;
            snprintf(what, sizeof what, "step %ld: the diverged rank %d went unnoticed", step,
                     P - 1);
            check(rc == ERR_MPI, what);
            snprintf(want, sizeof want, "ranks disagree on parameters after step %d", BAD_STEP);
            snprintf(what, sizeof what, "message lacks '%s': '%s'", want, err_message());
            check(strstr(err_message(), want) != NULL, what);
            snprintf(want, sizeof want, "rank %d hash ", P - 1);
            snprintf(what, sizeof what, "message does not name the diverged rank: '%s'",
                     err_message());
            check(strstr(err_message(), want) != NULL, what);
            if (me == P - 1) {
                snprintf(want, sizeof want, "rank %d hash %016llx", me, (unsigned long long)h);
                check(strstr(err_message(), want) != NULL, "message lacks the diverged hash");
            }
            snprintf(what, sizeof what, "message names a rank that agrees: '%s'", err_message());
            check(P < 3 || strstr(err_message(), "rank 1 hash ") == NULL || P - 1 == 1, what);
            check(strstr(err_message(), "(1 of ") != NULL, "message miscounts the diverged ranks");
            check(err_hint_text()[0] != '\0', "no hint");
            if (me == 0)
                printf("mpi_params_agree: caught as expected: %s\n  hint: %s\n", err_message(),
                       err_hint_text());
        }
    }

    xfree(p);
    int64_t ok = !g_fail;
    if (dist_allreduce_min_i64(&ok, 1) != ERR_OK) ok = 0;
    if (me == 0)
        printf("mpi_params_agree: np=%d %s\n", P, ok ? "passed" : "FAILED");
    dist_finalize();
    return ok ? 0 : 1;
}
