/* tests/dist/mpi_loader.c - under mpirun -np P: each rank loads its slice of every global
 * batch; the slices put together must equal the batch one process loads alone, and over an
 * epoch every example must be used at most once (exactly S*B of them). Exit status = verdict. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "dist/data.h"
#include "dist/dist.h"
#include "io/dataset.h"
#include "io/loader.h"

static int g_fail;
#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "mpi_loader: rank %d: %s:%d: ", dist_rank(), __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fprintf(stderr, "\n");                                                         \
            g_fail = 1;                                                                    \
        }                                                                                  \
    } while (0)

int main(int argc, char **argv)
{
    if (dist_init(&argc, &argv) != ERR_OK) {
        fprintf(stderr, "mpi_loader: %s\n", err_message());
        return 1;
    }
    int rank = dist_rank(), P = dist_size();
    Dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.n = 103;
    ds.c = 2;
    ds.h = 3;
    ds.w = 4;
    ds.num_classes = 10;
    size_t dim = dataset_dim(&ds);
    ds.u8 = malloc(ds.n * dim);
    ds.labels = malloc(ds.n * sizeof *ds.labels);
    for (size_t i = 0; i < ds.n; i++) {
        ds.labels[i] = (int32_t)(i % 10);
        for (size_t t = 0; t < dim; t++) ds.u8[i * dim + t] = (uint8_t)((i * 13 + t * 7) & 255);
    }
    LoaderConfig cfg = {.seed = 2024, .batch = 12, .hflip = 1};
    size_t B = cfg.batch, first, count;
    dist_shard_range(B, rank, P, &first, &count);
    uint64_t S = loader_steps_per_epoch(ds.n, B);
    float *mine = malloc(B * dim * sizeof *mine), *ref = malloc(B * dim * sizeof *ref);
    double *lab = malloc(B * sizeof *lab), *sid = malloc(B * sizeof *sid);
    double *cover = calloc(ds.n, sizeof *cover);
    int labs[64];
    uint64_t sidx[64];
    for (uint64_t k = 0; k < 2 * S; k++) {
        memset(mine, 0, B * dim * sizeof *mine);
        memset(lab, 0, B * sizeof *lab);
        memset(sid, 0, B * sizeof *sid);
        loader_fill(&ds, &cfg, k, first, count, mine + first * dim, labs, sidx);
        for (size_t t = 0; t < count; t++) {
            lab[first + t] = labs[t];
            sid[first + t] = (double)sidx[t];
            if (k < S) cover[loader_global_index(&cfg, ds.n, k, first + t)] += 1.0;
        }
        /* Each position is written by exactly one rank, so the sums are the values. */
        CHECK(dist_allreduce_sum_f32(mine, B * dim) == ERR_OK, "allreduce: %s", err_message());
        CHECK(dist_allreduce_sum_f64(lab, B) == ERR_OK, "allreduce");
        CHECK(dist_allreduce_sum_f64(sid, B) == ERR_OK, "allreduce");
        loader_fill(&ds, &cfg, k, 0, B, ref, labs, sidx);
        CHECK(memcmp(mine, ref, B * dim * sizeof *ref) == 0,
              "global batch %llu differs from the single-process batch with %d ranks",
              (unsigned long long)k, P);
        for (size_t j = 0; j < B; j++) {
            CHECK(lab[j] == labs[j], "batch %llu item %zu label", (unsigned long long)k, j);
            CHECK(sid[j] == (double)(k * B + j), "batch %llu item %zu sample index",
                  (unsigned long long)k, j);
        }
    }
    CHECK(dist_allreduce_sum_f64(cover, ds.n) == ERR_OK, "allreduce");
    double used = 0;
    for (size_t i = 0; i < ds.n; i++) {
        CHECK(cover[i] <= 1.0, "example %zu used %g times in epoch 0", i, cover[i]);
        used += cover[i];
    }
    CHECK(used == (double)(S * B), "epoch 0 used %g examples, expected %llu", used,
          (unsigned long long)(S * B));
    free(mine);
    free(ref);
    free(lab);
    free(sid);
    free(cover);
    free(ds.u8);
    free(ds.labels);
    int64_t bad = g_fail;
    dist_allreduce_max_i64(&bad, 1);
    if (rank == 0) printf("mpi_loader: %d rank%s: %s\n", P, P == 1 ? "" : "s", bad ? "FAILED" : "ok");
    dist_finalize();
    return bad ? 1 : 0;
}
