/* tests/core/test_mem.c - checked allocation and assertions. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"

Test(mem, aligned_and_zeroed)
{
    for (size_t n = 1; n < 1000; n += 37) {
        unsigned char *p = xalloc_aligned(n);
        cr_assert_eq((uintptr_t)p % 64, 0);
        for (size_t i = 0; i < n; i++) cr_assert_eq(p[i], 0);
        xfree_aligned(p);
    }
    /* 8 MiB and more: 2 MiB aligned (huge pages), zeroed to the end of the 2 MiB */
    const size_t big = ((size_t)9 << 20) + 5;
    unsigned char *q = xalloc_aligned(big);
    cr_assert_eq((uintptr_t)q % ((size_t)2 << 20), 0);
    for (size_t i = 0; i < ((size_t)10 << 20); i++) cr_assert_eq(q[i], 0);
    xfree_aligned(q);
    char *s = xstrdup("dfm");
    cr_assert_str_eq(s, "dfm");
    xfree(s);
    xfree(NULL);
}

Test(mem, assert_aborts, .signal = SIGABRT)
{
    int two = 2;
    ASSERT(two + two == 5);
}

Test(mem, aligned_overflow_aborts, .signal = SIGABRT)
{
    volatile size_t huge = SIZE_MAX - 100;
    void *p = xalloc_aligned(huge);
    (void)p;
}

Test(mem, calloc_overflow_aborts, .signal = SIGABRT)
{
    volatile size_t huge = SIZE_MAX / 2;
    void *p = xcalloc(huge, 4);
    (void)p;
}

Test(log, rank_prefix)
{
    log_init(0, 1);
    cr_assert_str_eq(log_rank_prefix(), "");
    log_init(3, 4);
    cr_assert_str_eq(log_rank_prefix(), "[rank 3] ");
    log_init(0, 1);
    double a = core_now(), b = core_now();
    cr_assert(b >= a);
}
