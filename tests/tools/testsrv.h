/* tests/tools/testsrv.h - start and stop bin/tools/httpd from a test, plus file helpers.
 *
 * Header-only (static inline) because it is shared by the Criterion suite and the stand-alone
 * MPI test programs, which link different objects. The server binary is found through
 * $DFM_BIN/tools/httpd (make sets DFM_BIN), falling back to ./bin/tools/httpd.
 */
#ifndef DFM_TESTS_TOOLS_TESTSRV_H
#define DFM_TESTS_TOOLS_TESTSRV_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

typedef struct {
    pid_t pid;
    int port;
    char log[512];
} TestSrv;

/* Start httpd serving root; the request log goes to <root>/../httpd.log. Returns 0 on success. */
static inline int testsrv_start(TestSrv *s, const char *root)
{
    const char *bin = getenv("DFM_BIN");
    char exe[1024];
    snprintf(exe, sizeof exe, "%s/tools/httpd", bin && *bin ? bin : "./bin");
    snprintf(s->log, sizeof s->log, "%s/../httpd.log", root);
    int pfd[2];
    if (pipe(pfd) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execl(exe, "httpd", "-d", root, "-l", s->log, "-t", "60", (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", exe, strerror(errno));
        _exit(127);
    }
    close(pfd[1]);
    char buf[32] = {0};
    size_t n = 0;
    while (n < sizeof buf - 1) {
        ssize_t r = read(pfd[0], buf + n, 1);
        if (r <= 0 || buf[n] == '\n') break;
        n++;
    }
    close(pfd[0]);
    s->pid = pid;
    s->port = atoi(buf);
    if (s->port <= 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return 0;
}

static inline void testsrv_stop(TestSrv *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

/* Count lines of the request log containing needle. */
static inline int testsrv_count(const TestSrv *s, const char *needle)
{
    FILE *f = fopen(s->log, "r");
    if (!f) return 0;
    char line[4096];
    int c = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle)) c++;
    fclose(f);
    return c;
}

/* A TCP port on 127.0.0.1 that nothing listens on (bound, then released). */
static inline int testsrv_dead_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    bind(s, (struct sockaddr *)&a, sizeof a);
    getsockname(s, (struct sockaddr *)&a, &al);
    close(s);
    return ntohs(a.sin_port);
}

static inline int test_write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

/* Read a whole file; *n receives its size. NULL when missing. Caller frees. */
static inline unsigned char *test_read_file(const char *path, size_t *n)
{
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long L = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(L > 0 ? (size_t)L : 1);
    *n = fread(b, 1, (size_t)L, f);
    fclose(f);
    return b;
}

/* gzip n bytes of p into a malloc'd buffer; *out_n receives the compressed size. */
static inline unsigned char *test_gzip(const void *p, size_t n, size_t *out_n)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return NULL;
    size_t cap = deflateBound(&z, (uLong)n) + 64;
    unsigned char *out = malloc(cap);
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    *out_n = cap - z.avail_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    return out;
}

static inline int test_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

#endif
