/* tests/model/test_fdist.c - Frechet distance: closed forms, an independent computation, the
 * fixed-order sufficient statistics. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "core/rng.h"
#include "model/fdist.h"

enum { N = 300, M = 250, D = 6 };

/* The same integer formulas as tests/model/fd_reference.py (exact in float32). */
static float feat_x(int i, int d) { return (float)((i * i * 7 + i * d * 13 + d * 5) % 97) / 32.0f - 1.5f; }
static float feat_y(int i, int d)
{
    return (float)((i * 11 + d * d * 3 + (i / 3) * (d + 1)) % 89) / 32.0f - 1.0f +
           (float)((i * (d + 2)) % 7) / 32.0f;
}

Test(fdist, matches_independent_reference)
{
    static float X[N * D], Y[M * D];
    for (int i = 0; i < N; i++)
        for (int d = 0; d < D; d++) X[i * D + d] = feat_x(i, d);
    for (int i = 0; i < M; i++)
        for (int d = 0; d < D; d++) Y[i * D + d] = feat_y(i, d);
    FdStats a, b;
    fd_stats_init(&a, D);
    fd_stats_init(&b, D);
    fd_stats_add(&a, X, N);
    fd_stats_add(&b, Y, M);
    double fd;
    cr_assert_eq(fd_stats_distance(&a, &b, &fd), ERR_OK, "%s", err_message());
    /* python3 tests/model/fd_reference.py (Denman-Beavers square root, exactly rounded sums) */
    const double want = 1.4956301281994744;
    cr_assert(fabs(fd - want) < 1e-10 * want, "fd %.17g want %.17g", fd, want);
    /* symmetric in its arguments, zero against itself */
    double fd_ba, fd_aa;
    cr_assert_eq(fd_stats_distance(&b, &a, &fd_ba), ERR_OK);
    cr_assert(fabs(fd_ba - fd) < 1e-12, "%.17g vs %.17g", fd_ba, fd);
    cr_assert_eq(fd_stats_distance(&a, &a, &fd_aa), ERR_OK);
    cr_assert(fd_aa < 1e-10, "FD(X, X) = %g", fd_aa);
    fd_stats_free(&a);
    fd_stats_free(&b);
}

Test(fdist, closed_form_commuting_covariances)
{
    /* S1 = Q diag(a) Q^T, S2 = Q diag(b) Q^T with Q a rotation in the (0,1) and (2,3) planes:
     * FD = |mu1 - mu2|^2 + sum_k (sqrt(a_k) - sqrt(b_k))^2. */
    enum { K = 4 };
    const double a[K] = {4.0, 1.0, 0.25, 9.0}, bv[K] = {1.0, 1.0, 1.0, 0.01};
    const double c = cos(0.7), s = sin(0.7), c2 = cos(-1.9), s2 = sin(-1.9);
    const double Q[K * K] = {c, -s, 0, 0, s, c, 0, 0, 0, 0, c2, -s2, 0, 0, s2, c2};
    double S1[K * K], S2[K * K];
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) {
            double x = 0, y = 0;
            for (int k = 0; k < K; k++) {
                x += Q[i * K + k] * a[k] * Q[j * K + k];
                y += Q[i * K + k] * bv[k] * Q[j * K + k];
            }
            S1[i * K + j] = x;
            S2[i * K + j] = y;
        }
    const double mu1[K] = {0, 1, 2, 3}, mu2[K] = {1, 1, 0, 3};
    double want = 1.0 + 4.0, fd;
    for (int k = 0; k < K; k++) want += (sqrt(a[k]) - sqrt(bv[k])) * (sqrt(a[k]) - sqrt(bv[k]));
    cr_assert_eq(frechet_distance(mu1, S1, mu2, S2, K, &fd), ERR_OK, "%s", err_message());
    cr_assert(fabs(fd - want) < 1e-12 * want, "fd %.17g want %.17g", fd, want);

    /* A singular S2 (a zero eigenvalue) costs precision, not correctness: the square root of
     * an eigenvalue near zero turns rounding of 1e-16 into 1e-8. */
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) {
            double y = 0;
            for (int k = 0; k < 3; k++) y += Q[i * K + k] * Q[j * K + k]; /* diag(1, 1, 1, 0) */
            S2[i * K + j] = y;
        }
    double fd0;
    cr_assert_eq(frechet_distance(mu1, S1, mu2, S2, K, &fd0), ERR_OK);
    want = 5.0 + 1.0 + 0.0 + 0.25 + 9.0;
    cr_assert(fabs(fd0 - want) < 1e-6, "fd %.17g want %.17g", fd0, want);

    /* a non-finite input is an error, not a number */
    S2[5] = NAN;
    cr_assert_eq(frechet_distance(mu1, S1, mu2, S2, K, &fd), ERR_NUMERIC);
}

Test(fdist, blocks_folded_in_order_are_split_invariant)
{
    /* Statistics of 1000 samples in blocks of FD_BLOCK, computed in any order and folded in
     * block order, are the same bytes; and equal (to rounding) to one pass over all samples. */
    enum { NS = 1000, DD = 5 };
    static float F[NS * DD];
    rng_fill_normal(F, NS * DD, 3, rng_stream(RNG_P_TEST, 77), 0);
    const size_t nb = (NS + FD_BLOCK - 1) / FD_BLOCK;
    FdStats blk[8], blk2[8], all, f1, f2;
    for (size_t b = 0; b < nb; b++) {
        fd_stats_init(&blk[b], DD);
        fd_stats_init(&blk2[b], DD);
    }
    for (size_t b = 0; b < nb; b++) { /* forward order, whole blocks */
        size_t lo = b * FD_BLOCK, hi = lo + FD_BLOCK < NS ? lo + FD_BLOCK : NS;
        fd_stats_add(&blk[b], F + lo * DD, hi - lo);
    }
    for (size_t bb = nb; bb-- > 0;) { /* reverse order, in pieces of 7 samples */
        size_t lo = bb * FD_BLOCK, hi = lo + FD_BLOCK < NS ? lo + FD_BLOCK : NS;
        for (size_t i = lo; i < hi; i += 7) fd_stats_add(&blk2[bb], F + i * DD, (hi - i < 7 ? hi - i : 7));
    }
    fd_stats_init(&f1, DD);
    fd_stats_init(&f2, DD);
    fd_stats_fold(&f1, blk, nb);
    fd_stats_fold(&f2, blk2, nb);
    cr_assert_eq(f1.n, NS);
    cr_assert_eq(memcmp(f1.sum, f2.sum, sizeof(double) * DD), 0);
    cr_assert_eq(memcmp(f1.outer, f2.outer, sizeof(double) * DD * DD), 0);
    fd_stats_init(&all, DD);
    fd_stats_add(&all, F, NS);
    for (int i = 0; i < DD * DD; i++)
        cr_assert(fabs(all.outer[i] - f1.outer[i]) < 1e-9 * (1 + fabs(all.outer[i])));
    /* flat round trip */
    double *flat = xmalloc(sizeof(double) * fd_stats_flat_len(DD));
    fd_stats_to_flat(&f1, flat);
    fd_stats_clear(&f2);
    fd_stats_from_flat(&f2, flat);
    cr_assert_eq(f2.n, NS);
    cr_assert_eq(memcmp(f1.outer, f2.outer, sizeof(double) * DD * DD), 0);
    /* one sample has no covariance */
    FdStats one;
    fd_stats_init(&one, DD);
    fd_stats_add(&one, F, 1);
    double fd;
    cr_assert_eq(fd_stats_distance(&one, &f1, &fd), ERR_ARG);
    fd_stats_free(&one);
    xfree(flat);
    for (size_t b = 0; b < nb; b++) {
        fd_stats_free(&blk[b]);
        fd_stats_free(&blk2[b]);
    }
    fd_stats_free(&f1);
    fd_stats_free(&f2);
    fd_stats_free(&all);
}
