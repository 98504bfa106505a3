/* io/fsutil.h - small file-system helpers with core/err.h errors.
 *
 * fs_mkdir_p creates a directory and its parents (like mkdir -p). fs_atomic_open returns a FILE
 * on "<path>.tmp.<pid>"; fs_atomic_commit flushes, fsyncs, closes and renames it over path and
 * fsyncs the directory, so the file appears complete or not at all; fs_atomic_abort closes and
 * removes the temporary.
 *
 * Directories may be shared (a group-writable dataset or run directory): someone else can plant
 * a symbolic or hard link under any name dfm will use. So no helper here writes through an
 * existing name: every temporary is created by fs_create_excl (remove whatever non-directory
 * is there, then O_CREAT | O_EXCL | O_NOFOLLOW; a name re-planted in between makes it fail
 * instead of following the link), and a file that is appended to is opened by
 * fs_open_append_owned, which accepts only a regular file with one link owned by this user.
 * Renaming over a link replaces the link, never its target.
 *
 * An empty path (an unset shell variable) is an error (ERR_ARG) everywhere a path is taken.
 */
#ifndef DFM_IO_FSUTIL_H
#define DFM_IO_FSUTIL_H

#include <stdio.h>

typedef struct {
    FILE *f;
    char path[4096];
    char tmp[4160];
} AtomicFile;

int fs_mkdir_p(const char *dir);
int fs_atomic_open(AtomicFile *af, const char *path);
int fs_atomic_commit(AtomicFile *af);
void fs_atomic_abort(AtomicFile *af);
/* fsync a directory (so a rename in it is durable), or the directory that contains path. */
int fs_fsync_dir(const char *dir);
int fs_fsync_dir_of(const char *path);
int fs_exists(const char *path);
/* ERR_ARG "empty path for <what>" when path is NULL or "", else ERR_OK. */
int fs_path_nonempty(const char *path, const char *what);
/* Create path as a new empty file (mode 0644 less umask) for writing and return its
 * descriptor in *fd, replacing any non-directory that is there without following it. */
int fs_create_excl(const char *path, int *fd);
/* Open an existing file for appending when it is a regular file with a single link owned by
 * the effective user; *fd and *size receive the descriptor and its size. Returns 1 when
 * opened, 0 when absent or not such a file (nothing opened; *why says what it is, for a log
 * line), -1 with an ERR on other errors. */
int fs_open_append_owned(const char *path, int *fd, unsigned long long *size, const char **why);

#endif
