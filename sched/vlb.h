/* sched/vlb.h - the DDPM variational bound (Ho et al. 2020, eq. 5), term by term, in nats:
 *
 *   -log p(x0) <= L_T + sum_{t=2..T} L_{t-1} + L_0,
 *   L_T     = KL(q(x_T | x0) || N(0, I)),
 *   L_{t-1} = KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t)), x_t ~ q(x_t | x0),
 *   L_0     = -log p(x0 | x_1).
 * The model p(x_{t-1} | x_t) = N(mu, sigma_t^2 I): mu = post_coef1[t] x0-hat + post_coef2[t] x_t
 * with x0-hat from the network output (any of eps/x0/v, not clipped); sigma_t^2 = beta~_t
 * (SCHED_VAR_BETA_TILDE) or beta_t (SCHED_VAR_BETA), and for both the decoder at t = 1 uses
 * beta~_2 (beta~_1 = 0), as the DDPM reference code does. The decoder is the discretised Gaussian
 * of Ho et al. on `levels` equally spaced values in [-1, 1] (256 for 8-bit images; the end bins
 * extend to +-infinity) with the exact normal CDF (the reference uses a tanh approximation), or
 * with levels = 0 the continuous Gaussian density (a bound on a density, for continuous data).
 *
 * Evaluation noise: x_t of example j at paper t uses rng_fill_normal_f64(seed,
 * rng_stream(RNG_P_EVAL, idx[j]), sub = t), so a term depends on (seed, example, t) only and the
 * (example, t) pairs can be spread over ranks in any way. bits/dim of a bound: nats / (D ln 2)
 * (the discretised decoder makes it a bound on a probability, no bin correction).
 */
#ifndef DFM_SCHED_VLB_H
#define DFM_SCHED_VLB_H

#include <stddef.h>
#include <stdint.h>

#include "sched/sampler.h"  /* SchedNetFnD, SchedVar */
#include "sched/schedule.h" /* Schedule */

/* KL(N(m1, v1 I) || N(m2, v2 I)) over n entries (nats); v1, v2 > 0. */
double sched_kl_gauss(const double *m1, double v1, const double *m2, double v2, size_t n);
/* -log N(x; mean, var I) over n entries. */
double sched_nll_gauss(const double *x, const double *mean, double var, size_t n);
/* -log of the discretised Gaussian probability of x (n entries on the grid of `levels` values in
 * [-1, 1]; each x is read as its nearest level). levels >= 2. */
double sched_nll_discretized_gauss(const double *x, const double *mean, double var, size_t n,
                                   int levels);

/* L_T of data x0 (n entries). */
double sched_vlb_prior(const Schedule *s, const double *x0, size_t n);
/* The model variance sigma_t^2 at paper t in 1..T. */
double sched_vlb_model_var(const Schedule *s, SchedVar var, int t);
/* The term at paper t (1..T) of one example: L_{t-1} for t >= 2, L_0 for t = 1, given x_t and
 * the network output at (x_t, t - 1) (n entries each). */
double sched_vlb_term(const Schedule *s, SchedVar var, int levels, int t, const double *x0,
                      const double *xt, const double *out, size_t n);

/* The term at paper t for B examples x0 (B, D): draws x_t, evaluates the network once (batch B),
 * writes term (B). */
int sched_vlb_terms_at(const Schedule *s, SchedVar var, int levels, int t, SchedNetFnD net,
                       void *ctx, uint64_t seed, const uint64_t *idx, size_t B, size_t D,
                       const int *labels, const double *x0, double *term);
/* The whole bound of B examples: nll (B) = L_T + sum over t of the terms, summed in the order
 * L_T, t = 1, ..., T; terms (B, T + 1) optional: [j (T + 1)] = L_T, [j (T + 1) + t] = term t. */
int sched_vlb_d(const Schedule *s, SchedVar var, int levels, SchedNetFnD net, void *ctx,
                uint64_t seed, const uint64_t *idx, size_t B, size_t D, const int *labels,
                const double *x0, double *nll, double *terms);

#endif
