/* model/fdist.h - Frechet distance between two Gaussians fitted to feature sets.
 *
 *   FD = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))
 * with mu, S the mean and unbiased covariance (divisor n - 1) of each set. The trace of the
 * matrix square root is computed symmetrically: R = S1^(1/2) from the eigendecomposition of S1
 * (LAPACK dsyevd), then tr (S1 S2)^(1/2) = tr (R S2 R)^(1/2) = sum_i sqrt(max(0, lambda_i)) over
 * the eigenvalues of the symmetric R S2 R. Everything is in double.
 *
 * Sufficient statistics. FdStats holds n, sum_i x_i (D) and sum_i x_i x_i^T (D x D), in double,
 * each float32 product being exact in double. fd_stats_add adds samples in the order given;
 * fd_stats_merge adds another FdStats element by element. Double addition is not associative,
 * so a result that must not depend on how work was split (ranks, chunk sizes) must be summed in
 * a fixed order: the evaluation cuts the sample indices into fixed blocks of FD_BLOCK samples
 * (block b = samples [b FD_BLOCK, (b+1) FD_BLOCK)), accumulates each block on its own and merges
 * the blocks in block order (fd_stats_fold). Whoever computes a block, its bytes are the same.
 *
 * The value is named FD-<evaluator> (FD-FMNIST for the Fashion-MNIST classifier's features),
 * never FID: FID means Inception-v3 pool3 features.
 */
#ifndef DFM_MODEL_FDIST_H
#define DFM_MODEL_FDIST_H

#include <stddef.h>
#include <stdint.h>

#define FD_BLOCK 256

typedef struct {
    size_t D;
    uint64_t n;
    double *sum;   /* (D) */
    double *outer; /* (D, D), full (both triangles) */
} FdStats;

void fd_stats_init(FdStats *s, size_t D);
void fd_stats_free(FdStats *s); /* accepts a zeroed struct */
void fd_stats_clear(FdStats *s);
/* Doubles in the flat layout [n as double, sum (D), outer (D*D)], for sending and saving. */
static inline size_t fd_stats_flat_len(size_t D) { return 1 + D + D * D; }
void fd_stats_to_flat(const FdStats *s, double *flat);
void fd_stats_from_flat(FdStats *s, const double *flat); /* s initialised with the same D */

/* Add n samples feat (n, D), in order. */
void fd_stats_add(FdStats *s, const float *feat, size_t n);
/* dst += src (same D). */
void fd_stats_merge(FdStats *dst, const FdStats *src);
/* out = blocks[0] + blocks[1] + ... in index order (out initialised with the same D). */
void fd_stats_fold(FdStats *out, const FdStats *blocks, size_t nblocks);

/* Mean (D) and unbiased covariance (D, D). ERR_ARG when n < 2. */
int fd_stats_moments(const FdStats *s, double *mu, double *cov);

/* Frechet distance between N(mu1, S1) and N(mu2, S2), S symmetric positive semi-definite.
 * ERR_NUMERIC when LAPACK fails or an input is not finite. */
int frechet_distance(const double *mu1, const double *S1, const double *mu2, const double *S2,
                     size_t D, double *out);
/* Frechet distance between the Gaussians fitted to two sets of statistics. */
int fd_stats_distance(const FdStats *a, const FdStats *b, double *out);

#endif
