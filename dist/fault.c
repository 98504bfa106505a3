/* dist/fault.c - fault injection for the tests of the training loop (see dist/fault.h). */
#include "dist/fault.h"

#include <signal.h>
#include <stdlib.h>

/* The value of an environment variable as a step, -1 when unset or empty. */
static long env_step(const char *name)
{
    const char *e = getenv(name);
    return e && *e ? atol(e) : -1;
}

void fault_signal_step(long step1)
{
    static long when = -2;
    if (when == -2) when = env_step("DFM_FAULT_SIGNAL_STEP");
    if (when > 0 && step1 == when) raise(SIGUSR1);
}

int fault_nan_step(long step1)
{
    static long a = -2, b = -2;
    if (a == -2) {
        const char *e = getenv("DFM_FAULT_NAN_STEPS");
        a = b = -1;
        if (e && *e) {
            char *end;
            a = strtol(e, &end, 10);
            b = *end == '-' ? strtol(end + 1, NULL, 10) : a;
        }
    }
    return a >= 0 && step1 >= a && step1 <= b;
}

int fault_diverge_step(long step)
{
    static long when = -2;
    if (when == -2) when = env_step("DFM_FAULT_DIVERGE_STEP");
    return when >= 0 && step == when;
}
