/* dist/data.c - one fetch per node, verification everywhere, batch slices. See dist/data.h. */
#include "dist/data.h"

#include <stdint.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "dist/dist.h"
#include "io/dataset.h"

int dist_fetch_node_once(DistDataFn fetch, DistDataFn verify, void *ctx)
{
    int rc = ERR_OK;
    if (dist_local_rank() == 0) rc = fetch(ctx);
    /* The others wait for their node's download (successful or not) before looking. */
    int brc = dist_node_barrier();
    if (rc == ERR_OK && brc != ERR_OK) rc = brc;
    /* Did any downloader fail? Then nobody verifies: the downloaders report their own error,
     * the others name the rank to look at. */
    int64_t failed = rc != ERR_OK ? dist_rank() + 1 : 0;
    TRY(dist_allreduce_max_i64(&failed, 1));
    if (rc != ERR_OK) return rc;
    if (failed) {
        ERR(ERR_STATE, "the download on rank %lld failed", (long long)(failed - 1));
        err_hint("see rank %lld's error", (long long)(failed - 1));
        return ERR_STATE;
    }
    rc = verify(ctx);
    failed = rc != ERR_OK ? dist_rank() + 1 : 0;
    int arc = dist_allreduce_max_i64(&failed, 1);
    if (rc != ERR_OK) return rc;
    if (arc != ERR_OK) return arc;
    if (failed) {
        ERR(ERR_STATE, "the data failed verification on rank %lld", (long long)(failed - 1));
        err_hint("see rank %lld's error", (long long)(failed - 1));
        return ERR_STATE;
    }
    return ERR_OK;
}

typedef struct {
    const char *name, *dir;
    const char *const *extra;
    size_t nextra;
    int builtin;
    const FetchOptions *opts;
} DatasetJob;

static int job_fetch(void *ctx)
{
    const DatasetJob *j = ctx;
    return dataset_fetch(j->name, j->dir, j->extra, j->nextra, j->builtin, j->opts);
}

static int job_verify(void *ctx)
{
    const DatasetJob *j = ctx;
    return dataset_verify(j->name, j->dir);
}

int dist_dataset_fetch(const char *name, const char *dir, const char *const *extra,
                       size_t nextra, int builtin, const FetchOptions *opts)
{
    DatasetJob j = {name, dir, extra, nextra, builtin, opts};
    return dist_fetch_node_once(job_fetch, job_verify, &j);
}

int dist_dataset_fetch_job(const JobSpec *js, const char *name)
{
    FetchOptions o;
    fetch_options_default(&o);
    o.allow_unpinned = js->data.allow_unpinned;
    return dist_dataset_fetch(name, js->data.dir, (const char *const *)js->data.mirrors,
                              (size_t)js->data.n_mirrors, js->data.n_mirrors == 0, &o);
}

void dist_shard_range(size_t batch, int rank, int size, size_t *first, size_t *count)
{
    ASSERT(size >= 1 && rank >= 0 && rank < size);
    size_t a = batch * (size_t)rank / (size_t)size;
    size_t b = batch * (size_t)(rank + 1) / (size_t)size;
    *first = a;
    *count = b - a;
}
