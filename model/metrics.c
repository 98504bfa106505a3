/* model/metrics.c - sliced Wasserstein distance, k-NN precision/recall, class histograms. */
#include "model/metrics.h"

#include <math.h>
#include <stdlib.h>

#include "core/err.h"
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

/* Squared distance in double. */
static double dist2(const float *a, const float *b, size_t D)
{
    double s = 0.0;
    for (size_t d = 0; d < D; d++) {
        double t = (double)a[d] - (double)b[d];
        s += t * t;
    }
    return s;
}

/* radius2[i] = squared distance from X[i] to its k-th nearest neighbour in X (itself excluded). */
static void knn_radii(double *radius2, const float *X, size_t N, size_t D, int k)
{
#pragma omp parallel
    {
        double *best = xmalloc(sizeof(double) * (size_t)k); /* ascending, k smallest so far */
#pragma omp for schedule(dynamic, 16)
        for (size_t i = 0; i < N; i++) {
            int have = 0;
            for (size_t j = 0; j < N; j++) {
                if (j == i) continue;
                double d = dist2(X + i * D, X + j * D, D);
                if (have == k && d >= best[k - 1]) continue;
                int p = have < k ? have++ : k - 1;
                while (p > 0 && best[p - 1] > d) {
                    best[p] = best[p - 1];
                    p--;
                }
                best[p] = d;
            }
            radius2[i] = best[k - 1];
        }
        xfree(best);
    }
}

/* Fraction of the points Q (nq, D) inside some ball (P[j], radius2[j]). */
static double coverage(const float *Q, size_t nq, const float *P, const double *radius2,
                       size_t np, size_t D)
{
    size_t inside = 0;
#pragma omp parallel for schedule(dynamic, 16) reduction(+ : inside)
    for (size_t i = 0; i < nq; i++) {
        for (size_t j = 0; j < np; j++) {
            if (dist2(Q + i * D, P + j * D, D) <= radius2[j]) {
                inside++;
                break;
            }
        }
    }
    return (double)inside / (double)nq;
}

int metrics_precision_recall(const float *real, size_t N, const float *gen, size_t M, size_t D,
                             int k, double *precision, double *recall)
{
    if (k < 1) return ERR(ERR_ARG, "precision/recall: k must be >= 1 (got %d)", k);
    if (N <= (size_t)k || M <= (size_t)k)
        return ERR(ERR_ARG, "precision/recall with k = %d needs more than %d real and generated "
                   "samples (have %zu and %zu)", k, k, N, M);
    double *rr = xmalloc(sizeof(double) * N), *rg = xmalloc(sizeof(double) * M);
    knn_radii(rr, real, N, D, k);
    knn_radii(rg, gen, M, D, k);
    *precision = coverage(gen, M, real, rr, N, D);
    *recall = coverage(real, N, gen, rg, M, D);
    xfree(rr);
    xfree(rg);
    return ERR_OK;
}

void metrics_class_hist(uint64_t *hist, const int *pred, size_t n, int C)
{
    for (size_t i = 0; i < n; i++)
        if (pred[i] >= 0 && pred[i] < C) hist[pred[i]]++;
}

double metrics_accuracy(const int *pred, const int *label, size_t n)
{
    if (n == 0) return 0.0;
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) ok += pred[i] == label[i];
    return (double)ok / (double)n;
}

double metrics_hist_tv_uniform(const uint64_t *hist, int C)
{
    uint64_t total = 0;
    for (int c = 0; c < C; c++) total += hist[c];
    if (total == 0) return 0.0;
    double tv = 0.0;
    for (int c = 0; c < C; c++) tv += fabs((double)hist[c] / (double)total - 1.0 / C);
    return 0.5 * tv;
}
