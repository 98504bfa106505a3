/* tests/bench/bench_sgemm.c - square sgemm GFLOP/s of each GEMM engine (OpenBLAS and oneDNN,
 * model/gemm.h), the machine's attainable peak.
 *
 * Usage: bench_sgemm [threads=1,2] [sizes=1024,1536,2048] [reps=3]
 * For each engine, thread count and size n: one warm-up, then `reps` timed C = A B (row major,
 * no transposes). Lines for OpenBLAS start "sgemm", for oneDNN "onednn-sgemm"; a last line
 * names the engine dfm's layers use. Timer as in bench_model: process CPU time with 1 thread
 * (robust against other work on a busy machine), wall time with more. Prints one line per (threads, n) with every
 * repetition's GFLOP/s (2 n^3 / seconds) and their median, then per thread count the best
 * median over the sizes ("peak"). Timings, not a test: exit status 0 unless arguments are bad.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/rng.h"
#include "model/gemm.h"

#define MAX_REPS 64

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

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Parse a comma-separated list of positive integers; returns the count (0 on error). */
static int parse_list(const char *s, int *out, int cap)
{
    int k = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v <= 0 || v > 100000 || k == cap) return 0;
        out[k++] = (int)v;
        s = end;
        if (*s == ',') s++;
        else if (*s) return 0;
    }
    return k;
}

int main(int argc, char **argv)
{
    int threads[16], sizes[16];
    int nt = parse_list(argc > 1 ? argv[1] : "1,2", threads, 16);
    int ns = parse_list(argc > 2 ? argv[2] : "1024,1536,2048", sizes, 16);
    int reps = argc > 3 ? atoi(argv[3]) : 3;
    if (nt == 0 || ns == 0 || reps < 1 || reps > MAX_REPS) {
        fprintf(stderr, "usage: bench_sgemm [threads=1,2] [sizes=1024,1536,2048] [reps=3 (1..%d)]\n",
                MAX_REPS);
        return 2;
    }
    int nmax = 0;
    for (int i = 0; i < ns; i++) nmax = sizes[i] > nmax ? sizes[i] : nmax;
    size_t cap = (size_t)nmax * (size_t)nmax;
    float *a = xalloc_aligned(cap * sizeof(float)), *b = xalloc_aligned(cap * sizeof(float));
    float *c = xalloc_aligned(cap * sizeof(float));
    rng_fill_normal(a, cap, 1, rng_stream(RNG_P_TEST, 11), 0);
    rng_fill_normal(b, cap, 1, rng_stream(RNG_P_TEST, 12), 0);
    for (int eng = 0; eng < 2; eng++) {
        GemmEngine e = eng == 0 ? GEMM_OPENBLAS : GEMM_ONEDNN;
        const char *tag = eng == 0 ? "sgemm" : "onednn-sgemm";
        printf("%s: %s, square, row major, %d repetitions after a warm-up; timer: CPU time with 1 "
               "thread, wall time with more\n", tag, gemm_engine_name(e), reps);
        for (int ti = 0; ti < nt; ti++) {
            double peak = 0.0;
            int peak_n = 0;
            for (int si = 0; si < ns; si++) {
                int n = sizes[si];
                double g[MAX_REPS];
                for (int r = -1; r < reps; r++) {
                    int cpu = threads[ti] == 1;
                    double t0 = cpu ? cpu_now() : core_now();
                    gemm_bench_mt(e, threads[ti], (size_t)n, (size_t)n, (size_t)n, a, b, c);
                    double dt = (cpu ? cpu_now() : core_now()) - t0;
                    if (r >= 0) g[r] = 2.0 * (double)n * (double)n * (double)n / dt / 1e9;
                }
                printf("%s threads %d n %d GFLOP/s", tag, threads[ti], n);
                for (int r = 0; r < reps; r++) printf(" %.1f", g[r]);
                double m = median(g, reps);
                printf(" median %.1f\n", m);
                if (m > peak) peak = m, peak_n = n;
            }
            printf("%s threads %d peak %.1f GFLOP/s (n %d)\n", tag, threads[ti], peak, peak_n);
        }
    }
    printf("dfm layers use: %s\n", gemm_engine_name(gemm_engine()));
    xfree_aligned(a);
    xfree_aligned(b);
    xfree_aligned(c);
    return 0;
}
