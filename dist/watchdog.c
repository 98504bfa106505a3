/* dist/watchdog.c - the step-boundary watchdog (see dist/watchdog.h). */
#include "dist/watchdog.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dist/dist.h"

static pthread_t g_thread;
static int g_live;
static double g_limit;
static atomic_int g_stop, g_hold;
static _Atomic double g_last; /* monotonic seconds of the last kick or release */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *watch(void *arg)
{
    (void)arg;
    const struct timespec tick = {0, 250000000};
    while (!atomic_load(&g_stop)) {
        nanosleep(&tick, NULL);
        if (atomic_load(&g_hold) > 0) continue;
        double idle = now_s() - atomic_load(&g_last);
        if (idle <= g_limit || atomic_load(&g_stop)) continue;
        char msg[300];
        int n = snprintf(msg, sizeof msg,
                         "dfm: [rank %d] error: no step boundary for %.0f s (train.watchdog = "
                         "%g): another rank has died or hangs; ending this rank (exit status "
                         "%d)\n", dist_rank(), idle, g_limit, DFM_EXIT_HUNG);
        ssize_t w = write(STDERR_FILENO, msg, n > 0 && (size_t)n < sizeof msg ? (size_t)n : 0);
        (void)w;
        _exit(DFM_EXIT_HUNG);
    }
    return NULL;
}

void watchdog_start(double seconds)
{
    if (seconds <= 0 || g_live) return;
    g_limit = seconds;
    atomic_store(&g_stop, 0);
    atomic_store(&g_hold, 0);
    atomic_store(&g_last, now_s());
    if (pthread_create(&g_thread, NULL, watch, NULL) == 0) g_live = 1;
}

void watchdog_kick(void) { atomic_store(&g_last, now_s()); }

void watchdog_hold(void) { atomic_fetch_add(&g_hold, 1); }

void watchdog_release(void)
{
    atomic_store(&g_last, now_s());
    atomic_fetch_sub(&g_hold, 1);
}

void watchdog_stop(void)
{
    if (!g_live) return;
    atomic_store(&g_stop, 1);
    pthread_join(g_thread, NULL);
    g_live = 0;
}
