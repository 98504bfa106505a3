/* tests/bench/bench_reduce.c - communication time per step, deterministic versus overlap.
 *
 *   mpirun -np 2 bin/bench/bench_reduce [n_floats [steps [compute_reps]]]
 *
 * Defaults: n = 6500000 floats (the fmnist-small model, 26 MB), 10 timed steps after one warm-up,
 * compute_reps = 8 (work per gradient value of the fake backward). One micro-shard per rank, so
 * the local tree costs nothing and only communication is measured. The fake backward walks the
 * buffer from high offsets to low in "layers" of 131072 values, computing each and then calling
 * reducer_mark_ready on it, as a real backward would.
 *
 * Reported per step (medians over steps of the max over ranks), for bucket sizes 25, 4 and 1 MiB
 * and both modes (deterministic: bucketed recursive halving/doubling; overlap: MPI_Iallreduce):
 *   compute     the fake backward with no reduction at all;
 *   blocking    no mark_ready: every bucket starts after the backward; comm = time from the end
 *               of the backward (after a barrier, so the ranks' skew is not counted) to the
 *               summed gradient, nothing hidden;
 *   overlapped  mark_ready per layer: step time and the wait left in reducer_finish. Two hidden
 *               fractions: 1 - wait / blocking comm (latency hidden behind compute) and
 *               1 - (step - compute-only step) / blocking comm (time saved end to end; lower
 *               when the communication's copies and additions run on the cores the compute
 *               needs, as with shared memory on a small node).
 * Optional 4th argument: values per fake layer (131072), i.e. how often mark_ready (and so
 * MPI progress) is called.
 * Timings, not a test: exit status is 0 unless something fails.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "dist/dist.h"
#include "dist/reduce.h"

static size_t LAYER = 131072;

static int g_reps = 8;

static void layer_compute(float *g, const float *p, size_t lo, size_t hi)
{
    for (size_t i = lo; i < hi; i++) {
        float x = p[i], acc = 0.0f;
        for (int r = 0; r < g_reps; r++) acc = acc * 0.999f + x * (1.0f - acc * x);
        g[i] += acc;
    }
}

/* mark: 0 = no reducer calls during backward, 1 = mark_ready per layer */
static void fake_backward(float *g, const float *p, size_t n, GradReducer *red, int mark)
{
    size_t hi = n;
    while (hi > 0) {
        size_t lo = hi > LAYER ? hi - LAYER : 0;
        layer_compute(g, p, lo, hi);
        if (red && mark && reducer_mark_ready(red, lo, hi) != ERR_OK) {
            fprintf(stderr, "bench_reduce: %s\n", err_message());
            dist_abort(1);
        }
        hi = lo;
    }
}

static double max_over_ranks(double s)
{
    int64_t us = (int64_t)(s * 1e6);
    if (dist_allreduce_max_i64(&us, 1) != ERR_OK) dist_abort(1);
    return (double)us * 1e-6;
}

#define NBUCKETS 3
#define KINDS (1 + 4 * NBUCKETS) /* compute only; per bucket size: {det, overlap} x {blocking,
                                    overlapped} */
#define MAX_STEPS 1000

static const size_t g_buckets[NBUCKETS] = {(size_t)25 * 1024 * 1024 / 4,
                                           (size_t)4 * 1024 * 1024 / 4, (size_t)1024 * 1024 / 4};

/* kind k >= 1: bucket (k-1)/4, mode ((k-1)/2)%2 (0 det, 1 overlap), overlapped (k-1)%2 */
static int kind_bucket(int k) { return (k - 1) / 4; }
static ReduceMode kind_mode(int k) { return ((k - 1) / 2) % 2 ? REDUCE_OVERLAP : REDUCE_DETERMINISTIC; }
static int kind_overlapped(int k) { return (k - 1) % 2; }

static void one_step(int kind, GradReducer *red, float *own, const float *p, size_t n,
                     double *step, double *comm)
{
    dist_barrier();
    double t0 = core_now(), c = 0;
    if (kind == 0) {
        memset(own, 0, n * sizeof(float));
        fake_backward(own, p, n, NULL, 0);
    } else {
        int overlapped = kind_overlapped(kind);
        size_t first, end;
        reducer_local_shards(red, &first, &end);
        float *g = reducer_leaf_begin(red, first);
        fake_backward(g, p, n, red, overlapped);
        if (!overlapped) dist_barrier(); /* blocking comm then excludes the ranks' skew */
        double tc = core_now();
        float *grad;
        if (reducer_leaf_end(red) != ERR_OK || reducer_finish(red, &grad) != ERR_OK) {
            fprintf(stderr, "bench_reduce: %s\n", err_message());
            dist_abort(1);
        }
        ReducerStats st;
        reducer_stats(red, &st);
        /* blocking: everything after the backward is communication; overlapped: the wait left
         * in reducer_finish */
        c = overlapped ? st.last_comm_s : core_now() - tc;
    }
    *step = max_over_ranks(core_now() - t0);
    *comm = max_over_ranks(c);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int k)
{
    qsort(v, (size_t)k, sizeof *v, cmp_double);
    return k % 2 ? v[k / 2] : 0.5 * (v[k / 2 - 1] + v[k / 2]);
}

int main(int argc, char **argv)
{
    if (dist_init(&argc, &argv) != ERR_OK) {
        fprintf(stderr, "bench_reduce: %s\n", err_message());
        return 1;
    }
    size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 6500000;
    int steps = argc > 2 ? atoi(argv[2]) : 10;
    if (argc > 3) g_reps = atoi(argv[3]);
    if (argc > 4) LAYER = (size_t)strtoull(argv[4], NULL, 10);
    if (n == 0 || steps <= 0 || g_reps < 0) {
        fprintf(stderr, "usage: bench_reduce [n_floats [steps [compute_reps]]]\n");
        dist_finalize();
        return 2;
    }
    float *p = xalloc_aligned(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = sinf((float)i * 1e-4f);

    int me = dist_rank();
    if (me == 0)
        printf("bench_reduce: np=%d n=%zu (%.1f MB) steps=%d compute_reps=%d OMP_NUM_THREADS=%s\n",
               dist_size(), n, (double)n * 4e-6, steps, g_reps,
               getenv("OMP_NUM_THREADS") ? getenv("OMP_NUM_THREADS") : "(unset)");
    /* All variants step in turn (round robin), so drift in the machine's load hits them alike;
     * medians over the steps. */
    GradReducer *red[KINDS] = {NULL};
    float *own = xalloc_aligned(n * sizeof(float));
    for (int k = 1; k < KINDS; k++) {
        ReducerConfig cfg = {.n = n, .M = (size_t)dist_size(), .mode = kind_mode(k),
                             .bucket_floats = g_buckets[kind_bucket(k)]};
        if (reducer_create(&red[k], &cfg) != ERR_OK) {
            fprintf(stderr, "bench_reduce: %s\n", err_message());
            dist_abort(1);
        }
    }
    static double st[KINDS][MAX_STEPS], cm[KINDS][MAX_STEPS];
    if (steps > MAX_STEPS) steps = MAX_STEPS;
    for (int s = -1; s < steps; s++)
        for (int k = 0; k < KINDS; k++) {
            double a, b;
            one_step(k, red[k], own, p, n, &a, &b);
            if (s >= 0) st[k][s] = a, cm[k][s] = b;
        }
    double step[KINDS], comm[KINDS];
    for (int k = 0; k < KINDS; k++) {
        step[k] = median(st[k], steps);
        comm[k] = median(cm[k], steps);
    }
    if (me == 0) {
        printf("  compute only (fake backward): step %8.2f ms\n", step[0] * 1e3);
        printf("  %-13s %7s | %-23s | %-36s\n", "mode", "bucket", "blocking: step, comm",
               "overlapped: step, wait, hidden (wait/step)");
        for (int k = 1; k < KINDS; k += 2) {
            int kb = k, ko = k + 1; /* same mode and bucket: blocking, overlapped */
            double exposed = step[ko] - step[0];
            double hid_wait = comm[kb] > 0 ? 1.0 - comm[ko] / comm[kb] : 0.0;
            double hid_step = comm[kb] > 0 ? 1.0 - exposed / comm[kb] : 0.0;
            printf("  %-13s %5.2fMB | %7.2f ms, %7.2f ms | %7.2f ms, %7.2f ms, %5.1f%% / %5.1f%%\n",
                   kind_mode(k) == REDUCE_DETERMINISTIC ? "deterministic" : "overlap",
                   (double)g_buckets[kind_bucket(k)] * 4e-6, step[kb] * 1e3, comm[kb] * 1e3,
                   step[ko] * 1e3, comm[ko] * 1e3, hid_wait * 100.0, hid_step * 100.0);
        }
        printf("  (medians of %d steps, max over ranks. comm = time after the backward until\n"
               "   the sum is complete; hidden(wait) = 1 - overlapped wait / blocking comm;\n"
               "   hidden(step) = 1 - (overlapped step - compute-only step) / blocking comm)\n",
               steps);
    }
    /* The parameter-agreement check: hash + 8-byte all-gather. */
    double tcheck[MAX_STEPS];
    for (int s = 0; s < steps; s++) {
        dist_barrier();
        double t0 = core_now();
        if (dist_params_agree(p, n, s, NULL) != ERR_OK) {
            fprintf(stderr, "bench_reduce: %s\n", err_message());
            dist_abort(1);
        }
        tcheck[s] = max_over_ranks(core_now() - t0);
    }
    double tc = median(tcheck, steps);
    if (me == 0)
        printf("  dist_params_agree on %zu floats: %.2f ms (%.2f GB/s hashed)\n", n, tc * 1e3,
               (double)n * 4e-9 / tc);
    for (int k = 0; k < KINDS; k++) reducer_destroy(&red[k]);
    xfree_aligned(own);
    xfree_aligned(p);
    dist_finalize();
    return 0;
}
