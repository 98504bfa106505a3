/* sched/lr.h - learning-rate schedules: linear warmup, then constant or cosine decay.
 *
 * step is the 0-based index of the optimizer update being applied. During warmup
 * (step < warmup) lr = base * (step + 1) / warmup, so update warmup-1 already uses base (the
 * DDPM reference code uses step / warmup, i.e. lr = 0 on its first update; this schedule is that
 * one shifted by one update). After warmup:
 *   LR_CONSTANT: base;
 *   LR_COSINE:   min + (base - min) (1 + cos(pi p)) / 2, p = (step - warmup) / (total - warmup)
 *                clamped to [0, 1]; total = the number of updates in the run.
 * warmup = 0 disables warmup.
 */
#ifndef DFM_SCHED_LR_H
#define DFM_SCHED_LR_H

#include <stdint.h>

typedef enum { LR_CONSTANT = 0, LR_COSINE = 1 } LrKind;

typedef struct {
    LrKind kind;
    double base;     /* peak learning rate */
    double min;      /* cosine floor */
    uint64_t warmup; /* warmup updates */
    uint64_t total;  /* total updates (cosine) */
} LrSchedule;

/* Validate (ERR_ARG with a message on bad values). */
int lr_check(const LrSchedule *s);
double lr_at(const LrSchedule *s, uint64_t step);

#endif
