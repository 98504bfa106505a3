/* dist/likelihood.h - `dfm eval --metrics nll,elbo`: likelihoods of held-out data under a trained
 * model, spread over the ranks with the coordinator (dist/coord.h).
 *
 * Data: the first n examples of the test split (images), or n held-out draws of a 2-D toy
 * (the same draws `dfm train` scores its samples against). A conditional model is scored on
 * each example's own class (a conditional likelihood).
 *
 * elbo (objective ddpm): the DDPM variational bound -log p(x0) <= L_T + sum_{t>=2} L_{t-1} + L_0
 * (sched/vlb.h), every one of the T + 1 terms of every example computed. The work is the
 * (t, example) pairs in t-major order, handed out in chunks to whichever rank is free; each pair's
 * value depends on (seed, example, t) alone (the network's output for one example does not depend
 * on its batch), and rank 0 sums them in one fixed order (per example L_T, t = 1, ..., T; then the
 * examples in order), so the bound is bitwise the same on any number of ranks. Images use the
 * discretised-Gaussian decoder on the 256 levels of 8-bit data, so the bound is on the probability
 * of the 8-bit image and bits/dim = nats / (D ln 2); 2-D data use the Gaussian density decoder.
 *
 * nll (every objective): the exact log-likelihood through the probability-flow ODE by the
 * instantaneous change of variables, integrated by RK45 with sample.rtol / sample.atol:
 *   objective sde: the model's SDE from t_eps to 1;
 *   objective ddpm (linear betas, eps prediction): the VP SDE with beta(t) = T beta_1 + t T
 *     (beta_T - beta_1), whose marginals match the discrete chain at t = i / T; the network sees
 *     the time t T - 1 (its 0-based timestep) and the integral starts at t = 1 / T;
 *   objective flow: the flow ODE from the data (tau = 1) to the noise (tau = 0).
 * The divergence is exact (D vector-Jacobian products) for data of at most 16 values and
 * Hutchinson's estimate with one Rademacher probe per example otherwise, both through the
 * network's input gradient (net_backward, model/net.h). 8-bit images are dequantised uniformly
 * inside their bin first: y = 2 (k + u) / 256 - 1, u ~ U(0, 1) keyed by the example, so the bins
 * of width 2/256 tile [-1, 1] and bits/dim = nll(y) / (D ln 2) + log2(256 / 2) is an upper bound
 * on the 8-bit image's -log2 P / D (Jensen). A model that spreads its mass uniformly over [-1, 1]^D
 * scores exactly 8 bits/dim, the reference printed beside the numbers. 2-D data are continuous:
 * their nll is a negative log density, in nats.
 *
 * Collective; results on rank 0.
 */
#ifndef DFM_DIST_LIKELIHOOD_H
#define DFM_DIST_LIKELIHOOD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dist/evalrun.h" /* EvalRunArgs */
#include "dist/samplerun.h"

typedef struct {
    const char *data_dir; /* image datasets' directory */
    size_t n;             /* held-out examples scored */
    size_t chunk;         /* work items per chunk handed to a rank */
    size_t batch;         /* examples per network call */
    int elbo, nll;        /* which to compute */
} LikelihoodArgs;

typedef struct {
    size_t n, D;
    int image;             /* 8-bit data: bits/dim are reported */
    int T;                 /* elbo: diffusion steps */
    double elbo;           /* mean bound, nats per example */
    double elbo_prior;     /* mean L_T */
    double elbo_kl;        /* mean sum of L_1 .. L_{T-1} */
    double elbo_decoder;   /* mean L_0 */
    double nll;            /* mean -log p, nats per example (of the dequantised data for images) */
    double nfe_mean;       /* nll: network evaluations per example, mean and most */
    uint64_t nfe_max;
    int hutchinson;        /* nll: 1 Hutchinson's estimate, 0 exact divergence */
    double wall_elbo, wall_nll;
} LikelihoodResult;

/* What `dfm eval RUN --metrics ...` asks of a model: 1 when js->eval.metrics holds nll or elbo;
 * *others = 1 when it also holds a sample metric (swd, fd_fmnist, spectrum). */
int likelihood_wanted(const JobSpec *js, int *others);
/* The likelihoods js->eval.metrics names, for ea->n test examples (ea->data_dir), batch
 * eval.batch; prints the table on rank 0 (collective). */
int likelihood_eval(SampleModel *m, const EvalRunArgs *ea, FILE *out);

/* Compute what a asks for (collective). */
int likelihood_run(SampleModel *m, const LikelihoodArgs *a, LikelihoodResult *r);
/* bits/dim of a mean negative log-likelihood in nats per example: elbo (bound on the 8-bit
 * probability) and nll (dequantised density). */
double likelihood_bpd_elbo(const LikelihoodResult *r);
double likelihood_bpd_nll(const LikelihoodResult *r);
/* Print the table (rank 0). */
void likelihood_print(FILE *out, const SampleModel *m, const LikelihoodArgs *a,
                      const LikelihoodResult *r);

#endif
