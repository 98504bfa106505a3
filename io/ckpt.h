/* io/ckpt.h - the checkpoint format: shard files, manifest.yaml, listing, verification.
 *
 * A checkpoint is a directory <checkpoint.dir>/step-<8 digits>/ holding manifest.yaml and one
 * shard file per rank of the world that wrote it, shard-<rank 5 digits>-of-<world 5 digits>.bin.
 * The training state is a set of flat float32 buffers of n values in the parameter table's
 * layout: params, ema (when the run has an EMA), Adam m and v. Shard r holds the contiguous
 * slice [lo, hi) of EVERY buffer; the slices of all shards tile [0, n).
 *
 * Shard file (little-endian, fixed-width fields), CKPT_SHARD_HEADER = 64 bytes of header:
 *   char[8] magic "DFMSHRD1", u32 version (1), u32 endianness tag 0x01020304,
 *   u32 rank, u32 world, u32 buffers (3 or 4), u32 flags (bit 0: has EMA),
 *   u64 n, u64 lo, u64 hi, u64 step
 *   then for each buffer in the order params, [ema], m, v: f32[hi - lo]
 * so value i of buffer b sits at byte 64 + 4 * (b * (hi - lo) + i - lo). The file is exactly
 * 64 + 4 * buffers * (hi - lo) bytes. Its SHA-256 is computed while it is written (never by
 * re-reading) and recorded in the manifest.
 *
 * manifest.yaml (written with libyaml's emitter, read with its parser) holds the format version,
 * dfm version and commit, step, time, world size and the slice table (per shard: file, rank,
 * lo, hi, bytes, sha256), the buffers, the parameter table (name, shape, offset, count), the
 * counters (optimizer step, EMA updates, non-finite steps, ...), and the resolved job spec with
 * its SHA-256. A directory is a committed checkpoint when it is named step-N and has a manifest;
 * step-N.tmp directories are partial saves (see dist/ckpt.h for the commit protocol).
 *
 * Readers never trust a size: every count, offset and product is overflow-checked and bounded,
 * files are checked against the exact length their header implies, and the manifest must tile.
 * Errors are ERR_FORMAT (bad layout), ERR_INTEGRITY (hash or size mismatch), ERR_IO.
 */
#ifndef DFM_IO_CKPT_H
#define DFM_IO_CKPT_H

#include <stddef.h>
#include <stdint.h>

#define CKPT_FORMAT_VERSION 1
#define CKPT_SHARD_HEADER 64
#define CKPT_NAME_MAX 64
#define CKPT_MAX_WORLD 65536
#define CKPT_MAX_TENSORS 100000
#define CKPT_MAX_N ((uint64_t)1 << 38) /* floats per buffer */

/* Buffer kinds, in file order (EMA only when present). */
typedef enum { CKPT_PARAMS = 0, CKPT_EMA = 1, CKPT_M = 2, CKPT_V = 3, CKPT_NKINDS = 4 } CkptKind;
const char *ckpt_kind_name(CkptKind k);
/* Position of buffer kind k in a shard with/without EMA, -1 when absent. */
int ckpt_kind_index(CkptKind k, int has_ema);

typedef struct {
    uint32_t rank, world, nbuf, has_ema;
    uint64_t n, lo, hi, step;
} CkptShardHeader;

typedef struct {
    char file[CKPT_NAME_MAX];
    uint32_t rank;
    uint64_t lo, hi, bytes;
    char sha256[65];
} CkptShardInfo;

typedef struct {
    char name[CKPT_NAME_MAX];
    int ndim;
    int shape[4];
    uint64_t offset, count;
} CkptTensor;

typedef struct {
    uint64_t optim_step;      /* Adam's t */
    uint64_t ema_updates;
    uint64_t nonfinite;       /* steps skipped so far */
    uint64_t consecutive_bad; /* the current run of non-finite steps */
    uint64_t steps_done;      /* updates applied */
} CkptCounters;

typedef struct {
    int format_version;
    char dfm_version[32], dfm_commit[48];
    uint64_t step;
    char time[32]; /* UTC, ISO 8601 */
    uint32_t world;
    uint64_t n;
    int has_ema, zero1;
    CkptCounters counters;
    size_t n_tensors;
    CkptTensor *tensors;   /* owned */
    CkptShardInfo *shards; /* owned, world entries, sorted by rank */
    char *spec;            /* owned: the resolved job spec, YAML */
    char spec_sha256[65];
} CkptManifest;

/* ---- shards ------------------------------------------------------------------------------ */

/* Called after each chunk written (done of total bytes); for fault injection in tests. */
typedef void (*CkptChunkHook)(void *ctx, uint64_t done, uint64_t total);

/* Write a shard: header then, for each of h->nbuf buffers, bufs[b][0 .. hi-lo) (each pointer
 * points at the slice's first value). Hashes while writing, fsyncs, closes. On failure (full
 * disk, ...) the message names the path and how many bytes were written, and the file is
 * removed. *bytes and sha256 receive the size and hex digest. */
int ckpt_shard_write(const char *path, const CkptShardHeader *h, const float *const *bufs,
                     uint64_t *bytes, char sha256[65], CkptChunkHook hook, void *hook_ctx);

typedef struct {
    int fd;
    char path[4200];
    CkptShardHeader h;
} CkptShard;

/* Open and check a shard: magic, version, endianness, header fields, exact file size. */
int ckpt_shard_open(CkptShard *s, const char *path);
/* Read values [i0, i1) of buffer kind k (lo <= i0 <= i1 <= hi) into out. */
int ckpt_shard_read(const CkptShard *s, CkptKind k, uint64_t i0, uint64_t i1, float *out);
void ckpt_shard_close(CkptShard *s);
void ckpt_shard_name(char *buf, size_t size, uint32_t rank, uint32_t world);

/* SHA-256 and size of a whole file, streamed. */
int ckpt_file_sha256(const char *path, char hex[65], uint64_t *bytes);

/* ---- manifest ---------------------------------------------------------------------------- */

/* Write <dir>/manifest.yaml atomically (temporary file, fsync, rename, fsync dir). */
int ckpt_manifest_write(const char *dir, const CkptManifest *m);
/* Read and validate <dir>/manifest.yaml (tables tile, shards cover [0, n), sizes agree). */
int ckpt_manifest_read(CkptManifest *m, const char *dir);
/* The same from memory; name is used in messages (the fuzz target calls this). */
int ckpt_manifest_parse(CkptManifest *m, const char *text, size_t len, const char *name);
void ckpt_manifest_free(CkptManifest *m);

/* Read values [i0, i1) of buffer k of the checkpoint in dir into out, from whichever shards
 * hold them (byte ranges only: this is how a run on another rank count reshards). */
int ckpt_read_range(const char *dir, const CkptManifest *m, CkptKind k, uint64_t i0,
                    uint64_t i1, float *out);

/* Check size and SHA-256 of shards first, first + stride, ... against the manifest. The error
 * names the file and its byte count. *bytes (may be NULL) receives the bytes hashed. */
int ckpt_verify(const char *dir, const CkptManifest *m, uint32_t first, uint32_t stride,
                uint64_t *bytes);

/* ---- a checkpoint directory --------------------------------------------------------------- */

typedef struct {
    char name[CKPT_NAME_MAX]; /* step-00000100 or step-00000100.tmp */
    uint64_t step;
    int committed;     /* step-N with a manifest that parses */
    int latest;        /* the `latest` pointer names it */
    char time[32];
    uint64_t bytes;    /* sum of the files in it */
    uint32_t world;    /* 0 when unknown */
    char problem[200]; /* why it is not committed ("" when it is) */
} CkptEntry;

/* Every step-N and step-N.tmp directory of ckdir, sorted by step then name. A missing ckdir
 * gives an empty list. */
int ckpt_list(const char *ckdir, CkptEntry **out, size_t *count);
/* Given a run directory, a checkpoint directory or one checkpoint, find the checkpoint dir
 * (ckdir) and, when arg is one checkpoint, its path (one, "" otherwise). */
int ckpt_resolve(const char *arg, char *ckdir, size_t ckdir_size, char *one, size_t one_size);
/* The name the `latest` pointer holds ("" when there is none). */
int ckpt_latest_name(const char *ckdir, char name[CKPT_NAME_MAX]);
/* Move the `latest` pointer atomically to name. */
int ckpt_set_latest(const char *ckdir, const char *name);
/* Remove every *.tmp directory of ckdir except `except` (may be NULL). */
int ckpt_clean_stale(const char *ckdir, const char *except);
/* Retention after a commit: keep the newest `keep` committed checkpoints (0 = all), every step
 * that is a multiple of keep_every (0 = none), and `protect`; remove the others. */
int ckpt_retain(const char *ckdir, int keep, int keep_every, const char *protect);
/* rm -r of one directory (files only one level deep, as checkpoints are). */
int ckpt_remove_dir(const char *path);
/* "step-%08llu" */
void ckpt_step_name(char *buf, size_t size, uint64_t step);

/* ---- the job spec inside a manifest -------------------------------------------------------- */

/* Flatten a YAML mapping into dotted "key" = "value" pairs (sequences as "[a, b]"), in document
 * order. The caller frees with ckpt_kv_free. */
typedef struct {
    char **keys, **vals;
    size_t n;
} CkptKV;
int ckpt_yaml_flatten(const char *text, size_t len, CkptKV *kv);
const char *ckpt_kv_get(const CkptKV *kv, const char *key);
void ckpt_kv_free(CkptKV *kv);

#endif
