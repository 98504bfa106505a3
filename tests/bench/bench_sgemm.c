/* tests/bench/bench_sgemm.c - GFLOP/s of each GEMM engine (model/gemm.h: dfm's own kernels,
 * OpenBLAS, oneDNN) on the GEMM shapes of the fmnist-small convolutions, in the same run.
 *
 * Usage: bench_sgemm [threads=1,2] [shapes=fmnist|MxNxK,...] [reps=7]
 * "fmnist" is 64x12544x576, 128x3136x1152 and 576x12544x64 (M x N x K, C = A B, row major, no
 * transposes): a 28x28 64->64 3x3 convolution and a 14x14 128->128 one over 16 samples as
 * im2col GEMMs, and the input gradient of the first. For each thread count and shape, one
 * warm-up per engine, then `reps` rounds in which the engines take turns (so a change in the
 * machine's load hits them alike). Timer: the calling thread's CPU time with 1 thread (robust
 * against other work on a busy machine), wall time with more. Output lines:
 *   gemm ENGINE threads T shape MxNxK GFLOP/s r1 r2 ... median X
 *   ENGINE-sgemm threads T peak X GFLOP/s (shape S)     best median over the shapes
 * with ENGINE own, openblas (also printed as plain "sgemm", the older name) and onednn, then
 * the kernel of each engine and "dfm layers use: ...". Timings, not a test: exit status 0
 * unless the arguments are bad.
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
#define MAX_SHAPES 16

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

static double thread_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
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

/* "fmnist" or "MxNxK,..."; returns the count (0 on error) */
static int parse_shapes(const char *s, size_t (*out)[3], int cap)
{
    if (!strcmp(s, "fmnist")) {
        static const size_t f[3][3] = {{64, 12544, 576}, {128, 3136, 1152}, {576, 12544, 64}};
        memcpy(out, f, sizeof f);
        return 3;
    }
    int k = 0;
    while (*s) {
        unsigned long m, n, kk;
        int used = 0;
        if (k == cap || sscanf(s, "%lux%lux%lu%n", &m, &n, &kk, &used) != 3 || !m || !n || !kk ||
            m > 100000 || n > 100000 || kk > 100000)
            return 0;
        out[k][0] = m, out[k][1] = n, out[k][2] = kk;
        k++;
        s += used;
        if (*s == ',') s++;
        else if (*s) return 0;
    }
    return k;
}

static const GemmEngine ENGINES[] = {GEMM_OWN, GEMM_OPENBLAS, GEMM_ONEDNN};
static const char *const TAGS[] = {"own", "openblas", "onednn"};
#define NENG 3

int main(int argc, char **argv)
{
    int threads[16];
    size_t shapes[MAX_SHAPES][3];
    int nt = parse_list(argc > 1 ? argv[1] : "1,2", threads, 16);
    int ns = parse_shapes(argc > 2 ? argv[2] : "fmnist", shapes, MAX_SHAPES);
    int reps = argc > 3 ? atoi(argv[3]) : 7;
    if (nt == 0 || ns == 0 || reps < 1 || reps > MAX_REPS) {
        fprintf(stderr, "usage: bench_sgemm [threads=1,2] [shapes=fmnist|MxNxK,...] "
                        "[reps=7 (1..%d)]\n", MAX_REPS);
        return 2;
    }
    size_t na = 0, nb = 0, nc = 0;
    for (int i = 0; i < ns; i++) {
        size_t M = shapes[i][0], N = shapes[i][1], K = shapes[i][2];
        na = M * K > na ? M * K : na;
        nb = K * N > nb ? K * N : nb;
        nc = M * N > nc ? M * N : nc;
    }
    float *a = xalloc_aligned(na * sizeof(float)), *b = xalloc_aligned(nb * sizeof(float));
    float *c = xalloc_aligned(nc * sizeof(float));
    rng_fill_normal(a, na, 1, rng_stream(RNG_P_TEST, 11), 0);
    rng_fill_normal(b, nb, 1, rng_stream(RNG_P_TEST, 12), 0);
    FILE *lf = fopen("/proc/loadavg", "r");
    char load[64] = "?";
    if (lf) {
        if (!fgets(load, sizeof load, lf)) strcpy(load, "?\n");
        fclose(lf);
    }
    printf("gemm engines, same run, %d rounds after a warm-up, engines taking turns; timer: "
           "thread CPU time with 1 thread, wall time with more; load average %s", reps, load);
    for (int ti = 0; ti < nt; ti++) {
        double peak[NENG] = {0};
        int peak_s[NENG] = {0};
        for (int si = 0; si < ns; si++) {
            size_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
            double g[NENG][MAX_REPS];
            for (int r = -1; r < reps; r++)
                for (int e = 0; e < NENG; e++) {
                    int cpu = threads[ti] == 1;
                    double t0 = cpu ? thread_cpu_now() : core_now();
                    gemm_bench_mt(ENGINES[e], threads[ti], M, N, K, a, b, c);
                    double dt = (cpu ? thread_cpu_now() : core_now()) - t0;
                    if (r >= 0) g[e][r] = 2.0 * (double)M * (double)N * (double)K / dt / 1e9;
                }
            for (int e = 0; e < NENG; e++) {
                printf("gemm %s threads %d shape %zux%zux%zu GFLOP/s", TAGS[e], threads[ti], M, N,
                       K);
                for (int r = 0; r < reps; r++) printf(" %.1f", g[e][r]);
                double m = median(g[e], reps);
                printf(" median %.1f\n", m);
                if (m > peak[e]) peak[e] = m, peak_s[e] = si;
            }
        }
        for (int e = 0; e < NENG; e++) {
            const size_t *p = shapes[peak_s[e]];
            printf("%s-sgemm threads %d peak %.1f GFLOP/s (shape %zux%zux%zu)\n", TAGS[e],
                   threads[ti], peak[e], p[0], p[1], p[2]);
            if (ENGINES[e] == GEMM_OPENBLAS)
                printf("sgemm threads %d peak %.1f GFLOP/s (shape %zux%zux%zu)\n", threads[ti],
                       peak[e], p[0], p[1], p[2]);
        }
    }
    for (int e = 0; e < NENG; e++) printf("engine %s: %s\n", TAGS[e], gemm_engine_name(ENGINES[e]));
    printf("dfm layers use: %s\n", gemm_engine_name(gemm_engine()));
    xfree_aligned(a);
    xfree_aligned(b);
    xfree_aligned(c);
    return 0;
}
