/* tests/io/test_npy.c - .npy files: numpy's header layout, round trips, damaged files. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/mem.h"
#include "io/npy.h"

static void tmpname(char *p)
{
    strcpy(p, "/tmp/dfm_npy_XXXXXX");
    int fd = mkstemp(p);
    cr_assert(fd >= 0);
    close(fd);
}

Test(npy, header_is_numpys_and_round_trip)
{
    char p[64];
    tmpname(p);
    const float x[6] = {1.5f, -2.0f, 0.0f, 3.25f, 1e-3f, -7.0f};
    const size_t shape[3] = {1, 2, 3};
    cr_assert_eq(npy_write_f32(p, x, shape, 3), ERR_OK);
    FILE *f = fopen(p, "rb");
    char buf[200];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    cr_assert_eq(n, 128 + 24);
    cr_assert_eq(buf[8], 118); /* header length: 128 - 10 */
    cr_assert(!memcmp(buf + 10, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }", 62));
    cr_assert_eq(buf[127], '\n');
    float *y;
    size_t sh[NPY_MAX_DIMS];
    int nd;
    cr_assert_eq(npy_read_f32(p, &y, sh, &nd, NULL), ERR_OK);
    cr_assert(nd == 3 && sh[0] == 1 && sh[1] == 2 && sh[2] == 3);
    cr_assert_eq(memcmp(x, y, sizeof x), 0);
    xfree(y);
    /* uint8, one axis: numpy writes (5,) */
    const uint8_t b[5] = {0, 1, 128, 255, 7};
    const size_t s1[1] = {5};
    cr_assert_eq(npy_write_u8(p, b, s1, 1), ERR_OK);
    f = fopen(p, "rb");
    n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    cr_assert(strstr(buf + 10, "'descr': '|u1', 'fortran_order': False, 'shape': (5,), }") != NULL);
    cr_assert_eq(npy_read_f32(p, &y, sh, &nd, NULL), ERR_OK);
    cr_assert(nd == 1 && sh[0] == 5 && y[2] == 128.0f && y[3] == 255.0f);
    xfree(y);
    /* one byte short */
    cr_assert_eq(truncate(p, (off_t)n - 1), 0);
    cr_assert_eq(npy_read_f32(p, &y, sh, &nd, NULL), ERR_FORMAT);
    cr_assert(strstr(err_message(), "data bytes") != NULL, "%s", err_message());
    f = fopen(p, "wb");
    fputs("PK\003\004 a zip", f);
    fclose(f);
    cr_assert_eq(npy_read_f32(p, &y, sh, &nd, NULL), ERR_FORMAT);
    unlink(p);
}
