/* core/err.c - thread-local error state behind core/err.h. */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    ErrCode code;
    char msg[ERR_MSG_MAX];
    char hint[ERR_MSG_MAX];
    char origin[256];
    char trace[ERR_TRACE_MAX][256];
    size_t ntrace;
} ErrState;

static _Thread_local ErrState g_err;

static const char *const g_names[ERR_COUNT_] = {
    [ERR_OK] = "ok",           [ERR_NOMEM] = "out of memory", [ERR_IO] = "I/O error",
    [ERR_PARSE] = "parse error", [ERR_SPEC] = "job spec error", [ERR_NET] = "network error",
    [ERR_ARG] = "bad argument", [ERR_FORMAT] = "format error", [ERR_INTEGRITY] = "integrity error",
    [ERR_MPI] = "MPI error",   [ERR_NUMERIC] = "numeric error", [ERR_STATE] = "state error",
    [ERR_INTERRUPTED] = "interrupted",
};

int err_set_at(ErrCode code, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    g_err.code = code;
    g_err.ntrace = 0;
    g_err.hint[0] = '\0';
    snprintf(g_err.origin, sizeof g_err.origin, "%s:%d", file, line);
    va_start(ap, fmt);
    vsnprintf(g_err.msg, sizeof g_err.msg, fmt, ap);
    va_end(ap);
    return (int)code;
}

int err_context(const char *fmt, ...)
{
    char ctx[ERR_MSG_MAX], old[ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    memcpy(old, g_err.msg, sizeof old);
    size_t nc = strlen(ctx), no = strlen(old), cap = sizeof g_err.msg - 1;
    if (nc > cap) nc = cap;
    memcpy(g_err.msg, ctx, nc);
    size_t n = nc;
    if (n + 2 <= cap) { memcpy(g_err.msg + n, ": ", 2); n += 2; }
    if (no > cap - n) no = cap - n;
    memcpy(g_err.msg + n, old, no);
    g_err.msg[n + no] = '\0';
    return (int)g_err.code;
}

void err_hint(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err.hint, sizeof g_err.hint, fmt, ap);
    va_end(ap);
}

void err_trace_push(const char *file, int line, const char *expr)
{
    if (g_err.ntrace >= ERR_TRACE_MAX) return;
    snprintf(g_err.trace[g_err.ntrace++], sizeof g_err.trace[0], "%s:%d: %s", file, line, expr);
}

ErrCode err_code(void) { return g_err.code; }
const char *err_message(void) { return g_err.msg; }
const char *err_hint_text(void) { return g_err.hint; }
const char *err_origin(void) { return g_err.origin; }
size_t err_trace_len(void) { return g_err.ntrace; }
const char *err_trace_at(size_t i) { return i < g_err.ntrace ? g_err.trace[i] : ""; }

const char *err_code_name(int code)
{
    if (code < 0 || code >= ERR_COUNT_) return "unknown error";
    return g_names[code];
}

void err_clear(void)
{
    g_err.code = ERR_OK;
    g_err.msg[0] = g_err.hint[0] = g_err.origin[0] = '\0';
    g_err.ntrace = 0;
}

int err_exit_status(int code)
{
    switch (code) {
    case ERR_OK: return 0;
    case ERR_ARG: case ERR_PARSE: case ERR_SPEC: return 2;
    default: return 1;
    }
}
