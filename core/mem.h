/* core/mem.h - checked allocation and always-on assertions.
 *
 * xmalloc/xcalloc/xrealloc/xstrdup/xalloc_aligned never return NULL: on failure they print the
 * size and the caller's file:line and abort the job (through the abort hook, which dist/ points
 * at the MPI job abort so that one rank running out of memory does not leave the others hanging).
 * Memory from xalloc_aligned (64-byte aligned, for SIMD kernels) is released with xfree_aligned.
 * xfree(p) accepts NULL. ASSERT stays on in release builds: it is for bugs, never for user input.
 */
#ifndef DFM_CORE_MEM_H
#define DFM_CORE_MEM_H

#include <stddef.h>

void *xmalloc_at(size_t n, const char *file, int line);
void *xcalloc_at(size_t count, size_t size, const char *file, int line);
void *xrealloc_at(void *p, size_t n, const char *file, int line);
char *xstrdup_at(const char *s, const char *file, int line);
void *xalloc_aligned_at(size_t n, const char *file, int line); /* 64-byte aligned, zeroed */

#define xmalloc(n) xmalloc_at((n), __FILE__, __LINE__)
#define xcalloc(c, s) xcalloc_at((c), (s), __FILE__, __LINE__)
#define xrealloc(p, n) xrealloc_at((p), (n), __FILE__, __LINE__)
#define xstrdup(s) xstrdup_at((s), __FILE__, __LINE__)
#define xalloc_aligned(n) xalloc_aligned_at((n), __FILE__, __LINE__)

void xfree(void *p);
void xfree_aligned(void *p);

/* Abort the job. The default hook calls abort(); dist/ installs one that aborts every rank. */
typedef void (*CoreAbortHook)(int status);
void core_set_abort_hook(CoreAbortHook hook);
_Noreturn void core_abort(int status);

_Noreturn void core_assert_fail(const char *expr, const char *file, int line, const char *func);
#define ASSERT(cond) \
    do { if (!(cond)) core_assert_fail(#cond, __FILE__, __LINE__, __func__); } while (0)

#endif
