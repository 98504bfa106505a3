/* tests/io/test_dataset.c - manifests, IDX and CIFAR-10 readers, toy distributions. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "io/dataset.h"
#include "io/fetch.h"
#include "tests/tools/testsrv.h"

static char g_root[256], g_srv[300], g_out[300], g_mirror[400];

static void setup(void)
{
    log_set_level(LOG_ERROR);
    snprintf(g_root, sizeof g_root, "/tmp/dfm_ds_XXXXXX");
    cr_assert_not_null(mkdtemp(g_root));
    snprintf(g_srv, sizeof g_srv, "%s/srv", g_root);
    snprintf(g_out, sizeof g_out, "%s/out", g_root);
    snprintf(g_mirror, sizeof g_mirror, "file://%s/", g_srv);
    mkdir(g_srv, 0755);
    mkdir(g_out, 0755);
    cr_assert_eq(fetch_global_init(), ERR_OK);
}

static void teardown(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_root);
    fetch_global_cleanup();
}

static FetchOptions quick_opts(void)
{
    FetchOptions o;
    fetch_options_default(&o);
    o.backoff_s = 0.0;
    o.retries = 1;
    o.progress = 0;
    return o;
}

static char *pj(const char *dir, const char *name)
{
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* An IDX file in memory: images (magic 2051, n x rows x cols) or labels (2049, n). */
static unsigned char *make_idx(uint32_t magic, uint32_t n, uint32_t rows, uint32_t cols,
                               size_t *len)
{
    size_t hdr = magic == 2051 ? 16 : 8;
    size_t body = magic == 2051 ? (size_t)n * rows * cols : n;
    unsigned char *b = malloc(hdr + body);
    put_be32(b, magic);
    put_be32(b + 4, n);
    if (magic == 2051) {
        put_be32(b + 8, rows);
        put_be32(b + 12, cols);
        for (size_t i = 0; i < body; i++) b[hdr + i] = (unsigned char)((i * 7 + i / 784) & 255);
    } else {
        for (size_t i = 0; i < body; i++) b[hdr + i] = (unsigned char)(i % 10);
    }
    *len = hdr + body;
    return b;
}

static void write_gz(const char *path, const void *p, size_t n)
{
    gzFile g = gzopen(path, "wb1");
    cr_assert_not_null(g);
    const unsigned char *c = p;
    while (n > 0) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        cr_assert_eq(gzwrite(g, c, chunk), (int)chunk);
        c += chunk;
        n -= chunk;
    }
    cr_assert_eq(gzclose(g), Z_OK);
}

TestSuite(dataset, .init = setup, .fini = teardown, .timeout = 60);

/* ---- IDX header validation ---------------------------------------------------------------- */

Test(dataset, idx_check_accepts_valid_and_rejects_every_bad_field)
{
    size_t n;
    unsigned char *b = make_idx(2051, 5, 28, 28, &n);
    char *p = pj(g_out, "img");
    cr_assert_eq(test_write_file(p, b, n), 0);
    cr_assert_eq(dataset_idx_check(p, 2051, 5, 28, 28), ERR_OK, "%s", err_message());
    /* wrong magic */
    put_be32(b, 2049);
    test_write_file(p, b, n);
    cr_assert_eq(dataset_idx_check(p, 2051, 5, 28, 28), ERR_FORMAT);
    cr_assert(strstr(err_message(), "magic 2049") != NULL, "%s", err_message());
    put_be32(b, 2051);
    /* wrong count */
    put_be32(b + 4, 6);
    test_write_file(p, b, n);
    cr_assert_eq(dataset_idx_check(p, 2051, 5, 28, 28), ERR_FORMAT);
    cr_assert(strstr(err_message(), "count 6") != NULL, "%s", err_message());
    /* count matches expected but the file is short: truncated */
    cr_assert_eq(dataset_idx_check(p, 2051, 6, 28, 28), ERR_FORMAT);
    cr_assert(strstr(err_message(), "truncated") != NULL, "%s", err_message());
    put_be32(b + 4, 5);
    /* wrong dims */
    put_be32(b + 8, 27);
    test_write_file(p, b, n);
    cr_assert_eq(dataset_idx_check(p, 2051, 5, 28, 28), ERR_FORMAT);
    cr_assert(strstr(err_message(), "27x28") != NULL, "%s", err_message());
    put_be32(b + 8, 28);
    /* truncated and trailing bytes */
    test_write_file(p, b, n - 1);
    cr_assert_eq(dataset_idx_check(p, 2051, 5, 28, 28), ERR_FORMAT);
    cr_assert(strstr(err_message(), "truncated") != NULL, "%s", err_message());
    unsigned char *b2 = malloc(n + 1);
    memcpy(b2, b, n);
    b2[n] = 0;
    test_write_file(p, b2, n + 1);
    cr_assert_eq(dataset_idx_check(p, 2051, 5, 28, 28), ERR_FORMAT);
    cr_assert(strstr(err_message(), "trailing") != NULL, "%s", err_message());
    /* header too short */
    test_write_file(p, b, 10);
    cr_assert_eq(dataset_idx_check(p, 2051, 5, 28, 28), ERR_FORMAT);
    /* still gzip */
    size_t ngz = 0;
    unsigned char *gz = test_gzip(b, n, &ngz);
    test_write_file(p, gz, ngz);
    cr_assert_eq(dataset_idx_check(p, 2051, 5, 28, 28), ERR_FORMAT);
    cr_assert(strstr(err_message(), "gzip") != NULL, "%s", err_message());
    free(gz);
    free(b2);
    free(b);
    /* labels */
    b = make_idx(2049, 5, 0, 0, &n);
    test_write_file(p, b, n);
    cr_assert_eq(dataset_idx_check(p, 2049, 5, 0, 0), ERR_OK, "%s", err_message());
    cr_assert_eq(dataset_idx_check(p, 2051, 5, 28, 28), ERR_FORMAT);
    free(b);
}

static int idx_img_validator(const char *path, void *ctx)
{
    (void)ctx;
    return dataset_idx_check(path, 2051, 5, 28, 28);
}

Test(dataset, fetch_rejects_wrong_idx_magic)
{
    size_t n;
    unsigned char *b = make_idx(2051, 5, 28, 28, &n);
    put_be32(b, 0x00000804); /* a 4-dimensional array, not an image file */
    write_gz(pj(g_srv, "img.gz"), b, n);
    char sha[65];
    fetch_sha256_buf(b, n, sha); /* even a matching hash does not excuse a bad header */
    FetchFile f = {"img.gz", "img", FETCH_GZIP, NULL, 0, n, sha, idx_img_validator, NULL};
    const char *mirrors[1] = {g_mirror};
    FetchOptions o = quick_opts();
    o.mirrors = mirrors;
    o.nmirrors = 1;
    cr_assert_eq(fetch_file(g_out, &f, &o), ERR_FORMAT);
    cr_assert(strstr(err_message(), "IDX magic 2052") != NULL, "%s", err_message());
    cr_assert(!test_exists(pj(g_out, "img")));
    cr_assert(!test_exists(pj(g_out, "img.tmp")));
    free(b);
}

/* ---- Fashion-MNIST from the Debian package -------------------------------------------------- */

Test(dataset, fashion_mnist_from_debian_package)
{
    if (!test_exists("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz")) {
        cr_skip_test("package dataset-fashion-mnist is not installed");
    }
    FetchOptions o = quick_opts();
    cr_assert_eq(dataset_fetch("fashion-mnist", g_out, NULL, 0, 1, &o), ERR_OK, "%s", err_message());
    cr_assert_eq(dataset_verify("fashion-mnist", g_out), ERR_OK, "%s", err_message());
    Dataset ds;
    cr_assert_eq(dataset_open(&ds, "fashion-mnist", g_out, DATASET_TRAIN), ERR_OK, "%s",
                 err_message());
    cr_assert_eq(ds.n, 60000);
    cr_assert_eq(ds.c, 1);
    cr_assert_eq(ds.h, 28);
    cr_assert_eq(ds.w, 28);
    cr_assert_eq(ds.num_classes, 10);
    int counts[10] = {0};
    for (size_t i = 0; i < ds.n; i++) counts[ds.labels[i]]++;
    for (int c = 0; c < 10; c++) cr_assert_eq(counts[c], 6000, "class %d: %d", c, counts[c]);
    double mean = 0;
    for (size_t i = 0; i < ds.n * 784; i++) mean += ds.u8[i];
    mean /= (double)(ds.n * 784);
    /* Fashion-MNIST's published pixel mean is 0.2860 of 255. */
    cr_assert(fabs(mean / 255.0 - 0.2860) < 0.001, "mean %f", mean / 255.0);
    dataset_free(&ds);
    cr_assert_eq(dataset_open(&ds, "fashion-mnist", g_out, DATASET_TEST), ERR_OK, "%s",
                 err_message());
    cr_assert_eq(ds.n, 10000);
    dataset_free(&ds);
    cr_assert_null(ds.u8);
    /* A flipped byte in a stored file is caught at open. */
    char *p = pj(g_out, "fashion-mnist/t10k-labels-idx1-ubyte");
    size_t n;
    unsigned char *b = test_read_file(p, &n);
    b[100] ^= 1;
    test_write_file(p, b, n);
    free(b);
    cr_assert_eq(dataset_open(&ds, "fashion-mnist", g_out, DATASET_TEST), ERR_INTEGRITY);
    cr_assert(strstr(err_message(), "SHA-256") != NULL, "%s", err_message());
    cr_assert(strstr(err_hint_text(), "dfm fetch") != NULL, "%s", err_hint_text());
    /* and fetch repairs it */
    cr_assert_eq(dataset_fetch("fashion-mnist", g_out, NULL, 0, 1, &o), ERR_OK, "%s", err_message());
    cr_assert_eq(dataset_open(&ds, "fashion-mnist", g_out, DATASET_TEST), ERR_OK, "%s",
                 err_message());
    dataset_free(&ds);
}

Test(dataset, open_before_fetch_says_what_to_do)
{
    Dataset ds;
    cr_assert_eq(dataset_open(&ds, "fashion-mnist", g_out, DATASET_TRAIN), ERR_IO);
    cr_assert(strstr(err_message(), "missing") != NULL, "%s", err_message());
    cr_assert(strstr(err_hint_text(), "dfm fetch") != NULL, "%s", err_hint_text());
    cr_assert_eq(dataset_open(&ds, "imagenet", g_out, DATASET_TRAIN), ERR_ARG);
    cr_assert(strstr(err_message(), "fashion-mnist") != NULL, "%s", err_message());
    cr_assert_eq(dataset_fetch("moons", g_out, NULL, 0, 1, NULL), ERR_ARG);
}

/* ---- MNIST: synthetic files of the real sizes, trust on first use ------------------------- */

Test(dataset, mnist_trust_on_first_use)
{
    static const struct { const char *name; uint32_t magic, n; } files[4] = {
        {"train-images-idx3-ubyte", 2051, 60000}, {"train-labels-idx1-ubyte", 2049, 60000},
        {"t10k-images-idx3-ubyte", 2051, 10000},  {"t10k-labels-idx1-ubyte", 2049, 10000},
    };
    for (int i = 0; i < 4; i++) {
        size_t n;
        unsigned char *b = make_idx(files[i].magic, files[i].n, 28, 28, &n);
        char gzname[128];
        snprintf(gzname, sizeof gzname, "%s.gz", files[i].name);
        write_gz(pj(g_srv, gzname), b, n);
        free(b);
    }
    const char *mirrors[1] = {g_mirror};
    FetchOptions o = quick_opts();
    /* These bytes match none of the pinned upstream .gz hashes: refused unless the user allows
     * unpinned bytes for this run, and the error names how. */
    cr_assert_eq(dataset_fetch("mnist", g_out, mirrors, 1, 0, &o), ERR_INTEGRITY);
    cr_assert(strstr(err_message(), "match no pinned SHA-256") != NULL, "%s", err_message());
    cr_assert(strstr(err_hint_text(), "--allow-unpinned") != NULL, "%s", err_hint_text());
    cr_assert(strstr(err_hint_text(), "data.allow_unpinned") != NULL, "%s", err_hint_text());
    cr_assert(!test_exists(pj(g_out, "mnist/train-images-idx3-ubyte")));
    cr_assert(!test_exists(pj(g_out, "mnist/train-images-idx3-ubyte.sha256")));
    o.allow_unpinned = 1;
    cr_assert_eq(dataset_fetch("mnist", g_out, mirrors, 1, 0, &o), ERR_OK, "%s", err_message());
    cr_assert(test_exists(pj(g_out, "mnist/train-images-idx3-ubyte.sha256")));
    Dataset ds;
    cr_assert_eq(dataset_open(&ds, "mnist", g_out, DATASET_TEST), ERR_OK, "%s", err_message());
    cr_assert_eq(ds.n, 10000);
    cr_assert_eq(ds.labels[13], 3);
    cr_assert_eq(ds.u8[5 * 784 + 3], (uint8_t)(((5 * 784 + 3) * 7 + 5) & 255));
    dataset_free(&ds);
    /* A stored file altered afterwards no longer matches the recorded hash. */
    char *p = pj(g_out, "mnist/t10k-labels-idx1-ubyte");
    size_t n;
    unsigned char *b = test_read_file(p, &n);
    b[8] = (unsigned char)(b[8] == 1 ? 2 : 1);
    test_write_file(p, b, n);
    free(b);
    cr_assert_eq(dataset_verify("mnist", g_out), ERR_INTEGRITY);
    cr_assert(strstr(err_message(), "recorded") != NULL, "%s", err_message());
}

/* ---- CIFAR-10: a synthetic tar.gz in the real layout -------------------------------------- */

static void tar_header(unsigned char h[512], const char *name, uint64_t size, char type)
{
    memset(h, 0, 512);
    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "%07o", 0644);
    snprintf((char *)h + 108, 8, "%07o", 0);
    snprintf((char *)h + 116, 8, "%07o", 0);
    snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)(size & 077777777777ULL));
    snprintf((char *)h + 136, 12, "%011o", 0);
    h[156] = (unsigned char)type;
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
}

/* Write a CIFAR-like tar (records of `recsize` bytes, `nrec` per member) to path. When
 * skip_member >= 0 that member is left out. */
static void write_cifar_tar(const char *path, int gz, uint32_t nrec, uint32_t recsize,
                            int skip_member, unsigned char bad_label)
{
    static const char *names[6] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                   "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};
    gzFile g = gz ? gzopen(path, "wb1") : NULL;
    FILE *f = gz ? NULL : fopen(path, "wb");
    unsigned char h[512];
#define PUT(p, n) (gz ? (void)gzwrite(g, p, (unsigned)(n)) : (void)fwrite(p, 1, n, f))
    tar_header(h, "cifar-10-batches-bin/", 0, '5');
    PUT(h, 512);
    tar_header(h, "cifar-10-batches-bin/batches.meta.txt", 11, '0');
    PUT(h, 512);
    unsigned char pad[512] = "airplane\n\n\n";
    PUT(pad, 512);
    memset(pad, 0, sizeof pad);
    unsigned char *rec = malloc(recsize);
    for (int m = 0; m < 6; m++) {
        if (m == skip_member) continue;
        char nm[128];
        snprintf(nm, sizeof nm, "cifar-10-batches-bin/%s", names[m]);
        uint64_t size = (uint64_t)nrec * recsize;
        tar_header(h, nm, size, '0');
        PUT(h, 512);
        for (uint32_t r = 0; r < nrec; r++) {
            rec[0] = (unsigned char)((r + (uint32_t)m) % 10);
            if (bad_label && m == 2 && r == 77) rec[0] = bad_label;
            for (uint32_t i = 1; i < recsize; i++) rec[i] = (unsigned char)((r * 31 + i + (uint32_t)m) & 255);
            PUT(rec, recsize);
        }
        if (size % 512) PUT(pad, 512 - size % 512);
    }
    PUT(pad, 512);
    PUT(pad, 512);
#undef PUT
    free(rec);
    if (gz) gzclose(g);
    else fclose(f);
}

Test(dataset, cifar10_synthetic_archive, .timeout = 120)
{
    write_cifar_tar(pj(g_srv, "cifar-10-binary.tar.gz"), 1, 10000, 3073, -1, 0);
    const char *mirrors[1] = {g_mirror};
    FetchOptions o = quick_opts();
    o.allow_unpinned = 1; /* a synthetic archive cannot match the pinned upstream one */
    cr_assert_eq(dataset_fetch(DATASET_CIFAR10, g_out, mirrors, 1, 0, &o), ERR_OK, "%s", err_message());
    Dataset ds;
    cr_assert_eq(dataset_open(&ds, DATASET_CIFAR10, g_out, DATASET_TRAIN), ERR_OK, "%s", err_message());
    cr_assert_eq(ds.n, 50000);
    cr_assert_eq(ds.c, 3);
    cr_assert_eq(ds.h, 32);
    cr_assert_eq(ds.w, 32);
    /* example 10000 + 5 = member 1 (data_batch_2), record 5 */
    size_t i = 10005;
    cr_assert_eq(ds.labels[i], (5 + 1) % 10);
    cr_assert_eq(ds.u8[i * 3072 + 0], (uint8_t)((5 * 31 + 1 + 1) & 255));
    cr_assert_eq(ds.u8[i * 3072 + 3071], (uint8_t)((5 * 31 + 3072 + 1) & 255));
    dataset_free(&ds);
    cr_assert_eq(dataset_open(&ds, DATASET_CIFAR10, g_out, DATASET_TEST), ERR_OK, "%s", err_message());
    cr_assert_eq(ds.n, 10000);
    cr_assert_eq(ds.labels[3], (3 + 5) % 10);
    dataset_free(&ds);
}

Test(dataset, cifar10_tar_check_rejects_bad_archives)
{
    char *p = pj(g_out, "c.tar");
    /* wrong record count per member */
    write_cifar_tar(p, 0, 10, 3073, -1, 0);
    cr_assert_eq(dataset_cifar_tar_check(p), ERR_FORMAT);
    cr_assert(strstr(err_message(), "expected 30730000") != NULL, "%s", err_message());
    /* missing member */
    write_cifar_tar(p, 0, 10000, 3073, 5, 0);
    cr_assert_eq(dataset_cifar_tar_check(p), ERR_FORMAT);
    cr_assert(strstr(err_message(), "test_batch.bin is missing") != NULL, "%s", err_message());
    /* label out of range */
    write_cifar_tar(p, 0, 10000, 3073, -1, 10);
    cr_assert_eq(dataset_cifar_tar_check(p), ERR_FORMAT);
    cr_assert(strstr(err_message(), "label 10") != NULL, "%s", err_message());
    /* truncated archive */
    write_cifar_tar(p, 0, 10000, 3073, -1, 0);
    cr_assert_eq(dataset_cifar_tar_check(p), ERR_OK, "%s", err_message());
    cr_assert_eq(truncate(p, 3 * 30730000), 0);
    cr_assert_eq(dataset_cifar_tar_check(p), ERR_FORMAT);
    cr_assert(strstr(err_message(), "truncated") != NULL || strstr(err_message(), "missing"),
              "%s", err_message());
    /* not a tar at all */
    test_write_file(p, "<!DOCTYPE html><html>nope</html>" "                                   "
                       "                                                                    ",
                    100);
    cr_assert_eq(truncate(p, 1024), 0);
    cr_assert_eq(dataset_cifar_tar_check(p), ERR_FORMAT);
}

/* ---- toys ---------------------------------------------------------------------------------- */

Test(dataset, toy_is_pure_function_of_seed_and_index)
{
    Dataset a, b, c;
    cr_assert_eq(dataset_toy(&a, "moons", 1000, 7), ERR_OK);
    cr_assert_eq(dataset_toy(&b, "moons", 500, 7), ERR_OK);
    cr_assert_eq(dataset_toy(&c, "moons", 500, 8), ERR_OK);
    cr_assert(memcmp(a.f32, b.f32, 500 * 2 * sizeof(float)) == 0);
    cr_assert(memcmp(a.f32, c.f32, 500 * 2 * sizeof(float)) != 0);
    dataset_free(&a);
    dataset_free(&b);
    dataset_free(&c);
    cr_assert_eq(dataset_toy(&a, "spirals", 10, 1), ERR_ARG);
    cr_assert_eq(dataset_toy(&a, "mnist", 10, 1), ERR_ARG);
    cr_assert_eq(dataset_toy(&a, "moons", 0, 1), ERR_ARG);
}

#define NTOY 20000

Test(dataset, toy_moons_statistics)
{
    Dataset d;
    cr_assert_eq(dataset_toy(&d, "moons", NTOY, 1), ERR_OK);
    cr_assert_eq(d.num_classes, 2);
    double mx = 0, my = 0, n1 = 0;
    for (size_t i = 0; i < d.n; i++) {
        double x = d.f32[2 * i], y = d.f32[2 * i + 1];
        mx += x;
        my += y;
        n1 += d.labels[i];
        /* undo the centring and scaling, then the distance to the label's arc is noise only */
        double u = x / 2 + 0.5, v = y / 2 + 0.25;
        double cx = d.labels[i] ? 1.0 : 0.0, cy = d.labels[i] ? 0.5 : 0.0;
        double r = sqrt((u - cx) * (u - cx) + (v - cy) * (v - cy));
        cr_assert(fabs(r - 1.0) < 0.6, "point %zu off its moon (r=%f)", i, r);
        if (d.labels[i] == 0) cr_assert(v > -0.5);
        else cr_assert(v < 1.0);
    }
    cr_assert(fabs(mx / NTOY) < 0.03 && fabs(my / NTOY) < 0.03, "mean %f %f", mx / NTOY, my / NTOY);
    cr_assert(fabs(n1 / NTOY - 0.5) < 0.02);
    dataset_free(&d);
}

Test(dataset, toy_8gaussians_statistics)
{
    Dataset d;
    cr_assert_eq(dataset_toy(&d, "8gaussians", NTOY, 2), ERR_OK);
    double sx[8] = {0}, sy[8] = {0}, ss[8] = {0};
    int cnt[8] = {0};
    for (size_t i = 0; i < d.n; i++) {
        int k = d.labels[i];
        cr_assert(k >= 0 && k < 8);
        double cx = 2 * cos(k * M_PI / 4), cy = 2 * sin(k * M_PI / 4);
        double dx = (double)d.f32[2 * i] - cx, dy = (double)d.f32[2 * i + 1] - cy;
        sx[k] += dx;
        sy[k] += dy;
        ss[k] += dx * dx + dy * dy;
        cnt[k]++;
    }
    for (int k = 0; k < 8; k++) {
        cr_assert(fabs(cnt[k] / (double)NTOY - 0.125) < 0.015);
        cr_assert(fabs(sx[k] / cnt[k]) < 0.01 && fabs(sy[k] / cnt[k]) < 0.01);
        double sd = sqrt(ss[k] / cnt[k] / 2);
        cr_assert(fabs(sd - 0.1) < 0.005, "std %f", sd);
    }
    dataset_free(&d);
}

Test(dataset, toy_checkerboard_statistics)
{
    Dataset d;
    cr_assert_eq(dataset_toy(&d, "checkerboard", NTOY, 3), ERR_OK);
    cr_assert_null(d.labels);
    int cell[4][4] = {{0}};
    for (size_t i = 0; i < d.n; i++) {
        double x = d.f32[2 * i], y = d.f32[2 * i + 1];
        cr_assert(x >= -2 && x < 2 && y >= -2 && y < 2);
        int fx = (int)floor(x), fy = (int)floor(y);
        cr_assert(((fx + fy) % 2 + 2) % 2 == 0, "point in a white cell (%f, %f)", x, y);
        cell[fy + 2][fx + 2]++;
    }
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            if ((r + c) % 2 == 0) cr_assert(fabs(cell[r][c] / (double)NTOY - 0.125) < 0.015);
    dataset_free(&d);
}

Test(dataset, toy_swissroll_statistics)
{
    Dataset d;
    cr_assert_eq(dataset_toy(&d, "swissroll", NTOY, 4), ERR_OK);
    double rmin = 1e9, rmax = 0, rs = 0;
    for (size_t i = 0; i < d.n; i++) {
        double r = hypot(d.f32[2 * i], d.f32[2 * i + 1]);
        rmin = fmin(rmin, r);
        rmax = fmax(rmax, r);
        rs += r;
    }
    /* r = t/5 with t uniform on [1.5 pi, 4.5 pi]: r in [0.94, 2.83], mean 1.885 */
    cr_assert(rmin > 0.94 - 0.25 && rmin < 0.94 + 0.1, "rmin %f", rmin);
    cr_assert(rmax < 2.83 + 0.25 && rmax > 2.83 - 0.1, "rmax %f", rmax);
    cr_assert(fabs(rs / NTOY - 1.885) < 0.03, "mean r %f", rs / NTOY);
    dataset_free(&d);
}
