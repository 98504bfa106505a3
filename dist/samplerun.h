/* dist/samplerun.h - what `dfm sample` and `dfm eval RUN` run: load a model's weights for a
 * job spec, draw samples over the ranks with the coordinator (dist/coord.h), write them.
 *
 * Source (the same for every rank; checkpoints are read through dist/ckpt.h):
 *   - a run directory with weights.bin (a finished run): those weights, and its job.yaml;
 *   - a run directory without weights.bin (a run in progress, preempted or killed): its newest
 *     committed checkpoint that verifies (ckpt_find_latest: corrupt or partial ones are skipped
 *     with a warning), under RUN_DIR/ckpt; weights.bin wins when both exist, because it is
 *     what the run finished with;
 *   - one checkpoint (a step-N directory with its manifest.yaml): verified (every shard's size
 *     and SHA-256) before it is read, a truncated or damaged shard is an error naming it;
 *   - a checkpoint directory (the folder holding step-N directories): its newest that verifies;
 *   - a weights file, which needs the spec.
 * The spec: the one given, else RUN_DIR/job.yaml, else the spec a checkpoint's manifest
 * recorded. The weights' parameter table must equal the network's the spec describes, tensor by
 * tensor (name, shape, offset): anything else, a truncated file included, is an error naming the
 * first difference. The EMA weights are used when the source has them and sample.use_ema says
 * so (the default when the run kept an EMA).
 *
 * Sample i is a pure function of the weights, the sampler settings and i (dist/sample.h), so
 * the output is byte-identical for any rank count and chunk size.
 *
 * Outputs (rank 0): a NumPy array, shape (N, C, H, W) for images or (N, D) for vector data, C
 * order, float32 (the sampler's values; images in [-1, 1] after clipping) or uint8
 * (round((x + 1) * 127.5) clamped to 0..255); and for images a PNG grid of the first
 * SAMPLERUN_PNG_MAX samples (a scatter plot for 2-D data).
 */
#ifndef DFM_DIST_SAMPLERUN_H
#define DFM_DIST_SAMPLERUN_H

#include <stddef.h>
#include <stdint.h>

#include "dist/sample.h"
#include "io/jobspec.h"

#define SAMPLERUN_PNG_MAX 400

typedef struct {
    JobSpec js;          /* owned: the spec with the command's overrides */
    SampleSetup ss;      /* owned */
    float *params;       /* owned: the weights sampled with (n floats) */
    size_t n_params;
    int used_ema;
    char weights_path[4200];
    char run_dir[4096];  /* "" when the source was a file or a checkpoint outside a run */
    char from[4300];     /* what the weights were read from, for messages */
    uint64_t step;       /* the checkpoint's step (0 for a weights file) */
    float *noise, *known, *mask; /* owned: sample_model_inputs' arrays (ss points at them) */
} SampleModel;

/* Resolve source and spec, load and check the weights, set up the sampler. sets: extra
 * "section.key=value" overrides applied to the spec. use_ema: -1 spec's choice, 0, 1.
 * Collective (a checkpoint is verified and read over the ranks). */
int sample_model_init(SampleModel *m, const char *source, const char *job,
                      const char *const *sets, int n_sets, int use_ema);
void sample_model_free(SampleModel *m);

/* Optional per-sample inputs (paths or NULL), read on every rank:
 *   noise: (N, C, H, W) for images or (N, D), float32: sample i starts from row i instead of
 *          its keyed noise (x_T of a diffusion sampler, the tau = 0 state of a flow);
 *   image + mask: inpainting; each (N, ...) per sample or one (C, H, W) / (D) for every sample;
 *          image float32 in [-1, 1] or uint8 0..255, mask 1 = keep the image's value, 0 =
 *          generate (float32 or uint8 0/1). The samples hold the kept values exactly.
 * *n: the sample count asked (0 = none): set to the files' N; a different N is an error. */
int sample_model_inputs(SampleModel *m, const char *noise, const char *image, const char *mask,
                        size_t *n);

/* Draw samples first .. first+count-1 on this rank (not collective). out (count, D). */
int sample_model_draw(SampleModel *m, uint64_t first, size_t count, float *out);

typedef struct {
    size_t n, chunk;
    const char *npy;     /* path or NULL */
    int npy_u8;          /* 1: uint8, 0: float32 */
    const char *png;     /* path or NULL */
} SampleRunOut;

/* Draw n samples over the ranks and write them (collective). Prints a summary on rank 0. */
int samplerun(SampleModel *m, const SampleRunOut *o);

#endif
