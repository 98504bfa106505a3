/* io/plot.c - line plots into an RGB buffer, written with io/image.c's PNG writer. */
#include "io/plot.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "io/image.h"

static const char FONT_CHARS[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.,-+=()/:%_";
static const unsigned char FONT[][7] = {
    {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e}, /* 0 */
    {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e}, /* 1 */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f}, /* 2 */
    {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e}, /* 3 */
    {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02}, /* 4 */
    {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e}, /* 5 */
    {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e}, /* 6 */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}, /* 7 */
    {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e}, /* 8 */
    {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c}, /* 9 */
    {0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}, /* A */
    {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e}, /* B */
    {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e}, /* C */
    {0x1e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1e}, /* D */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f}, /* E */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10}, /* F */
    {0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f}, /* G */
    {0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}, /* H */
    {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e}, /* I */
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c}, /* J */
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, /* K */
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f}, /* L */
    {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11}, /* M */
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}, /* N */
    {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}, /* O */
    {0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10}, /* P */
    {0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d}, /* Q */
    {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11}, /* R */
    {0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e}, /* S */
    {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, /* T */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}, /* U */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04}, /* V */
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a}, /* W */
    {0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11}, /* X */
    {0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x04}, /* Y */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f}, /* Z */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c}, /* . */
    {0x00, 0x00, 0x00, 0x00, 0x0c, 0x04, 0x08}, /* , */
    {0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00}, /* - */
    {0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00}, /* + */
    {0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00}, /* = */
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}, /* ( */
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}, /* ) */
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}, /* / */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00}, /* : */
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}, /* % */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f}, /* _ */
};

typedef struct {
    uint8_t *p;
    int w, h;
} Canvas;

static const uint8_t PALETTE[][3] = {{31, 119, 180}, {214, 39, 40},  {44, 160, 44},
                                     {255, 127, 14}, {148, 103, 189}, {140, 86, 75},
                                     {227, 119, 194}, {23, 190, 207}, {127, 127, 127}};
#define NPAL (sizeof PALETTE / sizeof PALETTE[0])

static void px(Canvas *c, int x, int y, const uint8_t col[3])
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
    memcpy(c->p + ((size_t)y * (size_t)c->w + (size_t)x) * 3, col, 3);
}

static void rect(Canvas *c, int x0, int y0, int x1, int y1, const uint8_t col[3])
{
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) px(c, x, y, col);
}

/* A 2-pixel line (Bresenham, the pixel and its lower and right neighbours). */
static void line(Canvas *c, int x0, int y0, int x1, int y1, const uint8_t col[3])
{
    int dx = x1 > x0 ? x1 - x0 : x0 - x1, sx = x0 < x1 ? 1 : -1;
    int dy = -(y1 > y0 ? y1 - y0 : y0 - y1), sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    for (int guard = 0; guard < 100000; guard++) {
        px(c, x0, y0, col);
        px(c, x0 + 1, y0, col);
        px(c, x0, y0 + 1, col);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * err;
        if (e2 >= dy) err += dy, x0 += sx;
        if (e2 <= dx) err += dx, y0 += sy;
    }
}

static int glyph(char ch)
{
    if (ch >= 'a' && ch <= 'z') ch = (char)(ch - 'a' + 'A');
    const char *q = ch ? strchr(FONT_CHARS, ch) : NULL;
    return q ? (int)(q - FONT_CHARS) : -1;
}

static int text_width(const char *s) { return (int)strlen(s) * 6 - 1; }

/* Text with its top-left corner at (x, y); unknown characters are blanks. */
static void text(Canvas *c, int x, int y, const char *s, const uint8_t col[3])
{
    for (; *s; s++, x += 6) {
        int g = glyph(*s);
        if (g < 0) continue;
        for (int r = 0; r < 7; r++)
            for (int b = 0; b < 5; b++)
                if (FONT[g][r] & (1u << (4 - b))) px(c, x + b, y + r, col);
    }
}

typedef struct {
    double lo, hi; /* data range in axis units (log10 when log) */
    int log;
    int p0, p1;    /* pixel range */
} Axis;

static int axis_ok(double v, int log) { return isfinite(v) && (!log || v > 0); }
static double axis_unit(double v, int log) { return log ? log10(v) : v; }

static int to_px(const Axis *a, double v)
{
    double u = (axis_unit(v, a->log) - a->lo) / (a->hi - a->lo);
    return (int)lround(a->p0 + u * (a->p1 - a->p0));
}

/* Range of the finite points, padded, never empty. */
static void axis_range(Axis *a, const PlotSeries *s, size_t ns, int which)
{
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < ns; i++)
        for (size_t j = 0; j < s[i].n; j++) {
            double v = which ? s[i].y[j] : s[i].x[j];
            if (!axis_ok(v, a->log)) continue;
            v = axis_unit(v, a->log);
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
    if (!(lo <= hi)) lo = 0, hi = 1;
    double pad = hi > lo ? 0.05 * (hi - lo) : (fabs(lo) > 0 ? 0.1 * fabs(lo) : 1);
    a->lo = lo - pad;
    a->hi = hi + pad;
}

static void fmt_tick(char *buf, size_t n, double v, double step)
{
    if (fabs(v) < 1e-12 * step) v = 0;
    if (fabs(v) >= 1e5 || (v != 0 && fabs(v) < 1e-3)) snprintf(buf, n, "%.0e", v);
    else if (step >= 1) snprintf(buf, n, "%.0f", v);
    else {
        int d = (int)ceil(-log10(step) - 1e-9);
        snprintf(buf, n, "%.*f", d > 6 ? 6 : d, v);
    }
}

/* Tick values in data units: 1-2-5 steps (linear) or powers of ten (log); returns the count. */
static int ticks(const Axis *a, double *t, int max, double *step_out)
{
    int n = 0;
    if (a->log) {
        for (double e = ceil(a->lo); e <= a->hi && n < max; e += 1) t[n++] = pow(10, e);
        *step_out = 1;
        if (n >= 2) return n;
        n = 0; /* less than a decade: fall through to linear ticks in data units */
    }
    double lo = a->log ? pow(10, a->lo) : a->lo, hi = a->log ? pow(10, a->hi) : a->hi;
    double raw = (hi - lo) / 6, mag = pow(10, floor(log10(raw))), step = mag;
    if (raw / mag > 5) step = 10 * mag;
    else if (raw / mag > 2) step = 5 * mag;
    else if (raw / mag > 1) step = 2 * mag;
    for (double v = ceil(lo / step) * step; v <= hi + 1e-9 * step && n < max; v += step)
        if (axis_ok(v, a->log)) t[n++] = v;
    *step_out = step;
    return n;
}

int plot_render(const PlotAxes *ax, const PlotSeries *s, size_t ns, uint8_t **rgb, int *width,
                int *height)
{
    int W = ax->width > 0 ? ax->width : 640, H = ax->height > 0 ? ax->height : 400;
    if (W < 200 || H < 150 || W > 8192 || H > 8192)
        return ERR(ERR_ARG, "plot size %dx%d outside 200x150 .. 8192x8192", W, H);
    Canvas c = {.p = xmalloc((size_t)W * (size_t)H * 3), .w = W, .h = H};
    memset(c.p, 255, (size_t)W * (size_t)H * 3);
    static const uint8_t black[3] = {0, 0, 0}, grid[3] = {225, 225, 225}, grey[3] = {90, 90, 90};
    const int left = 64, right = W - 16, top = 30, bottom = H - 42;
    Axis xa = {.log = ax->logx, .p0 = left, .p1 = right};
    Axis ya = {.log = ax->logy, .p0 = bottom, .p1 = top};
    axis_range(&xa, s, ns, 0);
    axis_range(&ya, s, ns, 1);
    double t[64], step;
    char buf[48];
    int nt = ticks(&xa, t, 64, &step);
    for (int i = 0; i < nt; i++) {
        int x = to_px(&xa, t[i]);
        line(&c, x, top, x, bottom, grid);
        fmt_tick(buf, sizeof buf, t[i], step);
        text(&c, x - text_width(buf) / 2, bottom + 6, buf, grey);
    }
    nt = ticks(&ya, t, 64, &step);
    for (int i = 0; i < nt; i++) {
        int y = to_px(&ya, t[i]);
        line(&c, left, y, right, y, grid);
        fmt_tick(buf, sizeof buf, t[i], step);
        text(&c, left - 6 - text_width(buf), y - 3, buf, grey);
    }
    line(&c, left, top, left, bottom, black);
    line(&c, left, bottom, right, bottom, black);
    for (size_t i = 0; i < ns; i++) {
        const uint8_t *col = PALETTE[i % NPAL];
        int have = 0, lx = 0, ly = 0;
        for (size_t j = 0; j < s[i].n; j++) {
            if (!axis_ok(s[i].x[j], xa.log) || !axis_ok(s[i].y[j], ya.log)) {
                have = 0;
                continue;
            }
            int x = to_px(&xa, s[i].x[j]), y = to_px(&ya, s[i].y[j]);
            if (have) line(&c, lx, ly, x, y, col);
            rect(&c, x - 2, y - 2, x + 2, y + 2, col);
            have = 1, lx = x, ly = y;
        }
    }
    /* legend, top right inside the plot */
    int lw = 0;
    for (size_t i = 0; i < ns; i++)
        if (s[i].label && text_width(s[i].label) > lw) lw = text_width(s[i].label);
    int ly = top + 6;
    for (size_t i = 0; i < ns; i++) {
        if (!s[i].label) continue;
        int x = right - 8 - lw - 24;
        rect(&c, x - 4, ly - 3, right - 4, ly + 9, (const uint8_t[3]){255, 255, 255});
        line(&c, x, ly + 3, x + 16, ly + 3, PALETTE[i % NPAL]);
        text(&c, x + 22, ly, s[i].label, black);
        ly += 12;
    }
    if (ax->title) text(&c, (W - text_width(ax->title)) / 2, 10, ax->title, black);
    if (ax->xlabel) text(&c, (left + right - text_width(ax->xlabel)) / 2, H - 16, ax->xlabel, black);
    if (ax->ylabel) text(&c, 8, 10, ax->ylabel, black);
    *rgb = c.p;
    *width = W;
    *height = H;
    return ERR_OK;
}

int plot_write_png(const char *path, const PlotAxes *ax, const PlotSeries *s, size_t ns)
{
    uint8_t *rgb;
    int w, h;
    TRY(plot_render(ax, s, ns, &rgb, &w, &h));
    int rc = image_write_rgb_png(path, rgb, w, h);
    xfree(rgb);
    return rc;
}
