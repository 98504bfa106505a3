/* io/image.c - PNG grids and scatter plots through libpng, written atomically. */
#include "io/image.h"

#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "io/fsutil.h"

static uint8_t to_u8(float v)
{
    double p = ((double)v + 1.0) * 127.5;
    if (!(p > 0.0)) return 0; /* also NaN */
    if (p >= 255.0) return 255;
    return (uint8_t)lrint(p);
}

/* Write rows (height x rowbytes) as an 8-bit PNG with `channels` 1 or 3. */
static int write_png(const char *path, const uint8_t *pix, int width, int height, int channels)
{
    AtomicFile af;
    TRY(fs_atomic_open(&af, path));
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        fs_atomic_abort(&af);
        return ERR(ERR_NOMEM, "libpng could not allocate its state for %s", path);
    }
    png_bytep *rows = xmalloc(sizeof(png_bytep) * (size_t)height);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        xfree(rows);
        fs_atomic_abort(&af);
        return ERR(ERR_IO, "libpng failed while writing %s", path);
    }
    png_init_io(png, af.f);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
                 channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < height; y++)
        rows[y] = (png_bytep)(uintptr_t)(pix + (size_t)y * (size_t)width * (size_t)channels);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    xfree(rows);
    return fs_atomic_commit(&af);
}

int image_write_rgb_png(const char *path, const uint8_t *rgb, int width, int height)
{
    if (width < 1 || height < 1) return ERR(ERR_ARG, "%s: empty image (%dx%d)", path, width, height);
    return write_png(path, rgb, width, height, 3);
}

int image_write_grid_png(const char *path, const float *x, size_t N, size_t C, size_t H, size_t W,
                         size_t cols)
{
    if (C != 1 && C != 3) return ERR(ERR_ARG, "image grid needs 1 or 3 channels, got %zu", C);
    if (N == 0 || H == 0 || W == 0) return ERR(ERR_ARG, "image grid of no images");
    if (cols == 0) cols = (size_t)ceil(sqrt((double)N));
    size_t rowsn = (N + cols - 1) / cols, pad = 2;
    size_t GW = cols * (W + pad) + pad, GH = rowsn * (H + pad) + pad;
    if (GW > 32768 || GH > 32768) return ERR(ERR_ARG, "image grid too large (%zux%zu)", GW, GH);
    uint8_t *pix = xcalloc(GW * GH * C, 1);
    memset(pix, 40, GW * GH * C);
    for (size_t n = 0; n < N; n++) {
        size_t oy = pad + (n / cols) * (H + pad), ox = pad + (n % cols) * (W + pad);
        const float *img = x + n * C * H * W;
        for (size_t y = 0; y < H; y++)
            for (size_t xx = 0; xx < W; xx++)
                for (size_t c = 0; c < C; c++)
                    pix[((oy + y) * GW + ox + xx) * C + c] = to_u8(img[(c * H + y) * W + xx]);
    }
    int rc = write_png(path, pix, (int)GW, (int)GH, (int)C);
    xfree(pix);
    return rc;
}

int image_write_scatter_png(const char *path, const float *pts, size_t N, int size, double lim)
{
    if (size < 16 || size > 8192) return ERR(ERR_ARG, "scatter size %d out of range", size);
    size_t S = (size_t)size;
    uint8_t *pix = xcalloc(S * S, 1);
    memset(pix, 255, S * S);
    for (size_t i = 0; i < S; i++) pix[(S / 2) * S + i] = pix[i * S + S / 2] = 200; /* axes */
    for (size_t n = 0; n < N; n++) {
        double px = ((double)pts[2 * n] + lim) / (2 * lim) * (double)(S - 1);
        double py = (lim - (double)pts[2 * n + 1]) / (2 * lim) * (double)(S - 1);
        if (!(px >= 0 && px < (double)S && py >= 0 && py < (double)S)) continue;
        size_t ix = (size_t)px, iy = (size_t)py;
        uint8_t *p = &pix[iy * S + ix];
        *p = *p > 60 ? (uint8_t)(*p - 60) : 0;
    }
    int rc = write_png(path, pix, size, size, 1);
    xfree(pix);
    return rc;
}

int image_read_png(const char *path, float **out, size_t *C, size_t *H, size_t *W)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path))
        return ERR(ERR_FORMAT, "cannot read PNG %s: %s", path, img.message);
    int grey = !(img.format & PNG_FORMAT_FLAG_COLOR);
    img.format = grey ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    size_t c = grey ? 1 : 3, h = img.height, w = img.width;
    uint8_t *buf = xmalloc(c * h * w);
    if (!png_image_finish_read(&img, NULL, buf, 0, NULL)) {
        xfree(buf);
        png_image_free(&img);
        return ERR(ERR_FORMAT, "cannot decode PNG %s: %s", path, img.message);
    }
    float *x = xmalloc(sizeof(float) * c * h * w);
    for (size_t y = 0; y < h; y++)
        for (size_t xx = 0; xx < w; xx++)
            for (size_t k = 0; k < c; k++)
                x[(k * h + y) * w + xx] = (float)buf[(y * w + xx) * c + k] / 127.5f - 1.0f;
    xfree(buf);
    *out = x;
    *C = c;
    *H = h;
    *W = w;
    return ERR_OK;
}
