/* tests/io/test_chunkfile.c - append-only checksummed records: reopen, torn tail, other key. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "io/chunkfile.h"

static const char KEY[65] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const char KEY2[65] = "f123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

typedef struct {
    uint64_t ids[16];
    int vals[16];
    size_t n;
} Seen;

static void on_rec(void *ctx, uint64_t id, const void *payload)
{
    Seen *s = ctx;
    cr_assert(s->n < 16);
    s->ids[s->n] = id;
    memcpy(&s->vals[s->n++], payload, sizeof(int));
}

static void path(char *p)
{
    snprintf(p, 64, "/tmp/dfm_chunk_%ld.bin", (long)getpid());
    unlink(p);
}

static off_t size_of(const char *p)
{
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    return st.st_size;
}

Test(chunkfile, records_survive_reopen_and_a_torn_tail_is_dropped)
{
    char p[64];
    path(p);
    ChunkFile cf;
    size_t loaded;
    cr_assert_eq(chunkfile_open(&cf, p, KEY, sizeof(int), on_rec, NULL, &loaded), ERR_OK);
    cr_assert_eq(loaded, 0);
    for (int i = 0; i < 3; i++) {
        int v = 100 + i;
        cr_assert_eq(chunkfile_append(&cf, (uint64_t)(7 - i), &v), ERR_OK);
    }
    chunkfile_close(&cf);
    off_t whole = size_of(p);
    FILE *f = fopen(p, "ab"); /* a record torn by a crash: half of it written */
    fwrite("\x09\0\0\0\0\0\0\0\x01\x02", 1, 10, f);
    fclose(f);
    Seen s = {0};
    cr_assert_eq(chunkfile_open(&cf, p, KEY, sizeof(int), on_rec, &s, &loaded), ERR_OK);
    cr_assert_eq(loaded, 3);
    cr_assert_eq(s.ids[0], 7);
    cr_assert_eq(s.ids[2], 5);
    cr_assert_eq(s.vals[1], 101);
    cr_assert_eq(size_of(p), whole, "the torn tail is truncated");
    int v = 200;
    cr_assert_eq(chunkfile_append(&cf, 4, &v), ERR_OK);
    chunkfile_close(&cf);
    /* a flipped payload byte ends the valid prefix there */
    f = fopen(p, "r+b");
    fseek(f, 96 + 2 * (8 + 4 + 32) + 8, SEEK_SET);
    fputc(0x55, f);
    fclose(f);
    memset(&s, 0, sizeof s);
    cr_assert_eq(chunkfile_open(&cf, p, KEY, sizeof(int), on_rec, &s, &loaded), ERR_OK);
    cr_assert_eq(loaded, 2);
    chunkfile_close(&cf);
    unlink(p);
}

Test(chunkfile, another_key_or_payload_size_starts_over)
{
    char p[64];
    path(p);
    ChunkFile cf;
    size_t loaded;
    int v = 1;
    cr_assert_eq(chunkfile_open(&cf, p, KEY, sizeof(int), on_rec, NULL, &loaded), ERR_OK);
    cr_assert_eq(chunkfile_append(&cf, 0, &v), ERR_OK);
    chunkfile_close(&cf);
    Seen s = {0};
    cr_assert_eq(chunkfile_open(&cf, p, KEY2, sizeof(int), on_rec, &s, &loaded), ERR_OK);
    cr_assert_eq(loaded, 0);
    cr_assert_eq(s.n, 0);
    chunkfile_close(&cf);
    cr_assert_eq(size_of(p), 96);
    cr_assert_eq(chunkfile_open(&cf, p, KEY2, 8, on_rec, &s, &loaded), ERR_OK);
    cr_assert_eq(loaded, 0);
    chunkfile_close(&cf);
    unlink(p);
}
