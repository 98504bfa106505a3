/* dist/evalrun.h - what `dfm eval` runs: read samples, compute their records over the ranks
 * (dist/coord.h), score them and their real-data floor (dist/evaluate.h), print the table.
 * Collective: every rank calls it; rank 0 alone prints.
 */
#ifndef DFM_DIST_EVALRUN_H
#define DFM_DIST_EVALRUN_H

#include <stddef.h>
#include <stdio.h>

#include "dist/evaluate.h"

typedef struct {
    const char *samples;   /* .npy, (N, C, H, W) or (N, H, W), float32 [-1, 1] or uint8 */
    const char *labels;    /* .npy (N) intended classes, or NULL */
    const char *evaluator; /* registry name */
    const char *data_dir;
    const char *weights;   /* evaluator weights override, or NULL */
    size_t n_ref;          /* 0: the whole test split */
    size_t chunk;
    int floor;             /* 1: also score the real-data floor */
} EvalRunArgs;

void evalrun_args_default(EvalRunArgs *a);

/* Load the images of a .npy into (N, C*H*W) floats in [-1, 1] for an evaluator expecting
 * C x H x W (ERR_ARG naming the shapes when they do not fit). Caller frees *x with xfree. */
int evalrun_load_images(const char *path, size_t C, size_t H, size_t W, float **x, size_t *n);

/* Print one table of scores (floor may be NULL). */
void evalrun_print(FILE *out, const Evaluation *ev, const EvalScore *s, const EvalScore *floor);

int evalrun_npy(const EvalRunArgs *a, FILE *out);

#endif
