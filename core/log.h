/* core/log.h - rank-aware logging to stderr.
 *
 * log_init(rank, nranks) once after the ranks are known (dist_init does it). Info and debug lines
 * are printed by rank 0 only; warnings and errors by every rank, prefixed with "[rank R] " when
 * there is more than one. The level comes from log_set_level or the DFM_LOG environment variable
 * (error, warn, info, debug). Lines are written with one fprintf call so ranks do not interleave
 * within a line.
 */
#ifndef DFM_CORE_LOG_H
#define DFM_CORE_LOG_H

typedef enum { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG } LogLevel;

void log_init(int rank, int nranks);
void log_set_level(LogLevel level);
LogLevel log_level(void);
int log_rank(void);
const char *log_rank_prefix(void); /* "" on one rank, "[rank R] " otherwise */
void log_msg(LogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* Seconds from a monotonic clock. */
double core_now(void);

#endif
