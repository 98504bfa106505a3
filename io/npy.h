/* io/npy.h - NumPy .npy files (format version 1.0), the array format of `dfm sample`.
 *
 * Written: little-endian uint8 ('|u1') or float32 ('<f4'), C order, any shape up to 8 axes,
 * header padded with spaces to a multiple of 64 bytes and ended by '\n' (numpy.save's layout),
 * atomically (temporary name, fsync, rename). Read: float32 or uint8 arrays in C order (uint8
 * is returned as float values 0..255); the header's descr, fortran_order and shape are parsed
 * strictly and the file length must match exactly (ERR_FORMAT naming the field otherwise).
 */
#ifndef DFM_IO_NPY_H
#define DFM_IO_NPY_H

#include <stddef.h>
#include <stdint.h>

#define NPY_MAX_DIMS 8

int npy_write_f32(const char *path, const float *x, const size_t *shape, int ndim);
int npy_write_u8(const char *path, const uint8_t *x, const size_t *shape, int ndim);

/* Read into a newly allocated float buffer (*out, freed with xfree); shape[NPY_MAX_DIMS];
 * *is_u8 (may be NULL) tells whether the file held uint8. */
int npy_read_f32(const char *path, float **out, size_t *shape, int *ndim, int *is_u8);

#endif
