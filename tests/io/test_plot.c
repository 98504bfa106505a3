/* tests/io/test_plot.c - line plots: points land where the axes say, text is drawn, output is
 * deterministic, bad points are skipped, and the PNG is readable. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/mem.h"
#include "io/image.h"
#include "io/plot.h"

static int is_white(const uint8_t *p) { return p[0] == 255 && p[1] == 255 && p[2] == 255; }

/* the pixel count of a colour (the first palette entry) */
static size_t count_col(const uint8_t *rgb, int w, int h, const uint8_t col[3])
{
    size_t n = 0;
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++) n += !memcmp(rgb + 3 * i, col, 3);
    return n;
}

Test(plot, a_diagonal_line_is_drawn_between_its_points)
{
    const double x[2] = {0, 1}, y[2] = {0, 1};
    PlotSeries s = {.x = x, .y = y, .n = 2};
    PlotAxes ax = {.width = 300, .height = 200};
    uint8_t *a, *b;
    int w, h;
    cr_assert_eq(plot_render(&ax, &s, 1, &a, &w, &h), ERR_OK);
    cr_assert_eq(w, 300);
    cr_assert_eq(h, 200);
    const uint8_t blue[3] = {31, 119, 180};
    size_t n = count_col(a, w, h, blue);
    cr_assert(n > 150 && n < 2000, "line pixels: %zu", n);
    /* the middle of the plot area lies on the diagonal: some line pixel within 3 px of it */
    int left = 64, right = w - 16, top = 30, bottom = h - 42, cx = (left + right) / 2,
        cy = (top + bottom) / 2, near = 0;
    for (int dy = -3; dy <= 3; dy++)
        for (int dx = -3; dx <= 3; dx++)
            near |= !memcmp(a + 3 * ((size_t)(cy + dy) * (size_t)w + (size_t)(cx + dx)), blue, 3);
    cr_assert(near, "no line pixel near the centre of the plot area");
    /* the bottom-right corner of the plot area is far from the line: background */
    cr_assert(is_white(a + 3 * ((size_t)(bottom - 8) * (size_t)w + (size_t)(right - 8))));
    cr_assert_eq(plot_render(&ax, &s, 1, &b, &w, &h), ERR_OK);
    cr_assert(!memcmp(a, b, (size_t)w * (size_t)h * 3), "the same data give the same pixels");
    xfree(a);
    xfree(b);
}

Test(plot, title_is_drawn_and_bad_points_are_skipped)
{
    const double x[4] = {1, 10, -5, 100}, y[4] = {1, NAN, 3, 2};
    PlotSeries s = {.x = x, .y = y, .n = 4, .label = "eta 0"};
    PlotAxes ax = {.title = "FD AGAINST NFE", .logx = 1};
    uint8_t *a;
    int w, h;
    cr_assert_eq(plot_render(&ax, &s, 1, &a, &w, &h), ERR_OK);
    size_t dark = 0;
    for (int y0 = 8; y0 < 20; y0++)
        for (int x0 = 0; x0 < w; x0++) dark += a[3 * ((size_t)y0 * (size_t)w + (size_t)x0)] == 0;
    cr_assert(dark > 40, "title pixels: %zu", dark);
    xfree(a);
    PlotAxes bad = {.width = 10, .height = 10};
    cr_assert_eq(plot_render(&bad, &s, 1, &a, &w, &h), ERR_ARG);
    err_clear();
}

Test(plot, png_round_trip)
{
    char p[64];
    snprintf(p, sizeof p, "/tmp/dfm_plot_%ld.png", (long)getpid());
    const double x[3] = {1, 2, 3}, y[3] = {3, 1, 2};
    PlotSeries s = {.x = x, .y = y, .n = 3};
    PlotAxes ax = {.width = 320, .height = 240};
    cr_assert_eq(plot_write_png(p, &ax, &s, 1), ERR_OK);
    float *img;
    size_t C, H, W;
    cr_assert_eq(image_read_png(p, &img, &C, &H, &W), ERR_OK);
    cr_assert_eq(C, 3);
    cr_assert_eq(H, 240);
    cr_assert_eq(W, 320);
    xfree(img);
    unlink(p);
}
