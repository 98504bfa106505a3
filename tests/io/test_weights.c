/* tests/io/test_weights.c - weights files: round trip and rejection of damaged files. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "io/weights.h"

static const WeightsTensor T[2] = {
    {.name = "a.weight", .ndim = 2, .shape = {2, 3}, .offset = 0, .count = 6},
    {.name = "a.bias", .ndim = 1, .shape = {2}, .offset = 6, .count = 2},
};

Test(weights, round_trip_and_damage)
{
    char path[] = "/tmp/dfm_w_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    float p[8], e[8];
    for (int i = 0; i < 8; i++) p[i] = (float)i * 0.5f - 1.0f, e[i] = -(float)i;
    cr_assert_eq(weights_write(path, T, 2, p, e, 8), 0);
    Weights w;
    cr_assert_eq(weights_read(&w, path), 0);
    cr_assert_eq(w.n, 8);
    cr_assert_eq(w.n_tensors, 2);
    cr_assert_str_eq(w.tensors[1].name, "a.bias");
    cr_assert_eq(memcmp(w.params, p, sizeof p), 0);
    cr_assert_eq(memcmp(w.ema, e, sizeof e), 0);
    weights_free(&w);

    /* truncated by one byte */
    FILE *f = fopen(path, "r+b");
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fclose(f);
    cr_assert_eq(truncate(path, len - 1), 0);
    cr_assert_eq(weights_read(&w, path), ERR_FORMAT);
    cr_assert(strstr(err_message(), "truncated") != NULL, "%s", err_message());

    /* bad magic */
    f = fopen(path, "r+b");
    fputc('X', f);
    fclose(f);
    cr_assert_eq(weights_read(&w, path), ERR_FORMAT);
    cr_assert(strstr(err_message(), "magic") != NULL);
    unlink(path);
}

/* ---- crafted files: every count comes from the file, so none may wrap around ------------- */

typedef struct {
    const char *name;
    uint32_t ndim, shape[4];
    uint64_t off, cnt;
} RawTensor;

static void put_raw(FILE *f, const void *p, size_t n) { cr_assert_eq(fwrite(p, 1, n, f), n); }

/* A weights file with the given header fields and table, followed by data_floats floats. */
static void write_raw(const char *path, const RawTensor *t, uint64_t nt, uint64_t n,
                      uint64_t data_floats)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    uint32_t u32;
    put_raw(f, "DFMWGHT1", 8);
    u32 = 1; put_raw(f, &u32, 4);
    u32 = 0x01020304u; put_raw(f, &u32, 4);
    put_raw(f, &nt, 8);
    put_raw(f, &n, 8);
    u32 = 1; put_raw(f, &u32, 4);
    u32 = 0; put_raw(f, &u32, 4);
    for (uint64_t i = 0; i < nt; i++) {
        u32 = (uint32_t)strlen(t[i].name);
        put_raw(f, &u32, 4);
        put_raw(f, t[i].name, u32);
        put_raw(f, &t[i].ndim, 4);
        put_raw(f, t[i].shape, 16);
        put_raw(f, &t[i].off, 8);
        put_raw(f, &t[i].cnt, 8);
    }
    float z = 0.0f;
    for (uint64_t i = 0; i < data_floats; i++) put_raw(f, &z, 4);
    cr_assert_eq(fclose(f), 0);
}

static void tmp_path(char *path)
{
    strcpy(path, "/tmp/dfm_w_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
}

Test(weights, wrapped_offset_plus_count_is_rejected)
{
    /* 65535 * 65537 * 641 * 6700417 = 2^64 - 1: the shape "matches" a count of 2^64 - 1, and
     * offset 1 + that count wraps to 0, after which a third tensor covers [0, 4) again. */
    const RawTensor t[3] = {
        {"a", 1, {1, 1, 1, 1}, 0, 1},
        {"evil", 4, {65535u, 65537u, 641u, 6700417u}, 1, UINT64_MAX},
        {"b", 1, {4, 1, 1, 1}, 0, 4},
    };
    char path[32];
    tmp_path(path);
    write_raw(path, t, 3, 4, 4);
    Weights w;
    cr_assert_eq(weights_read(&w, path), ERR_FORMAT, "a wrapped count was accepted");
    cr_assert(strstr(err_message(), "evil") != NULL, "%s", err_message());
    cr_assert_null(w.tensors);
    unlink(path);
}

Test(weights, wrapped_shape_product_is_rejected)
{
    /* 65536^4 = 2^64 wraps to 0: a zero-count tensor with a huge shape. */
    const RawTensor t[2] = {
        {"huge", 4, {65536u, 65536u, 65536u, 65536u}, 0, 0},
        {"b", 1, {4, 1, 1, 1}, 0, 4},
    };
    char path[32];
    tmp_path(path);
    write_raw(path, t, 2, 4, 4);
    Weights w;
    cr_assert_eq(weights_read(&w, path), ERR_FORMAT, "a wrapped shape product was accepted");
    cr_assert(strstr(err_message(), "huge") != NULL, "%s", err_message());
    unlink(path);
}

Test(weights, bad_shapes_and_overlaps_are_rejected)
{
    char path[32];
    tmp_path(path);
    Weights w;
    /* a dimension above INT_MAX would become a negative int shape */
    const RawTensor neg[1] = {{"neg", 1, {0x80000000u, 1, 1, 1}, 0, 0x80000000u}};
    write_raw(path, neg, 1, 0x80000000u, 0);
    cr_assert_eq(weights_read(&w, path), ERR_FORMAT);
    /* an unused dimension that is not 1 */
    const RawTensor unused[1] = {{"u", 1, {4, 7, 1, 1}, 0, 4}};
    write_raw(path, unused, 1, 4, 4);
    cr_assert_eq(weights_read(&w, path), ERR_FORMAT);
    /* overlapping tensors */
    const RawTensor ov[2] = {{"a", 1, {4, 1, 1, 1}, 0, 4}, {"b", 1, {2, 1, 1, 1}, 2, 2}};
    write_raw(path, ov, 2, 4, 4);
    cr_assert_eq(weights_read(&w, path), ERR_FORMAT);
    /* a header promising 2^36 floats in a file of a few bytes: refused before allocating */
    const RawTensor big[1] = {{"big", 1, {1u << 30, 64, 1, 1}, 0, (uint64_t)1 << 36}};
    write_raw(path, big, 1, (uint64_t)1 << 36, 0);
    cr_assert_eq(weights_read(&w, path), ERR_FORMAT);
    cr_assert(strstr(err_message(), "implausible") != NULL, "%s", err_message());
    /* the well-formed file is still read */
    const RawTensor ok[2] = {{"a", 2, {2, 3, 1, 1}, 0, 6}, {"b", 1, {2, 1, 1, 1}, 6, 2}};
    write_raw(path, ok, 2, 8, 8);
    cr_assert_eq(weights_read(&w, path), ERR_OK, "%s", err_message());
    weights_free(&w);
    unlink(path);
}
