/* tests/io/test_image.c - PNG grid round trip and atomic writes. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/mem.h"
#include "io/fsutil.h"
#include "io/image.h"

Test(image, grid_round_trip_grey)
{
    char dir[] = "/tmp/dfm_img_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/g.png", dir);
    enum { N = 5, C = 1, H = 4, W = 3 };
    float x[N * C * H * W];
    for (int i = 0; i < N * C * H * W; i++) x[i] = (float)((i % 17) / 8.0 - 1.0);
    cr_assert_eq(image_write_grid_png(path, x, N, C, H, W, 3), 0);
    float *y;
    size_t c, h, w;
    cr_assert_eq(image_read_png(path, &y, &c, &h, &w), 0);
    cr_assert_eq(c, 1);
    cr_assert_eq(w, 3 * (W + 2) + 2);
    cr_assert_eq(h, 2 * (H + 2) + 2);
    /* image 4 sits at row 1, column 1 */
    for (int yy = 0; yy < H; yy++)
        for (int xx = 0; xx < W; xx++) {
            float want = x[4 * H * W + yy * W + xx];
            float got = y[(2 + (H + 2) + yy) * w + 2 + (W + 2) + xx];
            cr_assert(fabsf(want - got) <= 1.0f / 127.5f + 1e-6f, "%g vs %g", (double)want,
                      (double)got);
        }
    xfree(y);
    unlink(path);
    rmdir(dir);
}

Test(image, rejects_bad_channels_and_leaves_nothing)
{
    float x[8] = {0};
    cr_assert_neq(image_write_grid_png("/tmp/dfm_never.png", x, 1, 2, 2, 2, 1), 0);
    cr_assert(!fs_exists("/tmp/dfm_never.png"));
    cr_assert_neq(image_write_grid_png("/nonexistent-dir/x.png", x, 1, 1, 2, 2, 1), 0);
}

Test(image, scatter_writes_png)
{
    char path[] = "/tmp/dfm_scatter_XXXXXX.png";
    int fd = mkstemps(path, 4);
    cr_assert(fd >= 0);
    close(fd);
    float pts[6] = {0, 0, 1, 1, -5, 9};
    cr_assert_eq(image_write_scatter_png(path, pts, 3, 64, 2.0), 0);
    float *y;
    size_t c, h, w;
    cr_assert_eq(image_read_png(path, &y, &c, &h, &w), 0);
    cr_assert_eq(h, 64);
    xfree(y);
    unlink(path);
}

Test(fsutil, mkdir_p_and_atomic)
{
    char dir[] = "/tmp/dfm_fs_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char sub[256], file[300];
    snprintf(sub, sizeof sub, "%s/a/b/c", dir);
    cr_assert_eq(fs_mkdir_p(sub), 0);
    cr_assert_eq(fs_mkdir_p(sub), 0);
    snprintf(file, sizeof file, "%s/f.txt", sub);
    AtomicFile af;
    cr_assert_eq(fs_atomic_open(&af, file), 0);
    fputs("hello", af.f);
    cr_assert(!fs_exists(file), "visible before commit");
    cr_assert_eq(fs_atomic_commit(&af), 0);
    cr_assert(fs_exists(file));
    cr_assert_eq(fs_atomic_open(&af, file), 0);
    fputs("partial", af.f);
    fs_atomic_abort(&af);
    FILE *f = fopen(file, "r");
    char b[16] = {0};
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(b, sizeof b, f));
    fclose(f);
    cr_assert_str_eq(b, "hello");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}
