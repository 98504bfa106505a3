/* model/metrics.c - sliced Wasserstein distance. */
#include "model/metrics.h"

#include <math.h>
#include <stdlib.h>

#include "core/mem.h"
#include "core/rng.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Exact W2^2 between two sorted 1-D empirical distributions with uniform weights: integrate
 * (F^-1(q) - G^-1(q))^2 over q in [0,1], walking the merged breakpoints i/N and j/M. */
static double w2sq_sorted(const double *a, size_t N, const double *b, size_t M)
{
    size_t i = 0, j = 0;
    double q = 0.0, acc = 0.0;
    while (i < N && j < M) {
        double qa = (double)(i + 1) / (double)N, qb = (double)(j + 1) / (double)M;
        double next = qa < qb ? qa : qb;
        double d = a[i] - b[j];
        acc += (next - q) * d * d;
        q = next;
        if (qa <= next) i++;
        if (qb <= next) j++;
    }
    return acc;
}

double metrics_swd(const float *X, size_t N, const float *Y, size_t M, size_t D, size_t L,
                   uint64_t seed)
{
    ASSERT(N > 0 && M > 0 && D > 0 && L > 0);
    double *u = xmalloc(sizeof(double) * D);
    double *px = xmalloc(sizeof(double) * N), *py = xmalloc(sizeof(double) * M);
    double total = 0.0;
    for (size_t l = 0; l < L; l++) {
        Rng r;
        rng_init(&r, seed, rng_stream(RNG_P_EVAL, l), 0, 0);
        double norm = 0.0;
        for (size_t d = 0; d < D; d++) {
            u[d] = rng_normal(&r);
            norm += u[d] * u[d];
        }
        norm = sqrt(norm);
        for (size_t d = 0; d < D; d++) u[d] /= norm;
        for (size_t i = 0; i < N; i++) {
            double s = 0.0;
            for (size_t d = 0; d < D; d++) s += (double)X[i * D + d] * u[d];
            px[i] = s;
        }
        for (size_t i = 0; i < M; i++) {
            double s = 0.0;
            for (size_t d = 0; d < D; d++) s += (double)Y[i * D + d] * u[d];
            py[i] = s;
        }
        qsort(px, N, sizeof(double), cmp_double);
        qsort(py, M, sizeof(double), cmp_double);
        total += w2sq_sorted(px, N, py, M);
    }
    xfree(u);
    xfree(px);
    xfree(py);
    return sqrt(total / (double)L);
}
