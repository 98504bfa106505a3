/* io/dataset.h - the datasets dfm trains on: manifests for fetching, format readers, 2-D toys.
 *
 * The registry: one entry per dataset, under one name (the DATASET_* macros below; the job-spec
 * schema offers the same words for data.dataset and data.toy), with its shape and classes, so
 * no other table repeats them.
 *
 * Image datasets (fetched by `dfm fetch NAME`, stored under <dir>/<name>/):
 *   fashion-mnist  60000 train / 10000 test, 1x28x28, 10 classes, IDX files (gzip on the wire)
 *   mnist          same layout as fashion-mnist
 *   cifar10        50000 train / 10000 test, 3x32x32, 10 classes, binary batches from a tar.gz
 * What is stored is the decompressed payload (IDX files; the CIFAR-10 tar), verified by SHA-256
 * at fetch time and again by dataset_open. Pins:
 *   - fashion-mnist: SHA-256 and size of each decompressed IDX file (identical for every mirror),
 *     plus the .gz hashes of Debian's re-compressed copies (informational, see io/fetch.h).
 *     Its first mirror is the Debian package dataset-fashion-mnist
 *     (file:///usr/share/datasets/fashion-mnist/), so it fetches offline where that is installed.
 *   - mnist: the payload sizes and the SHA-256 of the upstream .gz files are pinned; the
 *     payload hashes are not, so the first verified download records them when its .gz
 *     matched a pin; a mirror that served differently compressed bytes is refused unless the
 *     user allows unpinned bytes for that run (--allow-unpinned, data.allow_unpinned), and
 *     later runs check the record.
 *   - cifar10: the SHA-256 of the upstream cifar-10-binary.tar.gz is pinned, the payload hash
 *     is recorded the same way; the tar is validated member by member
 *     (cifar-10-batches-bin/data_batch_1..5.bin and test_batch.bin, 10000 records of 1 + 3072
 *     bytes each).
 * Readers check every header field (magic, dimension count, counts, rows, cols, exact file
 * length, label range, tar checksums and member sizes) and fail with ERR_FORMAT naming the file
 * and the field.
 *
 * Toy 2-D datasets (generated, never fetched), example i a pure function of (seed, i) through
 * rng_stream(RNG_P_TOY, i):
 *   moons         sklearn's two half circles, Gaussian noise std 0.1, then centred (minus
 *                 (0.5, 0.25)) and scaled by 2; labels 0 (upper) / 1 (lower), 2 classes
 *   8gaussians    8 Gaussians with centres on the circle of radius 2 at angles k*pi/4, std 0.1;
 *                 label k, 8 classes
 *   checkerboard  uniform on the 8 cells of a 4x4 board over [-2,2]^2 whose integer corner
 *                 floor(x)+floor(y) is even; no labels
 *   swissroll     t = 1.5*pi*(1 + 2u), point (t cos t, t sin t) / 5 plus Gaussian noise std 0.05
 *                 (radius 0.94 .. 2.83); no labels
 *
 * Ownership: a Dataset owns its buffers; dataset_free releases them and zeroes the struct
 * (accepts a zeroed struct).
 */
#ifndef DFM_IO_DATASET_H
#define DFM_IO_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "io/fetch.h"

typedef enum { DATASET_TRAIN = 0, DATASET_TEST = 1 } DatasetSplit;

typedef struct {
    char name[32];
    size_t n;          /* examples */
    size_t c, h, w;    /* images: channels, rows, cols; toy: c = D (2), h = w = 1 */
    uint8_t *u8;       /* images: (n, c, h, w) row-major, 0..255; NULL for toy data */
    float *f32;        /* toy: (n, c); NULL for images */
    int32_t *labels;   /* (n), 0..num_classes-1; NULL when the dataset has no labels */
    int num_classes;   /* 0 when unlabelled */
} Dataset;

/* The registry's names, spelled here once. */
#define DATASET_FASHION_MNIST "fashion-mnist"
#define DATASET_MNIST "mnist"
#define DATASET_CIFAR10 "cifar10"
#define DATASET_MOONS "moons"
#define DATASET_8GAUSSIANS "8gaussians"
#define DATASET_CHECKERBOARD "checkerboard"
#define DATASET_SWISSROLL "swissroll"

/* One registry entry (what `dfm fetch --list` shows, and the shape every reader agrees on). */
typedef struct {
    const char *name;
    const char *description;
    int fetched;       /* 1: downloaded by dfm fetch; 0: generated (a 2-D toy) */
    int c, h, w;       /* example shape as in Dataset: images C x H x W; toys 2 x 1 x 1 */
    int num_classes;   /* labels 0..num_classes-1; 0 when unlabelled */
} DatasetInfo;

size_t dataset_count(void);
const DatasetInfo *dataset_info(size_t i);
const DatasetInfo *dataset_find(const char *name); /* NULL when no dataset has that name */
int dataset_is_toy(const char *name);

/* Number of example values: c*h*w. */
static inline size_t dataset_dim(const Dataset *ds) { return ds->c * ds->h * ds->w; }

/* Download and verify every file of dataset `name` into <dir>/<name>/, holding the directory
 * lock. extra mirrors (base URLs) are tried before the built-in list, which is skipped when
 * builtin is 0; base_opts supplies retries, timeouts and progress (its mirror fields are
 * ignored; NULL = defaults). */
int dataset_fetch(const char *name, const char *dir, const char *const *extra, size_t nextra,
                  int builtin, const FetchOptions *base_opts);

/* Verify every stored file of `name` under <dir>/<name>/ without downloading (hash + format). */
int dataset_verify(const char *name, const char *dir);

/* Load a fetched dataset's split, verifying its files first. */
int dataset_open(Dataset *ds, const char *name, const char *dir, DatasetSplit split);

/* Generate n examples of a toy dataset (name as above) from seed. */
int dataset_toy(Dataset *ds, const char *name, size_t n, uint64_t seed);

void dataset_free(Dataset *ds);

/* Format checks, exposed for tests and for the fetch manifests. kind: 2051 images, 2049 labels;
 * count 0 = any. */
int dataset_idx_check(const char *path, uint32_t magic, uint32_t count, uint32_t rows,
                      uint32_t cols);
int dataset_cifar_tar_check(const char *path);

#endif
