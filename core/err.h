/* core/err.h - recoverable errors: a closed list of codes, one message, a short trace.
 *
 * Three tiers (see CONTRIBUTING.md, Errors):
 *   - bugs and broken invariants: ASSERT (core/mem.h), aborts the whole job;
 *   - out of memory: xmalloc and friends (core/mem.h), abort with size and location;
 *   - environment and user errors (this file): a function detects the problem, records a
 *     message with ERR(code, fmt, ...) and returns the code; callers propagate it with TRY(call),
 *     which appends "file:line: call" to a short trace. Only cmd/ prints the message and maps the
 *     code to an exit status.
 *
 * The state is thread-local: a worker thread's error does not clobber another thread's.
 * Messages are complete sentences without a trailing newline; a hint (what to do next) is set
 * separately with err_hint() and printed on its own line.
 */
#ifndef DFM_CORE_ERR_H
#define DFM_CORE_ERR_H

#include <stddef.h>

typedef enum {
    ERR_OK = 0,
    ERR_NOMEM,     /* an allocation that the caller can survive failed */
    ERR_IO,        /* open/read/write/rename/fsync failed */
    ERR_PARSE,     /* malformed input text (YAML, numbers, URLs) */
    ERR_SPEC,      /* well-formed input with a wrong value (job-spec schema errors) */
    ERR_NET,       /* network transfer failed */
    ERR_ARG,       /* bad argument from the command line or an API caller */
    ERR_FORMAT,    /* a binary file has the wrong magic, size or layout */
    ERR_INTEGRITY, /* checksum or size mismatch */
    ERR_MPI,       /* an MPI call failed or ranks disagree */
    ERR_NUMERIC,   /* NaN/Inf, divergence */
    ERR_STATE,     /* operation not valid in the current state (resume mismatch, ...) */
    ERR_INTERRUPTED, /* stopped by a signal */
    ERR_COUNT_
} ErrCode;

#define ERR_TRACE_MAX 16
#define ERR_MSG_MAX 1024

/* Record an error (replacing any previous one) and return code. Use through ERR(). */
int err_set_at(ErrCode code, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define ERR(code, ...) err_set_at((code), __FILE__, __LINE__, __VA_ARGS__)

/* Prefix the current message with context: "context: old message". Returns the current code. */
int err_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Attach a hint (what the user should do next) to the current error. */
void err_hint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Append one frame to the trace; used by TRY. */
void err_trace_push(const char *file, int line, const char *expr);

#define TRY(call)                                                   \
    do {                                                            \
        int try_rc_ = (call);                                       \
        if (try_rc_ != ERR_OK) {                                    \
            err_trace_push(__FILE__, __LINE__, #call);              \
            return try_rc_;                                         \
        }                                                           \
    } while (0)

ErrCode err_code(void);
const char *err_message(void);   /* "" when none */
const char *err_hint_text(void); /* "" when none */
const char *err_origin(void);    /* "file:line" where ERR was called, "" when none */
size_t err_trace_len(void);
const char *err_trace_at(size_t i); /* 0 = innermost frame */
const char *err_code_name(int code);
void err_clear(void);

/* Exit status for a code: 2 for user input errors (ARG, PARSE, SPEC), 1 otherwise. */
int err_exit_status(int code);

#endif
