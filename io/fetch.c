/* io/fetch.c - libcurl downloads with resume, sniffing, verification and atomic install.
 * See io/fetch.h for the contract. */
#include "io/fetch.h"
#include "io/fsutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "io/sha256.h"

#ifndef DFM_VERSION
#define DFM_VERSION "dev"
#endif

/* ---- small helpers ------------------------------------------------------------------------ */

static char *path_join(const char *dir, const char *name, const char *suffix)
{
    size_t n = strlen(dir) + strlen(name) + strlen(suffix) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s%s", dir, name, suffix);
    return p;
}

/* fopen(path, "r") that does not follow a symbolic link at path. */
static FILE *fopen_nofollow(const char *path)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat st;
    FILE *f = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? fdopen(fd, "r") : NULL;
    if (!f) close(fd);
    return f;
}

static int file_size(const char *path, uint64_t *size)
{
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    *size = (uint64_t)st.st_size;
    return 0;
}

static void sleep_s(double s)
{
    if (s <= 0) return;
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

void fetch_sha256_buf(const void *buf, size_t n, char hex[65])
{
    Sha256 *s = sha256_create();
    sha256_update(s, buf, n);
    sha256_final_hex(s, hex);
}

int fetch_sha256_file(const char *path, char hex[65], uint64_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return ERR(ERR_IO, "open %s: %s", path, strerror(errno));
    enum { BUF = 1 << 20 };
    unsigned char *buf = xmalloc(BUF);
    Sha256 *s = sha256_create();
    uint64_t total = 0;
    size_t n;
    while ((n = fread(buf, 1, BUF, f)) > 0) {
        sha256_update(s, buf, n);
        total += n;
    }
    int bad = ferror(f);
    fclose(f);
    xfree(buf);
    sha256_final_hex(s, hex);
    if (bad) return ERR(ERR_IO, "read %s: I/O error", path);
    if (size) *size = total;
    return ERR_OK;
}

/* ---- global state, options, lock ---------------------------------------------------------- */

int fetch_global_init(void)
{
    CURLcode c = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (c != CURLE_OK) return ERR(ERR_NET, "curl_global_init: %s", curl_easy_strerror(c));
    return ERR_OK;
}

void fetch_global_cleanup(void) { curl_global_cleanup(); }

void fetch_options_default(FetchOptions *o)
{
    memset(o, 0, sizeof *o);
    o->retries = 3;
    o->backoff_s = 1.0;
    o->connect_timeout_s = 20;
    o->low_speed_bytes = 1024;
    o->low_speed_time_s = 30;
    o->progress = -1;
    o->how_mirror = "pass --mirror URL";
    o->max_bytes = FETCH_MAX_BYTES;
    o->deadline_s = FETCH_DEADLINE_S;
    const char *ca = getenv("DFM_FETCH_CA_BUNDLE");
    o->ca_file = ca && *ca ? ca : NULL;
    const char *d = getenv("DFM_FETCH_DEADLINE_S");
    if (d && *d) {
        char *end;
        double v = strtod(d, &end);
        if (!*end && v > 0) o->deadline_s = v;
    }
    const char *e = getenv("DFM_FETCH_BACKOFF_MS");
    if (e && *e) {
        char *end;
        double ms = strtod(e, &end);
        if (!*end && ms >= 0) o->backoff_s = ms / 1000.0;
    }
}

int fetch_lock(const char *dir, int *fd)
{
    TRY(fs_path_nonempty(dir, "the data directory"));
    if (fs_mkdir_p(dir) != ERR_OK) {
        err_hint("pass --dir with a writable directory");
        return ERR_IO;
    }
    char *p = path_join(dir, ".lock", "");
    /* Never through a link: a lock file planted as a symlink would make dfm create or lock a
     * file elsewhere. It is not replaced either (others may hold a lock on it). */
    int f = open(p, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (f < 0) {
        int e = errno;
        if (e == ELOOP) {
            ERR(ERR_IO, "lock file %s is a symbolic link; dfm does not lock through links", p);
            err_hint("remove %s (no dfm process uses a link as its lock)", p);
        } else {
            ERR(ERR_IO, "open lock file %s: %s", p, strerror(e));
        }
        xfree(p);
        return ERR_IO;
    }
    if (flock(f, LOCK_EX | LOCK_NB) != 0) {
        log_info("waiting for another process fetching into %s (lock %s)", dir, p);
        while (flock(f, LOCK_EX) != 0) {
            if (errno == EINTR) continue;
            int e = errno;
            ERR(ERR_IO, "lock %s: %s", p, strerror(e));
            close(f);
            xfree(p);
            return ERR_IO;
        }
    }
    xfree(p);
    *fd = f;
    return ERR_OK;
}

void fetch_unlock(int fd)
{
    if (fd < 0) return;
    flock(fd, LOCK_UN);
    close(fd);
}

/* ---- recorded hashes (trust on first use) ------------------------------------------------- */

static int record_read(const char *dir, const char *local, char hex[65])
{
    char *p = path_join(dir, local, ".sha256");
    FILE *f = fopen_nofollow(p);
    xfree(p);
    if (!f) return 0;
    char line[256] = {0};
    int ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    if (!ok) return 0;
    for (int i = 0; i < 64; i++) {
        char c = line[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return 0;
        hex[i] = c;
    }
    hex[64] = '\0';
    return 1;
}

static int record_write(const char *dir, const char *local, const char hex[65], const char *origin)
{
    char *p = path_join(dir, local, ".sha256");
    char *t = path_join(dir, local, ".sha256.tmp");
    int fd = -1;
    int rc = fs_create_excl(t, &fd);
    FILE *f = rc == ERR_OK ? fdopen(fd, "w") : NULL;
    if (rc == ERR_OK && !f) {
        rc = ERR(ERR_IO, "create %s: %s", t, strerror(errno));
        close(fd);
        unlink(t);
    } else if (f) {
        /* sha256sum's format, then where the hash came from (readers take the first line) */
        fprintf(f, "%s  %s\n# %s\n", hex, local, origin);
        if (fflush(f) != 0 || fsync(fileno(f)) != 0) rc = ERR(ERR_IO, "write %s: %s", t, strerror(errno));
        if (fclose(f) != 0 && rc == ERR_OK) rc = ERR(ERR_IO, "close %s: %s", t, strerror(errno));
        if (rc == ERR_OK && rename(t, p) != 0) rc = ERR(ERR_IO, "rename %s: %s", t, strerror(errno));
        if (rc != ERR_OK) unlink(t);
    }
    xfree(p);
    xfree(t);
    return rc;
}

/* Set when a download was refused only for matching no pin: the final hint then says how to
 * opt in. (Fetches run on one thread at a time: see io/fetch.h.) */
static int g_refused_unpinned;

/* ---- verification of a stored payload ----------------------------------------------------- */

/* Check a payload against its pinned or recorded hash, then its format. For a new download
 * from `url` without either hash, record the hash it has when the remote bytes matched a
 * pinned copy (`pin`), or when the caller allowed unpinned bytes for this run; refuse it
 * otherwise. */
static int verify_payload(const char *dir, const FetchFile *f, const char *path, const char *got_hex,
                          uint64_t got_size, const char *url, const FetchPin *pin,
                          int allow_unpinned, int *recorded_now)
{
    int fresh = url != NULL;
    if (f->payload_size && got_size != f->payload_size) {
        ERR(ERR_INTEGRITY, "%s: %llu bytes, expected %llu", path, (unsigned long long)got_size,
            (unsigned long long)f->payload_size);
        return ERR_INTEGRITY;
    }
    char rec[65];
    const char *want = f->payload_sha256;
    if (!want && record_read(dir, f->local, rec)) want = rec;
    if (want) {
        if (strcmp(want, got_hex) != 0) {
            ERR(ERR_INTEGRITY, "%s: SHA-256 %s, expected %s%s", path, got_hex, want,
                f->payload_sha256 ? "" : " (recorded by the first verified download)");
            return ERR_INTEGRITY;
        }
    }
    if (f->validate) TRY(f->validate(path, f->validate_ctx));
    if (want) return ERR_OK;
    if (!fresh) {
        ERR(ERR_INTEGRITY, "%s has no pinned or recorded SHA-256, so it cannot be trusted", path);
        err_hint("delete it and run 'dfm fetch' again to download and record it");
        return ERR_INTEGRITY;
    }
    if (!pin && !allow_unpinned) {
        g_refused_unpinned = 1;
        ERR(ERR_INTEGRITY, "%s: the downloaded bytes match no pinned SHA-256 (neither a known "
            "copy of %s nor a recorded payload): refused", f->local, f->remote);
        err_hint("use a mirror that serves the pinned copy; to trust these bytes anyway, for "
                 "this run only, pass --allow-unpinned to dfm fetch (data.allow_unpinned: true "
                 "in the job for dfm train): their hash is then recorded, with where they came "
                 "from, and checked from then on");
        return ERR_INTEGRITY;
    }
    char origin[600];
    if (pin)
        snprintf(origin, sizeof origin, "from %.300s, whose bytes matched the pinned copy from %.200s",
                 url, pin->origin ? pin->origin : "a known mirror");
    else
        snprintf(origin, sizeof origin, "from %.300s, matching no pin, trusted on first use at the "
                 "user's request (allow_unpinned)", url);
    TRY(record_write(dir, f->local, got_hex, origin));
    if (pin)
        log_info("%s: recorded payload SHA-256 %s (its download matched the pinned copy from %s)",
                 f->local, got_hex, pin->origin ? pin->origin : "a known mirror");
    else
        log_warn("%s: no SHA-256 is pinned for these bytes; recorded %s on first download "
                 "(trust on first use: later runs check against it)", f->local, got_hex);
    if (recorded_now) *recorded_now = 1;
    return ERR_OK;
}

int fetch_verify(const char *dir, const FetchFile *f)
{
    TRY(fs_path_nonempty(dir, "the data directory"));
    char *path = path_join(dir, f->local, "");
    char hex[65];
    uint64_t size = 0;
    int rc;
    if (access(path, F_OK) != 0) {
        char cwd[1024] = "";
        if (path[0] != '/' && getcwd(cwd, sizeof cwd) == NULL) cwd[0] = '\0';
        rc = ERR(ERR_IO, "%s is missing%s%s%s", path, cwd[0] ? " (relative to " : "", cwd,
                 cwd[0] ? ")" : "");
        err_hint("run 'dfm fetch' to download it");
    } else if ((rc = fetch_sha256_file(path, hex, &size)) == ERR_OK) {
        rc = verify_payload(dir, f, path, hex, size, NULL, NULL, 0, NULL);
        if (rc != ERR_OK && rc != ERR_IO)
            err_hint("run 'dfm fetch' again: it replaces a file that fails verification");
    }
    xfree(path);
    return rc;
}

/* ---- one transfer ------------------------------------------------------------------------- */

typedef struct {
    CURL *curl;
    int fd;
    uint64_t offset;      /* bytes in the part before this transfer */
    uint64_t written;     /* bytes written by this transfer */
    int resumed;          /* a Range request was sent */
    int started;          /* first body byte seen, status checked */
    int expect_gzip;
    long status;
    /* why the write callback stopped the transfer (0: it did not) */
    enum { STOP_NONE = 0, STOP_HTTP, STOP_HTML, STOP_NOT_GZIP, STOP_WRITE, STOP_TOO_BIG } stop;
    int write_errno;
    unsigned char sniff[64];
    size_t nsniff;
    int sniffed;
    /* progress */
    int bar;
    double t0, last_draw, total;
    int last_quarter, drawn;
    const char *label;
    uint64_t cap; /* the most bytes the remote file may have */
} Xfer;

static int is_html(const unsigned char *p, size_t n)
{
    size_t i = 0;
    if (n >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF) i = 3;
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')) i++;
    static const char *const tags[] = {"<!doctype", "<html", "<head", "<body", "<?xml"};
    for (size_t t = 0; t < sizeof tags / sizeof tags[0]; t++) {
        size_t L = strlen(tags[t]);
        if (n - i >= L && !strncasecmp((const char *)p + i, tags[t], L)) return 1;
    }
    return 0;
}

static int write_all(Xfer *x, const void *p, size_t n)
{
    const char *c = p;
    if (x->offset + x->written + n > x->cap) { /* a body with no end, or the wrong file */
        x->stop = STOP_TOO_BIG;
        return -1;
    }
    while (n > 0) {
        ssize_t w = write(x->fd, c, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            x->write_errno = errno;
            x->stop = STOP_WRITE;
            return -1;
        }
        c += w;
        n -= (size_t)w;
        x->written += (uint64_t)w;
    }
    return 0;
}

/* Decide on the first bytes of a transfer that starts at offset 0. */
static int sniff_decide(Xfer *x)
{
    x->sniffed = 1;
    if (is_html(x->sniff, x->nsniff)) {
        x->stop = STOP_HTML;
        return -1;
    }
    if (x->expect_gzip && x->nsniff >= 1 &&
        !(x->sniff[0] == 0x1f && (x->nsniff < 2 || x->sniff[1] == 0x8b))) {
        x->stop = STOP_NOT_GZIP;
        return -1;
    }
    return write_all(x, x->sniff, x->nsniff);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    Xfer *x = ud;
    size_t n = size * nmemb;
    if (!x->started) {
        x->started = 1;
        curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &x->status);
        if (x->status >= 400) {
            x->stop = STOP_HTTP;
            return 0;
        }
        if (x->resumed && x->status == 200) {
            /* The server ignored the Range header and sends the whole file: start over. */
            log_info("%s: server ignored the range request; restarting from byte 0", x->label);
            if (ftruncate(x->fd, 0) != 0 || lseek(x->fd, 0, SEEK_SET) != 0) {
                x->write_errno = errno;
                x->stop = STOP_WRITE;
                return 0;
            }
            x->offset = 0;
            x->resumed = 0;
        }
        char *ct = NULL;
        if (curl_easy_getinfo(x->curl, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct &&
            !strncasecmp(ct, "text/html", 9)) {
            x->stop = STOP_HTML;
            return 0;
        }
    }
    if (x->offset == 0 && !x->sniffed) {
        size_t take = sizeof x->sniff - x->nsniff;
        if (take > n) take = n;
        memcpy(x->sniff + x->nsniff, ptr, take);
        x->nsniff += take;
        if (x->nsniff < 16 && take == n) return n; /* wait for more bytes */
        if (sniff_decide(x) != 0) return 0;
        if (write_all(x, ptr + take, n - take) != 0) return 0;
        return n;
    }
    if (write_all(x, ptr, n) != 0) return 0;
    return n;
}

static void draw_bar(Xfer *x, double got, double total, double now)
{
    double el = now - x->t0;
    double rate = el > 0 ? (got - (double)x->offset) / el / 1e6 : 0.0;
    if (total > 0) {
        int w = 30, fill = (int)(w * got / total);
        char bar[31];
        for (int i = 0; i < w; i++) bar[i] = i < fill ? '=' : ' ';
        bar[w] = '\0';
        fprintf(stderr, "\r\033[K%-28.28s [%s] %5.1f%% %8.1f/%.1f MB %6.1f MB/s", x->label, bar,
                100.0 * got / total, got / 1e6, total / 1e6, rate);
    } else {
        fprintf(stderr, "\r\033[K%-28.28s %8.1f MB %6.1f MB/s", x->label, got / 1e6, rate);
    }
    x->last_draw = now;
    x->drawn = 1;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)ultotal;
    (void)ulnow;
    Xfer *x = ud;
    double now = core_now();
    double total = dltotal > 0 ? (double)x->offset + (double)dltotal : 0.0;
    double got = (double)x->offset + (double)dlnow;
    x->total = total;
    if (x->bar) {
        if (now - x->last_draw >= 0.1) draw_bar(x, got, total, now);
    } else if (total > 4e6) {
        int q = (int)(4.0 * got / total);
        if (q > x->last_quarter && q < 4) {
            x->last_quarter = q;
            log_info("%s: %d%% (%.1f of %.1f MB)", x->label, 25 * q, got / 1e6, total / 1e6);
        }
    }
    return 0;
}

typedef enum { ATTEMPT_OK = 0, ATTEMPT_RETRY, ATTEMPT_NEXT_MIRROR } AttemptVerdict;

/* Download url into part (resuming when resume_ok). Returns ATTEMPT_*; on failure the error is
 * recorded and *keep_part says whether the part may be resumed. */
static AttemptVerdict transfer(const char *url, const char *part, int resume_ok, const FetchFile *f,
                               const FetchOptions *o, uint64_t cap, double time_left,
                               int *keep_part)
{
    *keep_part = 0;
    uint64_t have = 0;
    int fd = -1;
    if (resume_ok) {
        /* Only a regular file of ours with no other link is appended to: a part planted as a
         * link would make the server's bytes land in another file. */
        unsigned long long sz = 0;
        const char *why = NULL;
        int r = fs_open_append_owned(part, &fd, &sz, &why);
        if (r < 0) return ATTEMPT_NEXT_MIRROR;
        if (r == 0 && strcmp(why, "absent") != 0)
            log_warn("%s is %s: not resuming it, downloading from byte 0", part, why);
        if (r == 1 && sz == 0) {
            close(fd);
            fd = -1;
        }
        have = fd >= 0 ? (uint64_t)sz : 0;
    }
    if (fd < 0 && fs_create_excl(part, &fd) != ERR_OK) return ATTEMPT_NEXT_MIRROR;
    CURL *c = curl_easy_init();
    if (!c) {
        close(fd);
        ERR(ERR_NET, "curl_easy_init failed");
        return ATTEMPT_NEXT_MIRROR;
    }
    Xfer x;
    memset(&x, 0, sizeof x);
    x.curl = c;
    x.fd = fd;
    x.offset = have;
    x.resumed = have > 0;
    x.expect_gzip = f->enc == FETCH_GZIP;
    x.label = f->remote;
    x.cap = cap;
    /* One bar per job: other node leaders stay quiet like log_info does. */
    x.bar = log_rank() == 0 && (o->progress == 1 || (o->progress < 0 && isatty(STDERR_FILENO)));
    x.t0 = core_now();
    x.last_draw = x.t0 - 1.0; /* draw at the first progress call */
    char errbuf[CURL_ERROR_SIZE] = {0};

    /* The protocol limits are a security property: refuse to run without them. */
    if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,file") != CURLE_OK ||
        /* a redirect never downgrades: from https only to https */
        curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR,
                         strncasecmp(url, "https:", 6) ? "http,https" : "https") != CURLE_OK) {
        curl_easy_cleanup(c);
        close(fd);
        ERR(ERR_NET, "%s: this libcurl (%s) cannot restrict protocols to http, https and file",
            url, curl_version());
        err_hint("build dfm against libcurl 7.85 or newer");
        return ATTEMPT_NEXT_MIRROR;
    }
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (o->ca_file) curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, o->connect_timeout_s);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, o->low_speed_bytes);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, o->low_speed_time_s);
    /* Bounded in size (a Content-Length above the cap is refused before the body; on_body
     * enforces it for a body without one) and in time (the whole fetch has a deadline, so a
     * server trickling bytes cannot hold the data directory's lock forever). */
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)(cap - have));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(time_left * 1000.0) > 0 ? (long)(time_left * 1000.0) : 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "dfm/" DFM_VERSION " (libcurl)");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &x);
    if (have) curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)have);

    if (have >= cap) {
        curl_easy_cleanup(c);
        close(fd);
        ERR(ERR_NET, "%s: the part already holds %llu bytes, more than the file may have (%llu)",
            part, (unsigned long long)have, (unsigned long long)cap);
        return ATTEMPT_RETRY; /* part deleted: start over */
    }
    if (have)
        log_info("resuming %s from byte %llu", url, (unsigned long long)have);
    else
        log_info("fetching %s", url);
    CURLcode cc = curl_easy_perform(c);
    if (cc == CURLE_OK && !x.sniffed && x.offset == 0 && x.nsniff > 0 && x.stop == STOP_NONE)
        sniff_decide(&x);
    if (!x.started) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &x.status);
    if (x.stop == STOP_NONE && x.status >= 400) x.stop = STOP_HTTP;
    double el = core_now() - x.t0;
    if (x.bar && x.stop == STOP_NONE && cc == CURLE_OK)
        draw_bar(&x, (double)(x.offset + x.written), x.total, core_now());
    if (x.drawn) fprintf(stderr, "\n");
    int werr = 0;
    if (x.stop == STOP_NONE && fsync(fd) != 0) werr = errno;
    if (close(fd) != 0 && !werr) werr = errno;
    curl_easy_cleanup(c);

    int is_http = !strncasecmp(url, "http:", 5) || !strncasecmp(url, "https:", 6);
    switch (x.stop) {
    case STOP_HTTP: {
        long s = x.status;
        ERR(ERR_NET, "GET %s: HTTP %ld", url, s);
        if (s == 416) return ATTEMPT_RETRY; /* range beyond the file: part deleted, start over */
        *keep_part = 1;                     /* the part is intact; the next mirror may differ */
        if (s >= 500 || s == 408 || s == 429) return ATTEMPT_RETRY;
        return ATTEMPT_NEXT_MIRROR;
    }
    case STOP_HTML:
        ERR(ERR_FORMAT, "GET %s: the server sent an HTML page instead of the data "
                        "(an error or login page)", url);
        return ATTEMPT_NEXT_MIRROR;
    case STOP_NOT_GZIP:
        ERR(ERR_FORMAT, "GET %s: the reply is not gzip data (first bytes %02x %02x)", url,
            x.sniff[0], x.nsniff > 1 ? x.sniff[1] : 0);
        return ATTEMPT_NEXT_MIRROR;
    case STOP_WRITE:
        ERR(ERR_IO, "write %s: %s", part, strerror(x.write_errno));
        return ATTEMPT_NEXT_MIRROR;
    case STOP_TOO_BIG:
        ERR(ERR_FORMAT, "GET %s: the reply is larger than %s (%llu bytes): stopped", url,
            f->nfile_pins || f->payload_size ? "the file can be" : "the limit for a file of "
            "unknown size", (unsigned long long)cap);
        return ATTEMPT_NEXT_MIRROR;
    default: break;
    }
    if (werr) {
        ERR(ERR_IO, "write %s: %s", part, strerror(werr));
        return ATTEMPT_NEXT_MIRROR;
    }
    if (cc != CURLE_OK) {
        const char *msg = errbuf[0] ? errbuf : curl_easy_strerror(cc);
        /* curl's own message may repeat the URL's path ("Couldn't open file /x/y.gz" for
         * file:///x/y.gz), printed just before it: then its generic text says the rest. */
        const char *upath = strstr(url, "://");
        if (upath) upath += 3 + strcspn(upath + 3, "/");
        if (errbuf[0] && upath && strlen(upath) > 1 && strstr(errbuf, upath))
            msg = curl_easy_strerror(cc);
        if (x.status >= 400) {
            ERR(ERR_NET, "GET %s: HTTP %ld", url, x.status);
            if (x.status == 416) return ATTEMPT_RETRY;
            *keep_part = 1;
            return x.status >= 500 || x.status == 408 || x.status == 429 ? ATTEMPT_RETRY
                                                                          : ATTEMPT_NEXT_MIRROR;
        }
        if (cc == CURLE_FILESIZE_EXCEEDED) {
            ERR(ERR_FORMAT, "GET %s: the server announces more bytes than the file can have "
                "(%llu)", url, (unsigned long long)cap);
            return ATTEMPT_NEXT_MIRROR;
        }
        if (cc == CURLE_OPERATION_TIMEDOUT && core_now() - x.t0 >= time_left - 0.05) {
            ERR(ERR_NET, "GET %s: the fetch deadline of %.0f s passed after %llu bytes (curl "
                "error %d)", url, o->deadline_s, (unsigned long long)(x.offset + x.written),
                (int)cc);
            *keep_part = 1;
            return ATTEMPT_NEXT_MIRROR;
        }
        ERR(ERR_NET, "GET %s: %s (curl error %d)", url, msg, (int)cc);
        switch (cc) {
        case CURLE_PARTIAL_FILE: case CURLE_OPERATION_TIMEDOUT: case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR: case CURLE_GOT_NOTHING: case CURLE_COULDNT_CONNECT:
        case CURLE_HTTP2: case CURLE_HTTP2_STREAM: case CURLE_SSL_CONNECT_ERROR:
            *keep_part = 1;
            return ATTEMPT_RETRY;
        case CURLE_BAD_DOWNLOAD_RESUME: case CURLE_RANGE_ERROR:
            return ATTEMPT_RETRY; /* part deleted: start over */
        default:
            *keep_part = 1;
            return ATTEMPT_NEXT_MIRROR;
        }
    }
    if (is_http && x.status != 200 && x.status != 206) {
        ERR(ERR_NET, "GET %s: unexpected HTTP status %ld", url, x.status);
        return ATTEMPT_NEXT_MIRROR;
    }
    uint64_t total = x.offset + x.written;
    if (x.bar == 0)
        log_info("%s: received %llu bytes in %.1f s", f->remote, (unsigned long long)total, el);
    if (total == 0) {
        ERR(ERR_NET, "GET %s: empty reply", url);
        return ATTEMPT_NEXT_MIRROR;
    }
    return ATTEMPT_OK;
}

/* ---- decode + verify + install ------------------------------------------------------------ */

/* Gunzip src into dst (concatenated members allowed), hashing the output. */
static int gunzip_file(const char *src, const char *dst, uint64_t limit, char hex[65],
                       uint64_t *out_size, const char *url)
{
    FILE *in = fopen(src, "rb");
    if (!in) return ERR(ERR_IO, "open %s: %s", src, strerror(errno));
    int ofd = -1;
    if (fs_create_excl(dst, &ofd) != ERR_OK) {
        fclose(in);
        return ERR_IO;
    }
    enum { IN = 1 << 18, OUT = 1 << 20 };
    unsigned char *ib = xmalloc(IN), *ob = xmalloc(OUT);
    z_stream z;
    memset(&z, 0, sizeof z);
    int rc = ERR_OK, zr = Z_OK, ended = 0, members = 0;
    Sha256 *s = sha256_create();
    uint64_t total = 0;
    if (inflateInit2(&z, 15 + 16) != Z_OK) ASSERT(!"inflateInit2");
    for (;;) {
        if (z.avail_in == 0) {
            size_t n = fread(ib, 1, IN, in);
            if (n == 0) {
                if (ferror(in)) rc = ERR(ERR_IO, "read %s: I/O error", src);
                break;
            }
            z.next_in = ib;
            z.avail_in = (uInt)n;
        }
        if (ended) {
            /* Another member must start here; anything else is trailing garbage. */
            if (z.avail_in >= 1 && z.next_in[0] != 0x1f) {
                rc = ERR(ERR_FORMAT, "%s: trailing bytes after the gzip data", url);
                break;
            }
            inflateReset(&z);
            ended = 0;
        }
        z.next_out = ob;
        z.avail_out = OUT;
        zr = inflate(&z, Z_NO_FLUSH);
        if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
            rc = ERR(ERR_FORMAT, "%s: corrupt gzip data (%s)", url, z.msg ? z.msg : "inflate error");
            break;
        }
        size_t got = OUT - z.avail_out;
        if (got > limit - total) { /* never written: a gzip bomb stops here */
            rc = ERR(ERR_FORMAT, "%s: the gzip data inflate to more than %llu bytes, the most "
                     "the payload may have: refused (a gzip bomb or the wrong file)", url,
                     (unsigned long long)limit);
            break;
        }
        if (got) {
            sha256_update(s, ob, got);
            total += got;
            const unsigned char *p = ob;
            while (got) {
                ssize_t w = write(ofd, p, got);
                if (w < 0 && errno == EINTR) continue;
                if (w < 0) {
                    rc = ERR(ERR_IO, "write %s: %s", dst, strerror(errno));
                    break;
                }
                p += w;
                got -= (size_t)w;
            }
            if (rc) break;
        }
        if (zr == Z_STREAM_END) {
            ended = 1;
            members++;
        }
    }
    if (rc == ERR_OK && !ended)
        rc = ERR(ERR_FORMAT, "%s: truncated gzip data (the stream ends after %llu decoded bytes)",
                 url, (unsigned long long)total);
    if (rc == ERR_OK && members == 0) rc = ERR(ERR_FORMAT, "%s: empty gzip data", url);
    inflateEnd(&z);
    fclose(in);
    char h[65];
    sha256_final_hex(s, h);
    if (rc == ERR_OK && fsync(ofd) != 0) rc = ERR(ERR_IO, "fsync %s: %s", dst, strerror(errno));
    if (close(ofd) != 0 && rc == ERR_OK) rc = ERR(ERR_IO, "close %s: %s", dst, strerror(errno));
    xfree(ib);
    xfree(ob);
    if (rc != ERR_OK) {
        unlink(dst);
        return rc;
    }
    memcpy(hex, h, 65);
    *out_size = total;
    return ERR_OK;
}

/* Verify the downloaded part, decode it to <local>.tmp and install it as <local>. */
static int install(const char *dir, const FetchFile *f, const char *part, const char *url,
                   const FetchOptions *o)
{
    char fhex[65], phex[65];
    uint64_t fsize = 0, psize = 0;
    const FetchPin *pin = NULL;
    TRY(fetch_sha256_file(part, fhex, &fsize));
    for (size_t i = 0; i < f->nfile_pins && !pin; i++)
        if (f->file_pins[i].size == fsize && !strcmp(f->file_pins[i].sha256, fhex)) {
            pin = &f->file_pins[i];
            log_info("%s: bytes match the pinned copy from %s", f->remote,
                     pin->origin ? pin->origin : "a known mirror");
        }
    char *final = path_join(dir, f->local, "");
    char *tmp = path_join(dir, f->local, ".tmp");
    int rc = ERR_OK;
    if (f->enc == FETCH_GZIP) {
        /* payload_size + 1 bytes are enough to tell a wrong size */
        uint64_t limit = f->payload_size ? f->payload_size + 1 : o->max_bytes;
        rc = gunzip_file(part, tmp, limit, phex, &psize, url);
    } else {
        /* Copy by rename: the part is the payload. */
        if (rename(part, tmp) != 0) rc = ERR(ERR_IO, "rename %s: %s", part, strerror(errno));
        memcpy(phex, fhex, 65);
        psize = fsize;
    }
    int recorded = 0;
    if (rc == ERR_OK) {
        rc = verify_payload(dir, f, tmp, phex, psize, url, pin, o->allow_unpinned, &recorded);
        if (rc == ERR_INTEGRITY || rc == ERR_FORMAT) err_context("data from %s", url);
    }
    if (rc == ERR_OK && rename(tmp, final) != 0)
        rc = ERR(ERR_IO, "rename %s to %s: %s", tmp, final, strerror(errno));
    if (rc == ERR_OK) rc = fs_fsync_dir(dir);
    if (rc != ERR_OK) {
        unlink(tmp);
        if (recorded) {
            char *r = path_join(dir, f->local, ".sha256");
            unlink(r);
            xfree(r);
        }
    } else {
        log_info("%s: verified (%llu bytes, SHA-256 %.16s...)", f->local,
                 (unsigned long long)psize, phex);
    }
    xfree(final);
    xfree(tmp);
    return rc;
}

/* ---- the mirror loop ---------------------------------------------------------------------- */

static char *url_join(const char *base, const char *name)
{
    size_t nb = strlen(base);
    int slash = nb > 0 && base[nb - 1] == '/';
    size_t n = nb + strlen(name) + 2;
    char *u = xmalloc(n);
    snprintf(u, n, "%s%s%s", base, slash ? "" : "/", name);
    return u;
}

static int src_matches(const char *srcfile, const char *url)
{
    FILE *f = fopen_nofollow(srcfile);
    if (!f) return 0;
    char line[4096] = {0};
    int ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    if (!ok) return 0;
    line[strcspn(line, "\n")] = '\0';
    return !strcmp(line, url);
}

static void src_write(const char *srcfile, const char *url)
{
    int fd = -1;
    if (fs_create_excl(srcfile, &fd) != ERR_OK) {
        /* Without a record the part is never resumed: harmless. */
        log_warn("%s", err_message());
        err_clear();
        return;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return;
    }
    fprintf(f, "%s\n", url);
    fclose(f);
}

/* The most bytes the remote file may have: its largest pinned copy, or for a known payload size
 * that size plus what any gzip encoder may add (deflate's stored blocks cost 5 bytes per 64 KiB,
 * the header and trailer a few hundred), or else the documented maximum. */
static uint64_t remote_cap(const FetchFile *f, const FetchOptions *o)
{
    uint64_t cap = 0;
    for (size_t i = 0; i < f->nfile_pins; i++)
        if (f->file_pins[i].size > cap) cap = f->file_pins[i].size;
    if (f->payload_size) {
        uint64_t b = f->payload_size;
        if (f->enc == FETCH_GZIP) b += f->payload_size / 8192 + 4096;
        if (b > cap) cap = b;
    }
    return cap ? cap : o->max_bytes;
}

static int url_allowed(const char *url)
{
    return !strncasecmp(url, "http://", 7) || !strncasecmp(url, "https://", 8) ||
           !strncasecmp(url, "file://", 7);
}

int fetch_file(const char *dir, const FetchFile *f, const FetchOptions *o)
{
    TRY(fs_path_nonempty(dir, "the data directory"));
    char *final = path_join(dir, f->local, "");
    if (access(final, F_OK) == 0) {
        if (fetch_verify(dir, f) == ERR_OK) {
            log_info("%s: present and verified", final);
            xfree(final);
            err_clear();
            return ERR_OK;
        }
        log_warn("%s: %s; deleting it and downloading again", final, err_message());
        if (unlink(final) != 0) {
            int e = errno;
            ERR(ERR_IO, "delete %s: %s", final, strerror(e));
            xfree(final);
            return ERR_IO;
        }
    }
    xfree(final);
    if (o->nmirrors == 0) {
        ERR(ERR_ARG, "no mirror to fetch %s from", f->remote);
        return ERR_ARG;
    }
    char *part = path_join(dir, f->remote, ".part");
    char *srcf = path_join(dir, f->remote, ".part.src");
    char summary[ERR_MSG_MAX] = {0};
    size_t slen = 0;
    int last_rc = ERR_NET, ok = 0, late = 0;
    g_refused_unpinned = 0;
    uint64_t cap = remote_cap(f, o);
    double deadline = core_now() + (o->deadline_s > 0 ? o->deadline_s : FETCH_DEADLINE_S);
    for (size_t m = 0; m < o->nmirrors && !ok && !late; m++) {
        char *url = url_join(o->mirrors[m], f->remote);
        if (!url_allowed(url)) {
            last_rc = ERR(ERR_ARG, "%s: only http://, https:// and file:// URLs are allowed", url);
        } else {
            int resume_ok = src_matches(srcf, url);
            double delay = o->backoff_s;
            int attempts = o->retries > 0 ? o->retries : 1;
            for (int a = 0; a < attempts; a++) {
                if (a > 0) {
                    log_warn("%s; retrying in %.1f s (attempt %d of %d)", err_message(), delay,
                             a + 1, attempts);
                    sleep_s(delay);
                    delay *= 2;
                }
                if (core_now() >= deadline) {
                    if (a == 0)
                        last_rc = ERR(ERR_NET, "%s: not tried, the fetch deadline of %.0f s has "
                                      "passed", url, o->deadline_s);
                    late = 1;
                    break;
                }
                if (!resume_ok) unlink(part);
                src_write(srcf, url);
                int keep = 0;
                AttemptVerdict v = transfer(url, part, resume_ok, f, o, cap,
                                            deadline - core_now(), &keep);
                /* A transfer cut by the deadline (transfer() allows it 50 ms of slack) ends the
                 * fetch here: no other mirror is tried with the crumbs of time left, and the
                 * hint names the deadline. */
                if (v != ATTEMPT_OK && core_now() >= deadline - 0.05) late = 1;
                if (v == ATTEMPT_OK) {
                    last_rc = install(dir, f, part, url, o);
                    unlink(part);
                    unlink(srcf);
                    if (last_rc == ERR_OK) ok = 1;
                    break; /* bad data from this mirror: try the next one */
                }
                last_rc = err_code();
                if (!keep) {
                    unlink(part);
                    unlink(srcf);
                }
                resume_ok = keep;
                if (v == ATTEMPT_NEXT_MIRROR || late) break;
            }
        }
        if (!ok) {
            log_warn("%s", err_message());
            int w = snprintf(summary + slen, sizeof summary - slen, "%s%s", slen ? "; " : "",
                             err_message());
            if (w > 0) slen += (size_t)w < sizeof summary - slen ? (size_t)w : sizeof summary - slen - 1;
        }
        xfree(url);
    }
    if (!ok) {
        /* Keep a resumable part only if the last failure left one with bytes in it. */
        uint64_t psz = 0;
        if (access(srcf, F_OK) != 0 || file_size(part, &psz) != 0 || psz == 0) {
            unlink(part);
            unlink(srcf);
        } else {
            log_info("kept %llu bytes of %s in %s.part; the next run resumes from there",
                     (unsigned long long)psz, f->remote, f->remote);
        }
        ERR(last_rc, "could not fetch %s from any of %zu mirror%s: %s", f->remote, o->nmirrors,
            o->nmirrors == 1 ? "" : "s", summary);
        if (late)
            err_hint("the whole fetch of one file may take %.0f s (DFM_FETCH_DEADLINE_S "
                     "changes it); a partial download is resumed on the next run", o->deadline_s);
        else if (last_rc == ERR_INTEGRITY && g_refused_unpinned)
            err_hint("use a mirror that serves the pinned copy of %s; to trust these bytes "
                     "anyway, for this run only, pass --allow-unpinned to dfm fetch "
                     "(data.allow_unpinned: true in the job for dfm train): their hash is then "
                     "recorded, with where they came from, and checked from then on", f->remote);
        else if (last_rc == ERR_INTEGRITY)
            err_hint("a mirror served different data; %s, a directory holding a trusted copy "
                     "of %s", o->how_mirror, f->remote);
        else if (last_rc == ERR_FORMAT)
            err_hint("a mirror served something other than the data (error page or corrupt "
                     "file); %s, a directory holding %s", o->how_mirror, f->remote);
        else
            err_hint("check the network or proxy, or %s, a directory holding %s (file:// works "
                     "for a local copy); a partial download is resumed on the next run",
                     o->how_mirror, f->remote);
    }
    xfree(part);
    xfree(srcf);
    return ok ? ERR_OK : last_rc;
}

/* ---- a set of files: read-only when they verify ------------------------------------------ */

int fetch_all(const char *dir, const FetchFile *files, size_t n, const FetchOptions *o)
{
    TRY(fs_path_nonempty(dir, "the data directory"));
    /* Verified data need no write access: a shared read-only dataset directory works as is,
     * without a lock (nothing is written, so nothing can race). */
    size_t i = 0;
    for (; i < n; i++)
        if (fetch_verify(dir, &files[i]) != ERR_OK) break;
    if (i == n) {
        err_clear();
        log_info("%s: %zu file%s present and verified", dir, n, n == 1 ? "" : "s");
        return ERR_OK;
    }
    char why[ERR_MSG_MAX];
    snprintf(why, sizeof why, "%s", err_message());
    err_clear();
    int fd = -1, rc = fetch_lock(dir, &fd);
    if (rc != ERR_OK) {
        char lockmsg[ERR_MSG_MAX];
        snprintf(lockmsg, sizeof lockmsg, "%s", err_message());
        ERR(rc, "%s must be downloaded (%s), but the data directory cannot be written: %s",
            files[i].local, why, lockmsg);
        err_hint("reading verified data needs no write access, but downloading or repairing "
                 "%s writes %s/%s and its temporaries and locks %s/.lock: run 'dfm fetch' once "
                 "where %s is writable, or choose a writable data directory", files[i].local,
                 dir, files[i].local, dir, dir);
        return rc;
    }
    for (i = 0; rc == ERR_OK && i < n; i++) rc = fetch_file(dir, &files[i], o);
    fetch_unlock(fd);
    return rc;
}
