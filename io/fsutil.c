/* io/fsutil.c - mkdir -p and atomic file replacement. */
#include "io/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"

int fs_path_nonempty(const char *path, const char *what)
{
    if (path && path[0]) return ERR_OK;
    ERR(ERR_ARG, "empty path for %s", what);
    err_hint("an empty path is never taken to mean the current or the root directory: is a "
             "shell variable unset? Pass '.' for the current directory");
    return ERR_ARG;
}

int fs_create_excl(const char *path, int *fd)
{
    *fd = -1;
    TRY(fs_path_nonempty(path, "a new file"));
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return ERR(ERR_IO, "cannot create %s: it is a directory", path);
        if (unlink(path) != 0 && errno != ENOENT)
            return ERR(ERR_IO, "cannot remove the old %s: %s", path, strerror(errno));
    }
    int f = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (f < 0) {
        int e = errno;
        if (e == EEXIST)
            return ERR(ERR_IO, "cannot create %s: the name was re-created by another process "
                       "while dfm replaced it (a link planted in a shared directory?)", path);
        return ERR(ERR_IO, "cannot create %s: %s", path, strerror(e));
    }
    *fd = f;
    return ERR_OK;
}

int fs_open_append_owned(const char *path, int *fd, unsigned long long *size, const char **why)
{
    *fd = -1;
    *size = 0;
    *why = "absent";
    int f = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (f < 0) {
        if (errno == ENOENT) return 0;
        if (errno == ELOOP) {
            *why = "a symbolic link";
            return 0;
        }
        if (errno == EISDIR || errno == ENXIO || errno == EACCES || errno == EPERM) {
            *why = "not a writable regular file";
            return 0;
        }
        return ERR(ERR_IO, "cannot open %s: %s", path, strerror(errno));
    }
    /* Checked on the open descriptor: what was checked is what gets written. */
    struct stat st;
    if (fstat(f, &st) != 0) {
        int e = errno;
        close(f);
        return ERR(ERR_IO, "cannot stat %s: %s", path, strerror(e));
    }
    *why = !S_ISREG(st.st_mode) ? "not a regular file"
           : st.st_nlink != 1   ? "a file with other hard links"
           : st.st_uid != geteuid() ? "owned by another user"
                                    : NULL;
    if (*why) {
        close(f);
        return 0;
    }
    int fl = fcntl(f, F_GETFL);
    if (fl >= 0) fcntl(f, F_SETFL, fl & ~O_NONBLOCK);
    *fd = f;
    *size = (unsigned long long)st.st_size;
    return 1;
}

int fs_mkdir_p(const char *dir)
{
    char buf[4096];
    TRY(fs_path_nonempty(dir, "a directory"));
    size_t n = strlen(dir);
    if (n >= sizeof buf) return ERR(ERR_ARG, "path too long: %s", dir);
    memcpy(buf, dir, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return ERR(ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return ERR(ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return ERR(ERR_IO, "%s exists and is not a directory", buf);
    return ERR_OK;
}

int fs_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int fs_fsync_dir_of(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    return fs_fsync_dir(dirname(buf));
}

int fs_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return ERR(ERR_IO, "cannot open directory %s: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL) return ERR(ERR_IO, "fsync of directory %s: %s", dir, strerror(e));
    return ERR_OK;
}

int fs_atomic_open(AtomicFile *af, const char *path)
{
    memset(af, 0, sizeof *af);
    TRY(fs_path_nonempty(path, "an output file"));
    if (strlen(path) >= sizeof af->path) return ERR(ERR_ARG, "path too long: %s", path);
    snprintf(af->path, sizeof af->path, "%s", path);
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd;
    int rc = fs_create_excl(af->tmp, &fd);
    if (rc != ERR_OK) {
        af->tmp[0] = '\0'; /* not ours: abort must not remove it */
        return rc;
    }
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        int e = errno;
        close(fd);
        unlink(af->tmp);
        af->tmp[0] = '\0';
        return ERR(ERR_IO, "cannot create %s: %s", path, strerror(e));
    }
    return ERR_OK;
}

int fs_atomic_commit(AtomicFile *af)
{
    if (!af->f) return ERR(ERR_STATE, "atomic file %s is not open", af->path);
    int bad = fflush(af->f) != 0 || ferror(af->f);
    int e = errno;
    if (!bad && fsync(fileno(af->f)) != 0) bad = 1, e = errno;
    if (fclose(af->f) != 0 && !bad) bad = 1, e = errno;
    af->f = NULL;
    if (bad) {
        unlink(af->tmp);
        return ERR(ERR_IO, "writing %s failed: %s", af->path, strerror(e));
    }
    if (rename(af->tmp, af->path) != 0) {
        e = errno;
        unlink(af->tmp);
        return ERR(ERR_IO, "cannot rename %s to %s: %s", af->tmp, af->path, strerror(e));
    }
    return fs_fsync_dir_of(af->path);
}

void fs_atomic_abort(AtomicFile *af)
{
    if (af->f) fclose(af->f);
    af->f = NULL;
    if (af->tmp[0]) unlink(af->tmp);
}
