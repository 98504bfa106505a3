/* io/chunkfile.c - append-only checksummed records (see io/chunkfile.h). */
#include "io/chunkfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/mem.h"
#include "io/fsutil.h"
#include "io/sha256.h"

#define CF_HEADER 96
#define CF_CHECK 32 /* the first 32 hex digits of the record's SHA-256 */

static void header(unsigned char h[CF_HEADER], const char key[65], size_t payload)
{
    memset(h, 0, CF_HEADER);
    memcpy(h, "DFMCHNK1", 8);
    memcpy(h + 8, key, 64);
    uint64_t p = (uint64_t)payload;
    for (int i = 0; i < 8; i++) h[72 + i] = (unsigned char)(p >> (8 * i));
}

static void check(uint64_t id, const void *payload, size_t n, char out[CF_CHECK])
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(id >> (8 * i));
    Sha256 *s = sha256_create();
    sha256_update(s, b, 8);
    sha256_update(s, payload, n);
    char hex[65];
    sha256_final_hex(s, hex);
    memcpy(out, hex, CF_CHECK);
}

static int write_all(int fd, const void *p, size_t n, const char *path)
{
    const unsigned char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return ERR(ERR_IO, "cannot write %s: %s", path, w < 0 ? strerror(errno) : "no progress");
        c += w;
        n -= (size_t)w;
    }
    return ERR_OK;
}

/* Read whole records from fd after the header; returns the byte length that is valid. */
static off_t scan(int fd, size_t payload, ChunkFileRecordFn fn, void *ctx, size_t *loaded)
{
    const size_t rb = 8 + payload + CF_CHECK;
    unsigned char *r = xmalloc(rb);
    off_t end = CF_HEADER;
    for (;;) {
        size_t got = 0;
        while (got < rb) {
            ssize_t k = read(fd, r + got, rb - got);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) break;
            got += (size_t)k;
        }
        if (got < rb) break;
        uint64_t id = 0;
        for (int i = 0; i < 8; i++) id |= (uint64_t)r[i] << (8 * i);
        char c[CF_CHECK];
        check(id, r + 8, payload, c);
        if (memcmp(c, r + 8 + payload, CF_CHECK) != 0) break;
        if (fn) fn(ctx, id, r + 8);
        (*loaded)++;
        end += (off_t)rb;
    }
    xfree(r);
    return end;
}

static int create(ChunkFile *cf, const char key[65])
{
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", cf->path, (long)getpid());
    int fd;
    TRY(fs_create_excl(tmp, &fd));
    unsigned char h[CF_HEADER];
    header(h, key, cf->payload);
    int rc = write_all(fd, h, CF_HEADER, tmp);
    if (rc == ERR_OK && fsync(fd) != 0) rc = ERR(ERR_IO, "cannot fsync %s: %s", tmp, strerror(errno));
    close(fd);
    if (rc == ERR_OK && rename(tmp, cf->path) != 0)
        rc = ERR(ERR_IO, "cannot rename %s to %s: %s", tmp, cf->path, strerror(errno));
    if (rc != ERR_OK) {
        unlink(tmp);
        return rc;
    }
    return fs_fsync_dir_of(cf->path);
}

int chunkfile_open(ChunkFile *cf, const char *path, const char key[65], size_t payload,
                   ChunkFileRecordFn fn, void *ctx, size_t *loaded)
{
    memset(cf, 0, sizeof *cf);
    cf->fd = -1;
    cf->payload = payload;
    *loaded = 0;
    TRY(fs_path_nonempty(path, "a partial-results file"));
    if (strlen(path) >= sizeof cf->path) return ERR(ERR_ARG, "path too long: %s", path);
    snprintf(cf->path, sizeof cf->path, "%s", path);
    off_t end = 0;
    int rfd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (rfd >= 0) {
        unsigned char h[CF_HEADER], want[CF_HEADER];
        header(want, key, payload);
        ssize_t k = read(rfd, h, CF_HEADER);
        struct stat st;
        if (k == CF_HEADER && !memcmp(h, want, CF_HEADER) && fstat(rfd, &st) == 0 &&
            S_ISREG(st.st_mode))
            end = scan(rfd, payload, fn, ctx, loaded);
        close(rfd);
    }
    if (end > 0) {
        unsigned long long size;
        const char *why;
        int r = fs_open_append_owned(path, &cf->fd, &size, &why);
        if (r < 0) return err_code();
        if (r == 1 && (off_t)size != end && ftruncate(cf->fd, end) != 0) {
            int e = errno;
            chunkfile_close(cf);
            return ERR(ERR_IO, "cannot truncate %s: %s", path, strerror(e));
        }
        if (r == 0) return ERR(ERR_IO, "cannot append to %s: %s", path, why);
        return ERR_OK;
    }
    TRY(create(cf, key));
    unsigned long long size;
    const char *why;
    int r = fs_open_append_owned(path, &cf->fd, &size, &why);
    if (r < 0) return err_code();
    if (r == 0) return ERR(ERR_IO, "cannot append to %s: %s", path, why);
    return ERR_OK;
}

int chunkfile_append(ChunkFile *cf, uint64_t id, const void *payload)
{
    const size_t rb = 8 + cf->payload + CF_CHECK;
    unsigned char *r = xmalloc(rb);
    for (int i = 0; i < 8; i++) r[i] = (unsigned char)(id >> (8 * i));
    memcpy(r + 8, payload, cf->payload);
    check(id, payload, cf->payload, (char *)r + 8 + cf->payload);
    int rc = write_all(cf->fd, r, rb, cf->path);
    xfree(r);
    if (rc == ERR_OK && fdatasync(cf->fd) != 0)
        rc = ERR(ERR_IO, "cannot fsync %s: %s", cf->path, strerror(errno));
    return rc;
}

void chunkfile_close(ChunkFile *cf)
{
    if (cf->fd >= 0 && cf->path[0]) close(cf->fd);
    cf->fd = -1;
}
