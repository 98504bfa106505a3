/* tests/model/test_metrics.c - sliced Wasserstein distance against closed forms. */
#include <criterion/criterion.h>
#include <math.h>

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
