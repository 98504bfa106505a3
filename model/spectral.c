/* model/spectral.c - FFTW plans per shape, radial power spectra, tone frequencies. */
#include "model/spectral.h"

#include <fftw3.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "model/ops.h"

typedef struct {
    int rank;   /* 1 or 2 */
    int n0, n1; /* 1-D: n0 = T; 2-D: H, W */
    fftw_plan plan;
} PlanEntry;

enum { MAX_PLANS = 32 };
static PlanEntry g_plans[MAX_PLANS];
static int g_nplans;
static int g_measure;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

/* The plan for a real-to-complex transform of this shape, made on first use. */
static fftw_plan get_plan(int rank, int n0, int n1)
{
    pthread_mutex_lock(&g_lock);
    fftw_plan p = NULL;
    for (int i = 0; i < g_nplans; i++)
        if (g_plans[i].rank == rank && g_plans[i].n0 == n0 && g_plans[i].n1 == n1) {
            p = g_plans[i].plan;
            break;
        }
    if (!p) {
        ASSERT(g_nplans < MAX_PLANS);
        size_t nin = rank == 1 ? (size_t)n0 : (size_t)n0 * n1;
        size_t nout = rank == 1 ? (size_t)n0 / 2 + 1 : (size_t)n0 * (n1 / 2 + 1);
        double *in = fftw_alloc_real(nin);
        fftw_complex *out = fftw_alloc_complex(nout);
        ASSERT(in && out);
        memset(in, 0, sizeof(double) * nin);
        unsigned flags = g_measure ? FFTW_MEASURE : FFTW_ESTIMATE;
        p = rank == 1 ? fftw_plan_dft_r2c_1d(n0, in, out, flags)
                      : fftw_plan_dft_r2c_2d(n0, n1, in, out, flags);
        ASSERT(p);
        fftw_free(in);
        fftw_free(out);
        g_plans[g_nplans++] = (PlanEntry){rank, n0, n1, p};
    }
    pthread_mutex_unlock(&g_lock);
    return p;
}

void spectral_set_measure(int on) { g_measure = on != 0; }

void spectral_cleanup(void)
{
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < g_nplans; i++) fftw_destroy_plan(g_plans[i].plan);
    g_nplans = 0;
    pthread_mutex_unlock(&g_lock);
}

int spectral_wisdom_load(const char *path)
{
    pthread_mutex_lock(&g_lock);
    int ok = fftw_import_wisdom_from_filename(path);
    pthread_mutex_unlock(&g_lock);
    if (!ok) return ERR(ERR_IO, "cannot read FFTW wisdom from %s", path);
    return ERR_OK;
}

int spectral_wisdom_save(const char *path)
{
    pthread_mutex_lock(&g_lock);
    int ok = fftw_export_wisdom_to_filename(path);
    pthread_mutex_unlock(&g_lock);
    if (!ok) return ERR(ERR_IO, "cannot write FFTW wisdom to %s", path);
    return ERR_OK;
}

size_t spectral_nbins(size_t H, size_t W)
{
    double h = (double)(H / 2), w = (double)(W / 2);
    return (size_t)floor(sqrt(h * h + w * w) + 0.5) + 1;
}

/* Bin of half-spectrum entry (row ky_idx, column kx) and its multiplicity in the full plane. */
static size_t bin_of(size_t ky_idx, size_t kx, size_t H, size_t W, double *weight)
{
    long ky = ky_idx <= (H - 1) / 2 ? (long)ky_idx : (long)ky_idx - (long)H;
    *weight = (kx == 0 || (W % 2 == 0 && kx == W / 2)) ? 1.0 : 2.0;
    double r = sqrt((double)(ky * ky) + (double)(kx * kx));
    return (size_t)floor(r + 0.5);
}

int spectral_power_sum(double *acc, const float *x, size_t N, size_t C, size_t H, size_t W)
{
    if (H < 2 || W < 2 || H > 8192 || W > 8192)
        return ERR(ERR_ARG, "power spectrum: image size %zux%zu not in 2..8192", H, W);
    const size_t nb = spectral_nbins(H, W), WC = W / 2 + 1;
    fftw_plan p = get_plan(2, (int)H, (int)W);
    double *in = fftw_alloc_real(H * W);
    fftw_complex *out = fftw_alloc_complex(H * WC);
    double *cnt = xcalloc(nb, sizeof(double)), *pw = xmalloc(sizeof(double) * nb);
    ASSERT(in && out);
    for (size_t ky = 0; ky < H; ky++)
        for (size_t kx = 0; kx < WC; kx++) {
            double w;
            cnt[bin_of(ky, kx, H, W, &w)] += w;
        }
    const double norm = 1.0 / (double)(H * W);
    for (size_t i = 0; i < N * C; i++) {
        const float *img = x + i * H * W;
        for (size_t k = 0; k < H * W; k++) in[k] = (double)img[k];
        fftw_execute_dft_r2c(p, in, out);
        memset(pw, 0, sizeof(double) * nb);
        for (size_t ky = 0; ky < H; ky++)
            for (size_t kx = 0; kx < WC; kx++) {
                double w, re = out[ky * WC + kx][0], im = out[ky * WC + kx][1];
                size_t b = bin_of(ky, kx, H, W, &w);
                pw[b] += w * (re * re + im * im) * norm;
            }
        for (size_t b = 0; b < nb; b++) acc[b] += cnt[b] > 0.0 ? pw[b] / cnt[b] : 0.0;
    }
    fftw_free(in);
    fftw_free(out);
    xfree(cnt);
    xfree(pw);
    return ERR_OK;
}

int spectral_power_mean(double *out, const float *x, size_t N, size_t C, size_t H, size_t W)
{
    if (N == 0 || C == 0) return ERR(ERR_ARG, "power spectrum of no images");
    const size_t nb = spectral_nbins(H, W);
    memset(out, 0, sizeof(double) * nb);
    TRY(spectral_power_sum(out, x, N, C, H, W));
    for (size_t b = 0; b < nb; b++) out[b] /= (double)(N * C);
    return ERR_OK;
}

double spectral_distance(const double *pa, const double *pb, size_t nbins)
{
    if (nbins < 2) return 0.0;
    double s = 0.0;
    for (size_t b = 1; b < nbins; b++) {
        double a = pa[b] > 1e-30 ? pa[b] : 1e-30, c = pb[b] > 1e-30 ? pb[b] : 1e-30;
        double db = 10.0 * log10(a / c);
        s += db * db;
    }
    return sqrt(s / (double)(nbins - 1));
}

enum { TONE_PAD = 8 }; /* zero padding: the peak is located on a grid of 1/8 bin first */

int spectral_tone(const double *x, size_t T, double *freq, double *peak_frac)
{
    if (T < 16 || T > (1u << 24)) return ERR(ERR_ARG, "tone: %zu samples, need 16..2^24", T);
    const size_t L = T * TONE_PAD, LC = L / 2 + 1;
    fftw_plan p = get_plan(1, (int)L, 0);
    double *in = fftw_alloc_real(L);
    fftw_complex *out = fftw_alloc_complex(LC);
    double *pw = xmalloc(sizeof(double) * LC);
    ASSERT(in && out);
    memset(in, 0, sizeof(double) * L);
    for (size_t t = 0; t < T; t++) /* Hann window */
        in[t] = x[t] * 0.5 * (1.0 - cos(2.0 * M_PI * (double)t / (double)T));
    fftw_execute_dft_r2c(p, in, out);
    size_t best = TONE_PAD; /* skip the DC main lobe (one bin) */
    double total = 0.0;
    for (size_t k = 0; k < LC; k++) {
        pw[k] = out[k][0] * out[k][0] + out[k][1] * out[k][1];
        if (k >= (size_t)TONE_PAD) total += pw[k];
        if (k >= (size_t)TONE_PAD && pw[k] > pw[best]) best = k;
    }
    double delta = 0.0;
    if (best > 0 && best + 1 < LC && pw[best - 1] > 0.0 && pw[best + 1] > 0.0) {
        double a = log(pw[best - 1]), b = log(pw[best]), c = log(pw[best + 1]);
        double den = a - 2.0 * b + c;
        if (den < 0.0) delta = 0.5 * (a - c) / den;
    }
    *freq = ((double)best + delta) / (double)L;
    size_t lo = best > 2 * TONE_PAD ? best - 2 * TONE_PAD : 0, hi = best + 2 * TONE_PAD;
    double lobe = 0.0;
    for (size_t k = lo; k <= hi && k < LC; k++)
        if (k >= (size_t)TONE_PAD) lobe += pw[k];
    *peak_frac = total > 0.0 ? lobe / total : 0.0;
    fftw_free(in);
    fftw_free(out);
    xfree(pw);
    return ERR_OK;
}

int spectral_temb_check(size_t D, size_t T, double min_bins, SpectralTembReport *rep)
{
    if (D < 4) return ERR(ERR_ARG, "time embedding width %zu < 4", D);
    memset(rep, 0, sizeof *rep);
    rep->D = D;
    rep->T = T;
    rep->min_peak_frac = 1.0;
    const size_t half = D / 2;
    float *t = xmalloc(sizeof(float) * T), *emb = xmalloc(sizeof(float) * T * D);
    double *sig = xmalloc(sizeof(double) * T);
    for (size_t i = 0; i < T; i++) t[i] = (float)i;
    temb_sinusoid(emb, t, T, D);
    int rc = ERR_OK;
    for (size_t ch = 0; ch < 2 * half && rc == ERR_OK; ch++) {
        size_t i = ch % half; /* [sin(t f_i) for i < half, cos(t f_i) ...] */
        double f = exp(-log(10000.0) * (double)i / (double)(half - 1)) / (2.0 * M_PI);
        if (f * (double)T < min_bins) {
            rep->below_res++;
            continue;
        }
        for (size_t k = 0; k < T; k++) sig[k] = (double)emb[k * D + ch];
        double got, frac;
        rc = spectral_tone(sig, T, &got, &frac);
        double err = fabs(got - f) * (double)T;
        rep->checked++;
        if (err > rep->max_err_bins) {
            rep->max_err_bins = err;
            rep->worst_channel = ch;
        }
        if (frac < rep->min_peak_frac) rep->min_peak_frac = frac;
    }
    xfree(t);
    xfree(emb);
    xfree(sig);
    return rc;
}
