/* dist/evalpart.h - resumable evaluation: each chunk of per-item records that rank 0 collects
 * (dist/coord.h) is also appended to a partial-results file in the evaluation's output folder
 * (io/chunkfile.h: fsynced per chunk, checksummed, a torn tail ignored), so an evaluation that
 * is interrupted (a signal, kill -9, a lost node) continues where it stopped and gives the same
 * numbers as one that never stopped: every record is a pure function of its item's index.
 *
 * Each file is named by a key, the SHA-256 of everything its records depend on (the weights,
 * the job spec, the sampler settings, the evaluator's weights, the dataset split, n, the chunk
 * size, ...): a request that differs in any of them uses another file and never reuses these
 * records. Files are removed once the whole evaluation has succeeded (evalpart_finish).
 *
 *     EvalPart p;
 *     evalpart_init(&p, out_dir);             // NULL: nothing persisted
 *     EvalKey k; evalkey_init(&k, "model"); evalkey_add(&k, params, bytes); ...
 *     char key[65]; evalkey_final(&k, key);
 *     TRY(evalpart_run(&p, "samples", key, n, chunk, item_bytes, fn, ctx, rec));
 *     evalpart_finish(&p, rc == ERR_OK);
 *
 * Fault injection for tests: DFM_FAULT_EVAL_CHUNK_MS=N makes every chunk's computation sleep
 * N milliseconds first (so a test can interrupt an evaluation half-way).
 */
#ifndef DFM_DIST_EVALPART_H
#define DFM_DIST_EVALPART_H

#include <stddef.h>
#include <stdint.h>

#include "dist/coord.h"

typedef struct Sha256 Sha256;
typedef struct {
    Sha256 *s;
} EvalKey;

void evalkey_init(EvalKey *k, const char *kind);
void evalkey_add(EvalKey *k, const void *p, size_t n);
void evalkey_str(EvalKey *k, const char *s);  /* adds s with its terminating NUL */
void evalkey_u64(EvalKey *k, uint64_t v);
void evalkey_final(EvalKey *k, char hex[65]); /* frees the state */

typedef struct {
    char dir[4096];  /* "" = nothing persisted */
    char (*paths)[4200]; /* files written (rank 0), removed by evalpart_finish on success */
    size_t n_paths;
} EvalPart;

void evalpart_init(EvalPart *p, const char *dir);
/* Collective: coord_run_resume over items [0, n) whose records rank 0 loads from and appends
 * to <dir>/partial-<key 16 hex>.bin; what = a word for the resume message. */
int evalpart_run(EvalPart *p, const char *what, const char key[65], uint64_t n, size_t chunk,
                 size_t item_bytes, CoordWorkFn fn, void *ctx, void *result);
/* Remove the files when ok, keep them otherwise (to resume from); frees p. */
void evalpart_finish(EvalPart *p, int ok);

/* The fault-injection delay (above); call at the start of a chunk's work. */
void evalpart_fault_delay(void);

#endif
