/* core/mem.c - checked allocation, assertions and the job-wide abort hook. */
#include "core/mem.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static CoreAbortHook g_abort_hook;

void core_set_abort_hook(CoreAbortHook hook) { g_abort_hook = hook; }

_Noreturn void core_abort(int status)
{
    fflush(stdout);
    fflush(stderr);
    if (g_abort_hook) g_abort_hook(status);
    abort();
}

static _Noreturn void oom(size_t n, const char *file, int line)
{
    fprintf(stderr, "dfm: %sout of memory: could not allocate %zu bytes at %s:%d\n",
            log_rank_prefix(), n, file, line);
    core_abort(1);
}

void *xmalloc_at(size_t n, const char *file, int line)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom(n, file, line);
    return p;
}

void *xcalloc_at(size_t count, size_t size, const char *file, int line)
{
    if (size && count > (size_t)-1 / size) oom((size_t)-1, file, line);
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) oom(count * size, file, line);
    return p;
}

void *xrealloc_at(void *p, size_t n, const char *file, int line)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n, file, line);
    return q;
}

char *xstrdup_at(const char *s, const char *file, int line)
{
    size_t n = strlen(s) + 1;
    char *d = xmalloc_at(n, file, line);
    memcpy(d, s, n);
    return d;
}

void *xalloc_aligned_at(size_t n, const char *file, int line)
{
    size_t rounded = (n + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) oom(n, file, line);
    memset(p, 0, rounded ? rounded : 64);
    return p;
}

void xfree(void *p) { free(p); }
void xfree_aligned(void *p) { free(p); }

_Noreturn void core_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    fprintf(stderr, "dfm: %sassertion failed: %s (%s:%d in %s)\n", log_rank_prefix(), expr, file,
            line, func);
    core_abort(134);
}
