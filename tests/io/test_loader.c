/* tests/io/test_loader.c - keyed permutation, global batches split across simulated ranks,
 * scaling and flips. */
#include <criterion/criterion.h>
#include <string.h>

#include "dist/data.h"
#include "io/dataset.h"
#include "io/loader.h"

/* A small image dataset whose pixels identify the example: pixel (c, y, x) of example i is
 * (i + 3*c + 5*y + 7*x) mod 256, label i mod 10. */
static void make_images(Dataset *ds, size_t n, size_t C, size_t H, size_t W)
{
    memset(ds, 0, sizeof *ds);
    ds->n = n;
    ds->c = C;
    ds->h = H;
    ds->w = W;
    ds->num_classes = 10;
    ds->u8 = malloc(n * C * H * W);
    ds->labels = malloc(n * sizeof *ds->labels);
    for (size_t i = 0; i < n; i++) {
        ds->labels[i] = (int32_t)(i % 10);
        for (size_t c = 0; c < C; c++)
            for (size_t y = 0; y < H; y++)
                for (size_t x = 0; x < W; x++)
                    ds->u8[((i * C + c) * H + y) * W + x] = (uint8_t)((i + 3 * c + 5 * y + 7 * x) & 255);
    }
}

static void free_images(Dataset *ds)
{
    free(ds->u8);
    free(ds->labels);
    memset(ds, 0, sizeof *ds);
}

Test(loader, perm_is_a_bijection)
{
    static const uint64_t sizes[] = {1, 2, 3, 7, 16, 17, 1000, 4097, 60000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        uint64_t n = sizes[s];
        unsigned char *seen = calloc(n, 1);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t p = loader_perm(42, 3, n, i);
            cr_assert(p < n);
            cr_assert(!seen[p], "n=%llu: %llu hit twice", (unsigned long long)n, (unsigned long long)p);
            seen[p] = 1;
        }
        free(seen);
    }
}

Test(loader, perm_depends_on_seed_and_epoch_and_looks_shuffled)
{
    uint64_t n = 1000;
    int same_epoch = 0, same_seed = 0, fixed = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t a = loader_perm(1, 0, n, i);
        same_epoch += a == loader_perm(1, 1, n, i);
        same_seed += a == loader_perm(2, 0, n, i);
        fixed += a == i;
        cr_assert_eq(a, loader_perm(1, 0, n, i)); /* deterministic */
    }
    /* a random permutation has about 1 coincidence with another one */
    cr_assert(same_epoch < 10 && same_seed < 10 && fixed < 10, "%d %d %d", same_epoch, same_seed, fixed);
}

Test(loader, every_example_once_per_epoch_across_ranks)
{
    Dataset ds;
    make_images(&ds, 103, 1, 2, 3);
    LoaderConfig cfg = {.seed = 9, .batch = 10, .hflip = 0};
    uint64_t S = loader_steps_per_epoch(ds.n, cfg.batch);
    cr_assert_eq(S, 10); /* drop-last: 3 examples unused per epoch */
    for (int P = 1; P <= 4; P *= 2) {
        for (uint64_t epoch = 0; epoch < 2; epoch++) {
            int *count = calloc(ds.n, sizeof *count);
            for (uint64_t k = epoch * S; k < (epoch + 1) * S; k++)
                for (int r = 0; r < P; r++) {
                    size_t first, cnt;
                    dist_shard_range(cfg.batch, r, P, &first, &cnt);
                    for (size_t j = first; j < first + cnt; j++)
                        count[loader_global_index(&cfg, ds.n, k, j)]++;
                }
            size_t used = 0;
            for (size_t i = 0; i < ds.n; i++) {
                cr_assert(count[i] <= 1, "P=%d epoch %llu: example %zu used %d times", P,
                          (unsigned long long)epoch, i, count[i]);
                used += (size_t)count[i];
            }
            cr_assert_eq(used, S * cfg.batch);
            free(count);
        }
    }
    free_images(&ds);
}

Test(loader, shard_range_covers_batch_exactly)
{
    for (size_t B = 1; B <= 33; B++)
        for (int P = 1; P <= 8; P++) {
            size_t next = 0;
            for (int r = 0; r < P; r++) {
                size_t first, cnt;
                dist_shard_range(B, r, P, &first, &cnt);
                cr_assert_eq(first, next);
                next = first + cnt;
                cr_assert(cnt == B / (size_t)P || cnt == B / (size_t)P + 1);
            }
            cr_assert_eq(next, B);
        }
}

Test(loader, global_batches_equal_for_1_2_4_ranks)
{
    Dataset ds;
    make_images(&ds, 250, 3, 4, 5);
    LoaderConfig cfg = {.seed = 123, .batch = 16, .hflip = 1};
    size_t dim = dataset_dim(&ds), B = cfg.batch;
    float *ref = malloc(B * dim * sizeof *ref), *got = malloc(B * dim * sizeof *got);
    int lref[16], lgot[16];
    uint64_t sref[16], sgot[16];
    for (uint64_t k = 0; k < 40; k++) { /* crosses epoch boundaries (15 steps per epoch) */
        loader_fill(&ds, &cfg, k, 0, B, ref, lref, sref);
        for (int P = 2; P <= 4; P *= 2) {
            memset(got, 0, B * dim * sizeof *got);
            for (int r = 0; r < P; r++) {
                size_t first, cnt;
                dist_shard_range(B, r, P, &first, &cnt);
                loader_fill(&ds, &cfg, k, first, cnt, got + first * dim, lgot + first,
                            sgot + first);
            }
            cr_assert(memcmp(ref, got, B * dim * sizeof *got) == 0, "k=%llu P=%d",
                      (unsigned long long)k, P);
            cr_assert(memcmp(lref, lgot, sizeof lref) == 0);
            cr_assert(memcmp(sref, sgot, sizeof sref) == 0);
        }
        for (size_t j = 0; j < B; j++) cr_assert_eq(sref[j], k * B + j);
    }
    free(ref);
    free(got);
    free_images(&ds);
}

Test(loader, scaling_labels_and_flip_by_example_and_epoch)
{
    Dataset ds;
    make_images(&ds, 64, 2, 3, 4);
    LoaderConfig cfg = {.seed = 5, .batch = 8, .hflip = 1};
    size_t dim = dataset_dim(&ds);
    float x[8 * 24];
    int lab[8];
    int flips = 0, total = 0;
    for (uint64_t k = 0; k < 16; k++) { /* two epochs */
        loader_fill(&ds, &cfg, k, 0, 8, x, lab, NULL);
        uint64_t epoch = k / 8;
        for (size_t j = 0; j < 8; j++) {
            uint64_t idx = loader_global_index(&cfg, ds.n, k, j);
            cr_assert_eq(lab[j], (int)(idx % 10));
            int flip = loader_flip(cfg.seed, epoch, idx);
            flips += flip;
            total++;
            for (size_t c = 0; c < 2; c++)
                for (size_t y = 0; y < 3; y++)
                    for (size_t xx = 0; xx < 4; xx++) {
                        size_t sx = flip ? 3 - xx : xx;
                        uint8_t v = ds.u8[idx * dim + (c * 3 + y) * 4 + sx];
                        float want = (float)v / 127.5f - 1.0f;
                        cr_assert_eq(x[j * dim + (c * 3 + y) * 4 + xx], want);
                    }
        }
    }
    cr_assert(flips > total / 4 && flips < 3 * total / 4, "%d of %d flipped", flips, total);
    /* Flips are a function of (seed, epoch, example) only. */
    cr_assert_eq(loader_flip(5, 1, 17), loader_flip(5, 1, 17));
    int differ = 0;
    for (uint64_t i = 0; i < 200; i++) differ += loader_flip(5, 0, i) != loader_flip(5, 1, i);
    cr_assert(differ > 50 && differ < 150);
    /* Without hflip nothing is mirrored. */
    cfg.hflip = 0;
    loader_fill(&ds, &cfg, 0, 0, 8, x, NULL, NULL);
    for (size_t j = 0; j < 8; j++) {
        uint64_t idx = loader_global_index(&cfg, ds.n, 0, j);
        cr_assert_eq(x[j * dim + 1], (float)ds.u8[idx * dim + 1] / 127.5f - 1.0f);
    }
    free_images(&ds);
}

Test(loader, pixel_range_maps_to_minus_one_one)
{
    Dataset ds;
    memset(&ds, 0, sizeof ds);
    uint8_t px[2] = {0, 255};
    ds.n = 2;
    ds.c = ds.h = ds.w = 1;
    ds.u8 = px;
    LoaderConfig cfg = {.seed = 0, .batch = 2, .hflip = 1};
    float x[2];
    int lab[2];
    loader_fill(&ds, &cfg, 0, 0, 2, x, lab, NULL);
    cr_assert((x[0] == -1.0f && x[1] == 1.0f) || (x[0] == 1.0f && x[1] == -1.0f));
    cr_assert_eq(lab[0], -1);
}

Test(loader, toy_data_copied_unchanged)
{
    Dataset ds;
    cr_assert_eq(dataset_toy(&ds, "8gaussians", 100, 3), 0);
    LoaderConfig cfg = {.seed = 1, .batch = 32, .hflip = 1};
    float x[64];
    int lab[32];
    loader_fill(&ds, &cfg, 4, 0, 32, x, lab, NULL); /* epoch 1 (3 steps per epoch) */
    for (size_t j = 0; j < 32; j++) {
        uint64_t idx = loader_global_index(&cfg, ds.n, 4, j);
        cr_assert_eq(x[2 * j], ds.f32[2 * idx]);
        cr_assert_eq(x[2 * j + 1], ds.f32[2 * idx + 1]);
        cr_assert_eq(lab[j], ds.labels[idx]);
    }
    dataset_free(&ds);
}
