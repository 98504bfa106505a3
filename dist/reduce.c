/* dist/reduce.c - gradient reduction in a canonical tree order, overlap buckets, ZeRO-1, and
 * the parameter-agreement check. The contract and the guarantees are in dist/reduce.h. */
#include "dist/reduce.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "dist/dist.h" /* dist_initialized, dist_mpi_fail */

#define MPI_TRY(call)                                                           \
    do {                                                                        \
        int mpi_rc_ = (call);                                                   \
        if (mpi_rc_ != MPI_SUCCESS) return dist_mpi_fail(mpi_rc_, #call);       \
    } while (0)

/* MPI counts are ints: messages are cut into pieces of at most CHUNK floats. */
#define CHUNK ((size_t)1 << 28)
#define TAG_FOLD 1
#define TAG_RS 2
#define TAG_AG 3
#define STACK_MAX 72 /* > log2(SIZE_MAX) + 2 */
#define DEFAULT_BUCKET ((size_t)4 * 1024 * 1024 / sizeof(float)) /* see reduce.h */
#define BLOCK_ALIGN 16
#define TAG_BUCKET0 64 /* deterministic buckets: tag TAG_BUCKET0 + bucket index */

/* The deterministic exchange as a per-rank program of point-to-point steps, run bucket by
 * bucket with nonblocking calls (det_* below) or over the whole buffer (det_allreduce). */
typedef enum {
    OP_FOLD_SEND, /* rank >= Q: send the whole range to rank - Q */
    OP_FOLD_RECV, /* rank < P - Q: receive rank + Q's range, add it */
    OP_RS,        /* reduce-scatter step s with rank ^ 2^s */
    OP_AG,        /* all-gather step s with rank ^ 2^s */
    OP_BACK_SEND, /* rank < P - Q: send the result to rank + Q */
    OP_BACK_RECV  /* rank >= Q: receive the result from rank - Q */
} OpKind;

typedef struct {
    OpKind kind;
    int peer, s;
} DetOp;

#define MAX_OPS 132

struct GradReducer {
    ReducerConfig cfg;
    size_t n, M;
    size_t align; /* block alignment in floats */
    int P, rank;
    int pow2;     /* P is a power of two */
    int bitwise;  /* result independent of P (see reduce.h) */
    MPI_Comm comm; /* duplicate of MPI_COMM_WORLD when P > 1 */

    size_t first, end; /* this rank's micro-shards */
    size_t next;       /* next expected micro-shard */
    int in_leaf, last_leaf;

    /* Local tree: stack of completed subtrees [slo, shi) with their sums in slot[k]; during a
     * leaf the leaf itself is entry `depth`. slot[k] is pool[k] (owned, allocated on demand up
     * to the tree depth) except for a leaf in a caller's buffer (reducer_leaf_begin_into). */
    float *pool[STACK_MAX];
    float *slot[STACK_MAX];
    size_t slo[STACK_MAX], shi[STACK_MAX];
    size_t depth;

    float *tmp; /* receive buffer, n floats, allocated on first exchange */

    /* Buckets: mode REDUCE_OVERLAP, or deterministic without ZeRO-1, when P > 1. */
    int bucketed;
    size_t bucket, nbuckets;
    size_t *covered;       /* values of the bucket marked ready in the last leaf */
    unsigned char *folded; /* local tree already folded for this bucket */
    MPI_Request *req;      /* overlap: per bucket, MPI_REQUEST_NULL until posted / after */
    size_t next_post;      /* overlap: position in the posting order */

    /* Deterministic buckets: each runs this rank's op program on its own tag. */
    DetOp ops[MAX_OPS];
    int nops;
    MPI_Request *dreq; /* 2 per bucket: send, receive of the current op */
    int *dop;          /* per bucket: current op; -1 not started; nops when done */
    int *didx;         /* scratch for MPI_Testsome / MPI_Waitsome */
    size_t ndone;

    ReducerStats st;
};

/* ---- small helpers ------------------------------------------------------------------------ */

static void vadd(float *restrict a, const float *restrict b, size_t n)
{
    /* Element-wise: the result does not depend on the number of threads. */
#pragma omp parallel for schedule(static) if (n >= ((size_t)1 << 18))
    for (size_t i = 0; i < n; i++) a[i] += b[i];
}

static int is_pow2(int x) { return x > 0 && (x & (x - 1)) == 0; }

static int floor_pow2(int x)
{
    int p = 1;
    while (p <= x / 2) p *= 2;
    return p;
}

static int ilog2(int x)
{
    int k = 0;
    while ((1 << k) < x) k++;
    return k;
}

static int bitrev(int x, int bits)
{
    int y = 0;
    for (int i = 0; i < bits; i++) y |= ((x >> i) & 1) << (bits - 1 - i);
    return y;
}

/* Block j of nb over n values: blocks of ceil(n/nb) rounded up to `align`. */
static size_t block_lo_aligned(size_t n, size_t align, size_t nb, size_t j)
{
    size_t bs = (n + nb - 1) / nb;
    bs = (bs + align - 1) / align * align;
    return j * bs < n ? j * bs : n; /* j * bs cannot overflow: j <= nb, bs ~ n / nb */
}

/* Blocks of a bucket of n values. */
static size_t block_lo(size_t n, size_t nb, size_t j)
{
    return block_lo_aligned(n, BLOCK_ALIGN, nb, j);
}

/* Blocks of the whole buffer, aligned to cfg.shard_align (default BLOCK_ALIGN). */
static size_t buf_block_lo(const GradReducer *r, size_t nb, size_t j)
{
    return block_lo_aligned(r->n, r->align, nb, j);
}

/* Parent of node [lo, hi) in the canonical tree over [a, b). 0 when the node is the root. */
static int tree_parent(size_t a, size_t b, size_t lo, size_t hi, size_t *plo, size_t *phi,
                       int *right)
{
    size_t x = a, y = b;
    if (x == lo && y == hi) return 0;
    for (;;) {
        ASSERT(y - x >= 2 && lo >= x && hi <= y);
        size_t mid = x + (y - x) / 2;
        if (hi <= mid) {
            if (lo == x && hi == mid) { *plo = x; *phi = y; *right = 0; return 1; }
            y = mid;
        } else {
            ASSERT(lo >= mid);
            if (lo == mid && hi == y) { *plo = x; *phi = y; *right = 1; return 1; }
            x = mid;
        }
    }
}

static int sendrecv_f32(GradReducer *r, const float *send, size_t ns, float *recv, size_t nr,
                        int partner, int tag)
{
    size_t total = ns > nr ? ns : nr; /* the partner computes the same total */
    for (size_t off = 0; off < total; off += CHUNK) {
        int sc = (int)(off < ns ? (ns - off < CHUNK ? ns - off : CHUNK) : 0);
        int rc = (int)(off < nr ? (nr - off < CHUNK ? nr - off : CHUNK) : 0);
        MPI_TRY(MPI_Sendrecv(send + (sc ? off : 0), sc, MPI_FLOAT, partner, tag,
                             recv + (rc ? off : 0), rc, MPI_FLOAT, partner, tag, r->comm,
                             MPI_STATUS_IGNORE));
    }
    return ERR_OK;
}

static int send_f32(GradReducer *r, const float *buf, size_t n, int to, int tag)
{
    for (size_t off = 0; off < n; off += CHUNK) {
        int c = (int)(n - off < CHUNK ? n - off : CHUNK);
        MPI_TRY(MPI_Send(buf + off, c, MPI_FLOAT, to, tag, r->comm));
    }
    return ERR_OK;
}

static int recv_f32(GradReducer *r, float *buf, size_t n, int from, int tag)
{
    for (size_t off = 0; off < n; off += CHUNK) {
        int c = (int)(n - off < CHUNK ? n - off : CHUNK);
        MPI_TRY(MPI_Recv(buf + off, c, MPI_FLOAT, from, tag, r->comm, MPI_STATUS_IGNORE));
    }
    return ERR_OK;
}

static float *tmp_buf(GradReducer *r)
{
    if (!r->tmp) r->tmp = xalloc_aligned(r->n * sizeof(float));
    return r->tmp;
}

/* ---- the cross-rank exchange (power-of-two group of ranks 0..Q-1) -------------------------- */

/* Block range [*b0, *b1) that rank `me` holds after `steps` recursive-halving steps over Q
 * blocks: step s keeps the lower half when bit s of me is 0, the upper half otherwise. */
static void halving_range(int me, int Q, int steps, int *b0, int *b1)
{
    int x = 0, y = Q;
    for (int s = 0; s < steps; s++) {
        int half = (y - x) / 2;
        if (me & (1 << s)) x += half;
        else y -= half;
    }
    *b0 = x;
    *b1 = y;
}

/* Reduce-scatter g over ranks 0..Q-1 (Q a power of two, this rank < Q). Step s pairs ranks at
 * distance 2^s: the two groups of 2^s ranks hold the sums of adjacent micro-shard ranges, and
 * their element-wise sum is the next level of the canonical tree. Afterwards this rank holds the
 * full sum on block bitrev(me) of Q. */
static int reduce_scatter_pow2(GradReducer *r, float *g, int Q)
{
    int me = r->rank, k = ilog2(Q);
    float *t = tmp_buf(r);
    for (int s = 0; s < k; s++) {
        int b0, b1;
        halving_range(me, Q, s, &b0, &b1);
        int half = (b1 - b0) / 2, partner = me ^ (1 << s);
        int keep0 = (me & (1 << s)) ? b0 + half : b0, send0 = (me & (1 << s)) ? b0 : b0 + half;
        size_t klo = buf_block_lo(r, (size_t)Q, (size_t)keep0);
        size_t khi = buf_block_lo(r, (size_t)Q, (size_t)(keep0 + half));
        size_t slo = buf_block_lo(r, (size_t)Q, (size_t)send0);
        size_t shi = buf_block_lo(r, (size_t)Q, (size_t)(send0 + half));
        TRY(sendrecv_f32(r, g + slo, shi - slo, t, khi - klo, partner, TAG_RS));
        vadd(g + klo, t, khi - klo); /* lower + upper subtree; float + is commutative */
    }
    return ERR_OK;
}

/* All-gather by recursive doubling: the reverse of reduce_scatter_pow2's block movement. */
static int allgather_pow2(GradReducer *r, float *g, int Q)
{
    int me = r->rank, k = ilog2(Q);
    for (int s = k - 1; s >= 0; s--) {
        int partner = me ^ (1 << s), m0, m1, p0, p1;
        halving_range(me, Q, s + 1, &m0, &m1);
        halving_range(partner, Q, s + 1, &p0, &p1);
        size_t mlo = buf_block_lo(r, (size_t)Q, (size_t)m0), mhi = buf_block_lo(r, (size_t)Q, (size_t)m1);
        size_t plo = buf_block_lo(r, (size_t)Q, (size_t)p0), phi = buf_block_lo(r, (size_t)Q, (size_t)p1);
        TRY(sendrecv_f32(r, g + mlo, mhi - mlo, g + plo, phi - plo, partner, TAG_AG));
    }
    return ERR_OK;
}

static void build_ops(GradReducer *r)
{
    int P = r->P, me = r->rank, Q = floor_pow2(P), extra = P - Q, k = ilog2(Q);
    r->nops = 0;
    if (me >= Q) {
        r->ops[r->nops++] = (DetOp){OP_FOLD_SEND, me - Q, 0};
        r->ops[r->nops++] = (DetOp){OP_BACK_RECV, me - Q, 0};
        return;
    }
    if (me < extra) r->ops[r->nops++] = (DetOp){OP_FOLD_RECV, me + Q, 0};
    for (int s = 0; s < k; s++) r->ops[r->nops++] = (DetOp){OP_RS, me ^ (1 << s), s};
    for (int s = k - 1; s >= 0; s--) r->ops[r->nops++] = (DetOp){OP_AG, me ^ (1 << s), s};
    if (me < extra) r->ops[r->nops++] = (DetOp){OP_BACK_SEND, me + Q, 0};
    ASSERT(r->nops <= MAX_OPS);
}

/* Sum g over all ranks in the deterministic order. With scatter_only (power-of-two P only) stop
 * after the reduce-scatter. */
static int det_allreduce(GradReducer *r, float *g, int scatter_only)
{
    int P = r->P, me = r->rank, Q = floor_pow2(P), extra = P - Q;
    ASSERT(!scatter_only || extra == 0);
    if (me >= Q) {
        TRY(send_f32(r, g, r->n, me - Q, TAG_FOLD));
    } else if (me < extra) {
        float *t = tmp_buf(r);
        TRY(recv_f32(r, t, r->n, me + Q, TAG_FOLD));
        vadd(g, t, r->n);
    }
    if (me < Q) {
        TRY(reduce_scatter_pow2(r, g, Q));
        if (scatter_only) return ERR_OK;
        TRY(allgather_pow2(r, g, Q));
    }
    if (me < extra) TRY(send_f32(r, g, r->n, me + Q, TAG_FOLD));
    else if (me >= Q) TRY(recv_f32(r, g, r->n, me - Q, TAG_FOLD));
    return ERR_OK;
}

/* ---- create / destroy --------------------------------------------------------------------- */

int reducer_create(GradReducer **out, const ReducerConfig *cfg)
{
    *out = NULL;
    if (cfg->n == 0) return ERR(ERR_ARG, "gradient reducer: the gradient buffer is empty (n = 0)");
    if (cfg->M == 0) return ERR(ERR_ARG, "gradient reducer: the batch has no micro-shards (M = 0)");
    if (cfg->mode != REDUCE_DETERMINISTIC && cfg->mode != REDUCE_OVERLAP)
        return ERR(ERR_ARG, "gradient reducer: unknown mode %d", (int)cfg->mode);

    GradReducer *r = xcalloc(1, sizeof *r);
    r->cfg = *cfg;
    r->n = cfg->n;
    r->M = cfg->M;
    r->align = cfg->shard_align ? cfg->shard_align : BLOCK_ALIGN;
    r->P = 1;
    r->rank = 0;
    r->comm = MPI_COMM_NULL;
    if (dist_initialized() && dist_size() > 1) {
        int rc = MPI_Comm_dup(MPI_COMM_WORLD, &r->comm);
        if (rc != MPI_SUCCESS) {
            xfree(r);
            return dist_mpi_fail(rc, "MPI_Comm_dup(MPI_COMM_WORLD)");
        }
        MPI_Comm_set_errhandler(r->comm, MPI_ERRORS_RETURN);
        MPI_Comm_rank(r->comm, &r->rank);
        MPI_Comm_size(r->comm, &r->P);
    }
    size_t P = (size_t)r->P;
    r->pow2 = is_pow2(r->P);
    r->bitwise = cfg->mode == REDUCE_DETERMINISTIC && r->pow2 && r->M % P == 0;
    r->first = (size_t)r->rank * r->M / P;
    r->end = ((size_t)r->rank + 1) * r->M / P;
    r->next = r->first;

    if (r->rank == 0 && cfg->mode == REDUCE_DETERMINISTIC && !r->bitwise)
        log_warn("gradient reduction: %d ranks with %zu micro-shards per batch is correct but not "
                 "bitwise reproducible across rank counts (that needs a power-of-two rank count "
                 "dividing the micro-shard count)", r->P, r->M);
    if (r->rank == 0 && r->M < P)
        log_warn("gradient reduction: %d ranks but only %zu micro-shards per batch: %zu of the "
                 "ranks have no work", r->P, r->M, P - r->M);

    r->bucketed = r->P > 1 && (cfg->mode == REDUCE_OVERLAP || !cfg->zero1);
    if (r->bucketed) {
        r->bucket = cfg->bucket_floats ? cfg->bucket_floats : DEFAULT_BUCKET;
        if (r->bucket > (size_t)INT_MAX) r->bucket = (size_t)INT_MAX / 64 * 64;
        if (cfg->mode == REDUCE_DETERMINISTIC) { /* one tag per bucket */
            void *attr = NULL;
            int flag = 0;
            MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &attr, &flag);
            size_t tags = (flag && attr ? (size_t)*(int *)attr : 32767) - TAG_BUCKET0;
            if ((r->n + r->bucket - 1) / r->bucket > tags) r->bucket = (r->n + tags - 1) / tags;
        }
        r->nbuckets = (r->n + r->bucket - 1) / r->bucket;
        r->covered = xcalloc(r->nbuckets, sizeof *r->covered);
        r->folded = xcalloc(r->nbuckets, 1);
        if (cfg->mode == REDUCE_OVERLAP) {
            r->req = xmalloc(r->nbuckets * sizeof *r->req);
            for (size_t j = 0; j < r->nbuckets; j++) r->req[j] = MPI_REQUEST_NULL;
        } else {
            build_ops(r);
            r->dreq = xmalloc(2 * r->nbuckets * sizeof *r->dreq);
            for (size_t j = 0; j < 2 * r->nbuckets; j++) r->dreq[j] = MPI_REQUEST_NULL;
            r->dop = xmalloc(r->nbuckets * sizeof *r->dop);
            r->didx = xmalloc(2 * r->nbuckets * sizeof *r->didx);
        }
    }
    *out = r;
    return ERR_OK;
}

void reducer_destroy(GradReducer **red)
{
    if (!red || !*red) return;
    GradReducer *r = *red;
    *red = NULL;
    size_t busy = 0;
    for (size_t j = 0; r->req && j < r->nbuckets; j++) busy += r->req[j] != MPI_REQUEST_NULL;
    for (size_t j = 0; r->dreq && j < 2 * r->nbuckets; j++)
        busy += r->dreq[j] != MPI_REQUEST_NULL;
    if (busy) {
        /* Only after an error: reductions are still in flight. Waiting for them could hang
         * (the other ranks may never join, and the abort that would end the job runs after
         * this), and freeing the buffers would let a late message land in freed memory
         * (receives cannot be taken back: an MPI_Iallreduce cannot be cancelled at all).
         * So the buffers, requests and communicator stay with the process, which the caller
         * is about to abort. */
        log_debug("gradient reducer: %zu requests in flight at destruction; its memory is "
                  "left to the process", busy);
        return;
    }
    for (size_t k = 0; k < STACK_MAX; k++) xfree_aligned(r->pool[k]);
    xfree_aligned(r->tmp);
    xfree(r->covered);
    xfree(r->folded);
    xfree(r->req);
    xfree(r->dreq);
    xfree(r->dop);
    xfree(r->didx);
    if (r->comm != MPI_COMM_NULL) MPI_Comm_free(&r->comm);
    xfree(r);
}

void reducer_local_shards(const GradReducer *r, size_t *first, size_t *end)
{
    *first = r->first;
    *end = r->end;
}

int reducer_bitwise(const GradReducer *r) { return r->bitwise; }

void reducer_stats(const GradReducer *r, ReducerStats *s) { *s = r->st; }

void reducer_shard_range(const GradReducer *r, int rank, size_t *lo, size_t *hi)
{
    ASSERT(rank >= 0 && rank < r->P);
    size_t nb = (size_t)r->P;
    size_t j = r->pow2 ? (size_t)bitrev(rank, ilog2(r->P)) : (size_t)rank;
    *lo = buf_block_lo(r, nb, j);
    *hi = buf_block_lo(r, nb, j + 1);
}

/* ---- buckets ------------------------------------------------------------------------------ */

static size_t bucket_hi(const GradReducer *r, size_t j)
{
    size_t hi = (j + 1) * r->bucket;
    return hi < r->n ? hi : r->n;
}

/* Deterministic buckets. A bucket runs the same op program as det_allreduce on its own values
 * (its own Q-block partition), so every value sees the same additions in the same order as in
 * det_allreduce: the bits do not depend on the bucket size. Ops of different buckets never wait
 * on each other (separate tags), so a rank can progress whichever buckets its partners reach. */
static int det_post(GradReducer *r, size_t j)
{
    const DetOp *o = &r->ops[r->dop[j]];
    size_t blo = j * r->bucket, nb = bucket_hi(r, j) - blo;
    float *g = r->slot[0] + blo, *t = tmp_buf(r) + blo;
    int tag = TAG_BUCKET0 + (int)j, Q = floor_pow2(r->P), me = r->rank;
    MPI_Request *rq = &r->dreq[2 * j];
    switch (o->kind) {
    case OP_FOLD_SEND:
    case OP_BACK_SEND:
        MPI_TRY(MPI_Isend(g, (int)nb, MPI_FLOAT, o->peer, tag, r->comm, &rq[0]));
        break;
    case OP_FOLD_RECV:
        MPI_TRY(MPI_Irecv(t, (int)nb, MPI_FLOAT, o->peer, tag, r->comm, &rq[1]));
        break;
    case OP_BACK_RECV:
        MPI_TRY(MPI_Irecv(g, (int)nb, MPI_FLOAT, o->peer, tag, r->comm, &rq[1]));
        break;
    case OP_RS: {
        int b0, b1;
        halving_range(me, Q, o->s, &b0, &b1);
        int half = (b1 - b0) / 2, up = (me >> o->s) & 1;
        int keep0 = up ? b0 + half : b0, send0 = up ? b0 : b0 + half;
        size_t klo = block_lo(nb, (size_t)Q, (size_t)keep0);
        size_t khi = block_lo(nb, (size_t)Q, (size_t)(keep0 + half));
        size_t slo = block_lo(nb, (size_t)Q, (size_t)send0);
        size_t shi = block_lo(nb, (size_t)Q, (size_t)(send0 + half));
        MPI_TRY(MPI_Isend(g + slo, (int)(shi - slo), MPI_FLOAT, o->peer, tag, r->comm, &rq[0]));
        MPI_TRY(MPI_Irecv(t + klo, (int)(khi - klo), MPI_FLOAT, o->peer, tag, r->comm, &rq[1]));
        break;
    }
    case OP_AG: {
        int m0, m1, p0, p1;
        halving_range(me, Q, o->s + 1, &m0, &m1);
        halving_range(o->peer, Q, o->s + 1, &p0, &p1);
        size_t mlo = block_lo(nb, (size_t)Q, (size_t)m0), mhi = block_lo(nb, (size_t)Q, (size_t)m1);
        size_t plo = block_lo(nb, (size_t)Q, (size_t)p0), phi = block_lo(nb, (size_t)Q, (size_t)p1);
        MPI_TRY(MPI_Isend(g + mlo, (int)(mhi - mlo), MPI_FLOAT, o->peer, tag, r->comm, &rq[0]));
        MPI_TRY(MPI_Irecv(g + plo, (int)(phi - plo), MPI_FLOAT, o->peer, tag, r->comm, &rq[1]));
        break;
    }
    }
    return ERR_OK;
}

/* The current op of bucket j has completed (both requests null): do its addition. */
static void det_complete(GradReducer *r, size_t j)
{
    const DetOp *o = &r->ops[r->dop[j]];
    size_t blo = j * r->bucket, nb = bucket_hi(r, j) - blo;
    float *g = r->slot[0] + blo, *t = r->tmp + blo;
    double t0 = core_now();
    if (o->kind == OP_FOLD_RECV) {
        vadd(g, t, nb);
    } else if (o->kind == OP_RS) {
        int b0, b1, Q = floor_pow2(r->P), me = r->rank;
        halving_range(me, Q, o->s + 1, &b0, &b1); /* the kept half */
        size_t klo = block_lo(nb, (size_t)Q, (size_t)b0), khi = block_lo(nb, (size_t)Q, (size_t)b1);
        vadd(g + klo, t + klo, khi - klo); /* lower + upper subtree; float + is commutative */
    }
    r->st.local_s += core_now() - t0;
}

/* Start bucket j, or move it past its completed op; posts the next op. */
static int det_advance(GradReducer *r, size_t j)
{
    if (r->dop[j] >= 0) det_complete(r, j);
    r->dop[j]++;
    if (r->dop[j] == r->nops) {
        r->ndone++;
        return ERR_OK;
    }
    return det_post(r, j);
}

static int det_start(GradReducer *r, size_t j, int early)
{
    ASSERT(r->dop[j] == -1);
    r->st.buckets++;
    if (early) r->st.buckets_early++;
    return det_advance(r, j);
}

/* Advance every bucket whose current op completed; wait for at least one when `block`. */
static int det_poll(GradReducer *r, int block)
{
    int cnt = 0, total = (int)(2 * r->nbuckets);
    double t0 = core_now();
    int rc = block ? MPI_Waitsome(total, r->dreq, &cnt, r->didx, MPI_STATUSES_IGNORE)
                   : MPI_Testsome(total, r->dreq, &cnt, r->didx, MPI_STATUSES_IGNORE);
    if (!block) r->st.test_s += core_now() - t0;
    if (rc != MPI_SUCCESS) return dist_mpi_fail(rc, "MPI_Waitsome/Testsome(gradient buckets)");
    if (cnt == MPI_UNDEFINED) {
        ASSERT(!block); /* waiting with nothing posted: a bucket was never started */
        return ERR_OK;
    }
    for (int i = 0; i < cnt; i++) {
        size_t j = (size_t)r->didx[i] / 2;
        if (r->dop[j] >= 0 && r->dop[j] < r->nops && r->dreq[2 * j] == MPI_REQUEST_NULL &&
            r->dreq[2 * j + 1] == MPI_REQUEST_NULL)
            TRY(det_advance(r, j));
    }
    return ERR_OK;
}

/* Finish the local tree sum on [lo, hi): during the last leaf every stacked subtree is the left
 * sibling of an ancestor of the leaf, so the merges leaf_end would do are exactly
 * slot[k-1] += slot[k] for k = depth..1. Doing them on a sub-range gives the same bits. */
static void fold_range(GradReducer *r, size_t lo, size_t hi)
{
    double t0 = core_now();
    for (size_t k = r->depth; k >= 1; k--) vadd(r->slot[k - 1] + lo, r->slot[k] + lo, hi - lo);
    r->st.local_s += core_now() - t0;
}

static int test_posted(GradReducer *r)
{
    double t0 = core_now();
    int flag = 0;
    int rc = MPI_Testall((int)r->nbuckets, r->req, &flag, MPI_STATUSES_IGNORE);
    r->st.test_s += core_now() - t0;
    if (rc != MPI_SUCCESS) return dist_mpi_fail(rc, "MPI_Testall(gradient buckets)");
    return ERR_OK;
}

/* Post every ready bucket whose predecessors in the fixed order are posted. */
static int post_ready(GradReducer *r, int early)
{
    while (r->next_post < r->nbuckets) {
        size_t j = r->cfg.ascending ? r->next_post : r->nbuckets - 1 - r->next_post;
        if (!r->folded[j]) break;
        size_t lo = j * r->bucket, hi = bucket_hi(r, j);
        MPI_TRY(MPI_Iallreduce(MPI_IN_PLACE, r->slot[0] + lo, (int)(hi - lo), MPI_FLOAT, MPI_SUM,
                               r->comm, &r->req[j]));
        r->next_post++;
        r->st.buckets++;
        if (early) r->st.buckets_early++;
    }
    return ERR_OK;
}

int reducer_mark_ready(GradReducer *r, size_t lo, size_t hi)
{
    ASSERT(r->in_leaf && lo <= hi && hi <= r->n);
    ASSERT(dist_on_main_thread()); /* MPI_THREAD_FUNNELED: see dist/dist.h */
    if (!r->last_leaf || !r->bucketed || lo == hi) return ERR_OK;
    for (size_t j = lo / r->bucket; j * r->bucket < hi; j++) {
        size_t blo = j * r->bucket, bhi = bucket_hi(r, j);
        size_t a = lo > blo ? lo : blo, b = hi < bhi ? hi : bhi;
        r->covered[j] += b - a;
        ASSERT(r->covered[j] <= bhi - blo); /* overlapping mark_ready ranges */
        if (r->covered[j] == bhi - blo && !r->folded[j]) {
            fold_range(r, blo, bhi);
            r->folded[j] = 1;
            if (r->dreq) TRY(det_start(r, j, 1));
        }
    }
    if (r->req) {
        TRY(post_ready(r, 1));
        if (r->next_post > 0) TRY(test_posted(r));
    }
    return reducer_progress(r);
}

int reducer_progress(GradReducer *r)
{
    ASSERT(dist_on_main_thread());
    if (r->req && r->next_post > 0) TRY(test_posted(r));
    if (r->dreq) TRY(det_poll(r, 0));
    return ERR_OK;
}

/* ---- the local tree ----------------------------------------------------------------------- */

static float *pool_buf(GradReducer *r, size_t k)
{
    ASSERT(k < STACK_MAX);
    if (!r->pool[k]) r->pool[k] = xalloc_aligned(r->n * sizeof(float));
    return r->pool[k];
}

static float *leaf_begin(GradReducer *r, size_t shard, float *ext)
{
    ASSERT(!r->in_leaf);
    ASSERT(shard == r->next && shard < r->end); /* micro-shards of this rank, in order */
    if (shard == r->first) {
        r->depth = 0;
        if (r->bucketed) {
            memset(r->covered, 0, r->nbuckets * sizeof *r->covered);
            memset(r->folded, 0, r->nbuckets);
            r->next_post = 0;
            for (size_t j = 0; r->dop && j < r->nbuckets; j++) r->dop[j] = -1;
            r->ndone = 0;
        }
    }
    float *g = ext ? ext : pool_buf(r, r->depth);
    r->slot[r->depth] = g;
    memset(g, 0, r->n * sizeof(float));
    r->slo[r->depth] = shard;
    r->shi[r->depth] = shard + 1;
    r->in_leaf = 1;
    r->last_leaf = shard + 1 == r->end;
    return g;
}

float *reducer_leaf_begin(GradReducer *r, size_t shard) { return leaf_begin(r, shard, NULL); }

float *reducer_leaf_begin_into(GradReducer *r, size_t shard, float *grad)
{
    ASSERT(grad != NULL);
    return leaf_begin(r, shard, grad);
}

int reducer_leaf_end(GradReducer *r)
{
    ASSERT(r->in_leaf);
    r->in_leaf = 0;
    r->next++;
    if (r->last_leaf) {
        /* Everything completes: fold the rest, post the remaining buckets. */
        if (r->bucketed) {
            for (size_t q = 0; q < r->nbuckets; q++) {
                size_t j = r->cfg.ascending ? q : r->nbuckets - 1 - q;
                if (r->folded[j]) continue;
                fold_range(r, j * r->bucket, bucket_hi(r, j));
                r->folded[j] = 1;
                if (r->dreq) TRY(det_start(r, j, 0));
            }
            if (r->req) TRY(post_ready(r, 0));
        } else {
            fold_range(r, 0, r->n);
        }
        r->depth = 0;
        r->slo[0] = r->first;
        r->shi[0] = r->end;
        return ERR_OK;
    }
    /* Merge while the top of the stack is a right child: its left sibling is just below. */
    double t0 = core_now();
    size_t top = r->depth, plo, phi;
    int right;
    while (tree_parent(r->first, r->end, r->slo[top], r->shi[top], &plo, &phi, &right) && right) {
        ASSERT(top > 0 && r->slo[top - 1] == plo && r->shi[top - 1] == r->slo[top]);
        vadd(r->slot[top - 1], r->slot[top], r->n);
        r->shi[top - 1] = phi;
        top--;
    }
    if (r->slot[top] != pool_buf(r, top)) { /* a caller's leaf buffer stays on the stack */
        memcpy(r->pool[top], r->slot[top], r->n * sizeof(float));
        r->slot[top] = r->pool[top];
    }
    r->depth = top + 1;
    r->st.local_s += core_now() - t0;
    return ERR_OK;
}

/* ---- finish ------------------------------------------------------------------------------- */

static float *local_sum(GradReducer *r)
{
    ASSERT(!r->in_leaf && r->next == r->end); /* every micro-shard of this rank is done */
    r->next = r->first;
    if (r->first == r->end) { /* this rank owns no micro-shard: it contributes zeros */
        float *g = r->slot[0] = pool_buf(r, 0);
        memset(g, 0, r->n * sizeof(float));
        if (r->bucketed) {
            memset(r->folded, 1, r->nbuckets);
            r->next_post = 0;
            for (size_t j = 0; r->dop && j < r->nbuckets; j++) r->dop[j] = -1;
            r->ndone = 0;
        }
    }
    return r->slot[0];
}

static int finish(GradReducer *r, float **grad, int scatter_only)
{
    int idle = r->first == r->end;
    float *g = local_sum(r);
    double t0 = core_now();
    if (r->P > 1) {
        if (r->req) {
            TRY(post_ready(r, 0)); /* no-op unless this rank had no micro-shard */
            ASSERT(r->next_post == r->nbuckets);
            int rc = MPI_Waitall((int)r->nbuckets, r->req, MPI_STATUSES_IGNORE);
            if (rc != MPI_SUCCESS) return dist_mpi_fail(rc, "MPI_Waitall(gradient buckets)");
        } else if (r->dreq) {
            for (size_t j = 0; idle && j < r->nbuckets; j++) TRY(det_start(r, j, 0));
            while (r->ndone < r->nbuckets) TRY(det_poll(r, 1));
        } else {
            TRY(det_allreduce(r, g, scatter_only));
        }
    }
    double dt = core_now() - t0;
    r->st.comm_s += dt;
    r->st.last_comm_s = dt;
    r->st.steps++;
    *grad = g;
    return ERR_OK;
}

int reducer_finish(GradReducer *r, float **grad) { return finish(r, grad, 0); }

int reducer_finish_shard(GradReducer *r, float **grad, size_t *lo, size_t *hi)
{
    ASSERT(r->cfg.zero1);
    int scatter = r->pow2 && !r->req && r->P > 1;
    TRY(finish(r, grad, scatter));
    reducer_shard_range(r, r->rank, lo, hi);
    return ERR_OK;
}

int reducer_allgather_params(GradReducer *r, float *params)
{
    ASSERT(r->cfg.zero1);
    if (r->P == 1) return ERR_OK;
    double t0 = core_now();
    if (r->pow2) {
        TRY(allgather_pow2(r, params, r->P));
    } else {
        for (int j = 0; j < r->P; j++) {
            size_t lo, hi;
            reducer_shard_range(r, j, &lo, &hi);
            for (size_t off = lo; off < hi; off += CHUNK) {
                int c = (int)(hi - off < CHUNK ? hi - off : CHUNK);
                MPI_TRY(MPI_Bcast(params + off, c, MPI_FLOAT, j, r->comm));
            }
        }
    }
    double dt = core_now() - t0;
    r->st.comm_s += dt;
    r->st.last_comm_s += dt;
    return ERR_OK;
}

/* ---- parameter agreement ------------------------------------------------------------------ */

static uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t dist_hash_f32(const float *p, size_t n)
{
    /* Four FNV-style lanes over 8-byte words. Each round h = rotl((h ^ w) * odd, 31) is a
     * bijection of h, and the final combination is a bijection of each lane, so changing one
     * word always changes the hash. */
    const uint64_t prime = UINT64_C(0x100000001b3);
    uint64_t h[4] = {UINT64_C(0xcbf29ce484222325), UINT64_C(0x84222325cbf29ce4),
                     UINT64_C(0x9e3779b97f4a7c15), UINT64_C(0xc2b2ae3d27d4eb4f)};
    const unsigned char *b = (const unsigned char *)p;
    size_t nw = n / 2, i = 0;
    for (; i + 4 <= nw; i += 4) {
        for (int l = 0; l < 4; l++) {
            uint64_t w;
            memcpy(&w, b + 8 * (i + (size_t)l), 8);
            h[l] = rotl64((h[l] ^ w) * prime, 31);
        }
    }
    for (; i < nw; i++) {
        uint64_t w;
        memcpy(&w, b + 8 * i, 8);
        h[i & 3] = rotl64((h[i & 3] ^ w) * prime, 31);
    }
    if (n & 1) {
        uint32_t w;
        memcpy(&w, b + 8 * nw, 4);
        h[0] = rotl64((h[0] ^ w) * prime, 31);
    }
    uint64_t x = UINT64_C(0x6a09e667f3bcc909) ^ (uint64_t)n;
    for (int l = 0; l < 4; l++) x = rotl64((x ^ h[l]) * prime, 29);
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    return x;
}

int dist_params_agree(const float *p, size_t n, long step, uint64_t *hash_out)
{
    uint64_t h = dist_hash_f32(p, n);
    if (hash_out) *hash_out = h;
    int P = dist_initialized() ? dist_size() : 1;
    if (P == 1) return ERR_OK;
    uint64_t *all = xmalloc((size_t)P * sizeof *all);
    int rc = dist_allgather(&h, all, sizeof h);
    if (rc != ERR_OK) {
        xfree(all);
        return rc;
    }
    int bad = 0;
    for (int i = 1; i < P; i++) bad += all[i] != all[0];
    if (!bad) {
        xfree(all);
        return ERR_OK;
    }
    char msg[900];
    size_t len = 0;
    int listed = 0;
    len += (size_t)snprintf(msg, sizeof msg,
                            "ranks disagree on parameters after step %ld (%zu floats): rank 0 "
                            "hash %016llx",
                            step, n, (unsigned long long)all[0]);
    for (int i = 1; i < P && len < sizeof msg; i++) {
        if (all[i] == all[0]) continue;
        if (listed == 8) {
            len += (size_t)snprintf(msg + len, sizeof msg - len, ", and %d more", bad - listed);
            break;
        }
        len += (size_t)snprintf(msg + len, sizeof msg - len, ", rank %d hash %016llx", i,
                                (unsigned long long)all[i]);
        listed++;
    }
    xfree(all);
    ERR(ERR_MPI, "%s (%d of %d ranks differ from rank 0)", msg, bad, P);
    err_hint("every rank must apply the same update to the same weights: look for a "
             "rank-dependent random stream or initialisation, a reduction whose result differs "
             "between ranks, a rank that skipped a step, or faulty memory; resume from the last "
             "checkpoint written before this step");
    return ERR_MPI;
}
