/* tests/dist/mpi_fetch.c - under mpirun -np P on one node:
 *   1. dist_fetch_node_once: one rank downloads, the others wait, all verify; the server sees
 *      exactly one request for the file;
 *   2. every rank fetches into the same directory at once: the lock leaves one verified copy
 *      and the server again sees one request;
 *   3. a failing mirror makes every rank fail (none goes on with missing data), and no payload
 *      file is left.
 * Rank 0 runs the test HTTP server ($DFM_BIN/tools/httpd). Exit status = verdict. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "dist/data.h"
#include "dist/dist.h"
#include "io/fetch.h"
#include "tests/tools/testsrv.h"

static int g_fail;
#define CHECK(cond, ...)                                                                 \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "mpi_fetch: rank %d: %s:%d: ", dist_rank(), __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                                \
            fprintf(stderr, "\n");                                                       \
            g_fail = 1;                                                                  \
        }                                                                                \
    } while (0)

typedef struct {
    const char *dir;
    const FetchFile *file;
    const FetchOptions *opts;
} Job;

static int job_fetch(void *ctx)
{
    const Job *j = ctx;
    int fd = -1;
    TRY(fetch_lock(j->dir, &fd));
    int rc = fetch_file(j->dir, j->file, j->opts);
    fetch_unlock(fd);
    return rc;
}

static int job_verify(void *ctx)
{
    const Job *j = ctx;
    return fetch_verify(j->dir, j->file);
}

int main(int argc, char **argv)
{
    if (dist_init(&argc, &argv) != ERR_OK) {
        fprintf(stderr, "mpi_fetch: %s\n", err_message());
        return 1;
    }
    log_set_level(LOG_ERROR);
    int rank = dist_rank(), P = dist_size();
    char root[256] = {0};
    TestSrv srv;
    memset(&srv, 0, sizeof srv);
    enum { N = 200000 };
    unsigned char *payload = malloc(N);
    for (size_t i = 0; i < N; i++) payload[i] = (unsigned char)((i * 2654435761u) >> 13);
    char sha[65];
    fetch_sha256_buf(payload, N, sha);
    if (rank == 0) {
        snprintf(root, sizeof root, "/tmp/dfm_mpifetch_XXXXXX");
        if (!mkdtemp(root)) {
            perror("mkdtemp");
            dist_abort(1);
        }
        char p[400];
        snprintf(p, sizeof p, "%s/srv", root);
        mkdir(p, 0755);
        size_t ngz = 0;
        unsigned char *gz = test_gzip(payload, N, &ngz);
        snprintf(p, sizeof p, "%s/srv/blob.gz", root);
        if (!gz || test_write_file(p, gz, ngz) != 0) dist_abort(1);
        free(gz);
        snprintf(p, sizeof p, "%s/srv", root);
        if (testsrv_start(&srv, p) != 0) {
            fprintf(stderr, "mpi_fetch: cannot start the test HTTP server (DFM_BIN?)\n");
            dist_abort(1);
        }
    }
    int port = srv.port;
    dist_bcast(root, sizeof root, 0);
    dist_bcast(&port, sizeof port, 0);
    if (fetch_global_init() != ERR_OK) dist_abort(1);

    char url[128], slow_url[128], bad_url[128], dir1[400], dir2[400], dir3[400];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    snprintf(slow_url, sizeof slow_url, "http://127.0.0.1:%d/delay/", port);
    snprintf(bad_url, sizeof bad_url, "http://127.0.0.1:%d/404/", port);
    snprintf(dir1, sizeof dir1, "%s/cache1", root);
    snprintf(dir2, sizeof dir2, "%s/cache2", root);
    snprintf(dir3, sizeof dir3, "%s/cache3", root);
    FetchFile f = {"blob.gz", "blob", FETCH_GZIP, NULL, 0, N, sha, NULL, NULL};
    const char *m_ok[1] = {url}, *m_slow[1] = {slow_url}, *m_bad[1] = {bad_url};
    FetchOptions o;
    fetch_options_default(&o);
    o.backoff_s = 0.01;
    o.progress = 0;
    o.mirrors = m_ok;
    o.nmirrors = 1;

    /* 1. one download per node */
    Job j1 = {dir1, &f, &o};
    int rc = dist_fetch_node_once(job_fetch, job_verify, &j1);
    CHECK(rc == ERR_OK, "phase 1: %s", err_message());
    dist_barrier();
    if (rank == 0) {
        int n = testsrv_count(&srv, "GET /blob.gz");
        CHECK(n == 1, "phase 1: the server saw %d requests for the file, expected 1", n);
    }
    char p[500];
    snprintf(p, sizeof p, "%s/blob", dir1);
    size_t got = 0;
    unsigned char *b = test_read_file(p, &got);
    CHECK(b && got == N && memcmp(b, payload, N) == 0, "phase 1: wrong content");
    free(b);

    /* 2. all ranks at once into one directory; the server waits 0.5 s before answering, so
     * the others queue on the lock while the first one downloads. */
    o.mirrors = m_slow;
    dist_barrier();
    Job j2 = {dir2, &f, &o};
    rc = job_fetch(&j2);
    CHECK(rc == ERR_OK, "phase 2: %s", err_message());
    CHECK(fetch_verify(dir2, &f) == ERR_OK, "phase 2 verify: %s", err_message());
    dist_barrier();
    if (rank == 0) {
        int n = testsrv_count(&srv, "GET /delay/blob.gz");
        CHECK(n == 1, "phase 2: the server saw %d requests for the file, expected 1", n);
    }

    /* 3. failure on the downloading rank fails every rank, and leaves nothing trusted */
    o.mirrors = m_bad;
    o.retries = 1;
    Job j3 = {dir3, &f, &o};
    rc = dist_fetch_node_once(job_fetch, job_verify, &j3);
    CHECK(rc != ERR_OK, "phase 3: a rank succeeded although the mirror answers 404");
    snprintf(p, sizeof p, "%s/blob", dir3);
    CHECK(!test_exists(p), "phase 3: a payload file was left");

    dist_barrier();
    int64_t bad = g_fail;
    dist_allreduce_max_i64(&bad, 1);
    fetch_global_cleanup();
    free(payload);
    if (rank == 0) {
        testsrv_stop(&srv);
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        if (system(cmd) != 0) fprintf(stderr, "mpi_fetch: could not remove %s\n", root);
        printf("mpi_fetch: %d rank%s: %s\n", P, P == 1 ? "" : "s", bad ? "FAILED" : "ok");
    }
    dist_finalize();
    return bad ? 1 : 0;
}
