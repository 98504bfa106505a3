/* sched/vlb.c - see vlb.h. */
#include "sched/vlb.h"

#include <math.h>
#include <string.h>

#include "core/err.h" /* ERR, TRY */
#include "core/mem.h" /* xmalloc, xfree, ASSERT */
#include "core/rng.h" /* rng_fill_normal_f64, rng_stream */

static const double LOG_2PI = 1.8378770664093454836;

double sched_kl_gauss(const double *m1, double v1, const double *m2, double v2, size_t n)
{
    double q = 0.0;
    for (size_t i = 0; i < n; i++) q += (m1[i] - m2[i]) * (m1[i] - m2[i]);
    return 0.5 * ((double)n * (log(v2 / v1) + v1 / v2 - 1.0) + q / v2);
}

double sched_nll_gauss(const double *x, const double *mean, double var, size_t n)
{
    double q = 0.0;
    for (size_t i = 0; i < n; i++) q += (x[i] - mean[i]) * (x[i] - mean[i]);
    return 0.5 * ((double)n * (LOG_2PI + log(var)) + q / var);
}

/* log(Phi(b) - Phi(a)) for a < b, accurate in both tails; Phi(x) = erfc(-x/sqrt2)/2. */
static double log_normal_mass(double a, double b)
{
    const double r2 = 0.70710678118654752440;
    double p;
    if (a > 0.0)
        p = 0.5 * (erfc(a * r2) - erfc(b * r2)); /* upper tail: Q(a) - Q(b) */
    else if (b < 0.0)
        p = 0.5 * (erfc(-b * r2) - erfc(-a * r2));
    else
        p = 1.0 - 0.5 * erfc(-a * r2) - 0.5 * erfc(b * r2);
    return log(fmax(p, 1e-300));
}

double sched_nll_discretized_gauss(const double *x, const double *mean, double var, size_t n,
                                   int levels)
{
    ASSERT(levels >= 2 && var > 0.0);
    double hw = 1.0 / (double)(levels - 1); /* half the spacing 2 / (levels - 1) */
    double isd = 1.0 / sqrt(var), nll = 0.0;
    for (size_t i = 0; i < n; i++) {
        double k = nearbyint((x[i] + 1.0) / (2.0 * hw)); /* level index 0..levels-1 */
        if (k < 0) k = 0;
        if (k > levels - 1) k = levels - 1;
        double c = -1.0 + 2.0 * hw * k - mean[i];
        double lo = k == 0 ? -HUGE_VAL : (c - hw) * isd;
        double hi = k == levels - 1 ? HUGE_VAL : (c + hw) * isd;
        nll -= log_normal_mass(lo, hi);
    }
    return nll;
}

double sched_vlb_prior(const Schedule *s, const double *x0, size_t n)
{
    double ab = s->abar[s->T], q = 0.0;
    for (size_t i = 0; i < n; i++) q += x0[i] * x0[i];
    /* KL(N(sqrt(ab) x0, (1 - ab) I) || N(0, I)) */
    return 0.5 * ((double)n * (-log1p(-ab) + (1.0 - ab) - 1.0) + ab * q);
}

double sched_vlb_model_var(const Schedule *s, SchedVar var, int t)
{
    ASSERT(t >= 1 && t <= s->T);
    if (t == 1) return s->post_var[2];
    return var == SCHED_VAR_BETA ? s->beta[t] : s->post_var[t];
}

double sched_vlb_term(const Schedule *s, SchedVar var, int levels, int t, const double *x0,
                      const double *xt, const double *out, size_t n)
{
    ASSERT(s->family == SCHED_DISCRETE && t >= 1 && t <= s->T);
    double *x0h = xmalloc(2 * n * sizeof(double)), *mu = x0h + n;
    sched_pred_to_x0_eps(s->pred, s->sqrt_abar[t], s->sqrt_1m_abar[t], 0.0, xt, out, x0h, NULL,
                         n);
    for (size_t i = 0; i < n; i++) mu[i] = s->post_coef1[t] * x0h[i] + s->post_coef2[t] * xt[i];
    double v = sched_vlb_model_var(s, var, t), r;
    if (t == 1) {
        r = levels > 0 ? sched_nll_discretized_gauss(x0, mu, v, n, levels)
                       : sched_nll_gauss(x0, mu, v, n);
    } else {
        /* q(x_{t-1} | x_t, x0) = N(post_coef1 x0 + post_coef2 x_t, beta~_t) */
        for (size_t i = 0; i < n; i++) x0h[i] = s->post_coef1[t] * x0[i] + s->post_coef2[t] * xt[i];
        r = sched_kl_gauss(x0h, s->post_var[t], mu, v, n);
    }
    xfree(x0h);
    return r;
}

int sched_vlb_terms_at(const Schedule *s, SchedVar var, int levels, int t, SchedNetFnD net,
                       void *ctx, uint64_t seed, const uint64_t *idx, size_t B, size_t D,
                       const int *labels, const double *x0, double *term)
{
    if (s->family != SCHED_DISCRETE) return ERR(ERR_ARG, "the variational bound needs a DDPM schedule");
    if (t < 1 || t > s->T) return ERR(ERR_ARG, "bound term t = %d outside 1..%d", t, s->T);
    if (var != SCHED_VAR_BETA && var != SCHED_VAR_BETA_TILDE)
        return ERR(ERR_ARG, "unknown variance choice %d", (int)var);
    if (levels == 1 || levels < 0) return ERR(ERR_ARG, "decoder levels must be 0 or >= 2");
    size_t n = B * D;
    double *xt = xmalloc(n * sizeof(double)), *out = xmalloc(n * sizeof(double));
    double *tn = xmalloc(B * sizeof(double));
    for (size_t j = 0; j < B; j++) {
        rng_fill_normal_f64(xt + j * D, D, seed, rng_stream(RNG_P_EVAL, idx[j]), (uint32_t)t);
        for (size_t i = 0; i < D; i++)
            xt[j * D + i] = s->sqrt_abar[t] * x0[j * D + i] + s->sqrt_1m_abar[t] * xt[j * D + i];
        tn[j] = (double)(t - 1);
    }
    int rc = net(ctx, xt, tn, labels, B, D, out);
    if (rc == ERR_OK)
        for (size_t j = 0; j < B; j++) {
            term[j] = sched_vlb_term(s, var, levels, t, x0 + j * D, xt + j * D, out + j * D, D);
            if (!isfinite(term[j])) {
                rc = ERR(ERR_NUMERIC, "bound term t = %d of example %llu is not finite", t,
                         (unsigned long long)idx[j]);
                break;
            }
        }
    xfree(xt);
    xfree(out);
    xfree(tn);
    return rc;
}

int sched_vlb_d(const Schedule *s, SchedVar var, int levels, SchedNetFnD net, void *ctx,
                uint64_t seed, const uint64_t *idx, size_t B, size_t D, const int *labels,
                const double *x0, double *nll, double *terms)
{
    if (B == 0 || D == 0) return ERR(ERR_ARG, "bound: empty batch");
    int T = s->T;
    double *tt = xmalloc(B * sizeof(double)), *all = xmalloc(B * ((size_t)T + 1) * sizeof(double));
    int rc = ERR_OK;
    for (size_t j = 0; j < B; j++) all[j * ((size_t)T + 1)] = sched_vlb_prior(s, x0 + j * D, D);
    for (int t = 1; t <= T && rc == ERR_OK; t++) {
        rc = sched_vlb_terms_at(s, var, levels, t, net, ctx, seed, idx, B, D, labels, x0, tt);
        for (size_t j = 0; j < B && rc == ERR_OK; j++) all[j * ((size_t)T + 1) + (size_t)t] = tt[j];
    }
    if (rc == ERR_OK)
        for (size_t j = 0; j < B; j++) {
            double acc = 0.0;
            for (int t = 0; t <= T; t++) acc += all[j * ((size_t)T + 1) + (size_t)t];
            nll[j] = acc;
            if (terms) memcpy(terms + j * ((size_t)T + 1), all + j * ((size_t)T + 1),
                              ((size_t)T + 1) * sizeof(double));
        }
    xfree(tt);
    xfree(all);
    return rc;
}
