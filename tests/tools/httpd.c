/* tests/tools/httpd.c - a small HTTP/1.1 file server for fetcher tests, able to misbehave.
 *
 * usage: httpd -d DIR [-l LOGFILE] [-t SECONDS]
 *
 * Listens on 127.0.0.1 at an ephemeral port and prints the port number on stdout (one line),
 * then serves GET and HEAD for files under DIR, one connection at a time, closing each after the
 * reply. It honours "Range: bytes=N-" and "bytes=N-M" with 206 and Content-Range (416 when N is
 * past the end), unlike python's http.server.
 *
 * Faults are chosen by leading path segments before the file path, so a test selects them
 * through the mirror URL, e.g. http://127.0.0.1:PORT/cut=1000/500once/train.gz:
 *   404        answer 404 Not Found
 *   500        answer 500 Internal Server Error, always
 *   500once    answer 500 to the first request for this URL, serve normally afterwards
 *   cut=N      on the first request for this URL, announce the full length, send N body bytes,
 *              then close the connection
 *   html       answer 200 with an HTML error page and Content-Type application/octet-stream
 *   norange    ignore Range headers (answer 200 with the whole file)
 *   slow       send the body one byte every 50 ms
 *   trickle    send the body in 4096-byte pieces every 100 ms (40 KB/s: fast enough for a
 *              low-speed limit, too slow to finish before a short deadline)
 *   endless    answer 200 without Content-Length and send gzip-looking bytes until the client
 *              hangs up (or 60 s pass): a body with no end
 *   huge       like endless, but announce Content-Length: 10^12
 *   delay      wait 0.5 s before answering
 *   redir      answer 302 with Location: the same URL without this segment (http)
 *   redirfile  answer 302 with Location: file://DIR/<path>, which a careful client refuses
 * Every request is appended to LOGFILE as "GET /path range=N status=S" (range=- when none),
 * before the reply is sent, so a client that has its answer can rely on the log line.
 * The server exits on SIGTERM or SIGINT, and by itself after -t SECONDS (default 120), so a
 * crashed test never leaves it running.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop;
static void on_signal(int s)
{
    (void)s;
    g_stop = 1;
}
static void on_alarm(int s)
{
    (void)s;
    _exit(3);
}

#define MAX_SEEN 256
static char g_seen[MAX_SEEN][2100];
static int g_nseen;

/* Returns 1 the first time key is seen. */
static int first_time(const char *mode, const char *path)
{
    char key[2100];
    snprintf(key, sizeof key, "%s %s", mode, path);
    for (int i = 0; i < g_nseen; i++)
        if (!strcmp(g_seen[i], key)) return 0;
    if (g_nseen < MAX_SEEN) snprintf(g_seen[g_nseen++], sizeof g_seen[0], "%s", key);
    return 1;
}

static int send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static void reply_simple(int fd, int status, const char *reason, const char *ctype, const char *body,
                         int head)
{
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, reason, ctype, strlen(body));
    send_all(fd, hdr, (size_t)n);
    if (!head) send_all(fd, body, strlen(body));
}

static void log_req(const char *logfile, const char *method, const char *path, long long range,
                    int status)
{
    if (!logfile) return;
    FILE *f = fopen(logfile, "a");
    if (!f) return;
    if (range >= 0)
        fprintf(f, "%s %s range=%lld status=%d\n", method, path, range, status);
    else
        fprintf(f, "%s %s range=- status=%d\n", method, path, status);
    fclose(f);
}

static void handle(int fd, const char *root, const char *logfile)
{
    char req[8192];
    size_t n = 0;
    while (n < sizeof req - 1) {
        ssize_t r = recv(fd, req + n, sizeof req - 1 - n, 0);
        if (r <= 0) return;
        n += (size_t)r;
        req[n] = '\0';
        if (strstr(req, "\r\n\r\n")) break;
    }
    char method[16], target[2048];
    if (sscanf(req, "%15s %2047s", method, target) != 2) {
        reply_simple(fd, 400, "Bad Request", "text/plain", "bad request\n", 0);
        return;
    }
    int head = !strcmp(method, "HEAD");
    if (!head && strcmp(method, "GET")) {
        reply_simple(fd, 405, "Method Not Allowed", "text/plain", "GET only\n", 0);
        return;
    }
    long long range_from = -1, range_to = -1;
    for (char *line = strstr(req, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
        if (!strncasecmp(line + 2, "Range:", 6)) {
            const char *v = line + 8;
            while (*v == ' ') v++;
            long long a = -1, b = -1;
            if (sscanf(v, "bytes=%lld-%lld", &a, &b) >= 1) {
                range_from = a;
                range_to = b;
            }
        }
    }
    char *q = strchr(target, '?');
    if (q) *q = '\0';

    /* Leading fault segments. */
    int f404 = 0, f500 = 0, f500once = 0, fhtml = 0, fnorange = 0, fslow = 0, fdelay = 0;
    int fredir = 0, fredirfile = 0, ftrickle = 0, fendless = 0, fhuge = 0;
    long long cut = -1;
    char modes[512] = "";
    const char *p = target;
    while (*p == '/') {
        const char *seg = p + 1, *end = strchr(seg, '/');
        if (!end) break;
        size_t L = (size_t)(end - seg);
        char s[64];
        if (L >= sizeof s) break;
        memcpy(s, seg, L);
        s[L] = '\0';
        if (!strcmp(s, "404")) f404 = 1;
        else if (!strcmp(s, "500")) f500 = 1;
        else if (!strcmp(s, "500once")) f500once = 1;
        else if (!strcmp(s, "html")) fhtml = 1;
        else if (!strcmp(s, "norange")) fnorange = 1;
        else if (!strcmp(s, "slow")) fslow = 1;
        else if (!strcmp(s, "delay")) fdelay = 1;
        else if (!strcmp(s, "trickle")) ftrickle = 1;
        else if (!strcmp(s, "endless")) fendless = 1;
        else if (!strcmp(s, "huge")) fhuge = 1;
        else if (!strcmp(s, "redir")) fredir = 1;
        else if (!strcmp(s, "redirfile")) fredirfile = 1;
        else if (!strncmp(s, "cut=", 4)) cut = atoll(s + 4);
        else break;
        strncat(modes, s, sizeof modes - strlen(modes) - 2);
        strcat(modes, "/");
        p = end;
    }
    const char *rel = p;
    if (fdelay) {
        struct timespec ts = {0, 500 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (strstr(rel, "..")) {
        log_req(logfile, method, target, range_from, 403);
        reply_simple(fd, 403, "Forbidden", "text/plain", "forbidden\n", head);
        return;
    }
    if (f404) {
        log_req(logfile, method, target, range_from, 404);
        reply_simple(fd, 404, "Not Found", "text/html",
                     "<!DOCTYPE html><html><body>404 Not Found</body></html>\n", head);
        return;
    }
    if (f500 || (f500once && first_time("500once", target))) {
        log_req(logfile, method, target, range_from, 500);
        reply_simple(fd, 500, "Internal Server Error", "text/plain", "internal error\n", head);
        return;
    }
    if (fredir || fredirfile) {
        char loc[4200], hdr[4400];
        if (fredirfile) {
            snprintf(loc, sizeof loc, "file://%s%s", root, rel);
        } else {
            /* drop the first "redir/" segment from the target */
            char *r = strstr(target, "/redir/");
            snprintf(loc, sizeof loc, "%.*s%s", (int)(r - target), target, r + 6);
        }
        int hn = snprintf(hdr, sizeof hdr,
                          "HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n"
                          "Connection: close\r\n\r\n", loc);
        log_req(logfile, method, target, range_from, 302);
        send_all(fd, hdr, (size_t)hn);
        return;
    }
    if (fendless || fhuge) {
        char hdr[256];
        int hn = snprintf(hdr, sizeof hdr,
                          "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n%s"
                          "Connection: close\r\n\r\n",
                          fhuge ? "Content-Length: 1000000000000\r\n" : "");
        log_req(logfile, method, target, range_from, 200);
        if (send_all(fd, hdr, (size_t)hn) != 0 || head) return;
        unsigned char buf[65536];
        uint32_t x = 2463534242u;
        for (size_t i = 0; i < sizeof buf; i++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            buf[i] = (unsigned char)x;
        }
        buf[0] = 0x1f, buf[1] = 0x8b, buf[2] = 8, buf[3] = 0; /* a gzip header */
        time_t t0 = time(NULL);
        while (!g_stop && time(NULL) - t0 < 60) {
            if (send_all(fd, buf, sizeof buf) != 0) break;
            buf[0] = buf[5], buf[1] = buf[6], buf[2] = buf[7], buf[3] = buf[8];
        }
        return;
    }
    if (fhtml) {
        const char *page = "<!DOCTYPE html>\n<html><head><title>Quota exceeded</title></head>"
                           "<body>Too many users have viewed or downloaded this file.</body></html>\n";
        log_req(logfile, method, target, range_from, 200);
        reply_simple(fd, 200, "OK", "application/octet-stream", page, head);
        return;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s%s", root, rel);
    int ffd = open(path, O_RDONLY);
    struct stat st;
    if (ffd < 0 || fstat(ffd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (ffd >= 0) close(ffd);
        log_req(logfile, method, target, range_from, 404);
        reply_simple(fd, 404, "Not Found", "text/plain", "not found\n", head);
        return;
    }
    long long size = (long long)st.st_size, from = 0, to = size - 1;
    int status = 200;
    if (range_from >= 0 && !fnorange) {
        if (range_from >= size) {
            char hdr[256];
            int hn = snprintf(hdr, sizeof hdr,
                              "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */%lld\r\n"
                              "Content-Length: 0\r\nConnection: close\r\n\r\n", size);
            log_req(logfile, method, target, range_from, 416);
            send_all(fd, hdr, (size_t)hn);
            close(ffd);
            return;
        }
        from = range_from;
        if (range_to >= from && range_to < size) to = range_to;
        status = 206;
    }
    long long len = to - from + 1;
    char hdr[512];
    int hn;
    if (status == 206)
        hn = snprintf(hdr, sizeof hdr,
                      "HTTP/1.1 206 Partial Content\r\nContent-Type: application/octet-stream\r\n"
                      "Content-Length: %lld\r\nContent-Range: bytes %lld-%lld/%lld\r\n"
                      "Accept-Ranges: bytes\r\nConnection: close\r\n\r\n", len, from, to, size);
    else
        hn = snprintf(hdr, sizeof hdr,
                      "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                      "Content-Length: %lld\r\n%sConnection: close\r\n\r\n", len,
                      fnorange ? "" : "Accept-Ranges: bytes\r\n");
    log_req(logfile, method, target, status == 206 ? from : -1, status);
    if (send_all(fd, hdr, (size_t)hn) != 0 || head) {
        close(ffd);
        return;
    }
    long long limit = len;
    if (cut >= 0 && first_time("cut", target) && cut < len) limit = cut;
    if (lseek(ffd, from, SEEK_SET) < 0) {
        close(ffd);
        return;
    }
    char buf[65536];
    long long sent = 0;
    while (sent < limit && !g_stop) {
        size_t want = (size_t)(limit - sent < (long long)sizeof buf ? limit - sent : (long long)sizeof buf);
        if (fslow) want = 1;
        if (ftrickle && want > 4096) want = 4096;
        ssize_t r = read(ffd, buf, want);
        if (r <= 0) break;
        if (send_all(fd, buf, (size_t)r) != 0) break;
        sent += r;
        if (fslow || ftrickle) {
            struct timespec ts = {0, (fslow ? 50 : 100) * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    close(ffd);
}

int main(int argc, char **argv)
{
    const char *root = NULL, *logfile = NULL;
    int limit = 120;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-d") && i + 1 < argc) root = argv[++i];
        else if (!strcmp(argv[i], "-l") && i + 1 < argc) logfile = argv[++i];
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) limit = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: httpd -d DIR [-l LOGFILE] [-t SECONDS]\n");
            return 2;
        }
    }
    if (!root || limit <= 0) {
        fprintf(stderr, "usage: httpd -d DIR [-l LOGFILE] [-t SECONDS]\n");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: accept() returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    alarm((unsigned)limit);

    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        perror("httpd: socket");
        return 1;
    }
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t al = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 16) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &al) != 0) {
        perror("httpd: bind/listen");
        return 1;
    }
    printf("%d\n", ntohs(a.sin_port));
    fflush(stdout);
    while (!g_stop) {
        int c = accept(s, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR) continue;
            perror("httpd: accept");
            break;
        }
        struct timeval tv = {5, 0};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        handle(c, root, logfile);
        shutdown(c, SHUT_WR);
        close(c);
    }
    close(s);
    return 0;
}
