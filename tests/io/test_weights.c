/* tests/io/test_weights.c - weights files: round trip and rejection of damaged files. */
#include <criterion/criterion.h>
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
