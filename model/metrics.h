/* model/metrics.h - sample-quality metrics that need no trained network.
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

#endif
