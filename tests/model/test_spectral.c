/* tests/model/test_spectral.c - power spectra, spectral distance, tones, the time embedding. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/mem.h"
#include "core/rng.h"
#include "model/spectral.h"

enum { H = 28, W = 28 };

Test(spectral, cosine_image_has_power_in_one_bin)
{
    /* x = cos(2 pi 5 w / W): all power at (ky, kx) = (0, +-5), i.e. in radial bin 5 */
    static float x[H * W];
    for (int h = 0; h < H; h++)
        for (int w = 0; w < W; w++) x[h * W + w] = (float)cos(2.0 * M_PI * 5.0 * w / W);
    size_t nb = spectral_nbins(H, W);
    cr_assert_eq(nb, 21); /* round(sqrt(14^2 + 14^2)) + 1 */
    double p[32];
    cr_assert_eq(spectral_power_mean(p, x, 1, 1, H, W), ERR_OK);
    for (size_t b = 0; b < nb; b++)
        if (b == 5) cr_assert(p[b] > 1.0, "bin 5: %g", p[b]);
        else cr_assert(p[b] < 1e-10, "bin %zu: %g", b, p[b]);
}

Test(spectral, white_noise_is_flat_at_its_variance)
{
    enum { N = 200 };
    float *x = xmalloc(sizeof(float) * N * H * W);
    rng_fill_normal(x, (size_t)N * H * W, 9, rng_stream(RNG_P_TEST, 31), 0);
    for (size_t i = 0; i < (size_t)N * H * W; i++) x[i] *= 0.5f; /* variance 0.25 */
    double p[32];
    cr_assert_eq(spectral_power_mean(p, x, N, 1, H, W), ERR_OK);
    for (size_t b = 1; b < spectral_nbins(H, W) - 1; b++) /* the outermost bin holds 1 freq */
        cr_assert(fabs(p[b] - 0.25) < 0.05, "bin %zu: %g", b, p[b]);
    xfree(x);
}

static void blur(float *out, const float *in, size_t N)
{
    for (size_t n = 0; n < N; n++)
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++) {
                double s = 0.0;
                for (int dh = -1; dh <= 1; dh++)
                    for (int dw = -1; dw <= 1; dw++) {
                        int hh = (h + dh + H) % H, ww = (w + dw + W) % W;
                        s += (double)in[n * H * W + (size_t)hh * W + (size_t)ww];
                    }
                out[n * H * W + (size_t)h * W + (size_t)w] = (float)(s / 9.0);
            }
}

Test(spectral, distance_zero_for_identical_sets_and_growing_under_blur)
{
    enum { N = 64 };
    const size_t n = (size_t)N * H * W;
    float *a = xmalloc(sizeof(float) * n), *b = xmalloc(sizeof(float) * n);
    float *b1 = xmalloc(sizeof(float) * n), *b2 = xmalloc(sizeof(float) * n);
    rng_fill_normal(a, n, 4, rng_stream(RNG_P_TEST, 32), 0);
    rng_fill_normal(b, n, 5, rng_stream(RNG_P_TEST, 33), 0); /* another draw, same law */
    blur(b1, b, N);
    blur(b2, b1, N);
    double pa[32], pa2[32], pb[32], p1[32], p2[32];
    const size_t nb = spectral_nbins(H, W);
    cr_assert_eq(spectral_power_mean(pa, a, N, 1, H, W), ERR_OK);
    cr_assert_eq(spectral_power_mean(pa2, a, N, 1, H, W), ERR_OK);
    cr_assert_eq(memcmp(pa, pa2, sizeof(double) * nb), 0, "the same input, the same bytes");
    cr_assert(spectral_distance(pa, pa2, nb) == 0.0);
    cr_assert_eq(spectral_power_mean(pb, b, N, 1, H, W), ERR_OK);
    cr_assert_eq(spectral_power_mean(p1, b1, N, 1, H, W), ERR_OK);
    cr_assert_eq(spectral_power_mean(p2, b2, N, 1, H, W), ERR_OK);
    double d0 = spectral_distance(pb, pa, nb), d1 = spectral_distance(p1, pa, nb),
           d2 = spectral_distance(p2, pa, nb);
    cr_assert(d0 < 1.0, "same law: %g dB", d0);
    cr_assert(d1 > 5.0 * d0 && d2 > d1 + 3.0, "blur: %g -> %g -> %g dB", d0, d1, d2);
    /* sums over image blocks in any split equal the whole, block by block */
    double s1[32] = {0}, s2[32] = {0};
    cr_assert_eq(spectral_power_sum(s1, a, N, 1, H, W), ERR_OK);
    cr_assert_eq(spectral_power_sum(s2, a, 10, 1, H, W), ERR_OK);
    cr_assert_eq(spectral_power_sum(s2, a + (size_t)10 * H * W, N - 10, 1, H, W), ERR_OK);
    cr_assert_eq(memcmp(s1, s2, sizeof(double) * nb), 0);
    xfree(a);
    xfree(b);
    xfree(b1);
    xfree(b2);
}

Test(spectral, tone_frequency)
{
    enum { T = 512 };
    double x[T], f, frac;
    for (int t = 0; t < T; t++) x[t] = sin(2.0 * M_PI * 0.1234 * t + 0.3);
    cr_assert_eq(spectral_tone(x, T, &f, &frac), ERR_OK);
    cr_assert(fabs(f - 0.1234) * T < 0.02, "f %g", f);
    cr_assert(frac > 0.999, "main lobe %g", frac);
    cr_assert_eq(spectral_tone(x, 8, &f, &frac), ERR_ARG);
}

Test(spectral, time_embedding_energy_at_intended_frequencies)
{
    SpectralTembReport r;
    cr_assert_eq(spectral_temb_check(64, 1000, 4.0, &r), ERR_OK);
    cr_assert(r.checked >= 20, "checked %zu (below resolution %zu)", r.checked, r.below_res);
    cr_assert_eq(r.checked + r.below_res, 64);
    cr_assert(r.max_err_bins < 0.05, "worst channel %zu off by %g bins", r.worst_channel,
              r.max_err_bins);
    cr_assert(r.min_peak_frac > 0.99, "main lobe %g", r.min_peak_frac);
    /* and the measurement would notice a 1% frequency error (1.6 bins at f_0) */
    double x[1000], f, frac;
    for (int t = 0; t < 1000; t++) x[t] = sin(1.01 * t);
    cr_assert_eq(spectral_tone(x, 1000, &f, &frac), ERR_OK);
    cr_assert(fabs(f - 1.0 / (2.0 * M_PI)) * 1000 > 1.0, "f %g", f);
}

Test(spectral, wisdom_round_trip)
{
    char path[] = "/tmp/dfm_wisdom_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    double p[32];
    static float x[H * W];
    cr_assert_eq(spectral_power_mean(p, x, 1, 1, H, W), ERR_OK);
    cr_assert_eq(spectral_wisdom_save(path), ERR_OK);
    cr_assert_eq(spectral_wisdom_load(path), ERR_OK);
    FILE *f = fopen(path, "w");
    fputs("not wisdom", f);
    fclose(f);
    cr_assert_eq(spectral_wisdom_load(path), ERR_IO);
    unlink(path);
    spectral_cleanup();
}
