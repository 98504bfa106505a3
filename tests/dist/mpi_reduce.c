/* tests/dist/mpi_reduce.c - gradient reduction across rank counts (run at np 1, 2, 4, ...).
 *
 * A synthetic training run: n = 100003 parameters, a fake per-micro-shard gradient that is a
 * nonlinear function of the parameters and of normal noise keyed by (micro-shard, step), summed
 * over M micro-shards, and an Adam update on the flat buffer; 5 steps. Rank 0 also computes
 * the single-rank run (all M micro-shards serially, summed by a plain recursive implementation
 * of the canonical tree) and broadcasts it, so one mpirun checks P ranks against P = 1:
 *   det     deterministic mode (buckets started during the backward): bitwise equal to the
 *           single-rank run when reducer_bitwise says so (P a power of two dividing M), else
 *           within 1e-5 relative;
 *   overlap bucketed nonblocking mode: within 1e-5 relative of the single-rank run, and
 *           bitwise equal to the deterministic run on 1 or 2 ranks;
 *   zero1   ZeRO-1 (reduce-scatter, update own block, all-gather): bitwise equal to the
 *           unsharded deterministic run at the same P (whose buckets partition the buffer
 *           differently, so this also checks that bucketing does not change the bits);
 *           overlap + ZeRO-1 within 1e-5;
 * and after each run that every rank holds the same parameters (dist_params_agree).
 * A power check makes sure the bitwise comparison can fail: summing the micro-shards in a
 * different order (left to right) changes the bits.
 * Exit status 0 on every rank when all checks pass on every rank.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "core/rng.h"
#include "dist/dist.h"
#include "dist/reduce.h"

#define N_PARAMS ((size_t)100003)
#define STEPS 5
#define SEED 20240611u
#define CHUNK_READY ((size_t)7919) /* backward marks ranges of this size, high to low */

static int g_fail;

static void check(int ok, const char *what)
{
    if (!ok) {
        g_fail = 1;
        fprintf(stderr, "mpi_reduce: [rank %d/%d] FAILED: %s\n", dist_rank(), dist_size(), what);
    }
}

/* ---- the synthetic model ------------------------------------------------------------------ */

static void init_params(float *p, size_t n)
{
    rng_fill_normal(p, n, SEED, rng_stream(RNG_P_TEST, 999999), 0);
    for (size_t i = 0; i < n; i++) p[i] *= 0.5f;
}

/* Backward of micro-shard `shard` at `step`: accumulates into g (+=), as model code does.
 * When red is given it reports final ranges from high offsets to low, like a backward pass. */
static void fake_backward(float *g, const float *p, float *x, size_t n, size_t shard, int step,
                          GradReducer *red)
{
    rng_fill_normal(x, n, SEED, rng_stream(RNG_P_TEST, shard), (uint32_t)step);
    float scale = (float)(1 + shard % 3) * 0.37f;
    size_t hi = n;
    while (hi > 0) {
        size_t lo = hi > CHUNK_READY ? hi - CHUNK_READY : 0;
        for (size_t i = lo; i < hi; i++)
            g[i] += tanhf(p[i] + x[i]) * x[i] * scale + 1e-3f * p[i] * x[i] * x[i];
        if (red) {
            int rc = reducer_mark_ready(red, lo, hi);
            check(rc == ERR_OK, "reducer_mark_ready");
        }
        hi = lo;
    }
}

typedef struct {
    float *m, *v;
} Adam;

/* Adam (beta1 0.9, beta2 0.999, eps 1e-8, lr 1e-2) on [lo, hi) of the flat buffers; the gradient
 * of the global batch is the micro-shard sum divided by M. */
static void adam_update_range(float *p, const float *gsum, Adam *a, size_t lo, size_t hi,
                              int step, size_t M)
{
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, lr = 1e-2f;
    float c1 = 1.0f - powf(b1, (float)step), c2 = 1.0f - powf(b2, (float)step);
    float inv = 1.0f / (float)M;
    for (size_t i = lo; i < hi; i++) {
        float g = gsum[i] * inv;
        a->m[i] = b1 * a->m[i] + (1.0f - b1) * g;
        a->v[i] = b2 * a->v[i] + (1.0f - b2) * g * g;
        float mh = a->m[i] / c1, vh = a->v[i] / c2;
        p[i] -= lr * mh / (sqrtf(vh) + eps);
    }
}

/* ---- the single-rank reference: a plain recursive canonical tree ---------------------------- */

static void ref_tree(float *out, size_t lo, size_t hi, const float *p, float *x, size_t n,
                     int step)
{
    memset(out, 0, n * sizeof(float));
    if (hi - lo == 1) {
        fake_backward(out, p, x, n, lo, step, NULL);
        return;
    }
    size_t mid = lo + (hi - lo) / 2;
    float *right = xmalloc(n * sizeof(float));
    ref_tree(out, lo, mid, p, x, n, step);
    ref_tree(right, mid, hi, p, x, n, step);
    for (size_t i = 0; i < n; i++) out[i] = out[i] + right[i];
    xfree(right);
}

static void ref_train(float *p, size_t n, size_t M)
{
    Adam a = {xcalloc(n, sizeof(float)), xcalloc(n, sizeof(float))};
    float *g = xmalloc(n * sizeof(float)), *x = xmalloc(n * sizeof(float));
    init_params(p, n);
    for (int step = 1; step <= STEPS; step++) {
        ref_tree(g, 0, M, p, x, n, step);
        adam_update_range(p, g, &a, 0, n, step, M);
    }
    xfree(a.m), xfree(a.v), xfree(g), xfree(x);
}

/* The power check: a left-to-right sum of the first step's micro-shards must differ in bits
 * from the tree sum, or the bitwise comparisons below prove nothing. */
static int order_matters(size_t n, size_t M)
{
    float *p = xmalloc(n * sizeof(float)), *x = xmalloc(n * sizeof(float));
    float *tree = xmalloc(n * sizeof(float)), *seq = xcalloc(n, sizeof(float));
    float *leaf = xmalloc(n * sizeof(float));
    init_params(p, n);
    ref_tree(tree, 0, M, p, x, n, 1);
    for (size_t s = 0; s < M; s++) {
        memset(leaf, 0, n * sizeof(float));
        fake_backward(leaf, p, x, n, s, 1, NULL);
        for (size_t i = 0; i < n; i++) seq[i] = seq[i] + leaf[i];
    }
    int differ = memcmp(tree, seq, n * sizeof(float)) != 0;
    xfree(p), xfree(x), xfree(tree), xfree(seq), xfree(leaf);
    return differ;
}

/* ---- the distributed run ------------------------------------------------------------------ */

static int dist_train(float *p, size_t n, size_t M, ReduceMode mode, int zero1, int *bitwise)
{
    /* Buckets of 10007 values (11 per buffer, the last one short), except one default-sized
     * bucket for overlap + ZeRO-1. */
    ReducerConfig cfg = {.n = n, .M = M, .mode = mode, .zero1 = zero1,
                         .bucket_floats = zero1 && mode == REDUCE_OVERLAP ? 0 : 10007};
    GradReducer *red;
    TRY(reducer_create(&red, &cfg));
    *bitwise = reducer_bitwise(red);
    Adam a = {xcalloc(n, sizeof(float)), xcalloc(n, sizeof(float))};
    float *x = xmalloc(n * sizeof(float));
    /* ZeRO-1 and overlap runs hand the reducer a caller-owned gradient buffer, as a model with
     * its own gradient buffer does; the deterministic run uses the reducer's buffers. */
    float *own = (zero1 || mode == REDUCE_OVERLAP) ? xmalloc(n * sizeof(float)) : NULL;
    size_t first, end;
    reducer_local_shards(red, &first, &end);
    init_params(p, n);
    int rc = ERR_OK;
    for (int step = 1; step <= STEPS && rc == ERR_OK; step++) {
        for (size_t s = first; s < end && rc == ERR_OK; s++) {
            float *g = own ? reducer_leaf_begin_into(red, s, own) : reducer_leaf_begin(red, s);
            check(!own || g == own, "reducer_leaf_begin_into returned another buffer");
            fake_backward(g, p, x, n, s, step, red);
            rc = reducer_leaf_end(red);
        }
        if (rc != ERR_OK) break;
        float *grad;
        if (zero1) {
            size_t lo, hi;
            rc = reducer_finish_shard(red, &grad, &lo, &hi);
            if (rc != ERR_OK) break;
            adam_update_range(p, grad, &a, lo, hi, step, M);
            /* poison what this rank does not own: the all-gather must overwrite it */
            for (size_t i = 0; i < lo; i++) p[i] = NAN;
            for (size_t i = hi; i < n; i++) p[i] = NAN;
            rc = reducer_allgather_params(red, p);
        } else {
            rc = reducer_finish(red, &grad);
            if (rc == ERR_OK) adam_update_range(p, grad, &a, 0, n, step, M);
        }
    }
    /* Every bucket of a bucketed run must start inside mark_ready, i.e. during the backward,
     * on every rank that computes micro-shards (the last range reported is offset 0). */
    ReducerStats st;
    reducer_stats(red, &st);
    int bucketed = dist_size() > 1 && (mode == REDUCE_OVERLAP || !zero1);
    size_t bsize = cfg.bucket_floats ? cfg.bucket_floats : (size_t)4 * 1024 * 1024 / 4; /* the default */
    size_t want = bucketed ? (size_t)STEPS * ((n + bsize - 1) / bsize) : 0;
    if (rc == ERR_OK) {
        char what[200];
        snprintf(what, sizeof what, "n=%zu M=%zu mode %d zero1 %d: %zu buckets started, %zu of "
                 "them during the backward; expected %zu and %zu", n, M, (int)mode, zero1,
                 st.buckets, st.buckets_early, want, first < end ? want : 0);
        check(st.buckets == want && st.buckets_early == (first < end ? want : 0), what);
        check(st.steps == STEPS, "reducer_stats counts the steps");
    }
    xfree(a.m), xfree(a.v), xfree(x), xfree(own);
    reducer_destroy(&red);
    return rc;
}

static double rel_diff(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(d)) return (double)NAN; /* fails every `<= tol` comparison */
        if (d > num) num = d;
        if (fabs((double)b[i]) > den) den = fabs((double)b[i]);
    }
    return den > 0 ? num / den : num;
}

static void run_case(size_t n, size_t M, int *nchecks)
{
    char what[320];
    float *ref = xmalloc(n * sizeof(float)), *det = xmalloc(n * sizeof(float));
    float *ovl = xmalloc(n * sizeof(float)), *zro = xmalloc(n * sizeof(float));
    int bitwise = 0, b2 = 0;
    /* The single-rank run, computed once (rank 0) and broadcast: on an oversubscribed node P
     * copies of it would only cost time. */
    if (dist_rank() == 0) ref_train(ref, n, M);
    check(dist_bcast(ref, n * sizeof(float), 0) == ERR_OK, "broadcast of the reference");

    int rc = dist_train(det, n, M, REDUCE_DETERMINISTIC, 0, &bitwise);
    snprintf(what, sizeof what, "n=%zu M=%zu deterministic run: %s", n, M, err_message());
    check(rc == ERR_OK, what);
    if (rc == ERR_OK) {
        double rd = rel_diff(det, ref, n);
        if (bitwise)
            snprintf(what, sizeof what, "n=%zu M=%zu deterministic weights not bitwise equal to the "
                     "single-rank run (max rel diff %.3g)", n, M, rd);
        else
            snprintf(what, sizeof what, "n=%zu M=%zu deterministic weights differ from the "
                     "single-rank run by %.3g relative (> 1e-5)", n, M, rd);
        check(bitwise ? memcmp(det, ref, n * sizeof(float)) == 0 : rd <= 1e-5, what);
        check(dist_params_agree(det, n, STEPS, NULL) == ERR_OK, err_message());
        check(dist_size() != 1 || bitwise, "a single rank must always be bitwise");
        (*nchecks) += 3;
    }

    rc = dist_train(ovl, n, M, REDUCE_OVERLAP, 0, &b2);
    snprintf(what, sizeof what, "n=%zu M=%zu overlap run: %s", n, M, err_message());
    check(rc == ERR_OK, what);
    if (rc == ERR_OK) {
        double rd = rel_diff(ovl, ref, n);
        snprintf(what, sizeof what, "n=%zu M=%zu overlap weights differ from the single-rank run by "
                 "%.3g relative (> 1e-5)", n, M, rd);
        check(rd <= 1e-5, what);
        check(dist_params_agree(ovl, n, STEPS, NULL) == ERR_OK, err_message());
        /* On one or two ranks each value of the cross-rank sum is a single addition whatever
         * the MPI algorithm, so the overlap mode (local sums folded bucket by bucket during the
         * last backward) must give the deterministic bits. */
        snprintf(what, sizeof what, "n=%zu M=%zu overlap weights not bitwise equal to deterministic "
                 "on %d ranks (max rel diff %.3g)", n, M, dist_size(), rel_diff(ovl, det, n));
        check(dist_size() > 2 || memcmp(ovl, det, n * sizeof(float)) == 0, what);
        (*nchecks) += 3;
    }

    rc = dist_train(zro, n, M, REDUCE_DETERMINISTIC, 1, &b2);
    snprintf(what, sizeof what, "n=%zu M=%zu ZeRO-1 run: %s", n, M, err_message());
    check(rc == ERR_OK, what);
    if (rc == ERR_OK) {
        snprintf(what, sizeof what, "n=%zu M=%zu ZeRO-1 weights not bitwise equal to the unsharded "
                 "run (max rel diff %.3g)", n, M, rel_diff(zro, det, n));
        check(memcmp(zro, det, n * sizeof(float)) == 0, what);
        check(dist_params_agree(zro, n, STEPS, NULL) == ERR_OK, err_message());
        (*nchecks) += 2;
    }

    rc = dist_train(zro, n, M, REDUCE_OVERLAP, 1, &b2);
    snprintf(what, sizeof what, "n=%zu M=%zu overlap ZeRO-1 run: %s", n, M, err_message());
    check(rc == ERR_OK, what);
    if (rc == ERR_OK) {
        double rd = rel_diff(zro, ovl, n);
        snprintf(what, sizeof what, "n=%zu M=%zu overlap ZeRO-1 weights differ from overlap by %.3g "
                 "relative", n, M, rd);
        check(rd <= 1e-5, what);
        check(dist_params_agree(zro, n, STEPS, NULL) == ERR_OK, err_message());
        (*nchecks) += 2;
    }
    xfree(ref), xfree(det), xfree(ovl), xfree(zro);
}

int main(int argc, char **argv)
{
    if (dist_init(&argc, &argv) != ERR_OK) {
        fprintf(stderr, "mpi_reduce: %s\n", err_message());
        return 1;
    }
    int nchecks = 0;
    check(order_matters(N_PARAMS, 8), "power check: summation order does not change the bits, "
          "so the bitwise checks cannot fail");
    nchecks++;
    /* M = 8: bitwise for P = 1, 2, 4, 8. M = 12: bitwise for P = 1, 2, 4 with odd local trees
     * (3 micro-shards per rank at P = 4). M = 3: P = 2 does not divide it, P = 4 leaves a rank
     * without micro-shards; correct to rounding only. */
    const size_t Ms[] = {8, 12, 3};
    for (size_t c = 0; c < sizeof Ms / sizeof Ms[0]; c++) run_case(N_PARAMS, Ms[c], &nchecks);
    /* Tiny buffers: ZeRO-1 blocks and bucket blocks empty on some ranks. */
    run_case(5, 4, &nchecks);
    run_case(37, 8, &nchecks);

    int64_t ok = !g_fail;
    if (dist_allreduce_min_i64(&ok, 1) != ERR_OK) ok = 0;
    if (dist_rank() == 0)
        printf("mpi_reduce: np=%d %s (%d checks per rank, %d steps; n=%zu with M in {8,12,3}, "
               "n=5 with M=4, n=37 with M=8)\n",
               dist_size(), ok ? "passed" : "FAILED", nchecks, STEPS, N_PARAMS);
    dist_finalize();
    return ok ? 0 : 1;
}
