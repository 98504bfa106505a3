/* io/dataset.c - dataset manifests, IDX and CIFAR-10 readers, toy generators.
 * See io/dataset.h for the contract. */
#include "io/dataset.h"
#include "io/fsutil.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rng.h"

/* ---- manifests ---------------------------------------------------------------------------- */

typedef struct {
    uint32_t magic, count, rows, cols;
} IdxExpect;

static int idx_validate(const char *path, void *ctx)
{
    const IdxExpect *e = ctx;
    return dataset_idx_check(path, e->magic, e->count, e->rows, e->cols);
}

static int cifar_validate(const char *path, void *ctx)
{
    (void)ctx;
    return dataset_cifar_tar_check(path);
}

static IdxExpect g_idx_train_img = {2051, 60000, 28, 28}, g_idx_train_lab = {2049, 60000, 0, 0},
                 g_idx_test_img = {2051, 10000, 28, 28}, g_idx_test_lab = {2049, 10000, 0, 0};

/* Debian's dataset-fashion-mnist copies (re-compressed without a file name in the header). */
static const FetchPin g_fm_pins[4] = {
    {26421856, "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
     "Debian package dataset-fashion-mnist"},
    {29491, "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
     "Debian package dataset-fashion-mnist"},
    {4422079, "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
     "Debian package dataset-fashion-mnist"},
    {5125, "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
     "Debian package dataset-fashion-mnist"},
};

#define IDX_FILE(remote_, local_, pins_, npins_, size_, sha_, exp_)                            \
    {remote_, local_, FETCH_GZIP, pins_, npins_, size_, sha_, idx_validate, exp_}

static const FetchFile g_fm_files[4] = {
    IDX_FILE("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte", &g_fm_pins[0], 1, 47040016,
             "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", &g_idx_train_img),
    IDX_FILE("train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte", &g_fm_pins[1], 1, 60008,
             "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", &g_idx_train_lab),
    IDX_FILE("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte", &g_fm_pins[2], 1, 7840016,
             "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", &g_idx_test_img),
    IDX_FILE("t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte", &g_fm_pins[3], 1, 10008,
             "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", &g_idx_test_lab),
};

/* The upstream MNIST .gz files (as served by yann.lecun.com and its S3/GCS mirrors): sizes
 * and SHA-256 as published by several independent download scripts (TensorFlow's mirror list,
 * torch.rb, MLDatasets-style loaders). No payload hash is pinned: the first download that
 * matches these records its payload hash. */
static const FetchPin g_mnist_pins[4] = {
    {9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", "upstream MNIST"},
    {28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", "upstream MNIST"},
    {1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", "upstream MNIST"},
    {4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", "upstream MNIST"},
};

static const FetchFile g_mnist_files[4] = {
    IDX_FILE("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte", &g_mnist_pins[0], 1,
             47040016, NULL, &g_idx_train_img),
    IDX_FILE("train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte", &g_mnist_pins[1], 1, 60008,
             NULL, &g_idx_train_lab),
    IDX_FILE("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte", &g_mnist_pins[2], 1, 7840016,
             NULL, &g_idx_test_img),
    IDX_FILE("t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte", &g_mnist_pins[3], 1, 10008,
             NULL, &g_idx_test_lab),
};

/* The Toronto CIFAR-10 binary archive (170052171 bytes; its published MD5 is
 * c32a1d4ab5d03f1284b67883e8d87530). */
static const FetchPin g_cifar_pin = {
    170052171, "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
    "the dataset authors' site (cs.toronto.edu)"};

static const FetchFile g_cifar_files[1] = {
    {"cifar-10-binary.tar.gz", "cifar-10-binary.tar", FETCH_GZIP, &g_cifar_pin, 1, 0, NULL,
     cifar_validate, NULL},
};

static const char *const g_fm_mirrors[] = {
    "file:///usr/share/datasets/fashion-mnist/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
};
static const char *const g_mnist_mirrors[] = {
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
};
static const char *const g_cifar_mirrors[] = {
    "https://www.cs.toronto.edu/~kriz/",
};

typedef struct {
    DatasetInfo info;
    int toy;           /* toy generator (TOY_*), -1 for fetched datasets */
    const FetchFile *files;
    size_t nfiles;
    const char *const *mirrors;
    size_t nmirrors;
} Manifest;

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

enum { TOY_MOONS, TOY_8GAUSSIANS, TOY_CHECKERBOARD, TOY_SWISSROLL };

static const Manifest g_manifests[] = {
    {{DATASET_FASHION_MNIST, "Zalando Fashion-MNIST, 70000 28x28 grey images, 10 classes "
                             "(SHA-256 pinned; Debian package first)", 1, 1, 28, 28, 10},
     -1, g_fm_files, 4, g_fm_mirrors, NELEM(g_fm_mirrors)},
    {{DATASET_MNIST, "MNIST digits, 70000 28x28 grey images, 10 classes (upstream .gz SHA-256 "
                     "pinned)", 1, 1, 28, 28, 10},
     -1, g_mnist_files, 4, g_mnist_mirrors, NELEM(g_mnist_mirrors)},
    {{DATASET_CIFAR10, "CIFAR-10, 60000 32x32 colour images, 10 classes (binary version; "
                       "archive SHA-256 pinned)", 1, 3, 32, 32, 10},
     -1, g_cifar_files, 1, g_cifar_mirrors, NELEM(g_cifar_mirrors)},
    {{DATASET_MOONS, "2-D toy: two moons, 2 classes (generated from the seed)", 0, 2, 1, 1, 2},
     TOY_MOONS, NULL, 0, NULL, 0},
    {{DATASET_8GAUSSIANS, "2-D toy: 8 Gaussians on a circle of radius 2, 8 classes (generated)",
      0, 2, 1, 1, 8},
     TOY_8GAUSSIANS, NULL, 0, NULL, 0},
    {{DATASET_CHECKERBOARD, "2-D toy: 4x4 checkerboard on [-2,2]^2 (generated)", 0, 2, 1, 1, 0},
     TOY_CHECKERBOARD, NULL, 0, NULL, 0},
    {{DATASET_SWISSROLL, "2-D toy: swiss roll (generated)", 0, 2, 1, 1, 0},
     TOY_SWISSROLL, NULL, 0, NULL, 0},
};

size_t dataset_count(void) { return NELEM(g_manifests); }
const DatasetInfo *dataset_info(size_t i) { return i < NELEM(g_manifests) ? &g_manifests[i].info : NULL; }

static const Manifest *manifest_find(const char *name)
{
    for (size_t i = 0; i < NELEM(g_manifests); i++)
        if (!strcmp(g_manifests[i].info.name, name)) return &g_manifests[i];
    return NULL;
}

const DatasetInfo *dataset_find(const char *name)
{
    const Manifest *m = manifest_find(name);
    return m ? &m->info : NULL;
}

int dataset_is_toy(const char *name)
{
    const Manifest *m = manifest_find(name);
    return m && !m->info.fetched;
}

static int unknown_dataset(const char *name)
{
    char list[512] = "";
    for (size_t i = 0; i < NELEM(g_manifests); i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, g_manifests[i].info.name, sizeof list - strlen(list) - 1);
    }
    ERR(ERR_ARG, "unknown dataset '%s' (known: %s)", name, list);
    err_hint("run 'dfm fetch --list'");
    return ERR_ARG;
}

/* dir/name; callers check first that dir is not empty ("" + "/" + name is the root). */
static char *subdir(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int dataset_fetch(const char *name, const char *dir, const char *const *extra, size_t nextra,
                  int builtin, const FetchOptions *base_opts)
{
    const Manifest *m = manifest_find(name);
    if (!m) return unknown_dataset(name);
    if (!m->info.fetched) {
        ERR(ERR_ARG, "dataset '%s' is generated from the seed; there is nothing to fetch", name);
        return ERR_ARG;
    }
    TRY(fs_path_nonempty(dir, "the data directory"));
    FetchOptions o;
    if (base_opts) o = *base_opts;
    else fetch_options_default(&o);
    size_t nbuiltin = builtin ? m->nmirrors : 0;
    if (nextra + nbuiltin == 0) {
        ERR(ERR_ARG, "no mirror to fetch %s from: the built-in list is disabled and no --mirror "
                     "was given", name);
        return ERR_ARG;
    }
    const char **mirrors = xmalloc((nextra + nbuiltin) * sizeof *mirrors);
    for (size_t i = 0; i < nextra; i++) mirrors[i] = extra[i];
    for (size_t i = 0; i < nbuiltin; i++) mirrors[nextra + i] = m->mirrors[i];
    o.mirrors = mirrors;
    o.nmirrors = nextra + nbuiltin;
    char *d = subdir(dir, name);
    int rc = fetch_all(d, m->files, m->nfiles, &o);
    if (rc != ERR_OK) err_context("dfm fetch %s", name);
    if (rc == ERR_OK) log_info("%s: %zu file%s verified in %s", name, m->nfiles,
                               m->nfiles == 1 ? "" : "s", d);
    xfree(d);
    xfree(mirrors);
    return rc;
}

/* Replace fetch_verify's generic hint with the exact command. */
static void fetch_hint(const char *name, const char *dir)
{
    if (err_code() == ERR_IO || err_code() == ERR_INTEGRITY || err_code() == ERR_FORMAT)
        err_hint("run 'dfm fetch %s --dir %s'%s", name, dir,
                 err_code() == ERR_IO ? "" : ": it replaces a file that fails verification");
}

int dataset_verify(const char *name, const char *dir)
{
    const Manifest *m = manifest_find(name);
    if (!m) return unknown_dataset(name);
    if (!m->info.fetched) return ERR_OK;
    TRY(fs_path_nonempty(dir, "the data directory"));
    char *d = subdir(dir, name);
    int rc = ERR_OK;
    for (size_t i = 0; rc == ERR_OK && i < m->nfiles; i++) rc = fetch_verify(d, &m->files[i]);
    xfree(d);
    if (rc != ERR_OK) fetch_hint(name, dir);
    return rc;
}

/* ---- IDX ---------------------------------------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

int dataset_idx_check(const char *path, uint32_t magic, uint32_t count, uint32_t rows,
                      uint32_t cols)
{
    FILE *f = fopen(path, "rb");
    if (!f) return ERR(ERR_IO, "open %s: %s", path, strerror(errno));
    unsigned char h[16];
    size_t got = fread(h, 1, sizeof h, f);
    struct stat st;
    int sr = fstat(fileno(f), &st);
    fclose(f);
    if (sr != 0) return ERR(ERR_IO, "stat %s: %s", path, strerror(errno));
    uint64_t len = (uint64_t)st.st_size;
    size_t hdr = magic == 2051 ? 16 : 8;
    if (got < hdr)
        return ERR(ERR_FORMAT, "%s: %llu bytes, too short for an IDX header", path,
                   (unsigned long long)len);
    uint32_t m = be32(h);
    if (m != magic) {
        if (m == 0x1f8b0800u || (h[0] == 0x1f && h[1] == 0x8b))
            return ERR(ERR_FORMAT, "%s: still gzip-compressed, expected an IDX file", path);
        return ERR(ERR_FORMAT, "%s: IDX magic %u (0x%08x), expected %u (%s)", path, m, m, magic,
                   magic == 2051 ? "ubyte images, 3 dimensions" : "ubyte labels, 1 dimension");
    }
    uint32_t n = be32(h + 4);
    if (count && n != count)
        return ERR(ERR_FORMAT, "%s: IDX count %u, expected %u", path, n, count);
    if (n == 0) return ERR(ERR_FORMAT, "%s: IDX count is 0", path);
    uint64_t want = hdr + (uint64_t)n;
    if (magic == 2051) {
        uint32_t r = be32(h + 8), c = be32(h + 12);
        if ((rows && r != rows) || (cols && c != cols) || r == 0 || c == 0 || r > 4096 || c > 4096)
            return ERR(ERR_FORMAT, "%s: IDX image size %ux%u, expected %ux%u", path, r, c, rows,
                       cols);
        want = hdr + (uint64_t)n * r * c;
    }
    if (len != want)
        return ERR(ERR_FORMAT, "%s: %llu bytes, but its IDX header describes %llu (%s)", path,
                   (unsigned long long)len, (unsigned long long)want,
                   len < want ? "truncated" : "trailing data");
    return ERR_OK;
}

static int read_at(const char *path, uint64_t off, void *buf, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return ERR(ERR_IO, "open %s: %s", path, strerror(errno));
    int rc = ERR_OK;
    if (fseeko(f, (off_t)off, SEEK_SET) != 0 || fread(buf, 1, n, f) != n)
        rc = ERR(ERR_IO, "read %zu bytes at %llu from %s: %s", n, (unsigned long long)off, path,
                 ferror(f) ? strerror(errno) : "unexpected end of file");
    fclose(f);
    return rc;
}

static int open_idx(Dataset *ds, const char *d, const Manifest *m, DatasetSplit split)
{
    const FetchFile *img = &m->files[split == DATASET_TRAIN ? 0 : 2];
    const FetchFile *lab = &m->files[split == DATASET_TRAIN ? 1 : 3];
    TRY(fetch_verify(d, img));
    TRY(fetch_verify(d, lab));
    size_t n = split == DATASET_TRAIN ? 60000 : 10000;
    char *pi = subdir(d, img->local), *pl = subdir(d, lab->local);
    ds->n = n;
    ds->c = (size_t)m->info.c;
    ds->h = (size_t)m->info.h;
    ds->w = (size_t)m->info.w;
    ds->num_classes = m->info.num_classes;
    ds->u8 = xmalloc(n * dataset_dim(ds));
    ds->labels = xmalloc(n * sizeof *ds->labels);
    uint8_t *lb = xmalloc(n);
    int rc = read_at(pi, 16, ds->u8, n * dataset_dim(ds));
    if (rc == ERR_OK) rc = read_at(pl, 8, lb, n);
    for (size_t i = 0; rc == ERR_OK && i < n; i++) {
        if (lb[i] > 9) rc = ERR(ERR_FORMAT, "%s: label %u at index %zu is not in 0..9", pl, lb[i], i);
        ds->labels[i] = lb[i];
    }
    xfree(lb);
    xfree(pi);
    xfree(pl);
    return rc;
}

/* ---- CIFAR-10 tar ------------------------------------------------------------------------- */

#define CIFAR_REC 3073u
#define CIFAR_N 10000u
#define CIFAR_BYTES ((uint64_t)CIFAR_REC * CIFAR_N)
static const char *const g_cifar_members[6] = {
    "cifar-10-batches-bin/data_batch_1.bin", "cifar-10-batches-bin/data_batch_2.bin",
    "cifar-10-batches-bin/data_batch_3.bin", "cifar-10-batches-bin/data_batch_4.bin",
    "cifar-10-batches-bin/data_batch_5.bin", "cifar-10-batches-bin/test_batch.bin",
};

static uint64_t octal(const unsigned char *p, size_t n, int *ok)
{
    uint64_t v = 0;
    size_t i = 0;
    while (i < n && p[i] == ' ') i++;
    size_t start = i;
    for (; i < n && p[i] >= '0' && p[i] <= '7'; i++) v = v * 8 + (uint64_t)(p[i] - '0');
    if (i == start || (i < n && p[i] != ' ' && p[i] != '\0')) *ok = 0;
    return v;
}

/* Walk a ustar archive; record the data offset of each CIFAR member. */
static int cifar_scan(const char *path, uint64_t off[6])
{
    FILE *f = fopen(path, "rb");
    if (!f) return ERR(ERR_IO, "open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        fclose(f);
        return ERR(ERR_IO, "stat %s: %s", path, strerror(errno));
    }
    uint64_t len = (uint64_t)st.st_size, pos = 0;
    for (int i = 0; i < 6; i++) off[i] = UINT64_MAX;
    int rc = ERR_OK, ended = 0;
    unsigned char h[512];
    while (rc == ERR_OK && pos + 512 <= len) {
        if (fseeko(f, (off_t)pos, SEEK_SET) != 0 || fread(h, 1, 512, f) != 512) {
            rc = ERR(ERR_IO, "read %s at %llu", path, (unsigned long long)pos);
            break;
        }
        int zero = 1;
        for (int i = 0; i < 512 && zero; i++) zero = h[i] == 0;
        if (zero) {
            ended = 1;
            break;
        }
        int ok = 1;
        uint64_t sum = octal(h + 148, 8, &ok), calc = 0;
        for (int i = 0; i < 512; i++) calc += (i >= 148 && i < 156) ? ' ' : h[i];
        if (!ok || sum != calc) {
            rc = ERR(ERR_FORMAT, "%s: not a tar archive or corrupt (bad header checksum at "
                                 "byte %llu)", path, (unsigned long long)pos);
            break;
        }
        uint64_t size = octal(h + 124, 12, &ok);
        if (!ok) {
            rc = ERR(ERR_FORMAT, "%s: bad member size field at byte %llu", path,
                     (unsigned long long)pos);
            break;
        }
        char name[256 + 2];
        char nm[101], pre[156];
        memcpy(nm, h, 100);
        nm[100] = '\0';
        memcpy(pre, h + 345, 155);
        pre[155] = '\0';
        if (!memcmp(h + 257, "ustar", 5) && pre[0])
            snprintf(name, sizeof name, "%s/%s", pre, nm);
        else
            snprintf(name, sizeof name, "%s", nm);
        uint64_t data = pos + 512;
        if (data + size > len) {
            rc = ERR(ERR_FORMAT, "%s: member %s claims %llu bytes but the archive ends first "
                                 "(truncated)", path, name, (unsigned long long)size);
            break;
        }
        char type = (char)h[156];
        if (type == '0' || type == '\0') {
            for (int i = 0; i < 6; i++) {
                if (strcmp(name, g_cifar_members[i])) continue;
                if (size != CIFAR_BYTES) {
                    rc = ERR(ERR_FORMAT, "%s: member %s has %llu bytes, expected %llu "
                                         "(10000 records of 1 + 3072 bytes)",
                             path, name, (unsigned long long)size,
                             (unsigned long long)CIFAR_BYTES);
                }
                off[i] = data;
            }
        }
        pos = data + (size + 511) / 512 * 512;
    }
    fclose(f);
    if (rc != ERR_OK) return rc;
    (void)ended;
    for (int i = 0; i < 6; i++)
        if (off[i] == UINT64_MAX)
            return ERR(ERR_FORMAT, "%s: member %s is missing from the archive", path,
                       g_cifar_members[i]);
    return ERR_OK;
}

int dataset_cifar_tar_check(const char *path)
{
    uint64_t off[6];
    TRY(cifar_scan(path, off));
    /* Labels must be 0..9: check every record's first byte. */
    FILE *f = fopen(path, "rb");
    if (!f) return ERR(ERR_IO, "open %s: %s", path, strerror(errno));
    unsigned char *buf = xmalloc(CIFAR_BYTES);
    int rc = ERR_OK;
    for (int b = 0; b < 6 && rc == ERR_OK; b++) {
        if (fseeko(f, (off_t)off[b], SEEK_SET) != 0 || fread(buf, 1, CIFAR_BYTES, f) != CIFAR_BYTES) {
            rc = ERR(ERR_IO, "read %s member %s", path, g_cifar_members[b]);
            break;
        }
        for (uint32_t r = 0; r < CIFAR_N; r++)
            if (buf[(size_t)r * CIFAR_REC] > 9) {
                rc = ERR(ERR_FORMAT, "%s: member %s record %u has label %u (expected 0..9)", path,
                         g_cifar_members[b], r, buf[(size_t)r * CIFAR_REC]);
                break;
            }
    }
    fclose(f);
    xfree(buf);
    return rc;
}

static int open_cifar(Dataset *ds, const char *d, const Manifest *m, DatasetSplit split)
{
    TRY(fetch_verify(d, &m->files[0]));
    char *p = subdir(d, m->files[0].local);
    uint64_t off[6];
    int rc = cifar_scan(p, off);
    int b0 = split == DATASET_TRAIN ? 0 : 5, nb = split == DATASET_TRAIN ? 5 : 1;
    size_t n = (size_t)nb * CIFAR_N;
    if (rc == ERR_OK) {
        ds->n = n;
        ds->c = (size_t)m->info.c;
        ds->h = (size_t)m->info.h;
        ds->w = (size_t)m->info.w;
        ds->num_classes = m->info.num_classes;
        ds->u8 = xmalloc(n * dataset_dim(ds));
        ds->labels = xmalloc(n * sizeof *ds->labels);
    }
    unsigned char *buf = rc == ERR_OK ? xmalloc(CIFAR_BYTES) : NULL;
    for (int b = 0; rc == ERR_OK && b < nb; b++) {
        rc = read_at(p, off[b0 + b], buf, CIFAR_BYTES);
        for (size_t r = 0; rc == ERR_OK && r < CIFAR_N; r++) {
            size_t i = (size_t)b * CIFAR_N + r;
            const unsigned char *rec = buf + r * CIFAR_REC;
            if (rec[0] > 9) {
                rc = ERR(ERR_FORMAT, "%s: record %zu has label %u", p, i, rec[0]);
                break;
            }
            ds->labels[i] = rec[0];
            memcpy(ds->u8 + i * 3072, rec + 1, 3072); /* R, G, B planes: already (C, H, W) */
        }
    }
    xfree(buf);
    xfree(p);
    return rc;
}

int dataset_open(Dataset *ds, const char *name, const char *dir, DatasetSplit split)
{
    memset(ds, 0, sizeof *ds);
    const Manifest *m = manifest_find(name);
    if (!m) return unknown_dataset(name);
    if (!m->info.fetched) {
        ERR(ERR_ARG, "dataset '%s' is generated: use dataset_toy", name);
        return ERR_ARG;
    }
    TRY(fs_path_nonempty(dir, "the data directory"));
    snprintf(ds->name, sizeof ds->name, "%s", name);
    char *d = subdir(dir, name);
    int rc = m->files == g_cifar_files ? open_cifar(ds, d, m, split) : open_idx(ds, d, m, split);
    xfree(d);
    if (rc != ERR_OK) {
        err_context("dataset %s (%s split)", name, split == DATASET_TRAIN ? "train" : "test");
        fetch_hint(name, dir);
        dataset_free(ds);
    }
    return rc;
}

/* ---- toy 2-D data ------------------------------------------------------------------------- */

#define PI 3.14159265358979323846

int dataset_toy(Dataset *ds, const char *name, size_t n, uint64_t seed)
{
    memset(ds, 0, sizeof *ds);
    const Manifest *m = manifest_find(name);
    int kind = m ? m->toy : -1;
    if (kind < 0) {
        if (m) {
            ERR(ERR_ARG, "dataset '%s' is not a toy dataset: use dataset_open", name);
            return ERR_ARG;
        }
        return unknown_dataset(name);
    }
    if (n == 0) return ERR(ERR_ARG, "toy dataset %s: n must be positive", name);
    snprintf(ds->name, sizeof ds->name, "%s", name);
    ds->n = n;
    ds->c = (size_t)m->info.c;
    ds->h = (size_t)m->info.h;
    ds->w = (size_t)m->info.w;
    ds->f32 = xmalloc(n * 2 * sizeof *ds->f32);
    ds->num_classes = m->info.num_classes;
    if (ds->num_classes) ds->labels = xmalloc(n * sizeof *ds->labels);
    for (size_t i = 0; i < n; i++) {
        Rng r;
        rng_init(&r, seed, rng_stream(RNG_P_TOY, i), 0, 0);
        double x = 0, y = 0;
        int label = -1;
        switch (kind) {
        case TOY_MOONS: {
            label = (int)(rng_u32(&r) & 1);
            double t = PI * rng_uniform(&r);
            if (label == 0) {
                x = cos(t);
                y = sin(t);
            } else {
                x = 1.0 - cos(t);
                y = 0.5 - sin(t);
            }
            x = 2.0 * (x + 0.1 * rng_normal(&r) - 0.5);
            y = 2.0 * (y + 0.1 * rng_normal(&r) - 0.25);
            break;
        }
        case TOY_8GAUSSIANS: {
            label = (int)rng_below(&r, 8);
            double a = label * (PI / 4.0);
            x = 2.0 * cos(a) + 0.1 * rng_normal(&r);
            y = 2.0 * sin(a) + 0.1 * rng_normal(&r);
            break;
        }
        case TOY_CHECKERBOARD: { /* 8 cells with floor(x)+floor(y) even */
            int cell = (int)rng_below(&r, 8);
            int row = cell / 2;                 /* floor(y) + 2 in 0..3 */
            int col = 2 * (cell % 2) + (row % 2); /* floor(x) + 2, parity matching the row */
            x = (double)(col - 2) + rng_uniform(&r);
            y = (double)(row - 2) + rng_uniform(&r);
            break;
        }
        default: { /* TOY_SWISSROLL */
            double t = 1.5 * PI * (1.0 + 2.0 * rng_uniform(&r));
            x = t * cos(t) / 5.0 + 0.05 * rng_normal(&r);
            y = t * sin(t) / 5.0 + 0.05 * rng_normal(&r);
            break;
        }
        }
        ds->f32[2 * i] = (float)x;
        ds->f32[2 * i + 1] = (float)y;
        if (ds->labels) ds->labels[i] = label;
    }
    return ERR_OK;
}

void dataset_free(Dataset *ds)
{
    if (!ds) return;
    xfree(ds->u8);
    xfree(ds->f32);
    xfree(ds->labels);
    memset(ds, 0, sizeof *ds);
}
