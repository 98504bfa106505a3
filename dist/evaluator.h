/* dist/evaluator.h - the classifiers behind FD-FMNIST and FD-MNIST: their registry (recipe,
 * shipped weights and SHA-256), training, loading and feature extraction.
 *
 * FID needs Inception-v3 weights dfm cannot ship, so dfm trains its own small classifier
 * (model/classifier.h) per dataset and uses its penultimate features (fc1, after ReLU) for a
 * Frechet distance named after the evaluator: FD-FMNIST, FD-MNIST. The registry below is the
 * one place these names, files and hashes are spelled. A shipped weights file lives in the
 * source tree under model/evaluators/ and is refused unless its SHA-256 equals the pinned one;
 * `dfm evaluator train NAME` reproduces it from the recipe bit for bit on the same CPU kind
 * (OpenBLAS picks its kernels per CPU, and another kernel rounds differently).
 *
 * Where the files are found: $DFM_ROOT when set, else the directory above the running binary
 * (bin/dfm -> ./). A weights file given by path is loaded as is (its hash is printed).
 * Single-process code: nothing here talks to MPI; it is in dist/ because it joins io/ (datasets,
 * weights files) and model/ (the network).
 */
#ifndef DFM_DIST_EVALUATOR_H
#define DFM_DIST_EVALUATOR_H

#include <stddef.h>
#include <stdint.h>

#include "model/classifier.h"

typedef struct {
    const char *name;    /* "fmnist" */
    const char *metric;  /* "FD-FMNIST" */
    const char *dataset; /* io/dataset.h name: "fashion-mnist" */
    const char *file;    /* relative to the source root */
    const char *sha256;  /* of the shipped file; NULL when none is shipped yet */
    double test_acc;     /* top-1 on the dataset's test split, measured when it was trained */
    ClfTrainConfig recipe;
} EvaluatorInfo;

size_t evaluator_count(void);
const EvaluatorInfo *evaluator_at(size_t i);
/* By evaluator name, metric name or dataset name; NULL when none (with ERR_ARG recorded, listing
 * the known names). */
const EvaluatorInfo *evaluator_find(const char *name);

/* Absolute path of a file of the source tree (model/evaluators/...), see above. */
int evaluator_source_path(char *buf, size_t n, const char *rel);

/* Write / read a classifier as a weights file (io/weights.h; the configuration is read back
 * from the tensor shapes). */
int evaluator_save(Clf *c, const char *path);
int evaluator_read(Clf **out, const char *path);
/* The shipped classifier of `info`, its SHA-256 checked against the pin (ERR_INTEGRITY). */
int evaluator_load(Clf **out, const EvaluatorInfo *info);
/* SHA-256 of a file as 64 hex digits. */
int evaluator_file_sha256(const char *path, char hex[65]);

/* Train `info`'s classifier from its recipe (epochs > 0 overrides the recipe's) on the train
 * split under data_dir, or on its first `limit` examples when limit > 0 (quick runs); progress
 * lines every log_every steps to stderr (0 = none). */
int evaluator_train(Clf **out, const EvaluatorInfo *info, const char *data_dir, int epochs,
                    size_t limit, int log_every);
/* Top-1 accuracy on the test split (its first `limit` examples when limit > 0). */
int evaluator_test(Clf *c, const EvaluatorInfo *info, const char *data_dir, size_t limit,
                   double *acc);

#endif
