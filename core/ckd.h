/* core/ckd.h - overflow-checked integer arithmetic for readers of untrusted binary files.
 *
 * Every size, count and offset read from a file is attacker-controlled: a product of shape
 * dimensions or an `offset + count` can wrap around and pass a later bound check. Readers
 * compute them only through these helpers, which return 1 when the exact result does not fit
 * (and then leave *r unspecified) and 0 otherwise, like C23's ckd_add / ckd_mul:
 *
 *     uint64_t count;
 *     if (ckd_mul_u64(&count, rows, cols)) return ERR(ERR_FORMAT, "...");
 *
 * ckd_range_ok(off, count, n) is the bounds test for a slice [off, off + count) of a buffer of
 * n items written so that it cannot overflow: count <= n && off <= n - count.
 */
#ifndef DFM_CORE_CKD_H
#define DFM_CORE_CKD_H

#include <stddef.h>
#include <stdint.h>

static inline int ckd_add_u64(uint64_t *r, uint64_t a, uint64_t b)
{
    return __builtin_add_overflow(a, b, r);
}

static inline int ckd_mul_u64(uint64_t *r, uint64_t a, uint64_t b)
{
    return __builtin_mul_overflow(a, b, r);
}

static inline int ckd_add_size(size_t *r, size_t a, size_t b)
{
    return __builtin_add_overflow(a, b, r);
}

static inline int ckd_mul_size(size_t *r, size_t a, size_t b)
{
    return __builtin_mul_overflow(a, b, r);
}

/* 1 when [off, off + count) lies inside [0, n). */
static inline int ckd_range_ok(uint64_t off, uint64_t count, uint64_t n)
{
    return count <= n && off <= n - count;
}

#endif
