/* dist/evaluator.c - the evaluator registry, classifier training, loading and testing. */
#include "dist/evaluator.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "io/dataset.h"
#include "io/fetch.h"
#include "io/weights.h"

/* The recipe is part of the pin: changing it changes the weights and so the hash. */
static const EvaluatorInfo g_evaluators[] = {
    {.name = "fmnist", .metric = "FD-FMNIST", .dataset = "fashion-mnist",
     .file = "model/evaluators/fmnist.dfmw",
     .sha256 = "ac8f2088eb1718e64012d1f791deae1ec94a12e8504ac79acf00ae20b10f59a5",
     .test_acc = 0.9167,
     .recipe = {.epochs = 4, .batch = 128, .lr = 2e-3f, .flip = 1, .seed = 20261201}},
    {.name = "mnist", .metric = "FD-MNIST", .dataset = "mnist",
     .file = "model/evaluators/mnist.dfmw", .sha256 = NULL, .test_acc = 0.0,
     .recipe = {.epochs = 2, .batch = 128, .lr = 2e-3f, .flip = 0, .seed = 20261201}},
};
#define NEVAL (sizeof g_evaluators / sizeof g_evaluators[0])

size_t evaluator_count(void) { return NEVAL; }
const EvaluatorInfo *evaluator_at(size_t i) { return i < NEVAL ? &g_evaluators[i] : NULL; }

const EvaluatorInfo *evaluator_find(const char *name)
{
    for (size_t i = 0; i < NEVAL; i++) {
        const EvaluatorInfo *e = &g_evaluators[i];
        if (!strcasecmp(name, e->name) || !strcasecmp(name, e->metric) ||
            !strcmp(name, e->dataset))
            return e;
    }
    char known[256] = "";
    for (size_t i = 0; i < NEVAL; i++) {
        strncat(known, i ? ", " : "", sizeof known - strlen(known) - 1);
        strncat(known, g_evaluators[i].name, sizeof known - strlen(known) - 1);
    }
    ERR(ERR_ARG, "no evaluator named '%s' (known: %s)", name, known);
    return NULL;
}

int evaluator_source_path(char *buf, size_t n, const char *rel)
{
    const char *root = getenv("DFM_ROOT");
    char exe[PATH_MAX];
    if (!root || !*root) {
        ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (len <= 0) return ERR(ERR_IO, "cannot find the running binary: %s", strerror(errno));
        exe[len] = '\0';
        for (int up = 0; up < 2; up++) { /* <root>/bin/dfm -> <root> */
            char *slash = strrchr(exe, '/');
            if (!slash) break;
            *slash = '\0';
        }
        root = exe;
    }
    if ((size_t)snprintf(buf, n, "%s/%s", root, rel) >= n)
        return ERR(ERR_ARG, "path too long: %s/%s", root, rel);
    return ERR_OK;
}

int evaluator_file_sha256(const char *path, char hex[65])
{
    uint64_t size;
    return fetch_sha256_file(path, hex, &size);
}

int evaluator_save(Clf *c, const char *path)
{
    size_t nt;
    const ParamEntry *pt = clf_param_table(c, &nt);
    WeightsTensor *t = xcalloc(nt, sizeof *t);
    for (size_t i = 0; i < nt; i++) {
        snprintf(t[i].name, sizeof t[i].name, "%s", pt[i].name);
        t[i].ndim = pt[i].ndim;
        memcpy(t[i].shape, pt[i].shape, sizeof t[i].shape);
        t[i].offset = pt[i].offset;
        t[i].count = pt[i].count;
    }
    int rc = weights_write(path, t, nt, clf_params(c), NULL, clf_num_params(c));
    xfree(t);
    return rc;
}

int evaluator_read(Clf **out, const char *path)
{
    *out = NULL;
    Weights w;
    TRY(weights_read(&w, path));
    static const char *const names[] = {"conv1.weight", "conv1.bias", "conv2.weight",
                                        "conv2.bias", "conv3.weight", "conv3.bias",
                                        "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
    int rc = ERR_OK;
    if (w.n_tensors != sizeof names / sizeof names[0]) {
        rc = ERR(ERR_FORMAT, "%s: %zu tensors, a classifier has %zu", path, w.n_tensors,
                 sizeof names / sizeof names[0]);
        goto done;
    }
    for (size_t i = 0; i < w.n_tensors; i++)
        if (strcmp(w.tensors[i].name, names[i])) {
            rc = ERR(ERR_FORMAT, "%s: tensor %zu is '%s', a classifier's is '%s'", path, i,
                     w.tensors[i].name, names[i]);
            goto done;
        }
    /* the configuration from the shapes; fc1's input is c3 (S/4)^2 */
    ClfConfig cfg = {.in_ch = w.tensors[0].shape[1], .c1 = w.tensors[0].shape[0],
                     .c2 = w.tensors[2].shape[0], .c3 = w.tensors[4].shape[0],
                     .feat = w.tensors[6].shape[0], .num_classes = w.tensors[8].shape[0]};
    int flat = w.tensors[6].shape[1], q = 1;
    while (cfg.c3 > 0 && q * q * cfg.c3 < flat) q++;
    cfg.size = 4 * q;
    Clf *c = clf_create(&cfg);
    if (!c) {
        rc = err_context("%s", path);
        goto done;
    }
    size_t nt;
    const ParamEntry *pt = clf_param_table(c, &nt);
    for (size_t i = 0; i < nt && rc == ERR_OK; i++) {
        const WeightsTensor *t = &w.tensors[i];
        int same = t->ndim == pt[i].ndim && t->offset == pt[i].offset && t->count == pt[i].count;
        for (int d = 0; d < pt[i].ndim && same; d++) same = t->shape[d] == pt[i].shape[d];
        if (!same) rc = ERR(ERR_FORMAT, "%s: tensor '%s' has the wrong shape for a classifier", path, t->name);
    }
    if (rc == ERR_OK && w.n != clf_num_params(c))
        rc = ERR(ERR_FORMAT, "%s: %zu parameters, the classifier has %zu", path, w.n, clf_num_params(c));
    if (rc != ERR_OK) {
        clf_destroy(&c);
        goto done;
    }
    memcpy(clf_params(c), w.params, sizeof(float) * w.n);
    *out = c;
done:
    weights_free(&w);
    return rc;
}

int evaluator_load(Clf **out, const EvaluatorInfo *info)
{
    *out = NULL;
    char path[PATH_MAX], hex[65];
    TRY(evaluator_source_path(path, sizeof path, info->file));
    if (!info->sha256) {
        ERR(ERR_STATE, "no %s classifier is shipped with this dfm", info->metric);
        err_hint("train one from the dataset (dfm fetch %s; dfm evaluator train %s --out FILE) "
                 "and pass it as --weights FILE to dfm eval or dfm evaluator test",
                 info->dataset, info->name);
        return ERR_STATE;
    }
    if (access(path, R_OK) != 0) {
        ERR(ERR_IO, "cannot read the %s classifier %s: %s", info->metric, path, strerror(errno));
        err_hint("set DFM_ROOT to the dfm source tree, or run the dfm binary from it");
        return ERR_IO;
    }
    TRY(evaluator_file_sha256(path, hex));
    if (strcmp(hex, info->sha256)) {
        ERR(ERR_INTEGRITY, "%s: SHA-256 %s, expected %s", path, hex, info->sha256);
        err_hint("the file was changed or damaged; 'git checkout %s' restores it", info->file);
        return ERR_INTEGRITY;
    }
    TRY(evaluator_read(out, path));
    return ERR_OK;
}

typedef struct {
    int log_every;
    double loss, acc;
    size_t n;
} TrainLog;

static void progress(void *ctx, int epoch, size_t step, size_t steps, double loss, double acc)
{
    TrainLog *l = ctx;
    l->loss += loss;
    l->acc += acc;
    l->n++;
    if (l->log_every > 0 && (step % (size_t)l->log_every == 0 || step == steps)) {
        fprintf(stderr, "evaluator: epoch %d step %zu/%zu loss %.4f train acc %.4f\n", epoch + 1,
                step, steps, l->loss / (double)l->n, l->acc / (double)l->n);
        l->loss = l->acc = 0.0;
        l->n = 0;
    }
}

int evaluator_train(Clf **out, const EvaluatorInfo *info, const char *data_dir, int epochs,
                    size_t limit, int log_every)
{
    *out = NULL;
    Dataset ds;
    TRY(dataset_open(&ds, info->dataset, data_dir, DATASET_TRAIN));
    ClfConfig cfg = clf_config_default((int)ds.c, (int)ds.h, ds.num_classes);
    Clf *c = clf_create(&cfg);
    if (!c) {
        dataset_free(&ds);
        return err_code();
    }
    ClfTrainConfig tc = info->recipe;
    if (epochs > 0) tc.epochs = epochs;
    clf_init_params(c, tc.seed);
    TrainLog l = {.log_every = log_every};
    size_t n = limit > 0 && limit < ds.n ? limit : ds.n;
    int rc = clf_fit(c, ds.u8, ds.labels, n, &tc, progress, &l);
    dataset_free(&ds);
    if (rc != ERR_OK) {
        clf_destroy(&c);
        return rc;
    }
    *out = c;
    return ERR_OK;
}

int evaluator_test(Clf *c, const EvaluatorInfo *info, const char *data_dir, size_t limit,
                   double *acc)
{
    Dataset ds;
    TRY(dataset_open(&ds, info->dataset, data_dir, DATASET_TEST));
    const ClfConfig *cfg = clf_config(c);
    int rc = ERR_OK;
    if ((size_t)cfg->in_ch != ds.c || (size_t)cfg->size != ds.h || cfg->num_classes != ds.num_classes)
        rc = ERR(ERR_ARG, "the classifier takes %dx%dx%d images in %d classes, %s has %zux%zux%zu in %d",
                 cfg->in_ch, cfg->size, cfg->size, cfg->num_classes, info->dataset, ds.c, ds.h,
                 ds.w, ds.num_classes);
    else
        *acc = clf_accuracy(c, ds.u8, ds.labels, limit > 0 && limit < ds.n ? limit : ds.n, NULL);
    dataset_free(&ds);
    return rc;
}
