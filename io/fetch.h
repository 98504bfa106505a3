/* io/fetch.h - download files with libcurl, verify them, and install them atomically.
 *
 * What a fetch guarantees: a file appears under its final name only after its size, its SHA-256
 * and its format have been checked. Everything in flight lives under names no reader opens:
 *   <dir>/<remote>.part      the bytes received so far (kept after a cut connection so the next
 *                            attempt or the next run resumes it with an HTTP Range request),
 *   <dir>/<remote>.part.src  the URL those bytes came from (a part is only resumed from the
 *                            same URL: mirrors may serve differently compressed copies),
 *   <dir>/<local>.tmp        the decoded payload being verified.
 * A part that fails verification is deleted, never resumed.
 *
 * Integrity model. A FetchFile names a remote file (e.g. "train-images-idx3-ubyte.gz") and the
 * payload stored locally (e.g. "train-images-idx3-ubyte", the decompressed bytes). The payload
 * is always checked: its size (when known), its format, and its SHA-256 against, in order:
 *   1. the pinned payload hash (payload_sha256), when there is one: this is what makes any
 *      mirror safe, since a mirror may re-compress (Debian's .gz copies differ from upstream's
 *      while the decompressed data are identical), so a .gz whose bytes match no file pin is
 *      still accepted when its payload matches;
 *   2. otherwise the hash recorded in <dir>/<local>.sha256 by an earlier verified download;
 *   3. otherwise (first download) the remote bytes must match a pinned copy (file_pins: size
 *      + SHA-256 of a known upstream file): the payload's hash is then recorded. Bytes that
 *      match no pin are refused, unless the user opted in for this run
 *      (FetchOptions.allow_unpinned: `dfm fetch --allow-unpinned`, job key
 *      data.allow_unpinned), which records their hash as trusted on first use.
 *   A record (<local>.sha256) says where its hash came from on its second line: the URL, and
 *   the pinned copy it matched or that it was trusted on first use.
 *
 * Stored files are the decoded payloads (decompressed once at fetch time) so loading never
 * inflates; verification at load is one SHA-256 pass over the payload.
 *
 * URLs: only http, https and file are allowed (redirects: http and https only, so a server
 * cannot redirect into the local file system, and never from https to http). TLS peers and host names are verified. A reply
 * whose first bytes are an HTML document, or that is not gzip data when gzip is expected, is
 * rejected without being stored. Each mirror is tried up to `retries` times on transient
 * failures (connection refused or cut, timeouts, HTTP 5xx/408/429) with a doubling delay;
 * permanent failures (HTTP 4xx, HTML page, missing file, bad data) move to the next mirror.
 *
 * Bounds: a transfer stops at the most bytes the remote file may have (its largest pinned copy,
 * or its payload size plus gzip's worst-case overhead, or else FetchOptions.max_bytes), both
 * when the server announces a larger Content-Length and while a body without one arrives;
 * gunzip stops at payload size + 1 bytes (max_bytes when the size is not pinned), before they
 * are written; and all attempts at one file, over every mirror, share one deadline
 * (deadline_s, default FETCH_DEADLINE_S; DFM_FETCH_DEADLINE_S in the environment overrides
 * it), so a server that trickles bytes cannot hold the lock, and the ranks waiting behind it,
 * for ever. A part cut by the deadline is kept and resumed by the next run.
 *
 * Concurrency: callers serialise fetches into one directory with fetch_lock (flock on
 * <dir>/.lock); a process that waited re-verifies what the other one installed instead of
 * downloading again. fetch_all verifies first and locks only when something must be written,
 * so verified data in a read-only directory need no write access at all. io/ is MPI-free: dist/data.c decides which ranks fetch.
 *
 * fetch_global_init must be called once, before any threads start (cmd/ does it); the other
 * functions may be called from one thread at a time.
 */
#ifndef DFM_IO_FETCH_H
#define DFM_IO_FETCH_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    FETCH_RAW = 0,  /* payload = the remote bytes */
    FETCH_GZIP = 1  /* payload = the remote bytes gunzipped (gzip magic required) */
} FetchEncoding;

/* One known copy of a remote file: its byte count and SHA-256 (64 lowercase hex digits). */
typedef struct {
    uint64_t size;
    const char *sha256;
    const char *origin; /* where this copy comes from, for log lines ("Debian package") */
} FetchPin;

/* Format check of a decoded payload before it is installed; returns ERR_OK or ERR(...). */
typedef int (*FetchValidateFn)(const char *path, void *ctx);

typedef struct {
    const char *remote;          /* name appended to each mirror base URL */
    const char *local;           /* name of the stored payload in the target directory */
    FetchEncoding enc;
    const FetchPin *file_pins;   /* known copies of the remote bytes (may be NULL) */
    size_t nfile_pins;
    uint64_t payload_size;       /* 0 = unknown */
    const char *payload_sha256;  /* NULL = none pinned: trust on first use (see above) */
    FetchValidateFn validate;    /* NULL = no format check */
    void *validate_ctx;
} FetchFile;

typedef struct {
    const char *const *mirrors;  /* base URLs (a trailing '/' is added when missing), in order */
    size_t nmirrors;
    int retries;                 /* attempts per mirror for transient failures; default 3 */
    double backoff_s;            /* delay before the 2nd attempt, doubled after each; default 1.0,
                                    DFM_FETCH_BACKOFF_MS in the environment overrides it */
    long connect_timeout_s;      /* default 20 */
    long low_speed_bytes;        /* abort a transfer slower than this many bytes/s ... */
    long low_speed_time_s;       /* ... for this many seconds; defaults 1024 and 30 */
    int progress;                /* -1: a bar when stderr is a terminal, log lines otherwise;
                                    0: log lines; 1: bar */
    int allow_unpinned;          /* accept (and record) bytes that match no pinned or recorded
                                    hash: trust on first use, only when the user asks */
    uint64_t max_bytes;          /* size limit for a file (remote or decoded) whose size is
                                    not pinned; default FETCH_MAX_BYTES */
    double deadline_s;           /* all attempts at one file end after this many seconds;
                                    default FETCH_DEADLINE_S */
    const char *how_mirror;      /* how the user adds a mirror, for hints: "pass --mirror URL"
                                    (dfm fetch, the default); dfm train names its job key */
    const char *ca_file;         /* PEM bundle of the certificate authorities to trust instead
                                    of the system's (a site's own CA); default
                                    $DFM_FETCH_CA_BUNDLE, NULL = the system's */
} FetchOptions;

/* No built-in dataset file comes near either limit (the largest, CIFAR-10's archive, is
 * 170 MB and decodes to 185 MB; it downloads in minutes on a slow link). */
#define FETCH_MAX_BYTES ((uint64_t)1 << 30)
#define FETCH_DEADLINE_S 1800.0

/* curl_global_init; call once before threads start. Returns ERR_OK or ERR_NET. */
int fetch_global_init(void);
void fetch_global_cleanup(void);

void fetch_options_default(FetchOptions *o);

/* Create dir (and parents) if needed and take an exclusive flock on <dir>/.lock, waiting for
 * another holder (with a log line) if there is one. *fd receives the descriptor for
 * fetch_unlock. */
int fetch_lock(const char *dir, int *fd);
void fetch_unlock(int fd);

/* Check the stored payload <dir>/<local>: present, right size, right SHA-256 (pinned or
 * recorded), and valid format. ERR_IO when missing, ERR_INTEGRITY/ERR_FORMAT when wrong.
 * A trust-on-first-use file without a record is rejected (ERR_INTEGRITY). */
int fetch_verify(const char *dir, const FetchFile *f);

/* Make <dir>/<local> present and verified: keep it when it verifies, otherwise delete it and
 * download from the mirrors in order. The caller holds fetch_lock(dir). On failure no file
 * under <local> exists and the error names each URL tried with its HTTP status or curl error. */
int fetch_file(const char *dir, const FetchFile *f, const FetchOptions *o);

/* Make every file of a set present and verified in dir. When all of them already verify,
 * nothing is written (no lock either): verified data on a read-only file system are usable.
 * Otherwise take fetch_lock(dir) and fetch_file each; when the directory cannot be written,
 * the error names the file that needs downloading and what must be writable. */
int fetch_all(const char *dir, const FetchFile *files, size_t n, const FetchOptions *o);

/* SHA-256 of a whole file as 64 lowercase hex digits, and its size. */
int fetch_sha256_file(const char *path, char hex[65], uint64_t *size);

/* SHA-256 of a buffer. */
void fetch_sha256_buf(const void *buf, size_t n, char hex[65]);

#endif
