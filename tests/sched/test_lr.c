/* tests/sched/test_lr.c - warmup then constant or cosine learning rates. */
#include <criterion/criterion.h>
#include <math.h>

#include "core/err.h"
#include "sched/lr.h"

Test(lr, warmup_then_constant)
{
    LrSchedule s = {LR_CONSTANT, 2e-4, 0.0, 5000, 0};
    cr_assert_eq(lr_check(&s), ERR_OK);
    cr_assert(fabs(lr_at(&s, 0) - 2e-4 / 5000) < 1e-20);
    cr_assert(fabs(lr_at(&s, 2499) - 1e-4) < 1e-18);
    cr_assert_eq(lr_at(&s, 4999), 2e-4);
    cr_assert_eq(lr_at(&s, 5000), 2e-4);
    cr_assert_eq(lr_at(&s, 800000), 2e-4);
    s.warmup = 0;
    cr_assert_eq(lr_at(&s, 0), 2e-4);
}

Test(lr, warmup_then_cosine)
{
    LrSchedule s = {LR_COSINE, 1e-3, 1e-5, 100, 1100};
    cr_assert_eq(lr_check(&s), ERR_OK);
    cr_assert(fabs(lr_at(&s, 49) - 0.5e-3) < 1e-18);
    cr_assert_eq(lr_at(&s, 100), 1e-3);
    cr_assert(fabs(lr_at(&s, 600) - (1e-3 + 1e-5) / 2) < 1e-18, "half way is the mid value");
    cr_assert(fabs(lr_at(&s, 350) - (1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + cos(M_PI * 0.25)))) < 1e-18);
    cr_assert(fabs(lr_at(&s, 1100) - 1e-5) < 1e-18);
    cr_assert(fabs(lr_at(&s, 5000) - 1e-5) < 1e-18, "stays at the floor");
    for (uint64_t t = 101; t < 1100; t++) cr_assert(lr_at(&s, t) <= lr_at(&s, t - 1));
}

Test(lr, rejects_bad_settings)
{
    LrSchedule s = {LR_COSINE, 1e-3, 1e-5, 100, 100};
    cr_assert_eq(lr_check(&s), ERR_ARG);
    s.total = 200;
    s.min = 2e-3;
    cr_assert_eq(lr_check(&s), ERR_ARG);
    s.min = 0;
    s.base = 0;
    cr_assert_eq(lr_check(&s), ERR_ARG);
    s.base = NAN;
    cr_assert_eq(lr_check(&s), ERR_ARG);
}
