/* tests/model/test_metrics.c - sliced Wasserstein distance against closed forms. */
#include <criterion/criterion.h>
#include <math.h>

#include "core/err.h"
#include "core/mem.h"
#include "core/rng.h"
#include "model/metrics.h"

Test(metrics, swd_zero_for_identical_and_shift_exact)
{
    enum { N = 500, D = 3 };
    static float X[N * D], Y[N * D];
    rng_fill_normal(X, N * D, 1, rng_stream(RNG_P_TEST, 10), 0);
    cr_assert(metrics_swd(X, N, X, N, D, 64, 5) == 0.0);
    /* A shift by c moves every 1-D projection by <c,u>: SW2^2 = mean_u <c,u>^2 = |c|^2/D
     * in expectation over directions; with the directions fixed it is exact per direction. */
    const float c[D] = {0.5f, -1.0f, 2.0f};
    for (int i = 0; i < N; i++)
        for (int d = 0; d < D; d++) Y[i * D + d] = X[i * D + d] + c[d];
    double sw = metrics_swd(X, N, Y, N, D, 4000, 5);
    double want = sqrt((0.25 + 1.0 + 4.0) / D);
    cr_assert(fabs(sw - want) < 0.03 * want, "swd %g want %g", sw, want);
}

Test(metrics, swd_unequal_sizes_1d)
{
    /* X = {0, 1}, Y = {0, 0.5, 1}: quantile functions differ on [1/3,1/2) by 0.5 and on
     * [1/2,2/3) by 0.5 -> W2^2 = 2 * (1/6) * 0.25 = 1/12. In 1-D every direction is +-1. */
    const float X[2] = {0.0f, 1.0f}, Y[3] = {0.0f, 0.5f, 1.0f};
    double sw = metrics_swd(X, 2, Y, 3, 1, 8, 3);
    cr_assert(fabs(sw * sw - 1.0 / 12.0) < 1e-12, "got %.15g", sw * sw);
}

Test(metrics, precision_recall_known_answers)
{
    /* Real: 10 points on a line at 0, 1, ..., 9 (1-D, k = 1: every radius is 1).
     * Generated: 0.5 and 3.2 inside, 20 and -5 outside, 9.5 inside, and 2 points near 100
     * (their own 1-NN radius is 1: they cover nothing real). Precision = 3/7.
     * Gen radii: 0.5->2.7 (3.2), 3.2->2.7, 9.5->6.3 (3.2), 20->10.5 (9.5), -5->5.5 (0.5),
     * 100->1, 101->1. Reals covered: 0..5 by 3.2 (radius 2.7: 0.5..5.9) and 0.5 (-2.2..3.2),
     * 9.5 covers 3.2..15.8 -> 4..9; all 10 covered: recall = 1. */
    const float real[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    const float gen[7] = {0.5f, 3.2f, 20.0f, -5.0f, 9.5f, 100.0f, 101.0f};
    double p, r;
    cr_assert_eq(metrics_precision_recall(real, 10, gen, 7, 1, 1, &p, &r), 0);
    cr_assert(fabs(p - 3.0 / 7.0) < 1e-15, "precision %g", p);
    cr_assert(fabs(r - 1.0) < 1e-15, "recall %g", r);
    /* a tight generated cluster near one real point: precision 1, recall small. k = 2:
     * interior real points have radius 1, the two ends 2. */
    const float gen2[4] = {4.0f, 4.01f, 4.02f, 4.03f};
    cr_assert_eq(metrics_precision_recall(real, 10, gen2, 4, 1, 2, &p, &r), 0);
    cr_assert(p == 1.0, "precision %g", p);
    cr_assert(fabs(r - 0.1) < 1e-15, "recall %g (only the real point at 4 is covered)", r);
    /* identical sets: both 1 */
    cr_assert_eq(metrics_precision_recall(real, 10, real, 10, 1, 3, &p, &r), 0);
    cr_assert(p == 1.0 && r == 1.0);
    /* too few points for k */
    cr_assert_eq(metrics_precision_recall(real, 3, gen, 7, 1, 3, &p, &r), ERR_ARG);
}

Test(metrics, class_histogram_and_accuracy)
{
    const int pred[8] = {0, 1, 1, 2, 2, 2, 9, -1}, label[8] = {0, 1, 2, 2, 0, 2, 9, 3};
    uint64_t h[3] = {0, 0, 0};
    metrics_class_hist(h, pred, 8, 3);
    cr_assert(h[0] == 1 && h[1] == 2 && h[2] == 3);
    cr_assert(fabs(metrics_accuracy(pred, label, 8) - 5.0 / 8.0) < 1e-15);
    /* TV from uniform: |1/6-1/3| + |2/6-1/3| + |3/6-1/3| = 1/3, halved = 1/6 */
    cr_assert(fabs(metrics_hist_tv_uniform(h, 3) - 1.0 / 6.0) < 1e-15);
    const uint64_t u[4] = {5, 5, 5, 5};
    cr_assert(metrics_hist_tv_uniform(u, 4) == 0.0);
}
