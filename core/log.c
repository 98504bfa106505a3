/* core/log.c - rank-aware logging and a monotonic clock. */
#define _POSIX_C_SOURCE 200809L
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static int g_rank = 0, g_nranks = 1;
static int g_level = -1; /* -1: not yet read from the environment */
static char g_prefix[32];

void log_init(int rank, int nranks)
{
    g_rank = rank;
    g_nranks = nranks;
    if (nranks > 1)
        snprintf(g_prefix, sizeof g_prefix, "[rank %d] ", rank);
    else
        g_prefix[0] = '\0';
}

void log_set_level(LogLevel level) { g_level = (int)level; }

LogLevel log_level(void)
{
    if (g_level < 0) {
        const char *e = getenv("DFM_LOG");
        g_level = LOG_INFO;
        if (e) {
            if (!strcasecmp(e, "error")) g_level = LOG_ERROR;
            else if (!strcasecmp(e, "warn")) g_level = LOG_WARN;
            else if (!strcasecmp(e, "debug")) g_level = LOG_DEBUG;
        }
    }
    return (LogLevel)g_level;
}

int log_rank(void) { return g_rank; }
const char *log_rank_prefix(void) { return g_prefix; }

void log_msg(LogLevel level, const char *fmt, ...)
{
    static const char *const tag[] = {"error: ", "warning: ", "", "debug: "};
    char line[2048];
    va_list ap;
    if ((int)level > (int)log_level()) return;
    if (level >= LOG_INFO && g_rank != 0) return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "dfm: %s%s%s\n", g_prefix, tag[level], line);
}

double core_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
