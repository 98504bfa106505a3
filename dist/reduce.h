/* dist/reduce.h - world-size-invariant gradient reduction, overlapped reduction, ZeRO-1 sharding
 * and the parameter-agreement check.
 *
 * Setting. Every rank holds the whole model. The global batch is cut into M fixed-size
 * micro-shards 0..M-1; rank r of P owns the contiguous micro-shards [r*M/P, (r+1)*M/P). The
 * gradient of one micro-shard is a pure function of (parameters, micro-shard), whoever computes
 * it. A GradReducer turns those per-micro-shard gradients into the gradient of the global batch,
 * one flat float buffer of n values, identical on every rank.
 *
 * The canonical tree. The sum over micro-shards is defined as one fixed binary tree over [0, M):
 * a range [lo, hi) with more than one micro-shard is (sum over [lo, mid)) + (sum over [mid, hi)),
 * mid = lo + (hi - lo) / 2, added element by element in float. A rank sums its own range with
 * the same rule (streaming: partial sums of completed subtrees are kept on a stack, so memory is
 * about log2(M/P) + 2 gradient buffers, not M/P). Ranks then combine their range sums:
 *
 *   REDUCE_DETERMINISTIC (default): recursive-halving reduce-scatter (partner distance 1, 2, 4...,
 *     so the ranks holding adjacent micro-shard ranges are added first, exactly the upper levels of
 *     the canonical tree), then recursive-doubling all-gather. Bandwidth-optimal (each rank sends
 *     2 n (P-1)/P floats) and free of thread-count-dependent reductions (all additions are
 *     element-wise). It runs bucket by bucket with nonblocking point-to-point messages (one tag
 *     per bucket): a bucket starts as soon as reducer_mark_ready has covered it during the last
 *     micro-shard's backward, and reducer_mark_ready / reducer_progress move every bucket on, so
 *     this mode overlaps communication with the backward too. Each value meets the same
 *     additions in the same order whatever the bucket size, so buckets never change the bits.
 *     GUARANTEE: the summed gradient, hence the weights after any number of steps, is bitwise
 *     identical for every P that is a power of two dividing M (P = 1 always qualifies). Example:
 *     M = 8 gives P = 1, 2, 4, 8; M = 12 gives P = 1, 2, 4. The rank ranges are then nodes of the
 *     canonical tree and the cross-rank steps add whole subtrees in tree order.
 *     Other P (not a power of two, or not dividing M) are supported and correct to float rounding,
 *     the same bits on every rank and from run to run at that P, but not equal to the other rank
 *     counts: reducer_create warns. Non-power-of-two P first folds ranks P'..P-1 into
 *     ranks 0..P-P'-1 (P' the largest power of two <= P), runs the power-of-two scheme on P' ranks
 *     and sends the result back. (No fixed tree can serve both P = 2 and P = 3: the rank ranges
 *     [0, M/2) and [0, M/3), [M/3, 2M/3) cannot all be subtrees of one binary tree.)
 *   REDUCE_OVERLAP: as PyTorch DDP. During the backward of a rank's LAST micro-shard the caller
 *     reports final ranges with reducer_mark_ready; every bucket (bucket_floats values) that is
 *     fully covered gets its local tree sum finished at once and a nonblocking MPI_Iallreduce
 *     started. Buckets are posted in one fixed order on every rank (descending offsets by
 *     default, as a backward from output to input layers produces them; see ReducerConfig), a
 *     bucket that completes early waits for its predecessors. reducer_mark_ready and
 *     reducer_progress test outstanding requests so the library makes progress; reducer_finish
 *     waits for the rest. The local sums are the canonical ones; the cross-rank sum is the MPI
 *     library's, so results match the deterministic mode to float rounding (relative 1e-5 is
 *     tested), identical on every rank, but not bitwise across rank counts.
 *
 * ZeRO-1 (cfg.zero1). The flat buffer is cut into P blocks of ceil(n/P) values rounded up to a
 * multiple of cfg.shard_align (default 16; the last ones may be short or empty).
 * reducer_finish_shard gives each rank the summed gradient of its own block only (deterministic
 * mode: the reduce-scatter half of the scheme above over the whole buffer at once, no buckets
 * and no overlap, so those values are the same bits as the unsharded result); the caller updates
 * the parameters and optimizer state of that block and calls reducer_allgather_params. In
 * deterministic mode the weights are bitwise those of the unsharded run (any P: the update is
 * element-wise, so only the gradient bits matter). For power-of-two P,
 * rank r owns block bitreverse(r) (what recursive halving leaves on it); otherwise block r.
 * Ask reducer_shard_range, never compute it. In overlap mode and for non-power-of-two P the
 * gradient is still all-reduced in full (no communication saved, memory for m and v still is);
 * overlap + ZeRO-1 matches unsharded overlap to float rounding.
 *
 * Use per step (one thread calls the reducer; the model may use OpenMP inside its backward):
 *
 *     size_t first, end;  reducer_local_shards(red, &first, &end);
 *     for (size_t s = first; s < end; s++) {
 *         float *g = reducer_leaf_begin(red, s);        // zeroed; backward accumulates (+=)
 *         model_backward(..., g, ...);                  // may call reducer_mark_ready(red, lo, hi)
 *         TRY(reducer_leaf_end(red));
 *     }
 *     float *grad;  TRY(reducer_finish(red, &grad));    // valid until the next leaf_begin
 *
 * Errors: MPI failures return ERR_MPI; bad configurations return ERR_ARG from reducer_create;
 * calls out of order are bugs (ASSERT).
 */
#ifndef DFM_DIST_REDUCE_H
#define DFM_DIST_REDUCE_H

#include <stddef.h>
#include <stdint.h>

typedef enum { REDUCE_DETERMINISTIC = 0, REDUCE_OVERLAP = 1 } ReduceMode;

typedef struct {
    size_t n;             /* floats in the flat gradient buffer (> 0) */
    size_t M;             /* micro-shards in the global batch (> 0) */
    ReduceMode mode;
    size_t bucket_floats; /* bucket size in floats; 0 = 1048576 (4 MiB). DDP's 25 MiB would be
                             the whole of a 26 MB model, one bucket that can only start after
                             the backward; 1-4 MiB hid 50-80% of the wait in bench_reduce */
    int ascending;        /* overlap: post buckets in ascending offset order (default descending,
                             the order a backward from output to input layers finishes them) */
    int zero1;            /* optimizer-state sharding: use reducer_finish_shard */
    size_t shard_align;   /* ZeRO-1 blocks (and reduce-scatter blocks) start at multiples of
                             this many floats; 0 = 16. A caller that reduces per fixed chunk
                             (the training loop's gradient norm) aligns blocks to its chunks. */
} ReducerConfig;

typedef struct {
    long steps;           /* reducer_finish / reducer_finish_shard calls */
    double local_s;       /* seconds adding micro-shard gradients (the local tree) */
    double comm_s;        /* seconds blocked in communication (deterministic exchange, overlap
                             waits in finish, parameter all-gather) */
    double last_comm_s;   /* the same for the last step only */
    double test_s;        /* seconds testing requests from mark_ready / progress */
    size_t buckets_early; /* buckets started during the backward (all steps) */
    size_t buckets;       /* buckets started in all */
} ReducerStats;

typedef struct GradReducer GradReducer;

/* Create a reducer for this job's world (a singleton world when MPI is not initialised).
 * Collective: every rank creates its reducers in the same order with the same n, M, mode,
 * bucket size and zero1. Owns its buffers and a duplicate of the world communicator.
 * ERR_ARG on a bad config. */
int reducer_create(GradReducer **out, const ReducerConfig *cfg);
/* NULL-safe; sets *red = NULL. After an error that left exchanges in flight it neither waits
 * for them (the other ranks may never join) nor frees the memory they write into: the caller
 * is about to abort the job, and the process keeps that memory until then. */
void reducer_destroy(GradReducer **red);

/* Micro-shards this rank owns: [*first, *end) (empty when P > M). */
void reducer_local_shards(const GradReducer *red, size_t *first, size_t *end);
/* 1 when the result is bitwise the same for every rank count this reducer's M allows
 * (deterministic mode, P a power of two dividing M), else 0. */
int reducer_bitwise(const GradReducer *red);

/* Start micro-shard `shard` (must be the next one of this rank's range, in order). Returns a
 * zeroed buffer of n floats for its gradient, owned by the reducer, valid until leaf_end. */
float *reducer_leaf_begin(GradReducer *red, size_t shard);
/* The same, but the gradient goes to the caller's buffer `grad` (n floats; the model's own
 * gradient buffer, say), which the reducer zeroes and reads until leaf_end (and, for the rank's
 * last micro-shard, until reducer_finish returns: *grad may then point into it). A leaf that is
 * the left child of an unfinished subtree is copied out at leaf_end, so the caller may reuse
 * `grad` for the next micro-shard. Results are bitwise those of reducer_leaf_begin. */
float *reducer_leaf_begin_into(GradReducer *red, size_t shard, float *grad);
/* Values [lo, hi) of the current micro-shard's gradient are final. Ranges of one micro-shard
 * must not overlap. Only the last micro-shard of the rank acts on it (overlap mode: fold the
 * local tree for covered buckets and start their all-reduce); elsewhere it is a cheap no-op. */
int reducer_mark_ready(GradReducer *red, size_t lo, size_t hi);
/* Let nonblocking reductions progress (MPI_Testall); callable any time, cheap. */
int reducer_progress(GradReducer *red);
/* The current micro-shard's gradient is complete: fold it into the local tree. */
int reducer_leaf_end(GradReducer *red);

/* After this rank's last leaf_end (or at once if it owns no micro-shard): *grad receives the
 * global gradient sum, n floats, identical on every rank, owned by the reducer (or the caller's
 * buffer of a reducer_leaf_begin_into, see there) and valid until the next leaf_begin. */
int reducer_finish(GradReducer *red, float **grad);
/* ZeRO-1 (cfg.zero1): like reducer_finish but only [*lo, *hi) of *grad is valid: this rank's
 * block, the same values reducer_finish would give there. */
int reducer_finish_shard(GradReducer *red, float **grad, size_t *lo, size_t *hi);
/* Block of the flat buffer that rank `rank` owns under ZeRO-1. */
void reducer_shard_range(const GradReducer *red, int rank, size_t *lo, size_t *hi);
/* ZeRO-1: every rank has updated params[its block]; afterwards params (n floats) is complete
 * and identical on every rank. */
int reducer_allgather_params(GradReducer *red, float *params);

void reducer_stats(const GradReducer *red, ReducerStats *stats);

/* ---- parameter agreement ----------------------------------------------------------------- */

/* 64-bit hash of the bits of p[0..n) (a -0.0/+0.0 or NaN-payload difference counts). Any change
 * confined to one aligned 8-byte word always changes the hash (each round is a bijection). */
uint64_t dist_hash_f32(const float *p, size_t n);

/* Hash p on every rank and compare across ranks (collective). ERR_OK when all agree;
 * ERR_MPI on every rank otherwise, with a message naming the ranks whose hash differs from
 * rank 0's and the hashes, and a hint. *hash_out (may be NULL) gets this rank's hash. `step` is
 * only quoted in the message. */
int dist_params_agree(const float *p, size_t n, long step, uint64_t *hash_out);

#endif
