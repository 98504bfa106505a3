/* sched/oracle.c - see oracle.h. */
#include "sched/oracle.h"

#include <math.h>
#include <string.h>

#include "core/err.h" /* ERR, TRY */
#include "core/mem.h" /* xmalloc, xfree */

int oracle_coef(const Oracle *o, double t, double *a, double *s)
{
    switch (o->time) {
    case ORACLE_TIME_INDEX: {
        if (!o->sched || o->sched->family != SCHED_DISCRETE)
            return ERR(ERR_ARG, "oracle: index time needs a diffusion schedule");
        double k = floor(t);
        if (k != t || k < 0 || k >= (double)o->sched->T)
            return ERR(ERR_ARG, "oracle: timestep %g is not an integer in [0, %d)", t,
                       o->sched->T);
        int tt = (int)k + 1;
        *a = o->sched->sqrt_abar[tt];
        *s = o->sched->sqrt_1m_abar[tt];
        return ERR_OK;
    }
    case ORACLE_TIME_ABAR:
        if (!(t > 0.0 && t <= 1.0)) return ERR(ERR_ARG, "oracle: abar %g outside (0, 1]", t);
        *a = sqrt(t);
        *s = sqrt(1.0 - t);
        return ERR_OK;
    case ORACLE_TIME_FLOW:
        if (!(t >= 0.0 && t <= 1.0)) return ERR(ERR_ARG, "oracle: flow time %g outside [0, 1]", t);
        sched_flow_coef(t, o->sigma_min, a, s);
        return ERR_OK;
    case ORACLE_TIME_SDE:
        if (!o->sde) return ERR(ERR_ARG, "oracle: SDE time needs an SDE");
        if (!(t >= 0.0 && t <= 1.0)) return ERR(ERR_ARG, "oracle: SDE time %g outside [0, 1]", t);
        sde_marginal(o->sde, t, a, s);
        if (!(*s > 0.0)) return ERR(ERR_ARG, "oracle: SDE time %g has no noise", t);
        return ERR_OK;
    }
    return ERR(ERR_ARG, "oracle: unknown time mode");
}

int oracle_posterior(const Oracle *o, const double *x, int label, double a, double s, double *x0,
                     double *eps)
{
    size_t D = o->D;
    if (o->kind == ORACLE_GAUSS) {
        int row = (label >= 0 && label < o->K) ? label : o->K;
        if (label >= o->K) return ERR(ERR_ARG, "oracle: label %d >= K = %d", label, o->K);
        const double *mu = o->mu + (size_t)row * D;
        double sd2 = o->sd * o->sd, v = a * a * sd2 + s * s;
        for (size_t i = 0; i < D; i++) {
            double r = x[i] - a * mu[i];
            x0[i] = mu[i] + a * sd2 * r / v;
            eps[i] = s * r / v;
        }
        return ERR_OK;
    }
    /* finite set: softmax over the points, stabilised by the smallest distance */
    double *lw = xmalloc(o->M * sizeof(double));
    double best = INFINITY;
    size_t arg = 0;
    for (size_t m = 0; m < o->M; m++) {
        const double *p = o->points + m * D;
        double d2 = 0.0;
        for (size_t i = 0; i < D; i++) {
            double r = x[i] - a * p[i];
            d2 += r * r;
        }
        lw[m] = d2;
        if (d2 < best) {
            best = d2;
            arg = m;
        }
    }
    memset(x0, 0, D * sizeof(double));
    if (s > 0.0) {
        double z = 0.0;
        for (size_t m = 0; m < o->M; m++) {
            lw[m] = exp(-(lw[m] - best) / (2.0 * s * s));
            z += lw[m];
        }
        for (size_t m = 0; m < o->M; m++) {
            double w = lw[m] / z;
            const double *p = o->points + m * D;
            for (size_t i = 0; i < D; i++) x0[i] += w * p[i];
        }
        for (size_t i = 0; i < D; i++) eps[i] = (x[i] - a * x0[i]) / s;
    } else {
        memcpy(x0, o->points + arg * D, D * sizeof(double));
        memset(eps, 0, D * sizeof(double));
    }
    xfree(lw);
    return ERR_OK;
}

/* The network's output from the posterior means (or, linearly, from their derivatives). */
static void oracle_output(const Oracle *o, double a, double s, const double *x0,
                          const double *eps, double *out)
{
    size_t D = o->D;
    if (o->time == ORACLE_TIME_FLOW)
        sched_target_from_x0_eps(SCHED_PRED_VELOCITY, a, s, o->sigma_min, x0, eps, out, D);
    else if (o->time == ORACLE_TIME_SDE && o->score_out)
        sched_eps_to_score(s, eps, out, D);
    else
        sched_target_from_x0_eps(o->pred, a, s, 0.0, x0, eps, out, D);
}

/* Directional derivatives of the posterior means at x along v: jx0 = (d E[x0|x]/dx) v,
 * jeps = (v - a jx0) / s. Gaussian: d E[x0|x]/dx = a sd^2 / (a^2 sd^2 + s^2) I; finite set:
 * (a / s^2) Cov_w(p). */
static void oracle_posterior_jv(const Oracle *o, const double *x, double a, double s,
                                const double *x0, const double *v, double *jx0, double *jeps)
{
    size_t D = o->D;
    if (o->kind == ORACLE_GAUSS) {
        double sd2 = o->sd * o->sd, V = a * a * sd2 + s * s, k = a * sd2 / V, ke = s / V;
        for (size_t i = 0; i < D; i++) {
            jx0[i] = k * v[i];
            jeps[i] = ke * v[i];
        }
        return;
    } else {
        /* recompute the weights (stabilised as in oracle_posterior) */
        double best = INFINITY;
        double *lw = xmalloc(o->M * sizeof(double));
        for (size_t m = 0; m < o->M; m++) {
            const double *p = o->points + m * D;
            double d2 = 0.0;
            for (size_t i = 0; i < D; i++) {
                double r = x[i] - a * p[i];
                d2 += r * r;
            }
            lw[m] = d2;
            best = d2 < best ? d2 : best;
        }
        double z = 0.0;
        for (size_t m = 0; m < o->M; m++) {
            lw[m] = exp(-(lw[m] - best) / (2.0 * s * s));
            z += lw[m];
        }
        memset(jx0, 0, D * sizeof(double));
        for (size_t m = 0; m < o->M; m++) {
            const double *p = o->points + m * D;
            double w = lw[m] / z, pv = 0.0;
            for (size_t i = 0; i < D; i++) pv += (p[i] - x0[i]) * v[i];
            for (size_t i = 0; i < D; i++) jx0[i] += w * (p[i] - x0[i]) * pv * a / (s * s);
        }
        xfree(lw);
    }
    for (size_t i = 0; i < D; i++) jeps[i] = (v[i] - a * jx0[i]) / s;
}

int oracle_jvp_d(void *ctx, const double *x, const double *t, const int *labels, size_t B,
                 size_t D, const double *v, double *out, double *jv)
{
    Oracle *o = ctx;
    if (D != o->D) return ERR(ERR_ARG, "oracle: D = %zu, expected %zu", D, o->D);
    double *x0 = xmalloc(4 * D * sizeof(double)), *eps = x0 + D, *jx0 = x0 + 2 * D,
           *jeps = x0 + 3 * D;
    int rc = ERR_OK;
    for (size_t j = 0; j < B && rc == ERR_OK; j++) {
        double a, s;
        if ((rc = oracle_coef(o, t[j], &a, &s)) != ERR_OK) break;
        if (!(s > 0.0) && o->kind == ORACLE_POINTS) {
            rc = ERR(ERR_ARG, "oracle: a finite data set has no Jacobian at a noise-free time");
            break;
        }
        const double *xj = x + j * D;
        rc = oracle_posterior(o, xj, labels ? labels[j] : -1, a, s, x0, eps);
        if (rc != ERR_OK) break;
        oracle_posterior_jv(o, xj, a, s, x0, v + j * D, jx0, jeps);
        oracle_output(o, a, s, x0, eps, out + j * D);
        oracle_output(o, a, s, jx0, jeps, jv + j * D);
    }
    o->evals += B;
    o->calls += 1;
    xfree(x0);
    return rc;
}

int oracle_net_d(void *ctx, const double *x, const double *t, const int *labels, size_t B,
                 size_t D, double *out)
{
    Oracle *o = ctx;
    if (D != o->D) return ERR(ERR_ARG, "oracle: D = %zu, expected %zu", D, o->D);
    double *x0 = xmalloc(D * sizeof(double)), *eps = xmalloc(D * sizeof(double));
    int rc = ERR_OK;
    for (size_t j = 0; j < B && rc == ERR_OK; j++) {
        double a, s;
        if ((rc = oracle_coef(o, t[j], &a, &s)) != ERR_OK) break;
        const double *xj = x + j * D;
        rc = oracle_posterior(o, xj, labels ? labels[j] : -1, a, s, x0, eps);
        if (rc != ERR_OK) break;
        oracle_output(o, a, s, x0, eps, out + j * D);
    }
    o->evals += B;
    o->calls += 1;
    xfree(x0);
    xfree(eps);
    return rc;
}

int oracle_net(void *ctx, const float *x, const double *t, const int *labels, size_t B, size_t D,
               float *out)
{
    size_t n = B * D;
    double *xd = xmalloc(n * sizeof(double)), *od = xmalloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) xd[i] = (double)x[i];
    int rc = oracle_net_d(ctx, xd, t, labels, B, D, od);
    if (rc == ERR_OK)
        for (size_t i = 0; i < n; i++) out[i] = (float)od[i];
    xfree(xd);
    xfree(od);
    return rc;
}
