/* sched/oracle.h - exact (Bayes-optimal) denoisers for known data distributions.
 *
 * For data whose distribution is known in closed form, the minimiser of every training loss in
 * sched/targets.h is analytic: E[x0 | x_t] and E[eps | x_t]. These oracles stand in for a
 * trained network in sampler tests and smoke runs; they have the SchedNetFn/SchedNetFnD
 * signatures and answer in the schedule's parameterisation.
 *
 *   Gaussian data, per class: x0 ~ N(mu_y, sd^2 I). On the path x = a x0 + s eps:
 *     E[x0|x] = mu + a sd^2 (x - a mu) / (a^2 sd^2 + s^2),
 *     E[eps|x] = s (x - a mu) / (a^2 sd^2 + s^2).
 *   Finite point set {p_1..p_M} (equal weights): w_m = softmax_m(-|x - a p_m|^2 / (2 s^2)),
 *     E[x0|x] = sum_m w_m p_m, E[eps|x] = (x - a E[x0|x]) / s (0 when s = 0).
 *
 * Time input: how the oracle reads t into path coefficients (a, s):
 *   ORACLE_TIME_INDEX: diffusion, t = 0-based timestep k of `sched`: abar = sched->abar[k+1];
 *   ORACLE_TIME_ABAR : diffusion, t is abar itself (for continuous-time tests);
 *   ORACLE_TIME_FLOW : flow matching, t = tau, a = tau, s = 1 - (1 - sigma_min) tau; the output
 *                      is the velocity E[x1|x] - (1 - sigma_min) E[n|x].
 *   ORACLE_TIME_SDE  : continuous time t of the SDE `sde` (sched/sde.h), (a, s) = its marginal;
 *                      the output is E[eps|x] (pred EPS) or, with score_out, the score
 *                      -E[eps|x] / s.
 * Output: for diffusion the kind `pred` (eps, x0 or v); for flow always the velocity.
 *
 * Labels (Gaussian oracle): label y in [0, K) uses row y of mu (K+1 rows of D), label -1 or a
 * NULL label array uses row K. The finite-set oracle ignores labels.
 * The oracle counts the samples it evaluates (`evals`), for NFE cross-checks.
 */
#ifndef DFM_SCHED_ORACLE_H
#define DFM_SCHED_ORACLE_H

#include <stddef.h>
#include <stdint.h>

#include "sched/sampler.h"  /* SchedNetFn, SchedNetFnD */
#include "sched/schedule.h" /* Schedule, SchedPred */
#include "sched/sde.h"      /* Sde */

typedef enum {
    ORACLE_TIME_INDEX = 0,
    ORACLE_TIME_ABAR = 1,
    ORACLE_TIME_FLOW = 2,
    ORACLE_TIME_SDE = 3
} OracleTime;
typedef enum { ORACLE_GAUSS = 0, ORACLE_POINTS = 1 } OracleKind;

typedef struct {
    OracleKind kind;
    OracleTime time;
    SchedPred pred;        /* output kind for diffusion time modes */
    const Schedule *sched; /* ORACLE_TIME_INDEX */
    double sigma_min;      /* ORACLE_TIME_FLOW */
    const Sde *sde;        /* ORACLE_TIME_SDE */
    int score_out;         /* ORACLE_TIME_SDE: answer the score instead of eps */
    size_t D;
    /* Gaussian: mu (K+1, D), sd */
    int K;
    const double *mu;
    double sd;
    /* points: (M, D) */
    size_t M;
    const double *points;
    /* counters (written by the callbacks) */
    uint64_t evals; /* samples evaluated */
    uint64_t calls;
} Oracle;

/* Path coefficients the oracle uses for network time t. */
int oracle_coef(const Oracle *o, double t, double *a, double *s);
/* Posterior means at one state x (D): E[x0|x], E[eps|x] (flow: E[x1|x], E[n|x]). */
int oracle_posterior(const Oracle *o, const double *x, int label, double a, double s, double *x0,
                     double *eps);

int oracle_net_d(void *ctx, const double *x, const double *t, const int *labels, size_t B,
                 size_t D, double *out);
/* Jacobian-vector product of the oracle's output (SchedJvpFnD): out as oracle_net_d, and
 * jv = J v with J the exact Jacobian of the output with respect to x. */
int oracle_jvp_d(void *ctx, const double *x, const double *t, const int *labels, size_t B,
                 size_t D, const double *v, double *out, double *jv);

int oracle_net(void *ctx, const float *x, const double *t, const int *labels, size_t B, size_t D,
               float *out);

#endif
