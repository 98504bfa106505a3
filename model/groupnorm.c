/* model/groupnorm.c - GroupNorm forward/backward, statistics in double. */
#include "model/groupnorm.h"
#include "model/ops.h"

#include <math.h>

/* below this many elements a loop runs on the calling thread: a parallel region costs more */
#define PAR_MIN 32768

/* out and/or act of one (sample, group) from its statistics: the one place the normalisation
 * is computed, so a recomputation gives the forward's bits */
__attribute__((target_clones("default", "arch=x86-64-v3", "avx512f"))) static void gn_apply_group(float *out, float *act, const float *x, const float *gamma,
                           const float *beta, float mf, float rs, size_t b, size_t g, size_t C,
                           size_t CG, size_t HW)
{
    for (size_t c = 0; c < CG; c++) {
        size_t ch = g * CG + c;
        float sc, sh;
        groupnorm_coef(mf, rs, gamma[ch], beta[ch], &sc, &sh);
        const float *xc = x + c * HW;
        if (!out) { /* fused: the same operations, only the SiLU output stored */
            float *a = act + (b * C + ch) * HW;
            for (size_t i = 0; i < HW; i++) a[i] = silu_f(xc[i] * sc + sh);
            continue;
        }
        float *o = out + (b * C + ch) * HW;
        for (size_t i = 0; i < HW; i++) o[i] = xc[i] * sc + sh;
        if (act) {
            float *a = act + (b * C + ch) * HW;
            for (size_t i = 0; i < HW; i++) a[i] = silu_f(o[i]);
        }
    }
}

void groupnorm_forward(float *out, float *act, float *mean, float *rstd, const float *inp,
                       const float *gamma, const float *beta, size_t B, size_t C, size_t HW,
                       size_t G)
{
    const size_t CG = C / G, n = CG * HW;
#pragma omp parallel for schedule(static) if (B * C * HW > PAR_MIN)
    for (size_t bg = 0; bg < B * G; bg++) {
        size_t b = bg / G, g = bg % G;
        const float *x = inp + (b * C + g * CG) * HW;
        double m = sum8_f64(x, n, 0.0, 0) / (double)n;
        double v = sum8_f64(x, n, m, 1) / (double)n;
        float mf = (float)m, rs = (float)(1.0 / sqrt(v + (double)GROUPNORM_EPS));
        mean[bg] = mf;
        rstd[bg] = rs;
        if (out || act) gn_apply_group(out, act, x, gamma, beta, mf, rs, b, g, C, CG, HW);
    }
}

void groupnorm_apply(float *out, float *act, const float *inp, const float *gamma,
                     const float *beta, const float *mean, const float *rstd, size_t B, size_t C,
                     size_t HW, size_t G)
{
    const size_t CG = C / G;
#pragma omp parallel for schedule(static) if (B * C * HW > PAR_MIN)
    for (size_t bg = 0; bg < B * G; bg++) {
        size_t b = bg / G, g = bg % G;
        gn_apply_group(out, act, inp + (b * C + g * CG) * HW, gamma, beta, mean[bg], rstd[bg], b,
                       g, C, CG, HW);
    }
}

/* the elementwise rows of the backward, built for the vector widths of the CPU (the same
 * operations in every build) */
__attribute__((target_clones("default", "arch=x86-64-v3", "avx512f"))) static void
dx_row(float *dx, const float *d, const float *x, float k1, float k2, float k3, size_t n)
{
    for (size_t i = 0; i < n; i++) dx[i] += k1 * d[i] - k2 * x[i] + k3;
}


/* One (sample, channel) row of the backward: with dact (SiLU), first dact *= silu'(x * sc + sh)
 * (the GroupNorm output recomputed as the forward computed it) and d = dact; then sd = sum d
 * and sdx = sum d * x in double over eight interleaved accumulators combined in a fixed order
 * (as sum8_f64) */
__attribute__((target_clones("default", "arch=x86-64-v3", "avx512f"))) static void
gn_row_sums(float *dact, const float *d, const float *x, size_t n, float sc, float sh,
            double *sd, double *sdx)
{
    if (dact) {
        for (size_t i = 0; i < n; i++) dact[i] *= silu_grad_f(x[i] * sc + sh);
        d = dact;
    }
    double a[8] = {0, 0, 0, 0, 0, 0, 0, 0}, ax[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) {
            double dv = (double)d[i + (size_t)k];
            a[k] += dv;
            ax[k] += dv * (double)x[i + (size_t)k];
        }
    for (; i < n; i++) {
        a[i & 7] += (double)d[i];
        ax[i & 7] += (double)d[i] * (double)x[i];
    }
    *sd = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    *sdx = ((ax[0] + ax[1]) + (ax[2] + ax[3])) + ((ax[4] + ax[5]) + (ax[6] + ax[7]));
}

/* The backward of both: the row sums once per (sample, channel), parallel over the rows; the
 * parameter gradients from them (samples in order); dinp per (sample, group). With dact (the
 * gradient of the SiLU output, turned into dout in place) dout is dact. */
static void gn_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, float *dact,
                        const float *inp, const float *gamma, const float *beta,
                        const float *mean, const float *rstd, size_t B, size_t C, size_t HW,
                        size_t G, double *S)
{
    const size_t CG = C / G, n = CG * HW;
    /* S: (sum d, sum d x) per (b, ch) */
#pragma omp parallel for schedule(static) if (B * C * HW > PAR_MIN)
    for (size_t bc = 0; bc < B * C; bc++) {
        const size_t b = bc / C, ch = bc % C, bg = b * G + ch / CG;
        float sc = 0.0f, sh = 0.0f;
        if (dact) groupnorm_coef(mean[bg], rstd[bg], gamma[ch], beta[ch], &sc, &sh);
        gn_row_sums(dact ? dact + bc * HW : NULL, dout + bc * HW, inp + bc * HW, HW, sc, sh,
                    &S[2 * bc], &S[2 * bc + 1]);
    }
    if (dgamma || dbeta) {
        for (size_t ch = 0; ch < C; ch++) {
            const size_t g = ch / CG;
            double dg = 0.0, db = 0.0;
            for (size_t b = 0; b < B; b++) {
                const double m = (double)mean[b * G + g], rs = (double)rstd[b * G + g];
                const double sd = S[2 * (b * C + ch)], sdx = S[2 * (b * C + ch) + 1];
                /* sum d * xhat = rs * (sum d*x - m * sum d) */
                dg += rs * (sdx - m * sd);
                db += sd;
            }
            if (dgamma) dgamma[ch] += (float)dg;
            if (dbeta) dbeta[ch] += (float)db;
        }
    }
    if (dinp) {
#pragma omp parallel for schedule(static) if (B * C * HW > PAR_MIN)
        for (size_t bg = 0; bg < B * G; bg++) {
            const size_t b = bg / G, g = bg % G;
            const double m = (double)mean[bg], rs = (double)rstd[bg];
            /* dxhat = dout * gamma; dx = rs * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) */
            double s1 = 0.0, s2 = 0.0;
            for (size_t c = 0; c < CG; c++) {
                const size_t ch = g * CG + c;
                const double gm = (double)gamma[ch], a = S[2 * (b * C + ch)],
                             ax = S[2 * (b * C + ch) + 1];
                s1 += gm * a;
                s2 += gm * rs * (ax - m * a);
            }
            s1 /= (double)n;
            s2 /= (double)n;
            for (size_t c = 0; c < CG; c++) {
                const size_t ch = g * CG + c;
                const float *x = inp + (b * C + ch) * HW, *d = dout + (b * C + ch) * HW;
                float *dx = dinp + (b * C + ch) * HW;
                float k1 = (float)(rs * (double)gamma[ch]), k2 = (float)(rs * s2 * rs),
                      k3 = (float)(rs * (m * rs * s2 - s1));
                /* dx = rs*gamma*d - rs*s1 - rs*(x - m)*rs*s2 */
                dx_row(dx, d, x, k1, k2, k3, HW);
            }
        }
    }
}

void groupnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                        const float *inp, const float *gamma, const float *mean, const float *rstd,
                        size_t B, size_t C, size_t HW, size_t G, double *ws)
{
    gn_backward(dinp, dgamma, dbeta, dout, NULL, inp, gamma, NULL, mean, rstd, B, C, HW, G, ws);
}

void groupnorm_silu_backward(float *dinp, float *dgamma, float *dbeta, float *dact,
                             const float *inp, const float *gamma, const float *beta,
                             const float *mean, const float *rstd, size_t B, size_t C, size_t HW,
                             size_t G, double *ws)
{
    gn_backward(dinp, dgamma, dbeta, dact, dact, inp, gamma, beta, mean, rstd, B, C, HW, G, ws);
}
