/* model/metrics.h - sample-quality metrics on points or features (the Frechet distance is in
 * model/fdist.h, the spectral tools in model/spectral.h).
 *
 * metrics_swd: sliced Wasserstein-2 distance between two point clouds X (N,D) and Y (M,D):
 *   SW2(X,Y) = sqrt( mean over L random unit directions u of W2^2(<X,u>, <Y,u>) ),
 * with the 1-D W2 computed exactly between the empirical quantile functions (sorted projections;
 * N and M may differ). Directions come from the counter RNG keyed by `seed`, so two calls with the
 * same seed use the same directions and distances are comparable.
 */
#ifndef DFM_MODEL_METRICS_H
#define DFM_MODEL_METRICS_H

#include <stddef.h>
#include <stdint.h>

double metrics_swd(const float *X, size_t N, const float *Y, size_t M, size_t D, size_t L,
                   uint64_t seed);

/* Improved precision and recall (Kynkaenniemi et al. 2019) with k-NN manifolds. The manifold of
 * a set is the union of balls around its points, each with the radius of that point's k-th
 * nearest neighbour in the same set (itself excluded). precision = fraction of generated points
 * inside the real manifold; recall = fraction of real points inside the generated manifold.
 * Distances in double, exact comparison (a point on a ball's boundary is inside). real (N, D),
 * gen (M, D); needs N > k and M > k (ERR_ARG otherwise). Parallel over points, no reduction
 * that depends on the thread count. */
int metrics_precision_recall(const float *real, size_t N, const float *gen, size_t M, size_t D,
                             int k, double *precision, double *recall);

/* hist[c] += number of i with pred[i] == c, c in [0, C); predictions outside count nowhere. */
void metrics_class_hist(uint64_t *hist, const int *pred, size_t n, int C);
/* Fraction of i with pred[i] == label[i]; 0 for n = 0. */
double metrics_accuracy(const int *pred, const int *label, size_t n);
/* Total variation distance between the histogram's distribution and the uniform one over C
 * classes: 0.5 sum_c |hist[c]/total - 1/C| (0 when total is 0). */
double metrics_hist_tv_uniform(const uint64_t *hist, int C);

#endif
