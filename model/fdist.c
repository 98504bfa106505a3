/* model/fdist.c - Frechet distance: float64 sufficient statistics, LAPACK matrix square root. */
#include "model/fdist.h"

#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"

void fd_stats_init(FdStats *s, size_t D)
{
    ASSERT(D > 0);
    s->D = D;
    s->n = 0;
    s->sum = xcalloc(D, sizeof(double));
    s->outer = xcalloc(D * D, sizeof(double));
}

void fd_stats_free(FdStats *s)
{
    xfree(s->sum);
    xfree(s->outer);
    memset(s, 0, sizeof *s);
}

void fd_stats_clear(FdStats *s)
{
    s->n = 0;
    memset(s->sum, 0, sizeof(double) * s->D);
    memset(s->outer, 0, sizeof(double) * s->D * s->D);
}

void fd_stats_to_flat(const FdStats *s, double *flat)
{
    flat[0] = (double)s->n;
    memcpy(flat + 1, s->sum, sizeof(double) * s->D);
    memcpy(flat + 1 + s->D, s->outer, sizeof(double) * s->D * s->D);
}

void fd_stats_from_flat(FdStats *s, const double *flat)
{
    ASSERT(flat[0] >= 0.0);
    s->n = (uint64_t)flat[0];
    memcpy(s->sum, flat + 1, sizeof(double) * s->D);
    memcpy(s->outer, flat + 1 + s->D, sizeof(double) * s->D * s->D);
}

void fd_stats_add(FdStats *s, const float *feat, size_t n)
{
    const size_t D = s->D;
    double *x = xmalloc(sizeof(double) * D);
    for (size_t i = 0; i < n; i++) {
        for (size_t d = 0; d < D; d++) x[d] = (double)feat[i * D + d];
        for (size_t a = 0; a < D; a++) {
            s->sum[a] += x[a];
            double *row = s->outer + a * D;
            /* the upper triangle; mirrored below so the matrix is symmetric bit for bit */
            for (size_t b = a; b < D; b++) row[b] += x[a] * x[b];
        }
    }
    for (size_t a = 0; a < D; a++)
        for (size_t b = 0; b < a; b++) s->outer[a * D + b] = s->outer[b * D + a];
    s->n += n;
    xfree(x);
}

void fd_stats_merge(FdStats *dst, const FdStats *src)
{
    ASSERT(dst->D == src->D);
    dst->n += src->n;
    for (size_t d = 0; d < dst->D; d++) dst->sum[d] += src->sum[d];
    for (size_t d = 0; d < dst->D * dst->D; d++) dst->outer[d] += src->outer[d];
}

void fd_stats_fold(FdStats *out, const FdStats *blocks, size_t nblocks)
{
    fd_stats_clear(out);
    for (size_t b = 0; b < nblocks; b++) fd_stats_merge(out, &blocks[b]);
}

int fd_stats_moments(const FdStats *s, double *mu, double *cov)
{
    const size_t D = s->D;
    if (s->n < 2)
        return ERR(ERR_ARG, "a covariance needs at least 2 samples (have %llu)",
                   (unsigned long long)s->n);
    const double n = (double)s->n;
    for (size_t d = 0; d < D; d++) mu[d] = s->sum[d] / n;
    for (size_t a = 0; a < D; a++)
        for (size_t b = 0; b < D; b++)
            cov[a * D + b] = (s->outer[a * D + b] - n * mu[a] * mu[b]) / (n - 1.0);
    return ERR_OK;
}

/* C = A B for D x D row-major matrices, in double, fixed loop order. */
static void matmul(double *C, const double *A, const double *B, size_t D)
{
    for (size_t i = 0; i < D; i++) {
        double *c = C + i * D;
        for (size_t j = 0; j < D; j++) c[j] = 0.0;
        for (size_t k = 0; k < D; k++) {
            const double a = A[i * D + k];
            const double *b = B + k * D;
            for (size_t j = 0; j < D; j++) c[j] += a * b[j];
        }
    }
}

/* Eigenvalues (ascending) and, with vecs, eigenvectors (columns of A, row-major) of symmetric A. */
static int sym_eig(double *A, double *w, size_t D, int vecs)
{
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, vecs ? 'V' : 'N', 'U', (lapack_int)D, A,
                                     (lapack_int)D, w);
    if (info != 0)
        return ERR(ERR_NUMERIC, "LAPACK dsyevd failed on a %zux%zu covariance (info %d)", D, D,
                   (int)info);
    return ERR_OK;
}

int frechet_distance(const double *mu1, const double *S1, const double *mu2, const double *S2,
                     size_t D, double *out)
{
    for (size_t i = 0; i < D; i++)
        if (!isfinite(mu1[i]) || !isfinite(mu2[i]))
            return ERR(ERR_NUMERIC, "Frechet distance: non-finite mean in dimension %zu", i);
    for (size_t i = 0; i < D * D; i++)
        if (!isfinite(S1[i]) || !isfinite(S2[i]))
            return ERR(ERR_NUMERIC, "Frechet distance: non-finite covariance entry %zu", i);
    double *V = xmalloc(sizeof(double) * D * D), *w = xmalloc(sizeof(double) * D);
    double *R = xmalloc(sizeof(double) * D * D), *T = xmalloc(sizeof(double) * D * D);
    double *M = xmalloc(sizeof(double) * D * D);
    int rc = ERR_OK;
    /* R = S1^(1/2) = V diag(sqrt(max(w, 0))) V^T */
    memcpy(V, S1, sizeof(double) * D * D);
    rc = sym_eig(V, w, D, 1);
    if (rc != ERR_OK) goto done;
    for (size_t k = 0; k < D; k++) w[k] = w[k] > 0.0 ? sqrt(w[k]) : 0.0;
    for (size_t i = 0; i < D; i++)
        for (size_t j = 0; j < D; j++) T[i * D + j] = V[i * D + j] * w[j];
    for (size_t i = 0; i < D; i++)
        for (size_t j = 0; j < D; j++) {
            double s = 0.0;
            for (size_t k = 0; k < D; k++) s += T[i * D + k] * V[j * D + k];
            R[i * D + j] = s;
        }
    /* M = R S2 R, symmetrised against rounding */
    matmul(T, R, S2, D);
    matmul(M, T, R, D);
    for (size_t i = 0; i < D; i++)
        for (size_t j = i + 1; j < D; j++) {
            double m = 0.5 * (M[i * D + j] + M[j * D + i]);
            M[i * D + j] = M[j * D + i] = m;
        }
    rc = sym_eig(M, w, D, 0);
    if (rc != ERR_OK) goto done;
    double tr_sqrt = 0.0, tr1 = 0.0, tr2 = 0.0, dmu = 0.0;
    for (size_t k = 0; k < D; k++) tr_sqrt += w[k] > 0.0 ? sqrt(w[k]) : 0.0;
    for (size_t k = 0; k < D; k++) {
        tr1 += S1[k * D + k];
        tr2 += S2[k * D + k];
        double d = mu1[k] - mu2[k];
        dmu += d * d;
    }
    double fd = dmu + tr1 + tr2 - 2.0 * tr_sqrt;
    /* rounding can push a zero distance slightly negative */
    *out = fd > 0.0 ? fd : 0.0;
done:
    xfree(V);
    xfree(w);
    xfree(R);
    xfree(T);
    xfree(M);
    return rc;
}

int fd_stats_distance(const FdStats *a, const FdStats *b, double *out)
{
    ASSERT(a->D == b->D);
    const size_t D = a->D;
    double *mu1 = xmalloc(sizeof(double) * D), *mu2 = xmalloc(sizeof(double) * D);
    double *S1 = xmalloc(sizeof(double) * D * D), *S2 = xmalloc(sizeof(double) * D * D);
    int rc = fd_stats_moments(a, mu1, S1);
    if (rc == ERR_OK) rc = fd_stats_moments(b, mu2, S2);
    if (rc == ERR_OK) rc = frechet_distance(mu1, S1, mu2, S2, D, out);
    xfree(mu1);
    xfree(mu2);
    xfree(S1);
    xfree(S2);
    if (rc != ERR_OK) err_trace_push(__FILE__, __LINE__, "fd_stats_distance");
    return rc;
}
