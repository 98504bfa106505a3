/* dist/evaluate.h - scoring image sets: FD-FMNIST (and FD-MNIST), precision/recall, the class
 * histogram and accuracy, the spectral distance, each beside its real-data floor.
 *
 * Per image, the ranks compute one record (evaluation_records): the classifier's penultimate
 * features, its predicted class and the image's radially averaged power spectrum. Records, not
 * images, travel to rank 0 (through dist/coord.h), which scores them in index order:
 * the Frechet statistics and spectrum sums are accumulated per fixed block of FD_BLOCK records
 * and the blocks merged in block order (model/fdist.h), so every number is the same for any
 * rank count and chunk size.
 *
 * Reference: the first n_ref images of the dataset's test split (all of it by default).
 * Real-data floor: the first n images of the train split scored against the same reference,
 * i.e. what a perfect generator of n samples would score. Precision/recall use k = 3 nearest
 * neighbours on at most EVAL_PR_MAX records of each set (the first ones).
 */
#ifndef DFM_DIST_EVALUATE_H
#define DFM_DIST_EVALUATE_H

#include <stddef.h>
#include <stdint.h>

#include "dist/evalpart.h"
#include "dist/evaluator.h"
#include "model/fdist.h"

#define EVAL_PR_MAX 5000
#define EVAL_PR_K 3

typedef struct {
    const EvaluatorInfo *info;
    Clf *clf;                     /* owned */
    char data_dir[1024];
    size_t C, H, W, F, nbins;
    int K;
    size_t chunk;                 /* coordinator chunk (records) */
    /* the reference set, computed on first use */
    size_t n_ref;
    unsigned char *ref;           /* (n_ref) records */
    char fingerprint[65];         /* SHA-256 of the evaluator's weights and shapes */
    EvalPart *part;               /* borrowed: where records persist for resuming, or NULL */
} Evaluation;

typedef struct {
    size_t n;
    double fd;                    /* FD-<evaluator> against the reference */
    double precision, recall;
    double spec_db;               /* spectral distance to the reference, dB */
    double hist_tv;               /* class histogram vs uniform, total variation */
    double class_acc;             /* accuracy against intended labels, or -1 without labels */
    uint64_t *hist;               /* (K) predicted classes; owned */
    double *spectrum;             /* (nbins) mean power; owned */
    double *ref_spectrum;         /* (nbins) the reference's mean power; owned */
    size_t nbins;
} EvalScore;

void eval_score_free(EvalScore *s); /* zeroed accepted */

/* Load the evaluator (its shipped weights, SHA-256 checked, or weights_path when given) for
 * the images of info->dataset under data_dir. n_ref = 0: the whole test split. */
int evaluation_init(Evaluation *ev, const EvaluatorInfo *info, const char *data_dir,
                    const char *weights_path, size_t n_ref);
void evaluation_free(Evaluation *ev); /* zeroed accepted */

/* Bytes of one record. */
size_t evaluation_record_bytes(const Evaluation *ev);
/* Records of count images x (count, C, H, W) in [-1, 1] into rec (count records). */
void evaluation_records(Evaluation *ev, const float *x, size_t count, unsigned char *rec);

/* Score n records (on rank 0) against the reference; labels (n) intended classes or NULL.
 * Collective only for building the reference on first use (every rank must call it then);
 * rec may be NULL on ranks other than 0, whose *out is left zeroed. */
int evaluation_score(Evaluation *ev, const unsigned char *rec, size_t n, const int *labels,
                     EvalScore *out);
/* Plot radially averaged spectra, 10 log10(power) against the radial frequency, to a PNG:
 * the reference's (from s[0]) and each score's (labels[i]; "generated" when NULL). */
int evaluation_plot_spectra(const Evaluation *ev, const EvalScore *s, size_t ns,
                            const char *const *labels, const char *path);

/* Compute the reference's records now (collective; evaluation_score does it on first use).
 * After it, evaluation_score on rank 0 calls nothing collective. */
int evaluation_prepare(Evaluation *ev);

/* The real-data floor for n samples (collective). */
int evaluation_floor(Evaluation *ev, size_t n, EvalScore *out);

/* Records of the first n images of a dataset split, computed over the ranks (collective);
 * result on rank 0 (rec: n records there, NULL elsewhere). */
int evaluation_dataset_records(Evaluation *ev, int split, size_t n, unsigned char *rec);

#endif
