/* tests/dist/test_reduce.c - the single-process side of dist/reduce: the streaming local tree
 * against a recursive canonical-tree reference, overlap bookkeeping on one rank, ZeRO-1 on one
 * rank, configuration errors, and the parameter hash. Never initialises MPI (the reducer then sees
 * a world of one); the multi-rank behaviour is tests/dist/mpi_reduce.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "core/rng.h"
#include "dist/reduce.h"

/* Leaf values of very different magnitudes so that the summation order shows in the bits. */
static void leaf(float *g, size_t n, size_t shard)
{
    float *x = xmalloc(n * sizeof(float));
    rng_fill_normal(x, n, 7, rng_stream(RNG_P_TEST, shard), 3);
    float scale = ldexpf(1.0f, (int)(shard % 7) - 3);
    for (size_t i = 0; i < n; i++) g[i] += x[i] * scale; /* backward accumulates */
    xfree(x);
}

static void ref_tree(float *out, size_t lo, size_t hi, size_t n)
{
    memset(out, 0, n * sizeof(float));
    if (hi - lo == 1) {
        leaf(out, n, lo);
        return;
    }
    size_t mid = lo + (hi - lo) / 2;
    float *r = xmalloc(n * sizeof(float));
    ref_tree(out, lo, mid, n);
    ref_tree(r, mid, hi, n);
    for (size_t i = 0; i < n; i++) out[i] = out[i] + r[i];
    xfree(r);
}

/* Run one step through the reducer; mark: report ready ranges in pieces of `piece`, high to low */
static float *reduce_step(GradReducer *red, size_t n, size_t M, size_t piece)
{
    size_t first, end;
    reducer_local_shards(red, &first, &end);
    cr_assert_eq(first, 0);
    cr_assert_eq(end, M);
    for (size_t s = 0; s < M; s++) {
        float *g = reducer_leaf_begin(red, s);
        for (size_t i = 0; i < n; i++) cr_assert(g[i] == 0.0f, "leaf buffer not zeroed");
        leaf(g, n, s);
        if (piece)
            for (size_t hi = n; hi > 0;) {
                size_t lo = hi > piece ? hi - piece : 0;
                cr_assert_eq(reducer_mark_ready(red, lo, hi), ERR_OK);
                cr_assert_eq(reducer_progress(red), ERR_OK);
                hi = lo;
            }
        cr_assert_eq(reducer_leaf_end(red), ERR_OK);
    }
    float *grad = NULL;
    cr_assert_eq(reducer_finish(red, &grad), ERR_OK);
    return grad;
}

Test(reduce, streaming_tree_matches_recursive_tree_bitwise)
{
    const size_t n = 301;
    float *ref = xmalloc(n * sizeof(float));
    for (size_t M = 1; M <= 37; M++) {
        ReducerConfig cfg = {.n = n, .M = M};
        GradReducer *red;
        cr_assert_eq(reducer_create(&red, &cfg), ERR_OK);
        cr_assert(reducer_bitwise(red));
        ref_tree(ref, 0, M, n);
        for (int step = 0; step < 2; step++) { /* the second step reuses the buffers */
            float *g = reduce_step(red, n, M, 0);
            cr_assert(memcmp(g, ref, n * sizeof(float)) == 0, "M=%zu step %d: bits differ", M,
                      step);
        }
        reducer_destroy(&red);
        cr_assert_null(red);
    }
    xfree(ref);
}

Test(reduce, caller_buffer_gives_the_same_bits)
{
    const size_t n = 257;
    float *ref = xmalloc(n * sizeof(float)), *own = xmalloc(n * sizeof(float));
    for (size_t M = 1; M <= 19; M++) {
        ReducerConfig cfg = {.n = n, .M = M};
        GradReducer *red;
        cr_assert_eq(reducer_create(&red, &cfg), ERR_OK);
        ref_tree(ref, 0, M, n);
        for (int step = 0; step < 2; step++) {
            for (size_t s = 0; s < M; s++) {
                for (size_t i = 0; i < n; i++) own[i] = 1e30f; /* stale data: must be zeroed */
                float *g = reducer_leaf_begin_into(red, s, own);
                cr_assert_eq(g, own);
                leaf(g, n, s);
                cr_assert_eq(reducer_leaf_end(red), ERR_OK);
            }
            float *g;
            cr_assert_eq(reducer_finish(red, &g), ERR_OK);
            cr_assert(memcmp(g, ref, n * sizeof(float)) == 0, "M=%zu step %d", M, step);
        }
        reducer_destroy(&red);
    }
    xfree(ref), xfree(own);
}

Test(reduce, summation_order_shows_in_the_bits)
{
    /* Guards the test above: a left-to-right sum differs from the tree sum. */
    const size_t n = 301, M = 13;
    float *ref = xmalloc(n * sizeof(float)), *seq = xcalloc(n, sizeof(float));
    float *l = xmalloc(n * sizeof(float));
    ref_tree(ref, 0, M, n);
    for (size_t s = 0; s < M; s++) {
        memset(l, 0, n * sizeof(float));
        leaf(l, n, s);
        for (size_t i = 0; i < n; i++) seq[i] = seq[i] + l[i];
    }
    cr_assert(memcmp(ref, seq, n * sizeof(float)) != 0);
    xfree(ref), xfree(seq), xfree(l);
}

Test(reduce, overlap_mode_on_one_rank_is_the_deterministic_result)
{
    const size_t n = 1000, M = 6;
    float *ref = xmalloc(n * sizeof(float));
    ref_tree(ref, 0, M, n);
    ReducerConfig cfg = {.n = n, .M = M, .mode = REDUCE_OVERLAP, .bucket_floats = 64};
    GradReducer *red;
    cr_assert_eq(reducer_create(&red, &cfg), ERR_OK);
    cr_assert(!reducer_bitwise(red), "overlap mode never promises bits across rank counts");
    float *g = reduce_step(red, n, M, 37);
    cr_assert(memcmp(g, ref, n * sizeof(float)) == 0);
    ReducerStats st;
    reducer_stats(red, &st);
    cr_assert_eq(st.steps, 1);
    reducer_destroy(&red);
    xfree(ref);
}

Test(reduce, zero1_on_one_rank_owns_everything)
{
    const size_t n = 77, M = 3;
    float *ref = xmalloc(n * sizeof(float));
    ref_tree(ref, 0, M, n);
    ReducerConfig cfg = {.n = n, .M = M, .zero1 = 1};
    GradReducer *red;
    cr_assert_eq(reducer_create(&red, &cfg), ERR_OK);
    for (size_t s = 0; s < M; s++) {
        leaf(reducer_leaf_begin(red, s), n, s);
        cr_assert_eq(reducer_leaf_end(red), ERR_OK);
    }
    float *g;
    size_t lo = 99, hi = 99;
    cr_assert_eq(reducer_finish_shard(red, &g, &lo, &hi), ERR_OK);
    cr_assert_eq(lo, 0);
    cr_assert_eq(hi, n);
    cr_assert(memcmp(g, ref, n * sizeof(float)) == 0);
    float params[77] = {1.0f};
    cr_assert_eq(reducer_allgather_params(red, params), ERR_OK);
    cr_assert(params[0] == 1.0f);
    reducer_destroy(&red);
    xfree(ref);
}

Test(reduce, bad_configuration_is_an_argument_error)
{
    GradReducer *red = (GradReducer *)&red;
    ReducerConfig cfg = {.n = 0, .M = 4};
    cr_assert_eq(reducer_create(&red, &cfg), ERR_ARG);
    cr_assert_null(red);
    cr_assert(strstr(err_message(), "n = 0"), "%s", err_message());
    cfg.n = 10;
    cfg.M = 0;
    cr_assert_eq(reducer_create(&red, &cfg), ERR_ARG);
    cr_assert(strstr(err_message(), "M = 0"), "%s", err_message());
    cfg.M = 2;
    cfg.mode = (ReduceMode)7;
    cr_assert_eq(reducer_create(&red, &cfg), ERR_ARG);
    reducer_destroy(&red); /* NULL-safe */
    reducer_destroy(NULL);
}

Test(reduce, hash_sees_every_one_ulp_change)
{
    const size_t n = 131;
    float p[131];
    for (size_t i = 0; i < n; i++) p[i] = cosf((float)i);
    uint64_t h0 = dist_hash_f32(p, n);
    cr_assert_eq(dist_hash_f32(p, n), h0);
    for (size_t i = 0; i < n; i++) {
        float keep = p[i];
        p[i] = nextafterf(keep, INFINITY);
        cr_assert_neq(dist_hash_f32(p, n), h0, "one ulp at %zu not seen", i);
        p[i] = keep;
    }
    p[5] = 0.0f;
    uint64_t hz = dist_hash_f32(p, n);
    p[5] = -0.0f;
    cr_assert_neq(dist_hash_f32(p, n), hz);
    cr_assert_neq(dist_hash_f32(p, n - 1), dist_hash_f32(p, n));
    /* swapping two values is seen too (the hash is not a sum) */
    p[5] = 1.0f;
    p[6] = 2.0f;
    hz = dist_hash_f32(p, n);
    p[5] = 2.0f;
    p[6] = 1.0f;
    cr_assert_neq(dist_hash_f32(p, n), hz);
}

Test(reduce, params_agree_on_one_rank)
{
    float p[3] = {1, 2, 3};
    uint64_t h = 0;
    cr_assert_eq(dist_params_agree(p, 3, 1, &h), ERR_OK);
    cr_assert_eq(h, dist_hash_f32(p, 3));
}
