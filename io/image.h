/* io/image.h - PNG output of image batches (libpng).
 *
 * image_write_grid_png lays N images of shape (C,H,W), values in [-1,1], out in a grid of `cols`
 * columns with a 2-pixel border, as an 8-bit grey (C=1) or RGB (C=3) PNG. Low-dimensional data
 * (D=2) is drawn as a scatter plot by image_write_scatter_png. Files are written atomically
 * (temporary name, fsync, rename): a reader never sees a half-written image.
 */
#ifndef DFM_IO_IMAGE_H
#define DFM_IO_IMAGE_H

#include <stddef.h>
#include <stdint.h>

int image_write_grid_png(const char *path, const float *x, size_t N, size_t C, size_t H, size_t W,
                         size_t cols);

/* An 8-bit RGB image (height, width, 3), row-major (the plots of io/plot.h). */
int image_write_rgb_png(const char *path, const uint8_t *rgb, int width, int height);

/* Scatter of N 2-D points (N,2) into a size x size image covering [-lim, lim]^2. */
int image_write_scatter_png(const char *path, const float *pts, size_t N, int size, double lim);

/* Read an 8-bit grey or RGB PNG into a newly allocated (C,H,W) float buffer in [-1,1]
 * (used by tests and by inpainting inputs). Caller frees *out with xfree. */
int image_read_png(const char *path, float **out, size_t *C, size_t *H, size_t *W);

#endif
