/* io/fsutil.h - small file-system helpers with core/err.h errors.
 *
 * fs_mkdir_p creates a directory and its parents (like mkdir -p). fs_atomic_open returns a FILE
 * on "<path>.tmp.<pid>"; fs_atomic_commit flushes, fsyncs, closes and renames it over path and
 * fsyncs the directory, so the file appears complete or not at all; fs_atomic_abort closes and
 * removes the temporary.
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

#endif
