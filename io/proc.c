/* io/proc.c - spawn a program with captured stdout/stderr and a timeout. */
#include "io/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"

extern char **environ;

typedef struct {
    char *buf;
    size_t len, cap;
} Sink;

static void sink_add(Sink *s, const char *p, size_t n)
{
    if (s->len + n > PROC_MAX_OUTPUT) n = PROC_MAX_OUTPUT - s->len;
    if (n == 0) return;
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap < s->len + n + 1) cap *= 2;
        s->buf = xrealloc(s->buf, cap);
        s->cap = cap;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    s->buf[s->len] = '\0';
}

static char *sink_take(Sink *s)
{
    if (!s->buf) return xstrdup("");
    return s->buf;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int proc_run(const char *const *argv, double timeout_s, ProcResult *r)
{
    memset(r, 0, sizeof *r);
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) != 0) return ERR(ERR_IO, "pipe: %s", strerror(errno));
    if (pipe2(pe, O_CLOEXEC) != 0) {
        int e = errno;
        close(po[0]);
        close(po[1]);
        return ERR(ERR_IO, "pipe: %s", strerror(e));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    pid_t pid;
    char *const *av; /* posix_spawnp's prototype predates const: it does not write argv */
    memcpy(&av, &argv, sizeof av);
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, av, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(po[1]);
    close(pe[1]);
    if (rc != 0) {
        close(po[0]);
        close(pe[0]);
        if (rc == ENOENT || rc == EACCES || rc == ENOTDIR) {
            r->status = PROC_NOT_FOUND;
            r->out = xstrdup("");
            r->err = xstrdup("");
            return ERR_OK;
        }
        return ERR(ERR_IO, "cannot run %s: %s", argv[0], strerror(rc));
    }
    log_debug("ran %s (pid %d)", argv[0], (int)pid);

    Sink so = {0}, se = {0};
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_fds = 2, timed_out = 0;
    double deadline = now_s() + timeout_s, kill_at = 0;
    while (open_fds > 0) {
        double left = (kill_at > 0 ? kill_at : deadline) - now_s();
        int ms = left <= 0 ? 0 : (int)(left * 1000.0) + 1;
        int n = poll(fds, 2, ms);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) {
            if (!timed_out) {
                timed_out = 1;
                kill(pid, SIGTERM);
                kill_at = now_s() + 2.0;
            } else {
                kill(pid, SIGKILL);
                break; /* a grandchild may keep the pipes open: stop reading */
            }
            continue;
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char chunk[4096];
            ssize_t got = read(fds[i].fd, chunk, sizeof chunk);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            } else {
                sink_add(i == 0 ? &so : &se, chunk, (size_t)got);
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0) close(fds[i].fd);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }
    r->out = sink_take(&so);
    r->err = sink_take(&se);
    r->n_out = so.len;
    r->n_err = se.len;
    while (r->n_err > 0 && (r->err[r->n_err - 1] == '\n' || r->err[r->n_err - 1] == '\r'))
        r->err[--r->n_err] = '\0';
    if (timed_out)
        r->status = PROC_TIMED_OUT;
    else if (WIFEXITED(ws))
        r->status = WEXITSTATUS(ws);
    else
        r->status = PROC_SIGNALED;
    return ERR_OK;
}

void proc_result_free(ProcResult *r)
{
    xfree(r->out);
    xfree(r->err);
    memset(r, 0, sizeof *r);
}

void proc_describe(const ProcResult *r, const char *name, double timeout_s, char *buf, size_t n)
{
    if (r->status == PROC_NOT_FOUND)
        snprintf(buf, n, "%s: not found in PATH", name);
    else if (r->status == PROC_TIMED_OUT)
        snprintf(buf, n, "%s timed out after %.0f s%s%s", name, timeout_s, r->n_err ? ": " : "",
                 r->err);
    else if (r->status == PROC_SIGNALED)
        snprintf(buf, n, "%s was killed by a signal%s%s", name, r->n_err ? ": " : "", r->err);
    else
        snprintf(buf, n, "%s exited %d%s%s", name, r->status, r->n_err ? ": " : "",
                 r->n_err ? r->err : " (nothing on stderr)");
}
