/* io/plot.h - small line plots written as PNG (through io/image.h; libpng stays there).
 *
 * A plot is a set of series (x, y points joined by lines, with a marker at each point) on
 * linear or logarithmic axes chosen by the caller, with tick labels at 1-2-5 steps (powers of ten
 * on a log axis), a title, axis names and a legend, drawn with a built-in 5x7 pixel font (digits,
 * letters shown as capitals, and . , - + = ( ) / : % _). Non-finite points (and non-positive
 * ones on a log axis) are skipped and break the line. Deterministic: the same data give the
 * same bytes.
 */
#ifndef DFM_IO_PLOT_H
#define DFM_IO_PLOT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const double *x, *y; /* n points */
    size_t n;
    const char *label;   /* legend text, or NULL */
} PlotSeries;

typedef struct {
    const char *title, *xlabel, *ylabel;
    int logx, logy;
    int width, height;   /* pixels; 0 = 640 x 400 */
} PlotAxes;

/* Render into a newly allocated RGB buffer (*rgb, height x width x 3, freed with xfree). */
int plot_render(const PlotAxes *ax, const PlotSeries *s, size_t ns, uint8_t **rgb, int *width,
                int *height);
/* Render and write a PNG atomically. */
int plot_write_png(const char *path, const PlotAxes *ax, const PlotSeries *s, size_t ns);

#endif
