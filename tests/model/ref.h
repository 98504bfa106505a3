/* tests/model/ref.h - naive double-precision reference layers and test helpers for the model
 * tests. Everything is static inline so each test file takes what it uses. */
#ifndef DFM_TESTS_MODEL_REF_H
#define DFM_TESTS_MODEL_REF_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/conv2d.h"

/* uniform in [-a, a), reproducible per (seed) */
static inline void fill_uniform(float *x, size_t n, float a, uint64_t seed)
{
    Rng r;
    rng_init(&r, seed, rng_stream(RNG_P_TEST, 1), 0, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)((2.0 * rng_uniform(&r) - 1.0) * (double)a);
}

static inline double *to_double(const float *x, size_t n)
{
    double *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = (double)x[i];
    return d;
}

/* max |a - b| / (|b| + floor) */
static inline double max_rel_err(const float *a, const double *b, size_t n, double floor)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / (fabs(b[i]) + floor);
        if (e > m) m = e;
    }
    return m;
}

static inline double max_abs(const double *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fabs(b[i]) > m ? fabs(b[i]) : m;
    return m;
}

/* ---- reference layers (double) ---- */

static inline void ref_conv2d(double *out, const double *inp, const double *w, const double *bias,
                              const Conv2dShape *s, size_t B)
{
    for (size_t b = 0; b < B; b++)
        for (int oc = 0; oc < s->OC; oc++)
            for (int oh = 0; oh < s->OH; oh++)
                for (int ow = 0; ow < s->OW; ow++) {
                    double acc = bias ? bias[oc] : 0.0;
                    for (int ic = 0; ic < s->IC; ic++)
                        for (int kh = 0; kh < s->K; kh++)
                            for (int kw = 0; kw < s->K; kw++) {
                                int ih = oh * s->stride - s->pad_t + kh;
                                int iw = ow * s->stride - s->pad_l + kw;
                                if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) continue;
                                acc += w[((size_t)(oc * s->IC + ic) * s->K + kh) * s->K + kw] *
                                       inp[((b * s->IC + ic) * s->H + ih) * s->W + iw];
                            }
                    out[((b * s->OC + oc) * s->OH + oh) * s->OW + ow] = acc;
                }
}

static inline void ref_groupnorm(double *out, const double *inp, const double *gamma,
                                 const double *beta, size_t B, size_t C, size_t HW, size_t G,
                                 double eps)
{
    size_t CG = C / G;
    for (size_t b = 0; b < B; b++)
        for (size_t g = 0; g < G; g++) {
            const double *x = inp + (b * C + g * CG) * HW;
            double m = 0, v = 0;
            for (size_t i = 0; i < CG * HW; i++) m += x[i];
            m /= (double)(CG * HW);
            for (size_t i = 0; i < CG * HW; i++) v += (x[i] - m) * (x[i] - m);
            v /= (double)(CG * HW);
            for (size_t c = 0; c < CG; c++)
                for (size_t i = 0; i < HW; i++) {
                    size_t ch = g * CG + c;
                    out[(b * C + ch) * HW + i] =
                        (x[c * HW + i] - m) / sqrt(v + eps) * gamma[ch] + beta[ch];
                }
        }
}

static inline double ref_silu(double x) { return x / (1.0 + exp(-x)); }

/* qkv: (B, 3C, HW) -> out (B, C, HW); att (B, NH, HW, HW) optional */
static inline void ref_attn(double *out, double *att, const double *qkv, size_t B, size_t C,
                            size_t HW, size_t NH)
{
    size_t dh = C / NH;
    double *row = malloc(HW * sizeof *row);
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < NH; h++) {
            const double *q = qkv + (b * 3 * C + h * dh) * HW, *k = q + C * HW, *v = q + 2 * C * HW;
            for (size_t i = 0; i < HW; i++) {
                double mx = -INFINITY, s = 0;
                for (size_t j = 0; j < HW; j++) {
                    double a = 0;
                    for (size_t d = 0; d < dh; d++) a += q[d * HW + i] * k[d * HW + j];
                    row[j] = a / sqrt((double)dh);
                    mx = row[j] > mx ? row[j] : mx;
                }
                for (size_t j = 0; j < HW; j++) s += (row[j] = exp(row[j] - mx));
                for (size_t j = 0; j < HW; j++) row[j] /= s;
                if (att) memcpy(att + ((b * NH + h) * HW + i) * HW, row, HW * sizeof *row);
                for (size_t d = 0; d < dh; d++) {
                    double a = 0;
                    for (size_t j = 0; j < HW; j++) a += row[j] * v[d * HW + j];
                    out[(b * C + h * dh + d) * HW + i] = a;
                }
            }
        }
    free(row);
}

static inline void ref_linear(double *out, const double *inp, const double *w, const double *bias,
                              size_t B, size_t IN, size_t OUT)
{
    for (size_t b = 0; b < B; b++)
        for (size_t o = 0; o < OUT; o++) {
            double a = bias ? bias[o] : 0.0;
            for (size_t i = 0; i < IN; i++) a += w[o * IN + i] * inp[b * IN + i];
            out[b * OUT + o] = a;
        }
}

/* ---- finite differences on a double function ----
 * loss(ctx) = sum_i r[i] * f(ctx)[i]; central differences with step h on x[k]. */
typedef double (*RefLoss)(void *ctx);

static inline double fd_grad(RefLoss loss, void *ctx, double *x, size_t k, double h)
{
    double x0 = x[k];
    x[k] = x0 + h;
    double lp = loss(ctx);
    x[k] = x0 - h;
    double lm = loss(ctx);
    x[k] = x0;
    return (lp - lm) / (2.0 * h);
}

/* Compare an analytic float gradient g (n) with FD of loss w.r.t. x (n), double, on every
 * element when n <= 200, else on a spread subset. Returns the worst error relative to the
 * largest FD magnitude (plus a small floor). */
static inline double fd_check(RefLoss loss, void *ctx, double *x, const float *g, size_t n,
                              double h)
{
    size_t stride = n <= 200 ? 1 : n / 157 + 1;
    double worst = 0.0, scale = 1e-6;
    double *fd = calloc(n, sizeof *fd);
    for (size_t k = 0; k < n; k += stride) {
        fd[k] = fd_grad(loss, ctx, x, k, h);
        scale = fabs(fd[k]) > scale ? fabs(fd[k]) : scale;
    }
    for (size_t k = 0; k < n; k += stride) {
        double e = fabs((double)g[k] - fd[k]) / scale;
        worst = e > worst ? e : worst;
    }
    free(fd);
    return worst;
}

#endif
