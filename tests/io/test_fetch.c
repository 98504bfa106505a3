/* tests/io/test_fetch.c - the fetcher against a real HTTP server on 127.0.0.1 that honours
 * Range requests and misbehaves on purpose (tests/tools/httpd.c). */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <signal.h>

#include "core/err.h"
#include "core/log.h"
#include "io/fetch.h"
#include "tests/tools/testsrv.h"

/* ---- fixture: a temp dir with srv/ (served) and out/ (target), a server, a payload -------- */

static char g_root[256], g_srv[300], g_out[300];
static TestSrv g_s;
static unsigned char *g_payload, *g_gz;
static size_t g_npayload = 300000, g_ngz;
static char g_sha[65];

static void setup(void)
{
    log_set_level(LOG_ERROR);
    snprintf(g_root, sizeof g_root, "/tmp/dfm_fetch_XXXXXX");
    cr_assert_not_null(mkdtemp(g_root));
    snprintf(g_srv, sizeof g_srv, "%s/srv", g_root);
    snprintf(g_out, sizeof g_out, "%s/out", g_root);
    mkdir(g_srv, 0755);
    /* Incompressible payload so that cut points fall well inside the .gz. */
    g_payload = malloc(g_npayload);
    uint32_t x = 12345;
    for (size_t i = 0; i < g_npayload; i++) {
        x = x * 1664525u + 1013904223u;
        g_payload[i] = (unsigned char)(x >> 24);
    }
    g_gz = test_gzip(g_payload, g_npayload, &g_ngz);
    cr_assert_not_null(g_gz);
    fetch_sha256_buf(g_payload, g_npayload, g_sha);
    char p[512];
    snprintf(p, sizeof p, "%s/data.gz", g_srv);
    cr_assert_eq(test_write_file(p, g_gz, g_ngz), 0);
    cr_assert_eq(fetch_global_init(), ERR_OK);
    cr_assert_eq(testsrv_start(&g_s, g_srv), 0, "cannot start the test HTTP server (DFM_BIN?)");
}

static void teardown(void)
{
    testsrv_stop(&g_s);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_root);
    free(g_payload);
    free(g_gz);
    fetch_global_cleanup();
}

static FetchFile file_spec(void)
{
    FetchFile f;
    memset(&f, 0, sizeof f);
    f.remote = "data.gz";
    f.local = "data";
    f.enc = FETCH_GZIP;
    f.payload_size = g_npayload;
    f.payload_sha256 = g_sha;
    return f;
}

static char g_urls[4][256];
static const char *g_mirrors[4];

static FetchOptions opts(size_t n, const char *m0, const char *m1)
{
    FetchOptions o;
    fetch_options_default(&o);
    o.backoff_s = 0.01;
    o.progress = 0;
    o.connect_timeout_s = 5;
    const char *ms[2] = {m0, m1};
    for (size_t i = 0; i < n; i++) {
        if (!strncmp(ms[i], "http", 4) || !strncmp(ms[i], "file", 4) || !strncmp(ms[i], "ftp", 3))
            snprintf(g_urls[i], sizeof g_urls[i], "%s", ms[i]);
        else
            snprintf(g_urls[i], sizeof g_urls[i], "http://127.0.0.1:%d/%s", g_s.port, ms[i]);
        g_mirrors[i] = g_urls[i];
    }
    o.mirrors = g_mirrors;
    o.nmirrors = n;
    return o;
}

static char *out_path(const char *name)
{
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", g_out, name);
    return p[k];
}

/* Nothing a later run could mistake for data: no payload, no temp file. */
static void assert_nothing_trusted(void)
{
    cr_assert(!test_exists(out_path("data")), "a payload was left after a failure");
    cr_assert(!test_exists(out_path("data.tmp")), "a temp file was left after a failure");
}

static void assert_good_payload(void)
{
    size_t n = 0;
    unsigned char *b = test_read_file(out_path("data"), &n);
    cr_assert_not_null(b);
    cr_assert_eq(n, g_npayload);
    cr_assert(memcmp(b, g_payload, n) == 0);
    free(b);
    cr_assert(!test_exists(out_path("data.gz.part")));
    cr_assert(!test_exists(out_path("data.tmp")));
    FetchFile f = file_spec();
    cr_assert_eq(fetch_verify(g_out, &f), ERR_OK);
}

static int fetch_once(const FetchOptions *o, const FetchFile *f)
{
    int fd = -1;
    cr_assert_eq(fetch_lock(g_out, &fd), ERR_OK);
    int rc = fetch_file(g_out, f, o);
    fetch_unlock(fd);
    return rc;
}

TestSuite(fetch, .init = setup, .fini = teardown, .timeout = 30);

Test(fetch, success_over_http)
{
    FetchOptions o = opts(1, "", NULL);
    FetchFile f = file_spec();
    cr_assert_eq(fetch_once(&o, &f), ERR_OK, "%s", err_message());
    assert_good_payload();
    cr_assert_eq(testsrv_count(&g_s, "GET /data.gz range=- status=200"), 1);
    /* A second fetch re-verifies and downloads nothing. */
    cr_assert_eq(fetch_once(&o, &f), ERR_OK, "%s", err_message());
    cr_assert_eq(testsrv_count(&g_s, "GET /data.gz"), 1);
}

Test(fetch, success_over_file_url)
{
    char base[400];
    snprintf(base, sizeof base, "file://%s/", g_srv);
    FetchOptions o = opts(1, base, NULL);
    FetchFile f = file_spec();
    cr_assert_eq(fetch_once(&o, &f), ERR_OK, "%s", err_message());
    assert_good_payload();
}

Test(fetch, resume_after_cut_connection)
{
    FetchOptions o = opts(1, "cut=100000/", NULL);
    FetchFile f = file_spec();
    cr_assert_eq(fetch_once(&o, &f), ERR_OK, "%s", err_message());
    assert_good_payload();
    /* First request cut after 100000 bytes, second one asked for the rest only. */
    cr_assert_eq(testsrv_count(&g_s, "GET /cut=100000/data.gz range=- status=200"), 1);
    cr_assert_eq(testsrv_count(&g_s, "GET /cut=100000/data.gz range=100000 status=206"), 1);
}

Test(fetch, resume_part_left_by_previous_run)
{
    FetchOptions o = opts(1, "", NULL);
    FetchFile f = file_spec();
    mkdir(g_out, 0755);
    cr_assert_eq(test_write_file(out_path("data.gz.part"), g_gz, 1000), 0);
    char src[300];
    snprintf(src, sizeof src, "%sdata.gz\n", g_urls[0]);
    cr_assert_eq(test_write_file(out_path("data.gz.part.src"), src, strlen(src)), 0);
    cr_assert_eq(fetch_once(&o, &f), ERR_OK, "%s", err_message());
    assert_good_payload();
    cr_assert_eq(testsrv_count(&g_s, "range=1000 status=206"), 1);
    cr_assert_eq(testsrv_count(&g_s, "range=- "), 0);
}

Test(fetch, part_from_another_url_is_not_resumed)
{
    FetchOptions o = opts(1, "", NULL);
    FetchFile f = file_spec();
    mkdir(g_out, 0755);
    cr_assert_eq(test_write_file(out_path("data.gz.part"), "garbage!", 8), 0);
    const char *src = "http://elsewhere.invalid/data.gz\n";
    cr_assert_eq(test_write_file(out_path("data.gz.part.src"), src, strlen(src)), 0);
    cr_assert_eq(fetch_once(&o, &f), ERR_OK, "%s", err_message());
    assert_good_payload();
    cr_assert_eq(testsrv_count(&g_s, "range=- status=200"), 1);
}

Test(fetch, server_ignoring_range_restarts_from_zero)
{
    FetchOptions o = opts(1, "norange/", NULL);
    FetchFile f = file_spec();
    mkdir(g_out, 0755);
    /* A part whose bytes are wrong: appending the full reply to it would corrupt the data. */
    cr_assert_eq(test_write_file(out_path("data.gz.part"), "XXXXXXXXXXXXXXXX", 16), 0);
    char src[300];
    snprintf(src, sizeof src, "%sdata.gz\n", g_urls[0]);
    cr_assert_eq(test_write_file(out_path("data.gz.part.src"), src, strlen(src)), 0);
    cr_assert_eq(fetch_once(&o, &f), ERR_OK, "%s", err_message());
    assert_good_payload();
}

Test(fetch, http_404_fails_with_status_and_url)
{
    FetchOptions o = opts(1, "404/", NULL);
    FetchFile f = file_spec();
    int rc = fetch_once(&o, &f);
    cr_assert_eq(rc, ERR_NET);
    cr_assert(strstr(err_message(), "HTTP 404") != NULL, "%s", err_message());
    cr_assert(strstr(err_message(), "/404/data.gz") != NULL, "%s", err_message());
    cr_assert(err_hint_text()[0] != '\0');
    /* 404 is permanent: no retries. */
    cr_assert_eq(testsrv_count(&g_s, "status=404"), 1);
    assert_nothing_trusted();
}

Test(fetch, http_500_then_next_mirror)
{
    FetchOptions o = opts(2, "500/", "");
    FetchFile f = file_spec();
    cr_assert_eq(fetch_once(&o, &f), ERR_OK, "%s", err_message());
    assert_good_payload();
    cr_assert_eq(testsrv_count(&g_s, "GET /500/data.gz range=- status=500"), o.retries);
    cr_assert_eq(testsrv_count(&g_s, "GET /data.gz range=- status=200"), 1);
}

Test(fetch, http_500_once_is_retried)
{
    FetchOptions o = opts(1, "500once/", NULL);
    FetchFile f = file_spec();
    cr_assert_eq(fetch_once(&o, &f), ERR_OK, "%s", err_message());
    assert_good_payload();
    cr_assert_eq(testsrv_count(&g_s, "status=500"), 1);
}

Test(fetch, http_500_everywhere_fails)
{
    FetchOptions o = opts(2, "500/", "500/");
    o.retries = 2;
    FetchFile f = file_spec();
    cr_assert_eq(fetch_once(&o, &f), ERR_NET);
    cr_assert(strstr(err_message(), "HTTP 500") != NULL, "%s", err_message());
    cr_assert(strstr(err_message(), "2 mirrors") != NULL, "%s", err_message());
    assert_nothing_trusted();
}

Test(fetch, connection_refused)
{
    char base[128];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/", testsrv_dead_port());
    FetchOptions o = opts(1, base, NULL);
    o.retries = 2;
    FetchFile f = file_spec();
    cr_assert_eq(fetch_once(&o, &f), ERR_NET);
    cr_assert(strstr(err_message(), base) != NULL, "%s", err_message());
    cr_assert(strstr(err_message(), "curl error 7") != NULL, "%s", err_message());
    assert_nothing_trusted();
    cr_assert(!test_exists(out_path("data.gz.part")) ||
              test_exists(out_path("data.gz.part.src")));
}

Test(fetch, sha256_mismatch_rejected)
{
    FetchOptions o = opts(1, "", NULL);
    FetchFile f = file_spec();
    f.payload_sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
    cr_assert_eq(fetch_once(&o, &f), ERR_INTEGRITY);
    cr_assert(strstr(err_message(), "SHA-256") != NULL, "%s", err_message());
    cr_assert(strstr(err_message(), g_sha) != NULL, "%s", err_message());
    assert_nothing_trusted();
    cr_assert(!test_exists(out_path("data.gz.part")), "a corrupt part must not be resumed");
}

Test(fetch, size_mismatch_rejected)
{
    FetchOptions o = opts(1, "", NULL);
    FetchFile f = file_spec();
    f.payload_size = g_npayload + 1;
    cr_assert_eq(fetch_once(&o, &f), ERR_INTEGRITY);
    assert_nothing_trusted();
}

Test(fetch, html_page_instead_of_data)
{
    FetchOptions o = opts(1, "html/", NULL);
    FetchFile f = file_spec();
    cr_assert_eq(fetch_once(&o, &f), ERR_FORMAT);
    cr_assert(strstr(err_message(), "HTML") != NULL, "%s", err_message());
    assert_nothing_trusted();
    cr_assert(!test_exists(out_path("data.gz.part")));
}

Test(fetch, html_page_raw_file_also_detected)
{
    FetchOptions o = opts(1, "html/", NULL);
    FetchFile f = file_spec();
    f.enc = FETCH_RAW;
    cr_assert_eq(fetch_once(&o, &f), ERR_FORMAT);
    cr_assert(strstr(err_message(), "HTML") != NULL, "%s", err_message());
    assert_nothing_trusted();
}

Test(fetch, not_gzip_rejected)
{
    char p[512];
    snprintf(p, sizeof p, "%s/plain.gz", g_srv);
    g_payload[0] = 0; /* make sure the first byte is not 0x1f */
    FetchOptions o = opts(1, "", NULL);
    FetchFile f = file_spec();
    f.remote = "plain.gz";
    cr_assert_eq(test_write_file(p, g_payload, 5000), 0);
    cr_assert_eq(fetch_once(&o, &f), ERR_FORMAT);
    cr_assert(strstr(err_message(), "not gzip") != NULL, "%s", err_message());
    assert_nothing_trusted();
}

Test(fetch, truncated_gzip_rejected)
{
    char p[512];
    snprintf(p, sizeof p, "%s/trunc.gz", g_srv);
    cr_assert_eq(test_write_file(p, g_gz, g_ngz / 2), 0);
    FetchOptions o = opts(1, "", NULL);
    FetchFile f = file_spec();
    f.remote = "trunc.gz";
    cr_assert_eq(fetch_once(&o, &f), ERR_FORMAT);
    cr_assert(strstr(err_message(), "truncated gzip") != NULL, "%s", err_message());
    assert_nothing_trusted();
    cr_assert(!test_exists(out_path("trunc.gz.part")));
}

Test(fetch, slow_server_times_out)
{
    FetchOptions o = opts(1, "slow/", NULL);
    o.retries = 1;
    o.low_speed_bytes = 100000;
    o.low_speed_time_s = 1;
    FetchFile f = file_spec();
    cr_assert_eq(fetch_once(&o, &f), ERR_NET);
    cr_assert(strstr(err_message(), "curl error 28") != NULL, "%s", err_message());
    assert_nothing_trusted();
}

Test(fetch, disallowed_protocol)
{
    FetchOptions o = opts(1, "ftp://127.0.0.1/", NULL);
    FetchFile f = file_spec();
    cr_assert_eq(fetch_once(&o, &f), ERR_ARG);
    cr_assert(strstr(err_message(), "only http") != NULL, "%s", err_message());
    assert_nothing_trusted();
}

Test(fetch, missing_file_url)
{
    FetchOptions o = opts(1, "file:///nonexistent-dir-dfm/", NULL);
    FetchFile f = file_spec();
    cr_assert_eq(fetch_once(&o, &f), ERR_NET);
    cr_assert(strstr(err_message(), "file:///nonexistent-dir-dfm/data.gz") != NULL, "%s",
              err_message());
    assert_nothing_trusted();
}

Test(fetch, corrupt_installed_file_is_replaced)
{
    FetchOptions o = opts(1, "", NULL);
    FetchFile f = file_spec();
    mkdir(g_out, 0755);
    cr_assert_eq(test_write_file(out_path("data"), g_payload, g_npayload - 7), 0);
    cr_assert_eq(fetch_verify(g_out, &f), ERR_INTEGRITY);
    cr_assert_eq(fetch_once(&o, &f), ERR_OK, "%s", err_message());
    assert_good_payload();
}

Test(fetch, verify_reports_missing_file)
{
    FetchFile f = file_spec();
    mkdir(g_out, 0755);
    cr_assert_eq(fetch_verify(g_out, &f), ERR_IO);
    cr_assert(strstr(err_hint_text(), "dfm fetch") != NULL);
}

Test(fetch, trust_on_first_use_records_and_enforces)
{
    FetchOptions o = opts(1, "", NULL);
    o.allow_unpinned = 1;
    FetchFile f = file_spec();
    f.payload_sha256 = NULL;
    cr_assert_eq(fetch_once(&o, &f), ERR_OK, "%s", err_message());
    size_t n = 0;
    char *rec = (char *)test_read_file(out_path("data.sha256"), &n);
    cr_assert_not_null(rec);
    cr_assert(n >= 64 && !strncmp(rec, g_sha, 64));
    /* the record says where the hash came from */
    rec = realloc(rec, n + 1);
    rec[n] = '\0';
    cr_assert(strstr(rec, g_urls[0]) != NULL && strstr(rec, "trusted on first use") != NULL,
              "%s", rec);
    free(rec);
    cr_assert_eq(fetch_verify(g_out, &f), ERR_OK);
    /* The mirror now serves other data: after the local copy is lost, the record rejects it. */
    unlink(out_path("data"));
    g_payload[10] ^= 1;
    size_t ngz = 0;
    unsigned char *gz = test_gzip(g_payload, g_npayload, &ngz);
    char p[512];
    snprintf(p, sizeof p, "%s/data.gz", g_srv);
    cr_assert_eq(test_write_file(p, gz, ngz), 0);
    free(gz);
    cr_assert_eq(fetch_once(&o, &f), ERR_INTEGRITY);
    cr_assert(strstr(err_message(), "recorded") != NULL, "%s", err_message());
    assert_nothing_trusted();
}

Test(fetch, tofu_file_without_record_is_not_trusted)
{
    FetchFile f = file_spec();
    f.payload_sha256 = NULL;
    mkdir(g_out, 0755);
    cr_assert_eq(test_write_file(out_path("data"), g_payload, g_npayload), 0);
    cr_assert_eq(fetch_verify(g_out, &f), ERR_INTEGRITY);
}

Test(fetch, pinned_file_copy_is_recognised)
{
    /* A pin of the .gz bytes is informational; the payload still decides. */
    char gzsha[65];
    fetch_sha256_buf(g_gz, g_ngz, gzsha);
    FetchPin pin = {g_ngz, gzsha, "the test server"};
    FetchOptions o = opts(1, "", NULL);
    FetchFile f = file_spec();
    f.file_pins = &pin;
    f.nfile_pins = 1;
    cr_assert_eq(fetch_once(&o, &f), ERR_OK, "%s", err_message());
    assert_good_payload();
}

static int reject_all(const char *path, void *ctx)
{
    (void)ctx;
    return ERR(ERR_FORMAT, "%s: bad magic", path);
}

Test(fetch, format_validator_rejects)
{
    FetchOptions o = opts(1, "", NULL);
    FetchFile f = file_spec();
    f.validate = reject_all;
    cr_assert_eq(fetch_once(&o, &f), ERR_FORMAT);
    cr_assert(strstr(err_message(), "bad magic") != NULL, "%s", err_message());
    assert_nothing_trusted();
}

Test(fetch, two_processes_at_once_leave_one_verified_copy)
{
    /* Two children race for the same target directory; the lock serialises them and the
     * second re-verifies the first one's file instead of downloading it again. */
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        cr_assert(kids[k] >= 0);
        if (kids[k] == 0) {
            FetchOptions oo = opts(1, "", NULL);
            FetchFile f = file_spec();
            int fd = -1;
            if (fetch_lock(g_out, &fd) != ERR_OK) _exit(2);
            int rc = fetch_file(g_out, &f, &oo);
            fetch_unlock(fd);
            _exit(rc == ERR_OK ? 0 : 1);
        }
    }
    for (int k = 0; k < 2; k++) {
        int st = 0;
        waitpid(kids[k], &st, 0);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d failed", k);
    }
    assert_good_payload();
    cr_assert_eq(testsrv_count(&g_s, "GET /data.gz"), 1, "the file was downloaded twice");
}

Test(fetch, pinned_remote_bytes_derive_the_payload_record)
{
    char gzsha[65];
    fetch_sha256_buf(g_gz, g_ngz, gzsha);
    FetchPin pin = {g_ngz, gzsha, "the test server"};
    FetchOptions o = opts(1, "", NULL);
    FetchFile f = file_spec();
    f.payload_sha256 = NULL;
    f.file_pins = &pin;
    f.nfile_pins = 1;
    cr_assert_eq(fetch_once(&o, &f), ERR_OK, "%s", err_message());
    size_t n = 0;
    char *rec = (char *)test_read_file(out_path("data.sha256"), &n);
    cr_assert_not_null(rec);
    cr_assert(n >= 64 && !strncmp(rec, g_sha, 64));
    rec = realloc(rec, n + 1);
    rec[n] = '\0';
    cr_assert(strstr(rec, "matched the pinned copy from the test server") != NULL, "%s", rec);
    free(rec);
    cr_assert_eq(fetch_verify(g_out, &f), ERR_OK, "%s", err_message());
}

Test(fetch, unpinned_bytes_are_refused_unless_allowed)
{
    char other[65];
    fetch_sha256_buf("another copy", 12, other);
    FetchPin pin = {g_ngz, other, "somewhere else"};
    FetchOptions o = opts(1, "", NULL);
    FetchFile f = file_spec();
    f.payload_sha256 = NULL;
    f.file_pins = &pin;
    f.nfile_pins = 1;
    cr_assert_eq(fetch_once(&o, &f), ERR_INTEGRITY, "unpinned bytes were accepted by default");
    cr_assert(strstr(err_message(), "match no pinned SHA-256") != NULL, "%s", err_message());
    cr_assert(strstr(err_hint_text(), "--allow-unpinned") != NULL, "%s", err_hint_text());
    assert_nothing_trusted();
    cr_assert(!test_exists(out_path("data.sha256")), "a hash was recorded for refused data");
    /* when the user allows it for this run, the same bytes are accepted and recorded */
    o.allow_unpinned = 1;
    cr_assert_eq(fetch_once(&o, &f), ERR_OK, "%s", err_message());
    cr_assert(test_exists(out_path("data.sha256")));
}

Test(fetch, cut_everywhere_keeps_a_resumable_part_for_the_next_run)
{
    /* Every mirror cuts the connection; the bytes received are kept under the .part name
     * only, and a later run against a good server resumes them. */
    FetchOptions o = opts(1, "cut=70000/", NULL);
    o.retries = 1;
    FetchFile f = file_spec();
    cr_assert_eq(fetch_once(&o, &f), ERR_NET);
    cr_assert(strstr(err_message(), "curl error 18") != NULL, "%s", err_message());
    assert_nothing_trusted();
    size_t n = 0;
    unsigned char *b = test_read_file(out_path("data.gz.part"), &n);
    cr_assert_not_null(b);
    cr_assert_eq(n, 70000);
    cr_assert(memcmp(b, g_gz, n) == 0);
    free(b);
    /* the same URL now serves the rest (the cut happens only on the first request) */
    cr_assert_eq(fetch_once(&o, &f), ERR_OK, "%s", err_message());
    assert_good_payload();
    cr_assert_eq(testsrv_count(&g_s, "range=70000 status=206"), 1);
}

Test(fetch, refused_leaves_no_empty_part)
{
    char base[128];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/", testsrv_dead_port());
    FetchOptions o = opts(1, base, NULL);
    o.retries = 1;
    FetchFile f = file_spec();
    cr_assert_eq(fetch_once(&o, &f), ERR_NET);
    cr_assert(!test_exists(out_path("data.gz.part")));
    cr_assert(!test_exists(out_path("data.gz.part.src")));
}

Test(fetch, part_longer_than_remote_file_recovers)
{
    /* A stale part as long as the file: the Range request gets 416, the part is dropped and
     * the next attempt downloads from byte 0. */
    FetchOptions o = opts(1, "", NULL);
    FetchFile f = file_spec();
    mkdir(g_out, 0755);
    cr_assert_eq(test_write_file(out_path("data.gz.part"), g_gz, g_ngz), 0);
    char src[300];
    snprintf(src, sizeof src, "%sdata.gz\n", g_urls[0]);
    cr_assert_eq(test_write_file(out_path("data.gz.part.src"), src, strlen(src)), 0);
    cr_assert_eq(fetch_once(&o, &f), ERR_OK, "%s", err_message());
    assert_good_payload();
    cr_assert_eq(testsrv_count(&g_s, "status=416"), 1);
    cr_assert_eq(testsrv_count(&g_s, "range=- status=200"), 1);
}

Test(fetch, http_redirect_is_followed)
{
    FetchOptions o = opts(1, "redir/", NULL);
    FetchFile f = file_spec();
    cr_assert_eq(fetch_once(&o, &f), ERR_OK, "%s", err_message());
    assert_good_payload();
    cr_assert_eq(testsrv_count(&g_s, "GET /redir/data.gz range=- status=302"), 1);
    cr_assert_eq(testsrv_count(&g_s, "GET /data.gz range=- status=200"), 1);
}

Test(fetch, redirect_to_file_url_is_refused)
{
    /* A server must not be able to make the fetcher read local files. */
    FetchOptions o = opts(1, "redirfile/", NULL);
    o.retries = 1;
    FetchFile f = file_spec();
    cr_assert_eq(fetch_once(&o, &f), ERR_NET);
    cr_assert(strstr(err_message(), "curl error 1)") != NULL, "%s", err_message());
    assert_nothing_trusted();
}

/* ---- a shared cache directory: links planted under every name the fetcher uses ----------- */

static const char VICTIM[] = "precious bytes that must not change\n";

/* A file outside the cache that planted links point at. */
static char *victim_path(void)
{
    static char p[400];
    snprintf(p, sizeof p, "%s/victim", g_root);
    return p;
}

static void plant_victim(void)
{
    mkdir(g_out, 0755);
    cr_assert_eq(test_write_file(victim_path(), VICTIM, sizeof VICTIM - 1), 0);
}

static void assert_victim_intact(void)
{
    size_t n = 0;
    unsigned char *b = test_read_file(victim_path(), &n);
    cr_assert_not_null(b, "the victim file disappeared");
    cr_assert(n == sizeof VICTIM - 1 && memcmp(b, VICTIM, n) == 0,
              "a planted link made the fetcher write into another file (%zu bytes now)", n);
    free(b);
}

static void plant_src(void)
{
    char src[300];
    snprintf(src, sizeof src, "%sdata.gz\n", g_urls[0]);
    cr_assert_eq(test_write_file(out_path("data.gz.part.src"), src, strlen(src)), 0);
}

Test(fetch, symlink_at_payload_tmp_is_not_followed)
{
    FetchOptions o = opts(1, "", NULL);
    FetchFile f = file_spec();
    plant_victim();
    cr_assert_eq(symlink(victim_path(), out_path("data.tmp")), 0);
    cr_assert_eq(fetch_once(&o, &f), ERR_OK, "%s", err_message());
    assert_victim_intact();
    assert_good_payload();
}

Test(fetch, symlink_at_raw_payload_tmp_is_not_followed)
{
    FetchOptions o = opts(1, "", NULL);
    FetchFile f = file_spec();
    f.enc = FETCH_RAW;
    f.payload_size = g_ngz;
    f.payload_sha256 = NULL;
    o.allow_unpinned = 1;
    plant_victim();
    cr_assert_eq(symlink(victim_path(), out_path("data.tmp")), 0);
    cr_assert_eq(fetch_once(&o, &f), ERR_OK, "%s", err_message());
    assert_victim_intact();
}

Test(fetch, symlink_at_part_is_not_resumed_into)
{
    FetchOptions o = opts(1, "", NULL);
    FetchFile f = file_spec();
    plant_victim();
    cr_assert_eq(symlink(victim_path(), out_path("data.gz.part")), 0);
    plant_src();
    cr_assert_eq(fetch_once(&o, &f), ERR_OK, "%s", err_message());
    assert_victim_intact();
    assert_good_payload();
    cr_assert_eq(testsrv_count(&g_s, "range=- status=200"), 1);
}

Test(fetch, hard_link_at_part_is_not_resumed_into)
{
    FetchOptions o = opts(1, "", NULL);
    FetchFile f = file_spec();
    plant_victim();
    cr_assert_eq(link(victim_path(), out_path("data.gz.part")), 0);
    plant_src();
    cr_assert_eq(fetch_once(&o, &f), ERR_OK, "%s", err_message());
    assert_victim_intact();
    assert_good_payload();
}

Test(fetch, part_owned_by_another_user_is_not_resumed)
{
    FetchOptions o = opts(1, "", NULL);
    FetchFile f = file_spec();
    mkdir(g_out, 0755);
    cr_assert_eq(test_write_file(out_path("data.gz.part"), g_gz, 1000), 0);
    plant_src();
    /* (as root, chown makes it someone else's; as another user, it is already ours only if
     * we created it, so the test needs root to plant it) */
    if (geteuid() != 0) cr_skip_test("needs root to give the part to another user");
    cr_assert_eq(chown(out_path("data.gz.part"), 4242, 4242), 0);
    cr_assert_eq(fetch_once(&o, &f), ERR_OK, "%s", err_message());
    assert_good_payload();
    cr_assert_eq(testsrv_count(&g_s, "range=1000"), 0, "a part of another user was resumed");
}

Test(fetch, symlink_at_part_src_is_not_followed)
{
    FetchOptions o = opts(1, "", NULL);
    FetchFile f = file_spec();
    plant_victim();
    cr_assert_eq(symlink(victim_path(), out_path("data.gz.part.src")), 0);
    cr_assert_eq(fetch_once(&o, &f), ERR_OK, "%s", err_message());
    assert_victim_intact();
    assert_good_payload();
}

Test(fetch, symlink_at_record_tmp_is_not_followed)
{
    FetchOptions o = opts(1, "", NULL);
    FetchFile f = file_spec();
    f.payload_sha256 = NULL; /* trust on first use: the hash is recorded */
    o.allow_unpinned = 1;
    plant_victim();
    cr_assert_eq(symlink(victim_path(), out_path("data.sha256.tmp")), 0);
    cr_assert_eq(fetch_once(&o, &f), ERR_OK, "%s", err_message());
    assert_victim_intact();
    size_t n = 0;
    char *rec = (char *)test_read_file(out_path("data.sha256"), &n);
    cr_assert(rec && n >= 64 && !strncmp(rec, g_sha, 64));
    free(rec);
}

Test(fetch, symlink_at_lock_is_refused)
{
    /* A dangling link: following it would create a file elsewhere. */
    char target[400];
    snprintf(target, sizeof target, "%s/created-through-link", g_root);
    mkdir(g_out, 0755);
    cr_assert_eq(symlink(target, out_path(".lock")), 0);
    int fd = -1;
    cr_assert_eq(fetch_lock(g_out, &fd), ERR_IO);
    cr_assert(strstr(err_message(), "symbolic link") != NULL, "%s", err_message());
    cr_assert(!test_exists(target), "the lock was created through a planted link");
}

Test(fetch, empty_directory_is_an_error)
{
    FetchOptions o = opts(1, "", NULL);
    FetchFile f = file_spec();
    int fd = -1;
    cr_assert_eq(fetch_lock("", &fd), ERR_ARG);
    cr_assert(strstr(err_message(), "empty path") != NULL, "%s", err_message());
    cr_assert_eq(fetch_verify("", &f), ERR_ARG);
    cr_assert_eq(fetch_file("", &f, &o), ERR_ARG);
    cr_assert_eq(testsrv_count(&g_s, "GET"), 0);
    cr_assert(!test_exists("/data"));
}

/* ---- bounded downloads: gzip bomb, endless body, trickling server ------------------------ */

/* gzip of n zero bytes, deflated in pieces so the bomb is never held whole in memory. */
static unsigned char *gzip_zeros(size_t n, size_t *out_n)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    cr_assert_eq(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY), Z_OK);
    static unsigned char zeros[1 << 16];
    size_t cap = n / 500 + 4096, len = 0;
    unsigned char *out = malloc(cap);
    for (size_t done = 0;;) {
        size_t take = n - done < sizeof zeros ? n - done : sizeof zeros;
        z.next_in = zeros;
        z.avail_in = (uInt)take;
        done += take;
        int flush = done == n ? Z_FINISH : Z_NO_FLUSH;
        do {
            z.next_out = out + len;
            z.avail_out = (uInt)(cap - len);
            int r = deflate(&z, flush);
            cr_assert(r == Z_OK || r == Z_STREAM_END || r == Z_BUF_ERROR);
            len = cap - z.avail_out;
        } while (z.avail_out == 0);
        if (flush == Z_FINISH) break;
    }
    deflateEnd(&z);
    *out_n = len;
    return out;
}

Test(fetch, gzip_bomb_stops_inflating_at_the_payload_size)
{
    /* 100 MB of zeros in ~100 KB of gzip; the payload is pinned at 300000 bytes. With the
     * file-size limit of this test process at 8 MB, inflating the bomb to disk would fail
     * with EFBIG: the fetcher must stop at payload size + 1 and never write the rest. */
    size_t nbomb = 0;
    unsigned char *bomb = gzip_zeros((size_t)100 << 20, &nbomb);
    cr_assert(nbomb < g_npayload, "the bomb should be smaller than the payload it claims");
    char p[512];
    snprintf(p, sizeof p, "%s/bomb.gz", g_srv);
    cr_assert_eq(test_write_file(p, bomb, nbomb), 0);
    free(bomb);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {8 << 20, 8 << 20};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    FetchOptions o = opts(1, "", NULL);
    FetchFile f = file_spec();
    f.remote = "bomb.gz";
    cr_assert_eq(fetch_once(&o, &f), ERR_FORMAT, "%s", err_message());
    cr_assert(strstr(err_message(), "gzip bomb") != NULL, "%s", err_message());
    assert_nothing_trusted();
}

Test(fetch, gzip_bomb_without_pinned_size_stops_at_the_limit)
{
    size_t nbomb = 0;
    unsigned char *bomb = gzip_zeros((size_t)100 << 20, &nbomb);
    char p[512];
    snprintf(p, sizeof p, "%s/bomb.gz", g_srv);
    cr_assert_eq(test_write_file(p, bomb, nbomb), 0);
    free(bomb);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {8 << 20, 8 << 20};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    FetchOptions o = opts(1, "", NULL);
    o.max_bytes = 1 << 20;
    FetchFile f = file_spec();
    f.remote = "bomb.gz";
    f.payload_size = 0;
    f.payload_sha256 = NULL;
    cr_assert_eq(fetch_once(&o, &f), ERR_FORMAT, "%s", err_message());
    cr_assert(strstr(err_message(), "gzip bomb") != NULL, "%s", err_message());
    assert_nothing_trusted();
    cr_assert(!test_exists(out_path("data.sha256")));
}

Test(fetch, endless_body_is_cut_at_the_size_limit)
{
    /* The server sends gzip-looking bytes without a Content-Length and never stops. */
    FetchOptions o = opts(1, "endless/", NULL);
    o.retries = 3;
    FetchFile f = file_spec();
    double t0 = core_now();
    cr_assert_eq(fetch_once(&o, &f), ERR_FORMAT, "%s", err_message());
    cr_assert(strstr(err_message(), "larger than") != NULL, "%s", err_message());
    cr_assert(core_now() - t0 < 10.0);
    assert_nothing_trusted();
    cr_assert(!test_exists(out_path("data.gz.part")), "an oversized part was kept");
    cr_assert_eq(testsrv_count(&g_s, "GET /endless/"), 1, "an oversized reply was retried");
}

Test(fetch, endless_body_of_unknown_size_is_cut_at_max_bytes)
{
    FetchOptions o = opts(1, "endless/", NULL);
    o.max_bytes = 1 << 20;
    FetchFile f = file_spec();
    f.payload_size = 0;
    f.payload_sha256 = NULL;
    cr_assert_eq(fetch_once(&o, &f), ERR_FORMAT, "%s", err_message());
    cr_assert(strstr(err_message(), "1048576") != NULL, "%s", err_message());
    assert_nothing_trusted();
}

Test(fetch, announced_oversize_is_refused_before_the_body)
{
    FetchOptions o = opts(1, "huge/", NULL);
    FetchFile f = file_spec();
    cr_assert_eq(fetch_once(&o, &f), ERR_FORMAT, "%s", err_message());
    cr_assert(strstr(err_message(), "more bytes than") != NULL, "%s", err_message());
    assert_nothing_trusted();
}

Test(fetch, trickling_server_meets_the_deadline)
{
    /* 40 KB/s passes the low-speed check but would need 7.5 s for the file; every attempt
     * and mirror share one deadline. */
    FetchOptions o = opts(2, "trickle/", "trickle/");
    o.retries = 3;
    o.deadline_s = 1.5;
    FetchFile f = file_spec();
    double t0 = core_now();
    cr_assert_eq(fetch_once(&o, &f), ERR_NET, "%s", err_message());
    double el = core_now() - t0;
    cr_assert(el < 4.0, "the deadline was not kept (%.1f s)", el);
    cr_assert(strstr(err_message(), "deadline") != NULL, "%s", err_message());
    cr_assert(strstr(err_hint_text(), "DFM_FETCH_DEADLINE_S") != NULL, "%s", err_hint_text());
    assert_nothing_trusted();
    /* what arrived is kept for the next run */
    size_t n = 0;
    unsigned char *b = test_read_file(out_path("data.gz.part"), &n);
    cr_assert(b && n > 0 && n < g_ngz && memcmp(b, g_gz, n) == 0);
    free(b);
}
