/* dist/sample.h - drawing samples from a trained network, spread over the ranks.
 *
 * Sample i (a global index: 0, 1, 2, ...) is a pure function of the network's parameters, the
 * sampler configuration (its seed included) and i: its initial noise, every noise the sampler
 * draws and its class label are keyed by i, never by the rank or the thread. So the samples of a
 * list of indices are the same whether one rank draws them all or P ranks each draw a
 * contiguous part, and the samples of a long list can be drawn slice by slice (to bound memory)
 * with the same result.
 *
 *     SampleSetup ss;
 *     TRY(sample_setup_init(&ss, js, NULL));       // builds the job's network (or borrows one)
 *     TRY(sample_draw_range(&ss, params, 0, 64, x)); // x: (64, D) on every rank
 *     sample_setup_free(&ss);
 *
 * params are the weights to sample with: the final or EMA weights of weights.bin, a checkpoint's,
 * or NULL for the network's own. They are copied into the network for the call and the network's
 * own parameters restored afterwards. Every member of SampleSetup may be changed between calls
 * (another sampler, more steps, a fixed label).
 *
 * sample_draw and sample_draw_range are collective: every rank calls them with the same
 * arguments and every rank receives all the samples. A failure on one rank is returned on all.
 */
#ifndef DFM_DIST_SAMPLE_H
#define DFM_DIST_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "io/jobspec.h"
#include "model/net.h"
#include "sched/sampler.h"
#include "sched/schedule.h"

typedef struct {
    Net *net;             /* the network (owned when own_net) */
    int own_net;
    Schedule sched;       /* owned */
    SamplerConfig cfg;    /* sampler, steps, guidance, seed of the noise */
    double time_scale;    /* network time input = time_scale * the sampler's time */
    size_t D;             /* values per sample */
    int num_classes;      /* 0: unconditional */
    int label;            /* >= 0: every sample gets this class; -1: sample i gets i % num_classes */
    size_t batch;         /* samples per network call on one rank */
    float *saved;         /* scratch: the network's own parameters while sampling (n floats) */
    /* Optional inputs by sample index (borrowed; NULL = none). Sample i starts from row i of
     * noise (n_noise rows of D) instead of its keyed noise; inpainting keeps the entries where
     * mask is 1 at the values of known (row i of each when n_known > 1, row 0 for every sample
     * when n_known == 1). Indices drawn must be < n_noise (and < n_known when it is > 1). */
    const float *noise;
    size_t n_noise;
    const float *known, *mask;
    size_t n_known;
    /* network evaluations spent by this rank's draws since set-up (adaptive solvers vary per
       sample): the sum over samples, the most one sample took, the samples drawn */
    uint64_t nfe_total, nfe_max, n_drawn;
} SampleSetup;

/* From a job spec: schedule, the sample section's sampler and batch, label rule. net is borrowed
 * when given (its parameters are left as they are); when NULL the job's network is created with
 * zero parameters (pass the weights to sample_draw) and threads from train.threads or the node. */
int sample_setup_init(SampleSetup *ss, const JobSpec *js, Net *net);
void sample_setup_free(SampleSetup *ss); /* zeroed or freed accepted */

/* Samples idx[0..count) into out (count, D), on every rank. params: n floats or NULL. */
int sample_draw(SampleSetup *ss, const float *params, const uint64_t *idx, size_t count,
                float *out);
/* This rank's samples idx[0..count) into out (count, D), computed here alone: not collective,
 * for callers that share out the work themselves (dist/coord.h). params: n floats or NULL. */
int sample_draw_local(SampleSetup *ss, const float *params, const uint64_t *idx, size_t count,
                      float *out);
/* The same for the indices first, first + 1, ..., first + count - 1. */
int sample_draw_range(SampleSetup *ss, const float *params, uint64_t first, size_t count,
                      float *out);

/* Write samples (count, D) of the job's data (rank 0 only): an image grid PNG for image data, a
 * scatter plot PNG for toy2d, or for toy2d with a path ending in .csv, "x,y" rows. Atomic. */
int sample_write(const JobSpec *js, const char *path, const float *x, size_t count);

/* toy2d: the sliced Wasserstein-2 distance between samples (count, 2) and held-out draws of the
 * job's distribution, and the same distance between two independent held-out draws (what a
 * perfect model scores). */
int sample_toy_distance(const JobSpec *js, const float *x, size_t count, double *swd,
                        double *floor_swd);

#endif
