/* io/chunkfile.h - an append-only file of fixed-size, checksummed records: the partial results
 * an interrupted computation continues from (`dfm eval`'s per-chunk records).
 *
 * Layout: a 96-byte header (magic "DFMCHNK1", the caller's key as 64 hex digits, u64 payload
 * bytes, u64 reserved 0, little-endian), then records of exactly 8 + payload + 32 bytes: u64 id,
 * the payload, and the SHA-256 of (id, payload). Every size comes from the caller, never from
 * the file: a file whose header is not byte for byte the expected one is not ours and is
 * replaced, and reading stops at the first record that is short or whose hash disagrees (a
 * write torn by a crash), where the file is truncated. So the reader allocates nothing the
 * file asks for, and a kill -9 at any moment loses at most the record being written.
 *
 * The file is created under a temporary name (fs_create_excl), its header fsynced, and renamed
 * into place; each append is one write followed by fdatasync, so a record that chunkfile_append
 * reported written survives a crash. One writer at a time (rank 0).
 */
#ifndef DFM_IO_CHUNKFILE_H
#define DFM_IO_CHUNKFILE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int fd;              /* -1 when closed */
    size_t payload;
    char path[4200];
} ChunkFile;

/* Called for each valid record found when opening (in file order). */
typedef void (*ChunkFileRecordFn)(void *ctx, uint64_t id, const void *payload);

/* Open path for records of `payload` bytes under key (64 hex digits), creating it when absent
 * (or when it holds another key or format). Existing valid records are passed to fn; *loaded
 * receives their count. */
int chunkfile_open(ChunkFile *cf, const char *path, const char key[65], size_t payload,
                   ChunkFileRecordFn fn, void *ctx, size_t *loaded);
/* Append one record and make it durable (write + fdatasync). */
int chunkfile_append(ChunkFile *cf, uint64_t id, const void *payload);
/* Close (zeroed or closed accepted). */
void chunkfile_close(ChunkFile *cf);

#endif
