/* model/spectral.h - Fourier tools (the one module that uses FFTW): radially averaged power
 * spectra of images, a spectral distance between two image sets, and a check that the
 * sinusoidal time embedding puts its energy at exactly the intended frequencies.
 *
 * Plans. One real-to-complex plan per shape (2-D H x W, or 1-D length T), made on first use and
 * kept until spectral_cleanup; plan creation is serialised by a mutex, execution uses the
 * new-array interface on buffers from fftw_alloc, so callers may run in parallel. Plans are made
 * with FFTW_ESTIMATE, which picks the algorithm from the shape alone: every process computes the
 * same bytes, which the rank-invariance of the evaluation needs. spectral_wisdom_load/save read
 * and write FFTW wisdom (fftw_import/export_wisdom_to_filename), so a caller that switches to
 * measured plans (spectral_set_measure) keeps them across runs; measured plans can differ
 * between processes, so results may then differ in the last bits.
 *
 * Power spectrum. For each image and channel, F = DFT2(x) (no window), power |F[ky,kx]|^2 / (HW)
 * (white noise of variance s^2 has a flat spectrum s^2), frequencies centred (ky in
 * [-H/2, H/2)), radius r = sqrt(ky^2 + kx^2) rounded to the nearest integer, bins 0 .. nbins-1
 * with nbins = spectral_nbins(H, W) = round(sqrt((H/2)^2 + (W/2)^2)) + 1. The value of a bin is
 * the mean power over its frequencies. spectral_power_sum adds, per bin, the sum over the given
 * images and channels of that mean, in image order, in double: the caller divides by the number
 * of (image, channel) pairs and can fold fixed blocks in a fixed order (model/fdist.h).
 *
 * Spectral distance between two mean spectra: the RMS over bins 1 .. nbins-1 of
 * 10 log10(P_a / P_b) (decibels; DC excluded, it is the mean brightness, not texture). Zero for
 * identical spectra; blurring one set removes high-frequency power and increases it.
 */
#ifndef DFM_MODEL_SPECTRAL_H
#define DFM_MODEL_SPECTRAL_H

#include <stddef.h>

size_t spectral_nbins(size_t H, size_t W);
/* acc (nbins) += per-bin mean power of each of the N x C planes of x (N, C, H, W). */
int spectral_power_sum(double *acc, const float *x, size_t N, size_t C, size_t H, size_t W);
/* Mean spectrum of N images: out (nbins) = power sum / (N C). */
int spectral_power_mean(double *out, const float *x, size_t N, size_t C, size_t H, size_t W);
double spectral_distance(const double *pa, const double *pb, size_t nbins);

/* Frequency of the dominant tone of x (T samples) in cycles per sample, from the peak of its
 * Hann-windowed power spectrum refined by Gaussian (log-parabolic) interpolation, and the
 * fraction of the energy (DC bin excluded) within +-2 bins of the peak (the window's main lobe).
 * ERR_ARG when T < 16. */
int spectral_tone(const double *x, size_t T, double *freq, double *peak_frac);

/* The sinusoidal time embedding of width D (model/ops.h temb_sinusoid) over t = 0 .. T-1: for
 * every channel whose intended frequency f_i / (2 pi) lies at least min_bins bins (1/T cycles)
 * above zero, the measured tone frequency of the channel (sin and cos columns). */
typedef struct {
    size_t D, T;
    size_t checked;       /* channels (sin and cos) checked */
    size_t below_res;     /* channels too slow to resolve in T samples */
    double max_err_bins;  /* largest |measured - intended| frequency, in bins */
    double min_peak_frac; /* smallest main-lobe energy fraction among checked channels */
    size_t worst_channel; /* where max_err_bins was reached */
} SpectralTembReport;
int spectral_temb_check(size_t D, size_t T, double min_bins, SpectralTembReport *rep);

void spectral_set_measure(int on); /* 1: FFTW_MEASURE for plans made from now on */
int spectral_wisdom_load(const char *path); /* ERR_IO when the file cannot be read or parsed */
int spectral_wisdom_save(const char *path);
void spectral_cleanup(void); /* destroy every plan */

#endif
