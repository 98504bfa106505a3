/* dist/evalrun.h - what `dfm eval` runs: read samples, compute their records over the ranks
 * (dist/coord.h), score them and their real-data floor (dist/evaluate.h), print the table.
 * Collective: every rank calls it; rank 0 alone prints.
 */
#ifndef DFM_DIST_EVALRUN_H
#define DFM_DIST_EVALRUN_H

#include <stddef.h>
#include <stdio.h>

#include "dist/evaluate.h"
#include "dist/samplerun.h"

typedef struct {
    const char *samples;   /* .npy, (N, C, H, W) or (N, H, W), float32 [-1, 1] or uint8 */
    const char *labels;    /* .npy (N) intended classes, or NULL */
    const char *evaluator; /* registry name */
    const char *data_dir;
    const char *weights;   /* evaluator weights override, or NULL */
    size_t n_ref;          /* 0: the whole test split */
    size_t n;              /* samples to draw (model sources) */
    size_t chunk;
    int floor;             /* 1: also score the real-data floor */
} EvalRunArgs;

void evalrun_args_default(EvalRunArgs *a);

/* Load the images of a .npy into (N, C*H*W) floats in [-1, 1] for an evaluator expecting
 * C x H x W (ERR_ARG naming the shapes when they do not fit). Caller frees *x with xfree. */
int evalrun_load_images(const char *path, size_t C, size_t H, size_t W, float **x, size_t *n);

/* Print one table of scores (floor may be NULL). */
void evalrun_print(FILE *out, const Evaluation *ev, const EvalScore *s, const EvalScore *floor);

/* out_dir: where partial results persist so an interrupted run resumes (dist/evalpart.h), or
 * NULL for none. */
int evalrun_npy(const EvalRunArgs *a, const char *out_dir, FILE *out);

/* A sweep: the product of up to EVAL_SWEEP_AXES axes, each a sampler setting (steps, eta,
 * guidance) with its values; points run in row-major order (the last axis fastest). */
#define EVAL_SWEEP_AXES 3
#define EVAL_SWEEP_VALUES 16
typedef struct {
    int key;   /* 0 steps, 1 eta, 2 guidance */
    int n;
    double v[EVAL_SWEEP_VALUES];
} EvalSweepAxis;
typedef struct {
    int n_axes;
    EvalSweepAxis axes[EVAL_SWEEP_AXES];
} EvalSweep;

/* Add one axis from "steps=10,20,50" (ERR_ARG on a bad key or value). */
int evalrun_sweep_parse(EvalSweep *sw, const char *spec);

/* Draw a->n samples from the model at every sweep point (one point without axes) over the
 * ranks, score each beside the real-data floor, print the tables; with axes, also write
 * out_dir/sweep.md (Markdown) and out_dir/sweep.csv (score, NFE and wall time per point).
 * Every chunk of records (the samples', the floor's, the reference's) persists in out_dir
 * until the whole evaluation succeeded, so an interrupted run resumes (dist/evalpart.h). */
int evalrun_model(SampleModel *m, const EvalRunArgs *a, const EvalSweep *sw, const char *out_dir,
                  FILE *out);

#endif
