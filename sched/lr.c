/* sched/lr.c - see lr.h. */
#include "sched/lr.h"

#include <math.h>

#include "core/err.h" /* ERR */

int lr_check(const LrSchedule *s)
{
    if (s->kind != LR_CONSTANT && s->kind != LR_COSINE)
        return ERR(ERR_ARG, "learning-rate schedule: unknown kind %d", (int)s->kind);
    if (!(s->base > 0.0) || !isfinite(s->base))
        return ERR(ERR_ARG, "learning rate must be positive and finite, got %g", s->base);
    if (s->kind == LR_COSINE) {
        if (!(s->min >= 0.0 && s->min <= s->base))
            return ERR(ERR_ARG, "cosine schedule: need 0 <= min_lr <= lr, got %g and %g", s->min,
                       s->base);
        if (s->total <= s->warmup)
            return ERR(ERR_ARG, "cosine schedule: total updates (%llu) must exceed warmup (%llu)",
                       (unsigned long long)s->total, (unsigned long long)s->warmup);
    }
    return ERR_OK;
}

double lr_at(const LrSchedule *s, uint64_t step)
{
    if (step < s->warmup) return s->base * (double)(step + 1) / (double)s->warmup;
    if (s->kind == LR_CONSTANT) return s->base;
    double p = (double)(step - s->warmup) / (double)(s->total - s->warmup);
    if (p > 1.0) p = 1.0;
    return s->min + (s->base - s->min) * 0.5 * (1.0 + cos(3.14159265358979323846 * p));
}

