/* dist/data.h - datasets across ranks: one download per node, and each rank's batch slice.
 *
 * dist_fetch_node_once runs `fetch` on exactly one rank per node (local rank 0) while the other
 * ranks of that node wait at a node barrier; the ranks then agree on whether every download
 * succeeded, run `verify` on every rank, and agree again. If any rank failed, every rank
 * returns an error (the failing ranks with their own message, the others with ERR_STATE naming
 * the failing rank), so no rank trains on data another rank rejected. Collective: every rank
 * must call it. Leaders of different nodes sharing one file system
 * are serialised by the fetch lock (io/fetch.h): the second re-verifies instead of
 * downloading. Without MPI (or on one rank) it is fetch followed by verify.
 *
 * dist_shard_range splits a global batch of B items into contiguous parts: rank r of P takes
 * [floor(B*r/P), floor(B*(r+1)/P)). The parts cover the batch exactly once for any P; they are
 * equal when P divides B (a trainer that averages gradients must weight by count otherwise).
 */
#ifndef DFM_DIST_DATA_H
#define DFM_DIST_DATA_H

#include <stddef.h>

#include "io/fetch.h"
#include "io/jobspec.h"

typedef int (*DistDataFn)(void *ctx);

int dist_fetch_node_once(DistDataFn fetch, DistDataFn verify, void *ctx);

/* dataset_fetch on one rank per node, dataset_verify on all (see io/dataset.h). */
int dist_dataset_fetch(const char *name, const char *dir, const char *const *extra,
                       size_t nextra, int builtin, const FetchOptions *opts);

/* dist_dataset_fetch for the dataset of a job spec: data.dir, data.mirrors (none = the
 * built-in ones) and data.allow_unpinned. */
int dist_dataset_fetch_job(const JobSpec *js, const char *name);

void dist_shard_range(size_t batch, int rank, int size, size_t *first, size_t *count);

#endif
