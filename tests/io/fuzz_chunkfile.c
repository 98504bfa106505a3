/* tests/io/fuzz_chunkfile.c - libFuzzer target for the partial-results file (io/chunkfile.c).
 *
 * The input describes a file rather than being one, so that the fuzzer reaches valid records
 * (it cannot forge their SHA-256): byte 0 picks the payload size (1..24), byte 1 the header
 * (the expected one, another key, or 96 raw bytes), then each step a tag byte: a record whose
 * check this target computes, a record with a check from the input, a short tail, or raw bytes.
 * The file is written and opened with chunkfile_open; an independent scan of the same bytes
 * says how many leading records are whole and verify. Then: the records passed to the callback
 * are exactly those (ids and payloads, in order); the file was cut back to them (or replaced by
 * a bare header when the header was not ours); one appended record and a reopen give one record
 * more. None may crash, leak or read out of bounds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/mem.h"
#include "io/chunkfile.h"
#include "io/sha256.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR 96
#define CHK 32
#define MAXREC 64

static const char KEY[65] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const char OTHER[65] = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

typedef struct {
    size_t n, payload;
    uint64_t id[MAXREC + 1];
    unsigned char pl[MAXREC + 1][24];
} Seen;

static void on_record(void *ctx, uint64_t id, const void *payload)
{
    Seen *s = ctx;
    if (s->n > MAXREC) abort(); /* more records than the file can hold */
    s->id[s->n] = id;
    memcpy(s->pl[s->n], payload, s->payload);
    s->n++;
}

static void put_header(unsigned char *h, const char key[65], size_t payload)
{
    memset(h, 0, HDR);
    memcpy(h, "DFMCHNK1", 8);
    memcpy(h + 8, key, 64);
    for (int i = 0; i < 8; i++) h[72 + i] = (unsigned char)((uint64_t)payload >> (8 * i));
}

/* the first 32 hex digits of SHA-256(id as u64 little-endian, payload) */
static void put_check(unsigned char *out, const unsigned char *rec, size_t payload)
{
    Sha256 *s = sha256_create();
    sha256_update(s, rec, 8 + payload);
    char hex[65];
    sha256_final_hex(s, hex);
    memcpy(out, hex, CHK);
}

static const char *path(void)
{
    static char p[96];
    if (!p[0]) {
        struct stat st;
        const char *dir = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
        snprintf(p, sizeof p, "%s/dfm_fuzz_chunk.%ld", dir, (long)getpid());
    }
    return p;
}

static long file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    const size_t payload = 1 + data[0] % 24, rb = 8 + payload + CHK;
    const int hmode = data[1] % 4;
    size_t at = 2;
    unsigned char *f = xmalloc(HDR + (size_t)MAXREC * 256 + 256); /* a step adds <= 255 bytes */
    size_t n = 0;
    if (hmode <= 1) {
        put_header(f, KEY, payload);
    } else if (hmode == 2) {
        put_header(f, OTHER, payload);
    } else {
        memset(f, 0, HDR);
        size_t k = size - at < HDR ? size - at : HDR;
        memcpy(f, data + at, k);
        at += k;
    }
    n = HDR;
    for (int step = 0; step < MAXREC && at < size; step++) {
        const int tag = data[at++] % 4;
        if (tag <= 1) { /* a record: id and payload from the input, check computed or given */
            unsigned char *r = f + n;
            memset(r, 0, rb);
            size_t k = size - at < 8 + payload ? size - at : 8 + payload;
            memcpy(r, data + at, k);
            at += k;
            if (tag == 0) {
                put_check(r + 8 + payload, r, payload);
            } else {
                size_t c = size - at < CHK ? size - at : CHK;
                memcpy(r + 8 + payload, data + at, c);
                at += c;
            }
            n += rb;
        } else if (tag == 2) { /* a torn write: the first bytes of a record, then the end */
            if (at >= size) break;
            size_t k = data[at++] % rb;
            memset(f + n, 0xA5, k);
            n += k;
            break;
        } else { /* up to 255 raw bytes */
            if (at >= size) break;
            size_t k = data[at++];
            if (k > size - at) k = size - at;
            memcpy(f + n, data + at, k);
            at += k;
            n += k;
        }
    }

    /* the oracle: whole, verifying records after an exact header */
    unsigned char want[HDR];
    put_header(want, KEY, payload);
    size_t valid = 0;
    const int ours = n >= HDR && memcmp(f, want, HDR) == 0;
    if (ours) {
        for (size_t off = HDR; off + rb <= n; off += rb) {
            unsigned char c[CHK];
            put_check(c, f + off, payload);
            if (memcmp(c, f + off + 8 + payload, CHK) != 0) break;
            valid++;
        }
    }

    const char *p = path();
    FILE *fp = fopen(p, "wb");
    if (!fp || fwrite(f, 1, n, fp) != n || fclose(fp) != 0) abort();

    ChunkFile cf;
    Seen seen = {0, payload, {0}, {{0}}};
    size_t loaded = 0;
    if (chunkfile_open(&cf, p, KEY, payload, on_record, &seen, &loaded) != ERR_OK) abort();
    if (loaded != valid || seen.n != valid) abort();
    for (size_t i = 0; i < valid; i++) {
        const unsigned char *r = f + HDR + i * rb;
        uint64_t id = 0;
        for (int b = 0; b < 8; b++) id |= (uint64_t)r[b] << (8 * b);
        if (seen.id[i] != id || memcmp(seen.pl[i], r + 8, payload) != 0) abort();
    }
    if (file_size(p) != (long)(HDR + valid * rb)) abort(); /* cut back, or a fresh header */

    unsigned char extra[24];
    for (size_t i = 0; i < payload; i++) extra[i] = (unsigned char)(i * 7 + n);
    if (chunkfile_append(&cf, 0x1122334455667788ULL + n, extra) != ERR_OK) abort();
    chunkfile_close(&cf);
    Seen again = {0, payload, {0}, {{0}}};
    if (chunkfile_open(&cf, p, KEY, payload, on_record, &again, &loaded) != ERR_OK) abort();
    if (loaded != valid + 1 || again.id[valid] != 0x1122334455667788ULL + n ||
        memcmp(again.pl[valid], extra, payload) != 0)
        abort();
    chunkfile_close(&cf);
    unlink(p);
    xfree(f);
    return 0;
}
