/* io/jobspec.c - strict job-spec loader, resolver, checker and emitter (see io/jobspec.h).
 *
 * Structure: a table of every key (path, C type, offset, range, allowed names) drives parsing,
 * --set, equality, copying, freeing and emission, so a key is added in one place. Parsing goes
 * libyaml events -> a small owned tree (anchors, aliases, tags and second documents rejected as
 * they arrive; depth and node count bounded) -> a walk of the tree against the table. Nothing is
 * interpreted before the whole stream has parsed, so a YAML syntax error always wins over a
 * schema error and the reported position is deterministic.
 */
#include "io/jobspec.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/err.h"  /* ERR, TRY, err codes */
#include "core/mem.h"  /* xmalloc, xcalloc, xstrdup, xfree */

#define YAML_MAX_DEPTH 16
#define YAML_MAX_NODES 100000
#define KEY_SHOW_MAX 64 /* characters of user text quoted in messages */

/* ---- schema table --------------------------------------------------------------------------- */

typedef enum { F_STR, F_STRLIST, F_INT, F_U64, F_DBL, F_BOOL, F_ENUM, F_INTLIST, F_ENUMLIST } FType;

enum {
    FL_LO_OPEN = 1u << 0,  /* lower bound excluded */
    FL_HI_OPEN = 1u << 1,  /* upper bound excluded */
    FL_NONEMPTY = 1u << 2, /* string must not be empty; list must have an entry */
    FL_EVEN = 1u << 3,     /* integer must be even */
};

typedef int (*StrCheck)(const char *s, char *why, size_t nwhy);

typedef struct {
    const char *path;
    FType type;
    size_t off;  /* value */
    size_t noff; /* list count */
    int maxn;    /* list capacity */
    double lo, hi; /* numeric range; for strings hi = maximum length (bytes) */
    unsigned fl;
    const char *const *names; /* enum names */
    int nnames;
    StrCheck check; /* strings, string-list entries */
} Field;

static const char *const k_dataset[] = {"fashion-mnist", "mnist", "cifar10", "toy2d"};
static const char *const k_toy[] = {"moons", "8gaussians", "checkerboard", "swissroll"};
static const char *const k_model[] = {"unet", "mlp"};
static const char *const k_obj[] = {"ddpm", "flow"};
static const char *const k_betas[] = {"linear", "cosine"};
static const char *const k_pred[] = {"eps", "x0", "v"};
static const char *const k_tsamp[] = {"uniform", "logit_normal"};
static const char *const k_opt[] = {"adam", "adamw"};
static const char *const k_lrs[] = {"constant", "cosine"};
static const char *const k_reduce[] = {"deterministic", "overlap"};
static const char *const k_resume[] = {"auto", "never", "must"};
static const char *const k_sampler[] = {"ddpm", "ddim", "dpmpp2m", "euler", "midpoint", "heun", "rk4"};
static const char *const k_tspace[] = {"uniform", "quadratic", "trailing"};
static const char *const k_variance[] = {"beta_tilde", "beta"};
static const char *const k_metric[] = {"swd", "fid_fmnist", "spectrum"};
static const char *const k_launch[] = {"srun", "mpirun"};

_Static_assert(sizeof(JobDataset) == sizeof(int) && sizeof(JobSampler) == sizeof(int) &&
                   sizeof(JobMetric) == sizeof(int),
               "enum-valued keys are stored through int pointers");

#define NN(a) (int)(sizeof(a) / sizeof((a)[0]))
#define OFF(m) offsetof(JobSpec, m)
#define INF HUGE_VAL

static int check_name(const char *s, char *why, size_t nwhy);
static int check_url(const char *s, char *why, size_t nwhy);
static int check_time(const char *s, char *why, size_t nwhy);
static int check_signal(const char *s, char *why, size_t nwhy);
static int check_mem(const char *s, char *why, size_t nwhy);
static int check_sbatch(const char *s, char *why, size_t nwhy);

#define S(p, m, maxlen, fl, chk) {p, F_STR, OFF(m), 0, 0, 0, maxlen, fl, NULL, 0, chk}
#define SL(p, m, n, chk) {p, F_STRLIST, OFF(m), OFF(n), JOB_MAX_LIST, 0, JOB_MAX_STR, 0, NULL, 0, chk}
#define I(p, m, lo, hi, fl) {p, F_INT, OFF(m), 0, 0, lo, hi, fl, NULL, 0, NULL}
#define U(p, m) {p, F_U64, OFF(m), 0, 0, 0, 0, 0, NULL, 0, NULL}
#define D(p, m, lo, hi, fl) {p, F_DBL, OFF(m), 0, 0, lo, hi, fl, NULL, 0, NULL}
#define B(p, m) {p, F_BOOL, OFF(m), 0, 0, 0, 0, 0, NULL, 0, NULL}
#define E(p, m, names) {p, F_ENUM, OFF(m), 0, 0, 0, 0, 0, names, NN(names), NULL}
#define IL(p, m, n, cap, lo, hi, fl) {p, F_INTLIST, OFF(m), OFF(n), cap, lo, hi, fl, NULL, 0, NULL}
#define EL(p, m, n, names) {p, F_ENUMLIST, OFF(m), OFF(n), NN(names), 0, 0, 0, names, NN(names), NULL}

/* Order = emission order; the members of a section must be contiguous, a subsection's `type`
 * selector before the subsections. */
static const Field g_fields[] = {
    S("run.name", run.name, 64, FL_NONEMPTY, check_name),
    S("run.out_dir", run.out_dir, 1024, FL_NONEMPTY, NULL),
    U("run.seed", run.seed),

    E("data.dataset", data.dataset, k_dataset),
    E("data.toy", data.toy, k_toy),
    I("data.toy_size", data.toy_size, 1, 100000000, 0),
    S("data.dir", data.dir, 1024, FL_NONEMPTY, NULL),
    SL("data.mirrors", data.mirrors, data.n_mirrors, check_url),
    B("data.allow_unpinned", data.allow_unpinned),
    B("data.flip", data.flip),
    B("data.conditional", data.conditional),
    B("data.drop_last", data.drop_last),

    E("model.type", model.type, k_model),
    I("model.num_classes", model.num_classes, 0, 1000, 0),
    I("model.unet.channels", model.unet.channels, 1, 4096, 0),
    IL("model.unet.ch_mult", model.unet.ch_mult, model.unet.n_ch_mult, JOB_MAX_LEVELS, 1, 64,
       FL_NONEMPTY),
    I("model.unet.num_res_blocks", model.unet.num_res_blocks, 1, 16, 0),
    IL("model.unet.attn_resolutions", model.unet.attn_resolutions, model.unet.n_attn, JOB_MAX_ATTN,
       1, 4096, 0),
    I("model.unet.heads", model.unet.heads, 1, 64, 0),
    D("model.unet.dropout", model.unet.dropout, 0, 1, FL_HI_OPEN),
    I("model.unet.groups", model.unet.groups, 1, 1024, 0),
    I("model.unet.temb_dim", model.unet.temb_dim, 2, 16384, FL_EVEN),
    I("model.unet.temb_hidden", model.unet.temb_hidden, 1, 65536, 0),
    I("model.mlp.hidden", model.mlp.hidden, 1, 65536, 0),
    I("model.mlp.layers", model.mlp.layers, 1, 64, 0),
    I("model.mlp.temb_dim", model.mlp.temb_dim, 2, 16384, FL_EVEN),

    E("objective.type", objective.type, k_obj),
    D("objective.label_dropout", objective.label_dropout, 0, 1, FL_HI_OPEN),
    E("objective.ddpm.schedule", objective.ddpm.schedule, k_betas),
    I("objective.ddpm.timesteps", objective.ddpm.timesteps, 2, 100000, 0),
    D("objective.ddpm.beta_start", objective.ddpm.beta_start, 0, 1, FL_LO_OPEN | FL_HI_OPEN),
    D("objective.ddpm.beta_end", objective.ddpm.beta_end, 0, 1, FL_LO_OPEN | FL_HI_OPEN),
    D("objective.ddpm.cosine_s", objective.ddpm.cosine_s, 0, 1, 0),
    E("objective.ddpm.prediction", objective.ddpm.prediction, k_pred),
    D("objective.flow.sigma_min", objective.flow.sigma_min, 0, 1, FL_HI_OPEN),
    E("objective.flow.t_sampling", objective.flow.t_sampling, k_tsamp),
    D("objective.flow.logit_mean", objective.flow.logit_mean, -10, 10, 0),
    D("objective.flow.logit_std", objective.flow.logit_std, 0, 10, FL_LO_OPEN),

    I("train.batch", train.batch, 1, 1048576, 0),
    I("train.micro_batch", train.micro_batch, 1, 1048576, 0),
    I("train.steps", train.steps, 1, 1000000000, 0),
    E("train.optimizer", train.optimizer, k_opt),
    D("train.lr", train.lr, 0, 1, FL_LO_OPEN),
    D("train.beta1", train.beta1, 0, 1, FL_HI_OPEN),
    D("train.beta2", train.beta2, 0, 1, FL_HI_OPEN),
    D("train.eps", train.eps, 0, 1, FL_LO_OPEN),
    D("train.weight_decay", train.weight_decay, 0, 1, 0),
    I("train.warmup", train.warmup, 0, 1000000000, 0),
    E("train.lr_schedule", train.lr_schedule, k_lrs),
    D("train.min_lr", train.min_lr, 0, 1, 0),
    D("train.grad_clip", train.grad_clip, 0, 1e6, 0),
    I("train.grad_accum", train.grad_accum, 1, 4096, 0),
    D("train.ema.decay", train.ema.decay, 0, 1, FL_HI_OPEN),
    B("train.ema.warmup", train.ema.warmup),
    I("train.ema.start", train.ema.start, 0, 1000000000, 0),
    I("train.threads", train.threads, 0, 4096, 0),
    E("train.reduce", train.reduce, k_reduce),
    B("train.zero1", train.zero1),
    I("train.log_every", train.log_every, 1, 1000000000, 0),
    I("train.sample_every", train.sample_every, 0, 1000000000, 0),
    I("train.sample_count", train.sample_count, 1, 100000, 0),
    I("train.check_every", train.check_every, 0, 1000000000, 0),
    I("train.max_nonfinite", train.max_nonfinite, 1, 1000000, 0),

    S("checkpoint.dir", checkpoint.dir, 2048, FL_NONEMPTY, NULL),
    I("checkpoint.every", checkpoint.every, 0, 1000000000, 0),
    I("checkpoint.keep", checkpoint.keep, 0, 1000000, 0),
    I("checkpoint.keep_every", checkpoint.keep_every, 0, 1000000000, 0),
    B("checkpoint.async", checkpoint.async),
    E("checkpoint.resume", checkpoint.resume, k_resume),

    E("sample.sampler", sample.sampler, k_sampler),
    I("sample.steps", sample.steps, 1, 100000, 0),
    D("sample.eta", sample.eta, 0, 1, 0),
    E("sample.variance", sample.variance, k_variance),
    E("sample.timesteps", sample.timesteps, k_tspace),
    B("sample.clip_x0", sample.clip_x0),
    D("sample.guidance", sample.guidance, 0, 100, 0),
    I("sample.label", sample.label, -1, 999, 0),
    I("sample.count", sample.count, 1, 10000000, 0),
    I("sample.batch", sample.batch, 1, 65536, 0),
    U("sample.seed", sample.seed),
    B("sample.use_ema", sample.use_ema),
    S("sample.out", sample.out, 2048, FL_NONEMPTY, NULL),

    I("eval.every", eval.every, 0, 1000000000, 0),
    I("eval.count", eval.count, 1, 10000000, 0),
    I("eval.batch", eval.batch, 1, 65536, 0),
    EL("eval.metrics", eval.metrics, eval.n_metrics, k_metric),

    S("slurm.job_name", slurm.job_name, 64, FL_NONEMPTY, check_name),
    S("slurm.partition", slurm.partition, 256, 0, NULL),
    S("slurm.account", slurm.account, 256, 0, NULL),
    S("slurm.qos", slurm.qos, 256, 0, NULL),
    I("slurm.nodes", slurm.nodes, 1, 100000, 0),
    I("slurm.ntasks_per_node", slurm.ntasks_per_node, 1, 4096, 0),
    I("slurm.cpus_per_task", slurm.cpus_per_task, 1, 4096, 0),
    S("slurm.mem", slurm.mem, 32, 0, check_mem),
    S("slurm.time", slurm.time, 32, FL_NONEMPTY, check_time),
    S("slurm.signal", slurm.signal, 32, FL_NONEMPTY, check_signal),
    B("slurm.requeue", slurm.requeue),
    S("slurm.output", slurm.output, 2048, FL_NONEMPTY, NULL),
    SL("slurm.extra", slurm.extra, slurm.n_extra, check_sbatch),
    SL("slurm.setup", slurm.setup, slurm.n_setup, NULL),
    E("slurm.launcher", slurm.launcher, k_launch),
};
#define NFIELDS (sizeof g_fields / sizeof g_fields[0])

size_t jobspec_nkeys(void) { return NFIELDS; }
const char *jobspec_key(size_t i) { return i < NFIELDS ? g_fields[i].path : NULL; }
const char *jobspec_dataset_name(JobDataset d)
{
    return (int)d >= 0 && (int)d < NN(k_dataset) ? k_dataset[d] : "?";
}
const char *jobspec_sampler_name(JobSampler s)
{
    return (int)s >= 0 && (int)s < NN(k_sampler) ? k_sampler[s] : "?";
}
const char *jobspec_metric_name(JobMetric m)
{
    return (int)m >= 0 && (int)m < NN(k_metric) ? k_metric[m] : "?";
}

static int field_index(const char *path, size_t len)
{
    for (size_t i = 0; i < NFIELDS; i++)
        if (strlen(g_fields[i].path) == len && !memcmp(g_fields[i].path, path, len)) return (int)i;
    return -1;
}

/* True when `path` (len bytes) names a section or subsection: some key starts with "path.". */
static int is_section(const char *path, size_t len)
{
    for (size_t i = 0; i < NFIELDS; i++) {
        const char *p = g_fields[i].path;
        if (strlen(p) > len && !memcmp(p, path, len) && p[len] == '.') return 1;
    }
    return 0;
}

static int key_of(const char *path)
{
    int i = field_index(path, strlen(path));
    ASSERT(i >= 0);
    return i;
}

typedef char *Str;      /* so that const Str * is char *const * in the macros below */
typedef char **StrList;
#define VAL(js, f, T) ((T *)((char *)(js) + (f)->off))
#define CVAL(js, f, T) ((const T *)((const char *)(js) + (f)->off))
#define CNT(js, f) ((int *)((char *)(js) + (f)->noff))
#define CCNT(js, f) ((const int *)((const char *)(js) + (f)->noff))

/* ---- small string helpers ------------------------------------------------------------------- */

/* Quote user text for a one-line message: printable ASCII kept, the rest escaped, truncated. */
static void show(char *buf, size_t n, const char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 8 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= KEY_SHOW_MAX) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            buf[o++] = (char)c;
        } else if (c >= 0x80) {
            buf[o++] = (char)c; /* UTF-8 passes through */
        } else {
            o += (size_t)snprintf(buf + o, n - o, "\\x%02x", c);
        }
    }
    buf[o] = '\0';
}

/* Optimal-string-alignment distance (a transposition costs 1), capped inputs. */
static size_t edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
    enum { M = 65 };
    if (la >= M || lb >= M) return (size_t)-1;
    size_t d[M][M];
    for (size_t i = 0; i <= la; i++) d[i][0] = i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v) v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[la][lb];
}

static int close_enough(size_t dist, size_t len) { return dist <= (len + 2) / 3 || dist <= 1; }

/* ---- YAML tree ------------------------------------------------------------------------------ */

typedef enum { YN_SCALAR, YN_SEQ, YN_MAP } YKind;

typedef struct YNode {
    YKind kind;
    int line, col; /* 1-based */
    char *str;     /* scalar value, NUL-terminated (may hold embedded NULs: see len) */
    size_t len;
    int plain;     /* plain (unquoted) scalar */
    struct YNode **kid; /* seq: items; map: key, value, key, value, ... */
    size_t n, cap;
} YNode;

static void ynode_free(YNode *y)
{
    if (!y) return;
    for (size_t i = 0; i < y->n; i++) ynode_free(y->kid[i]);
    xfree(y->kid);
    xfree(y->str);
    xfree(y);
}

static int is_null(const YNode *y)
{
    if (!y) return 1;
    if (y->kind != YN_SCALAR || !y->plain) return 0;
    return y->len == 0 || !strcmp(y->str, "~") || !strcmp(y->str, "null") ||
           !strcmp(y->str, "Null") || !strcmp(y->str, "NULL");
}

/* Where messages are anchored: a file position, or a --set assignment. */
typedef struct {
    const char *file; /* file name for "file:line:col: " */
    const char *set;  /* non-NULL: messages start "--set <set>: " */
    JobSpec *js;
    int set_index;    /* 1-based index recorded in loc[].set */
} Ctx;

static int ctx_err(const Ctx *c, int code, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int ctx_err(const Ctx *c, int code, int line, int col, const char *fmt, ...)
{
    char msg[ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->set) {
        char s[2 * KEY_SHOW_MAX + 16];
        show(s, sizeof s, c->set, strlen(c->set));
        return ERR(code, "--set %s: %s", s, msg);
    }
    return ERR(code, "%s:%d:%d: %s", c->file, line, col, msg);
}

/* 1-based line and column (in characters) of byte `off` of text. */
static void offset_to_mark(const char *text, size_t len, size_t off, int *line, int *col)
{
    int l = 1, c = 1;
    if (off > len) off = len;
    size_t i = 0;
    if (off >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) i = 3;
    for (; i < off; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '\n') {
            l++;
            c = 1;
        } else if ((ch & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

/* "while scanning a quoted scalar" -> "a quoted scalar" */
static const char *strip_while(const char *ctx)
{
    static const char *const pre[] = {"while scanning ", "while parsing "};
    for (size_t i = 0; i < 2; i++)
        if (!strncmp(ctx, pre[i], strlen(pre[i]))) return ctx + strlen(pre[i]);
    return ctx;
}

static int yaml_fail(const Ctx *c, yaml_parser_t *p, const char *text, size_t len)
{
    int line, col;
    const char *problem = p->problem ? p->problem : "unknown error";
    if (p->error == YAML_READER_ERROR) {
        offset_to_mark(text, len, p->problem_offset, &line, &col);
        if (p->problem_value != -1)
            return ctx_err(c, ERR_PARSE, line, col, "malformed YAML: %s (byte 0x%02x)", problem,
                           (unsigned)p->problem_value & 0xffu);
        return ctx_err(c, ERR_PARSE, line, col, "malformed YAML: %s", problem);
    }
    if (p->error == YAML_MEMORY_ERROR) return ctx_err(c, ERR_NOMEM, 1, 1, "YAML parser out of memory");
    line = (int)p->problem_mark.line + 1;
    col = (int)p->problem_mark.column + 1;
    if (p->context && p->problem_mark.index >= len) {
        /* Ran off the end (unclosed quote or bracket): point at where the construct began. */
        return ctx_err(c, ERR_PARSE, (int)p->context_mark.line + 1, (int)p->context_mark.column + 1,
                       "malformed YAML: %s that is never closed (%s)", strip_while(p->context),
                       problem);
    }
    if (p->problem_mark.index < len && text[p->problem_mark.index] == '\t')
        return ctx_err(c, ERR_PARSE, line, col, "malformed YAML: tab character; indent with spaces");
    if (p->context)
        return ctx_err(c, ERR_PARSE, line, col, "malformed YAML: %s %s (started at line %d, column %d)",
                       p->context, problem, (int)p->context_mark.line + 1,
                       (int)p->context_mark.column + 1);
    return ctx_err(c, ERR_PARSE, line, col, "malformed YAML: %s", problem);
}

static void ynode_add(YNode *parent, YNode *kid)
{
    if (parent->n == parent->cap) {
        parent->cap = parent->cap ? 2 * parent->cap : 8;
        parent->kid = xrealloc(parent->kid, parent->cap * sizeof *parent->kid);
    }
    parent->kid[parent->n++] = kid;
}

/* Parse text into a tree. *root is NULL for a stream without a document. */
static int yaml_tree(const Ctx *c, const char *text, size_t len, YNode **root)
{
    yaml_parser_t p;
    yaml_event_t ev;
    YNode *stack[YAML_MAX_DEPTH + 1];
    int depth = 0, docs = 0, rc = ERR_OK, done = 0;
    size_t nodes = 0;
    *root = NULL;
    if (!yaml_parser_initialize(&p)) return ERR(ERR_NOMEM, "cannot initialise the YAML parser");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    while (!done && rc == ERR_OK) {
        if (!yaml_parser_parse(&p, &ev)) {
            rc = yaml_fail(c, &p, text, len);
            break;
        }
        int line = (int)ev.start_mark.line + 1, col = (int)ev.start_mark.column + 1;
        yaml_char_t *anchor = NULL, *tag = NULL;
        switch (ev.type) {
        case YAML_SCALAR_EVENT: anchor = ev.data.scalar.anchor; tag = ev.data.scalar.tag; break;
        case YAML_SEQUENCE_START_EVENT:
            anchor = ev.data.sequence_start.anchor;
            tag = ev.data.sequence_start.tag;
            break;
        case YAML_MAPPING_START_EVENT:
            anchor = ev.data.mapping_start.anchor;
            tag = ev.data.mapping_start.tag;
            break;
        default: break;
        }
        if (ev.type == YAML_ALIAS_EVENT || anchor) {
            rc = ctx_err(c, ERR_PARSE, line, col,
                         "YAML anchors and aliases are not supported in job specs; write the value out");
        } else if (tag) {
            char t[2 * KEY_SHOW_MAX];
            show(t, sizeof t, (const char *)tag, strlen((const char *)tag));
            rc = ctx_err(c, ERR_PARSE, line, col, "YAML tags are not supported in job specs (found '%s')", t);
        } else if (ev.type == YAML_STREAM_END_EVENT) {
            done = 1;
        } else if (ev.type == YAML_DOCUMENT_START_EVENT) {
            if (++docs > 1)
                rc = ctx_err(c, ERR_PARSE, line, col,
                             "a job spec is one YAML document; found a second one");
        } else if (ev.type == YAML_SCALAR_EVENT || ev.type == YAML_SEQUENCE_START_EVENT ||
                   ev.type == YAML_MAPPING_START_EVENT) {
            if (++nodes > YAML_MAX_NODES) {
                rc = ctx_err(c, ERR_PARSE, line, col, "more than %d YAML nodes", YAML_MAX_NODES);
            } else if (ev.type != YAML_SCALAR_EVENT && depth >= YAML_MAX_DEPTH) {
                rc = ctx_err(c, ERR_PARSE, line, col, "YAML nested deeper than %d levels",
                             YAML_MAX_DEPTH);
            } else {
                YNode *y = xcalloc(1, sizeof *y);
                y->line = line;
                y->col = col;
                if (ev.type == YAML_SCALAR_EVENT) {
                    y->kind = YN_SCALAR;
                    y->len = ev.data.scalar.length;
                    y->str = xmalloc(y->len + 1);
                    memcpy(y->str, ev.data.scalar.value, y->len);
                    y->str[y->len] = '\0';
                    y->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                } else {
                    y->kind = ev.type == YAML_SEQUENCE_START_EVENT ? YN_SEQ : YN_MAP;
                }
                if (depth == 0) {
                    ASSERT(*root == NULL);
                    *root = y;
                } else {
                    ynode_add(stack[depth - 1], y);
                }
                if (y->kind != YN_SCALAR) stack[depth++] = y;
            }
        } else if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) {
            ASSERT(depth > 0);
            depth--;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    if (rc != ERR_OK) {
        ynode_free(*root);
        *root = NULL;
    }
    return rc;
}

/* ---- value parsing -------------------------------------------------------------------------- */

static void describe_node(char *buf, size_t n, const YNode *y)
{
    if (is_null(y)) {
        snprintf(buf, n, "null (no value)");
    } else if (y->kind == YN_SEQ) {
        snprintf(buf, n, "a list");
    } else if (y->kind == YN_MAP) {
        snprintf(buf, n, "a mapping");
    } else {
        char s[2 * KEY_SHOW_MAX + 16];
        show(s, sizeof s, y->str, y->len);
        snprintf(buf, n, "%s\"%s\"", y->plain ? "" : "the quoted string ", s);
    }
}

static void fmt_num(char *buf, size_t n, double v)
{
    if (v == floor(v) && fabs(v) < 1e15) snprintf(buf, n, "%.0f", v);
    else snprintf(buf, n, "%g", v);
}

static void describe_expect(char *buf, size_t n, const Field *f)
{
    char lo[32], hi[32];
    fmt_num(lo, sizeof lo, f->lo);
    fmt_num(hi, sizeof hi, f->hi);
    switch (f->type) {
    case F_INT:
    case F_INTLIST:
        snprintf(buf, n, "%s integer%s in [%s, %s]", f->type == F_INT ? "an" : "a list of",
                 f->type == F_INT ? "" : "s", lo, hi);
        if (f->type == F_INT && (f->fl & FL_EVEN)) strncat(buf, " (even)", n - strlen(buf) - 1);
        break;
    case F_DBL:
        if (f->hi == INF)
            snprintf(buf, n, "a number %s %s", (f->fl & FL_LO_OPEN) ? ">" : ">=", lo);
        else
            snprintf(buf, n, "a number in %c%s, %s%c", (f->fl & FL_LO_OPEN) ? '(' : '[', lo, hi,
                     (f->fl & FL_HI_OPEN) ? ')' : ']');
        break;
    case F_U64: snprintf(buf, n, "an integer in [0, 18446744073709551615]"); break;
    case F_BOOL: snprintf(buf, n, "true or false"); break;
    case F_STR: snprintf(buf, n, "a string"); break;
    case F_STRLIST: snprintf(buf, n, "a list of strings"); break;
    case F_ENUM:
    case F_ENUMLIST: {
        size_t o = (size_t)snprintf(buf, n, "%s", f->type == F_ENUM ? "one of " : "a list of ");
        for (int i = 0; i < f->nnames && o < n; i++)
            o += (size_t)snprintf(buf + o, n - o, "%s%s", i ? ", " : "", f->names[i]);
        break;
    }
    }
}

static int bad_value(const Ctx *c, const Field *f, const YNode *y, const char *path, const char *extra)
{
    char want[512], got[256];
    describe_expect(want, sizeof want, f);
    describe_node(got, sizeof got, y);
    return ctx_err(c, ERR_SPEC, y->line, y->col, "%s: expected %s, got %s%s", path, want, got,
                   extra ? extra : "");
}

/* Plain decimal integer: optional sign, digits, no leading zeros. Returns 0 ok, 1 bad syntax,
 * 2 out of range of long long. */
static int parse_ll(const YNode *y, long long *out)
{
    const char *s = y->str;
    if (y->kind != YN_SCALAR || !y->plain || y->len == 0 || strlen(s) != y->len) return 1;
    size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
    if (i == y->len) return 1;
    if (s[i] == '0' && y->len > i + 1) return 1;
    for (size_t k = i; k < y->len; k++)
        if (!isdigit((unsigned char)s[k])) return 1;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE) return 2;
    *out = v;
    return 0;
}

static int parse_u64(const YNode *y, uint64_t *out)
{
    const char *s = y->str;
    if (y->kind != YN_SCALAR || !y->plain || y->len == 0 || strlen(s) != y->len) return 1;
    size_t i = s[0] == '+' ? 1 : 0;
    if (i == y->len) return 1;
    if (s[i] == '0' && y->len > i + 1) return 1;
    for (size_t k = i; k < y->len; k++)
        if (!isdigit((unsigned char)s[k])) return 1;
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno == ERANGE) return 2;
    *out = (uint64_t)v;
    return 0;
}

/* Decimal floating point (no hex, inf, nan). 0 ok, 1 bad syntax, 2 not finite. */
static int parse_dbl(const YNode *y, double *out)
{
    const char *s = y->str;
    if (y->kind != YN_SCALAR || !y->plain || y->len == 0 || strlen(s) != y->len) return 1;
    int digits = 0;
    for (size_t k = 0; k < y->len; k++) {
        char ch = s[k];
        if (isdigit((unsigned char)ch)) digits = 1;
        else if (!strchr("+-.eE", ch)) return 1;
    }
    if (!digits) return 1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end != s + y->len) return 1;
    if (!isfinite(v)) return 2;
    *out = v;
    return 0;
}

static int in_range(const Field *f, double v)
{
    if (f->fl & FL_LO_OPEN ? !(v > f->lo) : !(v >= f->lo)) return 0;
    if (f->fl & FL_HI_OPEN ? !(v < f->hi) : !(v <= f->hi)) return 0;
    return 1;
}

static int enum_value(const Field *f, const YNode *y)
{
    if (y->kind != YN_SCALAR || strlen(y->str) != y->len) return -1;
    for (int i = 0; i < f->nnames; i++)
        if (!strcmp(y->str, f->names[i])) return i;
    return -1;
}

static int bad_enum(const Ctx *c, const Field *f, const YNode *y, const char *path)
{
    char extra[128] = "";
    if (y->kind == YN_SCALAR) {
        size_t best = (size_t)-1;
        int bi = -1;
        for (int i = 0; i < f->nnames; i++) {
            size_t d = edit_distance(y->str, y->len, f->names[i], strlen(f->names[i]));
            if (d < best) best = d, bi = i;
        }
        if (bi >= 0 && close_enough(best, strlen(f->names[bi])))
            snprintf(extra, sizeof extra, "; did you mean '%s'?", f->names[bi]);
    }
    return bad_value(c, f, y, path, extra);
}

/* Validate a string scalar; on success *out is a new owned copy. */
static int get_string(const Ctx *c, const Field *f, const YNode *y, const char *path, char **out)
{
    char why[256];
    if (y->kind != YN_SCALAR) return bad_value(c, f, y, path, NULL);
    const char *s = is_null(y) ? "" : y->str;
    size_t len = is_null(y) ? 0 : y->len;
    size_t maxlen = f->hi > 0 ? (size_t)f->hi : JOB_MAX_STR;
    if ((f->fl & FL_NONEMPTY) && len == 0)
        return ctx_err(c, ERR_SPEC, y->line, y->col, "%s: expected a non-empty string", path);
    if (len > maxlen)
        return ctx_err(c, ERR_SPEC, y->line, y->col, "%s: string longer than %zu bytes", path, maxlen);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f)
            return ctx_err(c, ERR_SPEC, y->line, y->col,
                           "%s: control character 0x%02x in a string value", path, ch);
    }
    if (f->check && len > 0 && f->check(s, why, sizeof why)) {
        char shown[2 * KEY_SHOW_MAX + 16];
        show(shown, sizeof shown, s, len);
        return ctx_err(c, ERR_SPEC, y->line, y->col, "%s: %s, got \"%s\"", path, why, shown);
    }
    *out = xstrdup(s);
    return ERR_OK;
}

static void free_strlist(char **v, int n)
{
    for (int i = 0; i < n; i++) xfree(v[i]);
    xfree(v);
}

/* Set field fi of c->js from node y (already located). */
static int set_field(const Ctx *c, int fi, const YNode *y)
{
    const Field *f = &g_fields[fi];
    JobSpec *js = c->js;
    const char *path = f->path;
    char ipath[128];
    switch (f->type) {
    case F_STR: {
        char *s = NULL;
        TRY(get_string(c, f, y, path, &s));
        xfree(*VAL(js, f, char *));
        *VAL(js, f, char *) = s;
        break;
    }
    case F_STRLIST: {
        if (y->kind != YN_SEQ && !is_null(y)) return bad_value(c, f, y, path, NULL);
        int n = y->kind == YN_SEQ ? (int)y->n : 0;
        if (y->kind == YN_SEQ && y->n > (size_t)f->maxn)
            return ctx_err(c, ERR_SPEC, y->line, y->col, "%s: at most %d entries, got %zu", path,
                           f->maxn, y->n);
        char **v = n ? xcalloc((size_t)n, sizeof *v) : NULL;
        for (int i = 0; i < n; i++) {
            snprintf(ipath, sizeof ipath, "%s[%d]", path, i);
            const YNode *e = y->kid[i];
            int rc;
            if (is_null(e))
                rc = ctx_err(c, ERR_SPEC, e->line, e->col, "%s: expected a non-empty string", ipath);
            else if (e->kind != YN_SCALAR)
                rc = ctx_err(c, ERR_SPEC, e->line, e->col, "%s: expected a string, got %s", ipath,
                             e->kind == YN_SEQ ? "a list" : "a mapping");
            else
                rc = get_string(c, f, e, ipath, &v[i]);
            if (rc != ERR_OK) {
                free_strlist(v, n);
                return rc;
            }
        }
        free_strlist(*VAL(js, f, char **), *CNT(js, f));
        *VAL(js, f, char **) = v;
        *CNT(js, f) = n;
        break;
    }
    case F_INT: {
        long long v = 0;
        int r = parse_ll(y, &v);
        if (r == 0 && (!in_range(f, (double)v) || ((f->fl & FL_EVEN) && (v & 1))))
            r = 2;
        if (r) return bad_value(c, f, y, path, r == 2 ? " (out of range)" : NULL);
        *VAL(js, f, int) = (int)v;
        break;
    }
    case F_U64: {
        uint64_t v = 0;
        int r = parse_u64(y, &v);
        if (r) return bad_value(c, f, y, path, r == 2 ? " (out of range)" : NULL);
        *VAL(js, f, uint64_t) = v;
        break;
    }
    case F_DBL: {
        double v = 0;
        int r = parse_dbl(y, &v);
        if (r == 0 && !in_range(f, v)) r = 2;
        if (r) return bad_value(c, f, y, path, r == 2 ? " (out of range)" : NULL);
        *VAL(js, f, double) = v;
        break;
    }
    case F_BOOL: {
        if (y->kind != YN_SCALAR || !y->plain) return bad_value(c, f, y, path, NULL);
        if (!strcmp(y->str, "true") || !strcmp(y->str, "True") || !strcmp(y->str, "TRUE"))
            *VAL(js, f, bool) = true;
        else if (!strcmp(y->str, "false") || !strcmp(y->str, "False") || !strcmp(y->str, "FALSE"))
            *VAL(js, f, bool) = false;
        else
            return bad_value(c, f, y, path, NULL);
        break;
    }
    case F_ENUM: {
        int v = enum_value(f, y);
        if (v < 0) return bad_enum(c, f, y, path);
        *VAL(js, f, int) = v;
        break;
    }
    case F_INTLIST:
    case F_ENUMLIST: {
        if (y->kind != YN_SEQ) return bad_value(c, f, y, path, NULL);
        if (y->n > (size_t)f->maxn)
            return ctx_err(c, ERR_SPEC, y->line, y->col, "%s: at most %d entries, got %zu", path,
                           f->maxn, y->n);
        if ((f->fl & FL_NONEMPTY) && y->n == 0)
            return ctx_err(c, ERR_SPEC, y->line, y->col, "%s: expected at least one entry", path);
        int tmp[64];
        for (size_t i = 0; i < y->n; i++) {
            const YNode *e = y->kid[i];
            snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
            if (f->type == F_INTLIST) {
                long long v = 0;
                int r = parse_ll(e, &v);
                if (r == 0 && !in_range(f, (double)v)) r = 2;
                if (r) {
                    Field fe = *f;
                    fe.type = F_INT;
                    return bad_value(c, &fe, e, ipath, r == 2 ? " (out of range)" : NULL);
                }
                tmp[i] = (int)v;
            } else {
                Field fe = *f;
                fe.type = F_ENUM;
                int v = enum_value(f, e);
                if (v < 0) return bad_enum(c, &fe, e, ipath);
                for (size_t j = 0; j < i; j++)
                    if (tmp[j] == v)
                        return ctx_err(c, ERR_SPEC, e->line, e->col, "%s: '%s' is listed twice",
                                       ipath, f->names[v]);
                tmp[i] = v;
            }
        }
        int *dst = VAL(js, f, int);
        for (size_t i = 0; i < y->n; i++) dst[i] = tmp[i];
        *CNT(js, f) = (int)y->n;
        break;
    }
    }
    JobSpecLoc *l = &js->loc[fi];
    if (c->set) {
        l->set = c->set_index;
        l->line = l->col = 0;
    } else {
        l->line = y->line;
        l->col = y->col;
        l->set = 0;
    }
    return ERR_OK;
}

/* ---- the walk ------------------------------------------------------------------------------- */

/* Immediate children of section `prefix` ("" = top level), each once, into names[]. */
static int children(const char *prefix, const char **names, size_t *lens, int cap)
{
    size_t pl = strlen(prefix);
    int n = 0;
    for (size_t i = 0; i < NFIELDS; i++) {
        const char *p = g_fields[i].path;
        if (pl) {
            if (strncmp(p, prefix, pl) || p[pl] != '.') continue;
            p += pl + 1;
        }
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        int dup = 0;
        for (int k = 0; k < n; k++)
            if (lens[k] == l && !memcmp(names[k], p, l)) dup = 1;
        if (!dup && n < cap) {
            names[n] = p;
            lens[n] = l;
            n++;
        }
    }
    return n;
}

static int unknown_key(const Ctx *c, const char *prefix, const YNode *k)
{
    const char *names[64];
    size_t lens[64];
    int n = children(prefix, names, lens, 64);
    size_t best = (size_t)-1;
    int bi = -1;
    for (int i = 0; i < n; i++) {
        size_t d = edit_distance(k->str, k->len, names[i], lens[i]);
        if (d < best) best = d, bi = i;
    }
    char shown[2 * KEY_SHOW_MAX + 16], where[96], tail[1024];
    show(shown, sizeof shown, k->str, k->len);
    if (*prefix) snprintf(where, sizeof where, "in section '%s'", prefix);
    else snprintf(where, sizeof where, "at top level");
    if (bi >= 0 && close_enough(best, lens[bi])) {
        snprintf(tail, sizeof tail, "; did you mean '%.*s'?", (int)lens[bi], names[bi]);
    } else {
        size_t o = (size_t)snprintf(tail, sizeof tail, "; valid keys: ");
        for (int i = 0; i < n && o < sizeof tail; i++)
            o += (size_t)snprintf(tail + o, sizeof tail - o, "%s%.*s", i ? ", " : "", (int)lens[i],
                                  names[i]);
    }
    return ctx_err(c, ERR_SPEC, k->line, k->col, "unknown key '%s' %s%s", shown, where, tail);
}

static int walk_map(const Ctx *c, const YNode *map, const char *prefix)
{
    char full[128];
    size_t pl = strlen(prefix);
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const YNode *k = map->kid[i], *v = map->kid[i + 1];
        if (k->kind != YN_SCALAR || is_null(k)) {
            char got[256];
            describe_node(got, sizeof got, k);
            return ctx_err(c, ERR_SPEC, k->line, k->col, "expected a key name %s%s, got %s",
                           *prefix ? "in section " : "at top level", prefix, got);
        }
        for (size_t j = 0; j < i; j += 2) {
            const YNode *o = map->kid[j];
            if (o->len == k->len && !memcmp(o->str, k->str, k->len)) {
                char shown[2 * KEY_SHOW_MAX + 16];
                show(shown, sizeof shown, k->str, k->len);
                return ctx_err(c, ERR_SPEC, k->line, k->col,
                               "%s%s%s: duplicate key (first given at line %d, column %d)", prefix,
                               pl ? "." : "", shown, o->line, o->col);
            }
        }
        if (memchr(k->str, '.', k->len)) {
            char shown[2 * KEY_SHOW_MAX + 16];
            show(shown, sizeof shown, k->str, k->len);
            return ctx_err(c, ERR_SPEC, k->line, k->col,
                           "key '%s' contains '.'; dotted paths are for --set, in a file nest the "
                           "key under its section", shown);
        }
        if (pl + 1 + k->len >= sizeof full || strlen(k->str) != k->len) return unknown_key(c, prefix, k);
        if (pl) snprintf(full, sizeof full, "%s.%s", prefix, k->str);
        else snprintf(full, sizeof full, "%s", k->str);
        int fi = field_index(full, strlen(full));
        if (fi >= 0) {
            TRY(set_field(c, fi, v));
        } else if (is_section(full, strlen(full))) {
            if (is_null(v)) continue; /* "train:" with nothing under it: all defaults */
            if (v->kind != YN_MAP) {
                char got[256];
                describe_node(got, sizeof got, v);
                return ctx_err(c, ERR_SPEC, v->line, v->col, "%s: expected a mapping (a section), got %s",
                               full, got);
            }
            TRY(walk_map(c, v, full));
        } else {
            return unknown_key(c, prefix, k);
        }
    }
    return ERR_OK;
}

/* ---- string checks -------------------------------------------------------------------------- */

static int check_name(const char *s, char *why, size_t nwhy)
{
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._-", *p)) {
            snprintf(why, nwhy, "expected letters, digits, '.', '_' or '-'");
            return 1;
        }
    if (s[0] == '.' || s[0] == '-') {
        snprintf(why, nwhy, "must not start with '.' or '-'");
        return 1;
    }
    return 0;
}

static int check_url(const char *s, char *why, size_t nwhy)
{
    static const char *const schemes[] = {"http://", "https://", "file://"};
    for (size_t i = 0; i < 3; i++) {
        size_t l = strlen(schemes[i]);
        if (!strncmp(s, schemes[i], l) && s[l]) {
            for (const char *p = s; *p; p++)
                if (*p == ' ') {
                    snprintf(why, nwhy, "a URL must not contain spaces");
                    return 1;
                }
            return 0;
        }
    }
    snprintf(why, nwhy, "expected a URL starting with http://, https:// or file://");
    return 1;
}

/* Digits only, 1..maxd of them, value <= maxv. */
static int num_field(const char *s, size_t len, size_t maxd, long maxv, long *out)
{
    if (len == 0 || len > maxd) return 1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i])) return 1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > maxv) return 1;
    *out = v;
    return 0;
}

static int check_time(const char *s, char *why, size_t nwhy)
{
    long d = 0, h = 0, m = 0, sec = 0;
    const char *p = s, *dash = strchr(s, '-');
    int ok = 1;
    if (dash) {
        ok = !num_field(p, (size_t)(dash - p), 3, 365, &d);
        p = dash + 1;
    }
    const char *c1 = strchr(p, ':');
    const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (ok && c1 && c2 && !strchr(c2 + 1, ':')) {
        ok = !num_field(p, (size_t)(c1 - p), dash ? 2 : 4, dash ? 23 : 9999, &h) &&
             !num_field(c1 + 1, (size_t)(c2 - c1 - 1), 2, 59, &m) &&
             !num_field(c2 + 1, strlen(c2 + 1), 2, 59, &sec);
    } else {
        ok = 0;
    }
    if (ok && d + h + m + sec == 0) ok = 0;
    if (!ok) snprintf(why, nwhy, "expected a time limit HH:MM:SS or D-HH:MM:SS (not zero)");
    return !ok;
}

static int check_signal(const char *s, char *why, size_t nwhy)
{
    static const char *const sigs[] = {"USR1", "USR2", "TERM", "INT", "HUP", "QUIT", "CONT"};
    const char *p = s;
    if (!strncmp(p, "B:", 2)) p += 2;
    if (!strncmp(p, "SIG", 3)) p += 3;
    const char *at = strchr(p, '@');
    long secs;
    int ok = 0;
    if (at) {
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
            if (strlen(sigs[i]) == (size_t)(at - p) && !strncmp(p, sigs[i], (size_t)(at - p))) ok = 1;
        if (ok) ok = !num_field(at + 1, strlen(at + 1), 5, 65535, &secs);
    }
    if (!ok)
        snprintf(why, nwhy, "expected [B:]SIGNAL@SECONDS with SIGNAL one of USR1, USR2, TERM, INT, "
                            "HUP, QUIT, CONT (e.g. USR1@300)");
    return !ok;
}

static int check_mem(const char *s, char *why, size_t nwhy)
{
    size_t n = strlen(s), i = 0;
    while (i < n && isdigit((unsigned char)s[i])) i++;
    int ok = i > 0 && i <= 9 && (i == n || (i + 1 == n && strchr("KMGT", s[i])));
    if (!ok) snprintf(why, nwhy, "expected a Slurm memory size like 16G, 4000M or 0");
    return !ok;
}

static int check_sbatch(const char *s, char *why, size_t nwhy)
{
    if (s[0] != '-') {
        snprintf(why, nwhy, "expected an sbatch option starting with '-' (written after #SBATCH)");
        return 1;
    }
    return 0;
}

/* ---- defaults and derived values ------------------------------------------------------------ */

static int explicit_key(const JobSpec *js, int fi) { return js->loc[fi].line > 0 || js->loc[fi].set > 0; }

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = xmalloc(la + lb + 1);
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

static void set_derived_str(JobSpec *js, const char *key, const char *a, const char *b)
{
    int fi = key_of(key);
    if (explicit_key(js, fi)) return;
    char **dst = VAL(js, &g_fields[fi], char *);
    xfree(*dst);
    *dst = join(a, b);
}

#define DERIVE(key, lvalue, value) \
    do { if (!explicit_key(js, key_of(key))) (lvalue) = (value); } while (0)

/* Recompute every derived value that was not set explicitly. */
static void resolve(JobSpec *js)
{
    JobData *d = &js->data;
    switch (d->dataset) {
    case JOB_DATA_FASHION_MNIST:
    case JOB_DATA_MNIST: d->img_channels = 1, d->img_size = 28, d->n_labels = 10; break;
    case JOB_DATA_CIFAR10: d->img_channels = 3, d->img_size = 32, d->n_labels = 10; break;
    case JOB_DATA_TOY2D: d->img_channels = 0, d->img_size = 0, d->n_labels = 0; break;
    }
    d->data_dim = d->dataset == JOB_DATA_TOY2D ? 2 : d->img_channels * d->img_size * d->img_size;

    set_derived_str(js, "run.out_dir", "runs/", js->run.name);
    set_derived_str(js, "checkpoint.dir", js->run.out_dir, "/ckpt");
    set_derived_str(js, "sample.out", js->run.out_dir,
                    d->dataset == JOB_DATA_TOY2D ? "/samples.csv" : "/samples.png");
    set_derived_str(js, "slurm.job_name", "", js->run.name);
    set_derived_str(js, "slurm.output", js->run.out_dir, "/slurm-%j.out");

    DERIVE("model.num_classes", js->model.num_classes, d->conditional ? d->n_labels : 0);
    DERIVE("model.unet.temb_dim", js->model.unet.temb_dim, js->model.unet.channels + (js->model.unet.channels & 1));
    DERIVE("model.unet.temb_hidden", js->model.unet.temb_hidden, 4 * js->model.unet.channels);

    JobTrain *t = &js->train;
    int per_pass = t->batch % t->grad_accum == 0 ? t->batch / t->grad_accum : t->batch;
    int mb = 1;
    for (int k = 16; k >= 1; k--)
        if (per_pass % k == 0) {
            mb = k;
            break;
        }
    DERIVE("train.micro_batch", t->micro_batch, mb);

    JobSample *s = &js->sample;
    DERIVE("sample.sampler", s->sampler,
           js->objective.type == JOB_OBJ_DDPM ? JOB_SAMPLER_DDIM : JOB_SAMPLER_EULER);
    int T = js->objective.ddpm.timesteps;
    int steps = 50;
    if (js->objective.type == JOB_OBJ_DDPM) steps = s->sampler == JOB_SAMPLER_DDPM ? T : (T < 50 ? T : 50);
    DERIVE("sample.steps", s->steps, steps);
    /* uniform spacing starts at t = 1 + (S-1) T/S, where the cosine schedule still leaves
     * sqrt(abar) = 3.0% of the signal (S = 50; 1.4% at S = 100) while x_T is pure noise;
     * trailing spacing starts at t = T (jobs/README.md) */
    DERIVE("sample.timesteps", s->timesteps,
           js->objective.type == JOB_OBJ_DDPM && js->objective.ddpm.schedule == JOB_BETAS_COSINE
               ? JOB_TS_TRAILING
               : JOB_TS_UNIFORM);
    DERIVE("sample.clip_x0", s->clip_x0, d->dataset != JOB_DATA_TOY2D);
    DERIVE("sample.seed", s->seed, js->run.seed);
    DERIVE("sample.use_ema", s->use_ema, t->ema.decay > 0);
}

int jobspec_defaults(JobSpec *js)
{
    memset(js, 0, sizeof *js);
    js->loc = xcalloc(NFIELDS, sizeof *js->loc);

    js->run.name = xstrdup("dfm");
    js->run.seed = 0;

    js->data.dataset = JOB_DATA_FASHION_MNIST;
    js->data.toy = JOB_TOY_MOONS;
    js->data.toy_size = 65536;
    js->data.dir = xstrdup("data");
    js->data.flip = false;
    js->data.conditional = false;
    js->data.drop_last = true;

    JobModel *m = &js->model;
    m->type = JOB_MODEL_UNET;
    m->unet.channels = 64;
    m->unet.n_ch_mult = 3;
    m->unet.ch_mult[0] = 1, m->unet.ch_mult[1] = 2, m->unet.ch_mult[2] = 2;
    m->unet.num_res_blocks = 2;
    m->unet.n_attn = 0;
    m->unet.heads = 1;
    m->unet.dropout = 0.1;
    m->unet.groups = 32;
    m->mlp.hidden = 256;
    m->mlp.layers = 4;
    m->mlp.temb_dim = 64;

    JobObjective *o = &js->objective;
    o->type = JOB_OBJ_DDPM;
    o->label_dropout = 0;
    o->ddpm.schedule = JOB_BETAS_LINEAR;
    o->ddpm.timesteps = 1000;
    o->ddpm.beta_start = 1e-4;
    o->ddpm.beta_end = 0.02;
    o->ddpm.cosine_s = 0.008;
    o->ddpm.prediction = JOB_PRED_EPS;
    o->flow.sigma_min = 0;
    o->flow.t_sampling = JOB_TSAMP_UNIFORM;
    o->flow.logit_mean = 0;
    o->flow.logit_std = 1;

    JobTrain *t = &js->train;
    t->batch = 64;
    t->steps = 10000;
    t->optimizer = JOB_OPT_ADAM;
    t->lr = 2e-4;
    t->beta1 = 0.9;
    t->beta2 = 0.999;
    t->eps = 1e-8;
    t->weight_decay = 0;
    t->warmup = 0;
    t->lr_schedule = JOB_LR_CONSTANT;
    t->min_lr = 0;
    t->grad_clip = 1.0;
    t->grad_accum = 1;
    t->ema.decay = 0.9999;
    t->ema.warmup = false;
    t->ema.start = 0;
    t->threads = 0;
    t->reduce = JOB_REDUCE_DETERMINISTIC;
    t->zero1 = false;
    t->log_every = 100;
    t->sample_every = 0;
    t->sample_count = 64;
    t->check_every = 1000;
    t->max_nonfinite = 5;

    js->checkpoint.every = 1000;
    js->checkpoint.keep = 3;
    js->checkpoint.keep_every = 0;
    js->checkpoint.async = false;
    js->checkpoint.resume = JOB_RESUME_AUTO;

    JobSample *s = &js->sample;
    s->eta = 0;
    s->variance = JOB_VAR_BETA_TILDE;
    s->guidance = 1.0;
    s->label = -1;
    s->count = 64;
    s->batch = 64;

    js->eval.every = 0;
    js->eval.count = 1000;
    js->eval.batch = 256;
    js->eval.n_metrics = 1;
    js->eval.metrics[0] = JOB_METRIC_SWD;

    JobSlurm *sl = &js->slurm;
    sl->partition = xstrdup("");
    sl->account = xstrdup("");
    sl->qos = xstrdup("");
    sl->mem = xstrdup("");
    sl->nodes = 1;
    sl->ntasks_per_node = 1;
    sl->cpus_per_task = 1;
    sl->time = xstrdup("01:00:00");
    sl->signal = xstrdup("USR1@300");
    sl->requeue = true;
    sl->launcher = JOB_LAUNCH_SRUN;

    resolve(js);
    return ERR_OK;
}

/* ---- cross-field checks --------------------------------------------------------------------- */

static void loc_text(const JobSpec *js, int fi, char *buf, size_t n)
{
    const JobSpecLoc *l = js->loc ? &js->loc[fi] : NULL;
    if (l && l->set > 0 && l->set <= js->n_sets) {
        char s[2 * KEY_SHOW_MAX + 16];
        show(s, sizeof s, js->sets[l->set - 1], strlen(js->sets[l->set - 1]));
        snprintf(buf, n, "--set %s", s);
    } else if (l && l->line > 0) {
        snprintf(buf, n, "%s:%d:%d", js->file ? js->file : "<spec>", l->line, l->col);
    } else {
        snprintf(buf, n, "%s:1:1", js->file ? js->file : "<defaults>");
    }
}

/* Report at key a when it was set explicitly, else at b when that was, else at a. */
static int xerr(const JobSpec *js, const char *a, const char *b, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int xerr(const JobSpec *js, const char *a, const char *b, const char *fmt, ...)
{
    int fa = key_of(a), fi = fa;
    if (js->loc && !explicit_key(js, fa) && b && explicit_key(js, key_of(b))) fi = key_of(b);
    char where[512], msg[ERR_MSG_MAX];
    loc_text(js, fi, where, sizeof where);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ERR(ERR_SPEC, "%s: %s: %s", where, g_fields[fi].path, msg);
}

static int check_inactive(const JobSpec *js)
{
    static const struct { const char *prefix, *selector; int active_when; } subs[] = {
        {"model.unet.", "model.type", JOB_MODEL_UNET},
        {"model.mlp.", "model.type", JOB_MODEL_MLP},
        {"objective.ddpm.", "objective.type", JOB_OBJ_DDPM},
        {"objective.flow.", "objective.type", JOB_OBJ_FLOW},
    };
    if (!js->loc) return ERR_OK;
    for (size_t s = 0; s < sizeof subs / sizeof subs[0]; s++) {
        int sel = key_of(subs[s].selector);
        int cur = *CVAL(js, &g_fields[sel], int);
        if (cur == subs[s].active_when) continue;
        size_t pl = strlen(subs[s].prefix);
        for (size_t i = 0; i < NFIELDS; i++) {
            if (strncmp(g_fields[i].path, subs[s].prefix, pl) || !explicit_key(js, (int)i)) continue;
            char where[512];
            loc_text(js, (int)i, where, sizeof where);
            return ERR(ERR_SPEC, "%s: %s: only applies when %s is %s, but it is %s", where,
                       g_fields[i].path, subs[s].selector, g_fields[sel].names[subs[s].active_when],
                       g_fields[sel].names[cur]);
        }
    }
    return ERR_OK;
}

int jobspec_check(const JobSpec *js)
{
    const JobData *d = &js->data;
    const JobModel *m = &js->model;
    const JobObjective *o = &js->objective;
    const JobTrain *t = &js->train;
    const JobSample *s = &js->sample;
    const int toy = d->dataset == JOB_DATA_TOY2D;

    TRY(check_inactive(js));

    /* data */
    if (toy && d->flip) return xerr(js, "data.flip", "data.dataset", "flip needs an image dataset");
    if (d->conditional && d->n_labels == 0)
        return xerr(js, "data.conditional", "data.dataset", "dataset %s has no class labels",
                    k_dataset[d->dataset]);

    /* model */
    if (toy && m->type != JOB_MODEL_MLP)
        return xerr(js, "model.type", "data.dataset", "dataset toy2d needs model.type mlp");
    if (!toy && m->type == JOB_MODEL_MLP)
        return xerr(js, "model.type", "data.dataset", "model.type mlp needs data.dataset toy2d");
    if (d->conditional && m->num_classes != d->n_labels)
        return xerr(js, "model.num_classes", "data.conditional",
                    "must be %d (the classes of %s) for a conditional model", d->n_labels,
                    k_dataset[d->dataset]);
    if (!d->conditional && m->num_classes != 0)
        return xerr(js, "model.num_classes", "data.conditional",
                    "must be 0 when data.conditional is false");
    if (m->type == JOB_MODEL_UNET) {
        const JobUNet *u = &m->unet;
        int levels = u->n_ch_mult;
        if (d->img_size % (1 << (levels - 1)))
            return xerr(js, "model.unet.ch_mult", NULL,
                        "%d levels halve the image %d times, but the image size %d is not divisible "
                        "by %d", levels, levels - 1, d->img_size, 1 << (levels - 1));
        for (int i = 0; i < levels; i++) {
            long ch = (long)u->channels * u->ch_mult[i];
            if (ch > 65536)
                return xerr(js, "model.unet.ch_mult", "model.unet.channels",
                            "level %d has %ld channels (at most 65536)", i, ch);
            if (ch % u->groups)
                return xerr(js, "model.unet.groups", "model.unet.channels",
                            "%d groups do not divide the %ld channels of level %d", u->groups, ch, i);
        }
        long mid = (long)u->channels * u->ch_mult[levels - 1];
        if (mid % u->heads)
            return xerr(js, "model.unet.heads", "model.unet.channels",
                        "%d heads do not divide the %ld channels of the middle block", u->heads, mid);
        for (int a = 0; a < u->n_attn; a++) {
            int r = u->attn_resolutions[a], lvl = -1;
            for (int i = 0; i < levels; i++)
                if (d->img_size >> i == r) lvl = i;
            for (int b = 0; b < a; b++)
                if (u->attn_resolutions[b] == r)
                    return xerr(js, "model.unet.attn_resolutions", NULL, "%d is listed twice", r);
            if (lvl < 0) {
                char lv[128];
                size_t off = 0;
                for (int i = 0; i < levels; i++)
                    off += (size_t)snprintf(lv + off, sizeof lv - off, "%s%d", i ? ", " : "",
                                            d->img_size >> i);
                return xerr(js, "model.unet.attn_resolutions", NULL,
                            "resolution %d is not reached; the levels are %s", r, lv);
            }
            long ch = (long)u->channels * u->ch_mult[lvl];
            if (ch % u->heads)
                return xerr(js, "model.unet.heads", NULL,
                            "%d heads do not divide the %ld channels at resolution %d", u->heads, ch, r);
        }
        if (u->temb_dim & 1)
            return xerr(js, "model.unet.temb_dim", "model.unet.channels", "must be even, got %d",
                        u->temb_dim);
    }

    /* objective */
    if (o->label_dropout > 0 && !d->conditional)
        return xerr(js, "objective.label_dropout", "data.conditional",
                    "label dropout needs data.conditional: true");
    if (o->type == JOB_OBJ_DDPM && o->ddpm.schedule == JOB_BETAS_LINEAR &&
        o->ddpm.beta_start > o->ddpm.beta_end)
        return xerr(js, "objective.ddpm.beta_end", "objective.ddpm.beta_start",
                    "beta_end (%g) must be >= beta_start (%g)", o->ddpm.beta_end, o->ddpm.beta_start);

    /* train */
    if (t->batch % t->grad_accum)
        return xerr(js, "train.grad_accum", "train.batch", "%d does not divide train.batch (%d)",
                    t->grad_accum, t->batch);
    int per_pass = t->batch / t->grad_accum;
    if (per_pass % t->micro_batch)
        return xerr(js, "train.micro_batch", "train.batch",
                    "%d does not divide the per-pass batch %d (train.batch %d / train.grad_accum %d)",
                    t->micro_batch, per_pass, t->batch, t->grad_accum);
    if (t->warmup > t->steps)
        return xerr(js, "train.warmup", "train.steps", "%d warm-up steps exceed train.steps (%d)",
                    t->warmup, t->steps);
    if (t->min_lr > t->lr)
        return xerr(js, "train.min_lr", "train.lr", "min_lr (%g) exceeds lr (%g)", t->min_lr, t->lr);
    if (t->ema.start > t->steps)
        return xerr(js, "train.ema.start", "train.steps", "%d exceeds train.steps (%d)", t->ema.start,
                    t->steps);

    /* sample */
    int ddpm_family = s->sampler <= JOB_SAMPLER_DPMPP2M;
    if (o->type == JOB_OBJ_DDPM && !ddpm_family)
        return xerr(js, "sample.sampler", "objective.type",
                    "sampler %s is for objective flow; use ddpm, ddim or dpmpp2m", k_sampler[s->sampler]);
    if (o->type == JOB_OBJ_FLOW && ddpm_family)
        return xerr(js, "sample.sampler", "objective.type",
                    "sampler %s is for objective ddpm; use euler, midpoint, heun or rk4",
                    k_sampler[s->sampler]);
    if (o->type == JOB_OBJ_DDPM && s->steps > o->ddpm.timesteps)
        return xerr(js, "sample.steps", "objective.ddpm.timesteps",
                    "%d sampling steps exceed objective.ddpm.timesteps (%d)", s->steps,
                    o->ddpm.timesteps);
    if (o->type == JOB_OBJ_FLOW && s->timesteps == JOB_TS_TRAILING)
        return xerr(js, "sample.timesteps", "objective.type", "trailing spacing is for objective ddpm");
    if (s->guidance != 1.0 && o->label_dropout <= 0)
        return xerr(js, "sample.guidance", "objective.label_dropout",
                    "guidance %g needs a model trained with objective.label_dropout > 0 (and "
                    "data.conditional: true); use 1 for no guidance", s->guidance);
    if (s->label >= 0 && !d->conditional)
        return xerr(js, "sample.label", "data.conditional", "a class label needs data.conditional: true");
    if (s->label >= m->num_classes && d->conditional)
        return xerr(js, "sample.label", NULL, "%d is not a class of %s (0..%d)", s->label,
                    k_dataset[d->dataset], m->num_classes - 1);
    if (s->use_ema && t->ema.decay <= 0)
        return xerr(js, "sample.use_ema", "train.ema.decay", "needs train.ema.decay > 0");

    /* eval */
    for (int i = 0; i < js->eval.n_metrics; i++) {
        JobMetric mt = js->eval.metrics[i];
        if (mt == JOB_METRIC_FID_FMNIST && d->dataset != JOB_DATA_FASHION_MNIST)
            return xerr(js, "eval.metrics", "data.dataset", "fid_fmnist needs data.dataset fashion-mnist");
        if (mt == JOB_METRIC_SPECTRUM && toy)
            return xerr(js, "eval.metrics", "data.dataset", "spectrum needs an image dataset");
    }
    return ERR_OK;
}

/* ---- copy, equal, free ---------------------------------------------------------------------- */

static char **dup_strlist(char *const *v, int n)
{
    if (n == 0) return NULL;
    char **o = xcalloc((size_t)n, sizeof *o);
    for (int i = 0; i < n; i++) o[i] = xstrdup(v[i]);
    return o;
}

void jobspec_copy(JobSpec *dst, const JobSpec *src)
{
    *dst = *src;
    for (size_t i = 0; i < NFIELDS; i++) {
        const Field *f = &g_fields[i];
        if (f->type == F_STR) {
            const char *s = *CVAL(src, f, Str);
            *VAL(dst, f, char *) = s ? xstrdup(s) : NULL;
        } else if (f->type == F_STRLIST) {
            *VAL(dst, f, char **) = dup_strlist(*CVAL(src, f, StrList), *CCNT(src, f));
        }
    }
    dst->file = src->file ? xstrdup(src->file) : NULL;
    if (src->loc) {
        dst->loc = xmalloc(NFIELDS * sizeof *dst->loc);
        memcpy(dst->loc, src->loc, NFIELDS * sizeof *dst->loc);
    }
    dst->sets = dup_strlist(src->sets, src->n_sets);
}

static int str_eq(const char *a, const char *b)
{
    return (a ? a : "")[0] == (b ? b : "")[0] && !strcmp(a ? a : "", b ? b : "");
}

int jobspec_equal(const JobSpec *a, const JobSpec *b)
{
    for (size_t i = 0; i < NFIELDS; i++) {
        const Field *f = &g_fields[i];
        switch (f->type) {
        case F_STR:
            if (!str_eq(*CVAL(a, f, Str), *CVAL(b, f, Str))) return 0;
            break;
        case F_STRLIST: {
            int n = *CCNT(a, f);
            if (n != *CCNT(b, f)) return 0;
            for (int k = 0; k < n; k++)
                if (!str_eq((*CVAL(a, f, StrList))[k], (*CVAL(b, f, StrList))[k])) return 0;
            break;
        }
        case F_INT:
        case F_ENUM:
            if (*CVAL(a, f, int) != *CVAL(b, f, int)) return 0;
            break;
        case F_U64:
            if (*CVAL(a, f, uint64_t) != *CVAL(b, f, uint64_t)) return 0;
            break;
        case F_DBL:
            if (*CVAL(a, f, double) != *CVAL(b, f, double)) return 0;
            break;
        case F_BOOL:
            if (*CVAL(a, f, bool) != *CVAL(b, f, bool)) return 0;
            break;
        case F_INTLIST:
        case F_ENUMLIST: {
            int n = *CCNT(a, f);
            if (n != *CCNT(b, f)) return 0;
            for (int k = 0; k < n; k++)
                if (CVAL(a, f, int)[k] != CVAL(b, f, int)[k]) return 0;
            break;
        }
        }
    }
    return 1;
}

void jobspec_free(JobSpec *js)
{
    if (!js) return;
    for (size_t i = 0; i < NFIELDS; i++) {
        const Field *f = &g_fields[i];
        if (f->type == F_STR) {
            xfree(*VAL(js, f, char *));
        } else if (f->type == F_STRLIST) {
            free_strlist(*VAL(js, f, char **), *CNT(js, f));
        }
    }
    xfree(js->file);
    xfree(js->loc);
    free_strlist(js->sets, js->n_sets);
    memset(js, 0, sizeof *js);
}

/* ---- loading -------------------------------------------------------------------------------- */

/* Parse and apply one "path=value" onto js (no resolve, no cross-check). */
static int apply_set(JobSpec *js, const char *assignment)
{
    Ctx c = {.file = NULL, .set = assignment, .js = js, .set_index = js->n_sets + 1};
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return ctx_err(&c, ERR_SPEC, 0, 0, "expected section.key=value");
    size_t plen = (size_t)(eq - assignment);
    int fi = field_index(assignment, plen);
    if (fi < 0) {
        char shown[2 * KEY_SHOW_MAX + 16];
        show(shown, sizeof shown, assignment, plen);
        if (is_section(assignment, plen))
            return ctx_err(&c, ERR_SPEC, 0, 0, "'%s' is a section; set one of its keys (section.key=value)",
                           shown);
        size_t best = (size_t)-1;
        int bi = -1;
        for (size_t i = 0; i < NFIELDS; i++) {
            size_t dd = edit_distance(assignment, plen, g_fields[i].path, strlen(g_fields[i].path));
            if (dd < best) best = dd, bi = (int)i;
        }
        if (bi >= 0 && close_enough(best, strlen(g_fields[bi].path)))
            return ctx_err(&c, ERR_SPEC, 0, 0, "unknown key '%s'; did you mean '%s'?", shown,
                           g_fields[bi].path);
        return ctx_err(&c, ERR_SPEC, 0, 0, "unknown key '%s' (see jobs/README.md for the keys)", shown);
    }
    const char *val = eq + 1;
    size_t vlen = strlen(val);
    if (vlen > JOB_MAX_STR * 2) return ctx_err(&c, ERR_SPEC, 0, 0, "value too long");
    YNode *root = NULL;
    int rc = yaml_tree(&c, val, vlen, &root);
    if (rc != ERR_OK) return rc;
    YNode empty = {.kind = YN_SCALAR, .line = 1, .col = 1, .str = (char *)"", .len = 0, .plain = 1};
    rc = set_field(&c, fi, root ? root : &empty);
    ynode_free(root);
    if (rc != ERR_OK) return rc;
    js->sets = xrealloc(js->sets, (size_t)(js->n_sets + 1) * sizeof *js->sets);
    js->sets[js->n_sets++] = xstrdup(assignment);
    return ERR_OK;
}

static int load_text(JobSpec *js, const char *text, size_t len, const char *name,
                     const char *const *sets, int n_sets)
{
    Ctx c = {.file = name, .set = NULL, .js = js, .set_index = 0};
    TRY(jobspec_defaults(js));
    js->file = xstrdup(name);
    if (len > JOBSPEC_MAX_BYTES)
        return ctx_err(&c, ERR_PARSE, 1, 1, "job spec larger than %u bytes", JOBSPEC_MAX_BYTES);
    YNode *root = NULL;
    TRY(yaml_tree(&c, text, len, &root));
    int rc = ERR_OK;
    if (!root) {
        rc = ctx_err(&c, ERR_SPEC, 1, 1, "empty job spec; expected a mapping of sections (run, data, "
                                         "model, objective, train, ...)");
    } else if (root->kind != YN_MAP) {
        char got[256];
        describe_node(got, sizeof got, root);
        rc = ctx_err(&c, ERR_SPEC, root->line, root->col,
                     "expected a mapping of sections (run, data, model, ...) at top level, got %s", got);
    } else {
        rc = walk_map(&c, root, "");
    }
    ynode_free(root);
    if (rc != ERR_OK) return rc;
    for (int i = 0; i < n_sets; i++) TRY(apply_set(js, sets[i]));
    resolve(js);
    TRY(jobspec_check(js));
    return ERR_OK;
}

int jobspec_load_string(JobSpec *js, const char *text, size_t len, const char *name)
{
    int rc = load_text(js, text, len, name ? name : "<string>", NULL, 0);
    if (rc != ERR_OK) jobspec_free(js);
    return rc;
}

int jobspec_load_with(JobSpec *js, const char *path, const char *const *sets, int n_sets)
{
    memset(js, 0, sizeof *js);
    FILE *f = fopen(path, "rb");
    if (!f) return ERR(ERR_IO, "cannot open job spec '%s': %s", path, strerror(errno));
    char *buf = xmalloc(JOBSPEC_MAX_BYTES + 1);
    size_t n = fread(buf, 1, JOBSPEC_MAX_BYTES + 1, f);
    int rd_err = ferror(f), e = errno;
    fclose(f);
    if (rd_err) {
        xfree(buf);
        return ERR(ERR_IO, "cannot read job spec '%s': %s", path, strerror(e));
    }
    int rc = load_text(js, buf, n, path, sets, n_sets);
    xfree(buf);
    if (rc != ERR_OK) jobspec_free(js);
    return rc;
}

int jobspec_load(JobSpec *js, const char *path) { return jobspec_load_with(js, path, NULL, 0); }

int jobspec_set(JobSpec *js, const char *assignment)
{
    JobSpec tmp;
    jobspec_copy(&tmp, js);
    if (!tmp.loc) tmp.loc = xcalloc(NFIELDS, sizeof *tmp.loc);
    int rc = apply_set(&tmp, assignment);
    if (rc == ERR_OK) {
        resolve(&tmp);
        rc = jobspec_check(&tmp);
    }
    if (rc != ERR_OK) {
        jobspec_free(&tmp);
        return rc;
    }
    jobspec_free(js);
    *js = tmp;
    return ERR_OK;
}

/* ---- emission ------------------------------------------------------------------------------- */

typedef struct {
    yaml_emitter_t em;
    int ok;
} Emit;

static void emit_ev(Emit *e, yaml_event_t *ev)
{
    if (e->ok && !yaml_emitter_emit(&e->em, ev)) e->ok = 0;
}

static void emit_scalar(Emit *e, const char *s, yaml_scalar_style_t style)
{
    yaml_event_t ev;
    if (!e->ok) return;
    if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)(uintptr_t)s, (int)strlen(s), 1, 1,
                                      style)) {
        e->ok = 0;
        return;
    }
    emit_ev(e, &ev);
}

static void emit_map_start(Emit *e)
{
    yaml_event_t ev;
    if (!e->ok) return;
    yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
    emit_ev(e, &ev);
}

static void emit_end(Emit *e, int map)
{
    yaml_event_t ev;
    if (!e->ok) return;
    if (map) yaml_mapping_end_event_initialize(&ev);
    else yaml_sequence_end_event_initialize(&ev);
    emit_ev(e, &ev);
}

static void emit_seq_start(Emit *e)
{
    yaml_event_t ev;
    if (!e->ok) return;
    yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_FLOW_SEQUENCE_STYLE);
    emit_ev(e, &ev);
}

static void emit_string(Emit *e, const char *s)
{
    static const char *const nullish[] = {"", "~", "null", "Null", "NULL"};
    for (size_t i = 0; i < sizeof nullish / sizeof nullish[0]; i++)
        if (!strcmp(s, nullish[i])) {
            emit_scalar(e, s, YAML_DOUBLE_QUOTED_SCALAR_STYLE);
            return;
        }
    emit_scalar(e, s, YAML_ANY_SCALAR_STYLE);
}

/* Shortest %g form that reads back to exactly v. */
static void fmt_double(char *buf, size_t n, double v)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

static int field_active(const JobSpec *js, const char *path)
{
    if (!strncmp(path, "model.unet.", 11)) return js->model.type == JOB_MODEL_UNET;
    if (!strncmp(path, "model.mlp.", 10)) return js->model.type == JOB_MODEL_MLP;
    if (!strncmp(path, "objective.ddpm.", 15)) return js->objective.type == JOB_OBJ_DDPM;
    if (!strncmp(path, "objective.flow.", 15)) return js->objective.type == JOB_OBJ_FLOW;
    return 1;
}

int jobspec_emit(const JobSpec *js, FILE *out)
{
    Emit e = {.ok = 1};
    yaml_event_t ev;
    if (!yaml_emitter_initialize(&e.em)) return ERR(ERR_NOMEM, "cannot initialise the YAML emitter");
    yaml_emitter_set_output_file(&e.em, out);
    yaml_emitter_set_unicode(&e.em, 1);
    yaml_emitter_set_width(&e.em, -1);
    yaml_emitter_set_indent(&e.em, 2);
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    emit_ev(&e, &ev);
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
    emit_ev(&e, &ev);
    emit_map_start(&e);

    /* open[] holds the currently open section names ("train", "ema"). */
    char open[4][32];
    int nopen = 0;
    char buf[64];
    for (size_t i = 0; i < NFIELDS && e.ok; i++) {
        const Field *f = &g_fields[i];
        if (!field_active(js, f->path)) continue;
        char comp[4][32];
        int nc = 0;
        const char *p = f->path;
        for (;;) {
            const char *dot = strchr(p, '.');
            size_t l = dot ? (size_t)(dot - p) : strlen(p);
            ASSERT(nc < 4 && l < 32);
            memcpy(comp[nc], p, l);
            comp[nc][l] = '\0';
            nc++;
            if (!dot) break;
            p = dot + 1;
        }
        int common = 0; /* sections shared with the open path */
        while (common < nopen && common < nc - 1 && !strcmp(open[common], comp[common])) common++;
        while (nopen > common) {
            emit_end(&e, 1);
            nopen--;
        }
        while (nopen < nc - 1) {
            emit_scalar(&e, comp[nopen], YAML_PLAIN_SCALAR_STYLE);
            emit_map_start(&e);
            snprintf(open[nopen], sizeof open[nopen], "%s", comp[nopen]);
            nopen++;
        }
        emit_scalar(&e, comp[nc - 1], YAML_PLAIN_SCALAR_STYLE);
        switch (f->type) {
        case F_STR: emit_string(&e, *CVAL(js, f, Str) ? *CVAL(js, f, Str) : ""); break;
        case F_STRLIST:
            emit_seq_start(&e);
            for (int k = 0; k < *CCNT(js, f); k++) emit_string(&e, (*CVAL(js, f, StrList))[k]);
            emit_end(&e, 0);
            break;
        case F_INT:
            snprintf(buf, sizeof buf, "%d", *CVAL(js, f, int));
            emit_scalar(&e, buf, YAML_PLAIN_SCALAR_STYLE);
            break;
        case F_U64:
            snprintf(buf, sizeof buf, "%" PRIu64, *CVAL(js, f, uint64_t));
            emit_scalar(&e, buf, YAML_PLAIN_SCALAR_STYLE);
            break;
        case F_DBL:
            fmt_double(buf, sizeof buf, *CVAL(js, f, double));
            emit_scalar(&e, buf, YAML_PLAIN_SCALAR_STYLE);
            break;
        case F_BOOL: emit_scalar(&e, *CVAL(js, f, bool) ? "true" : "false", YAML_PLAIN_SCALAR_STYLE); break;
        case F_ENUM:
            ASSERT(*CVAL(js, f, int) >= 0 && *CVAL(js, f, int) < f->nnames);
            emit_scalar(&e, f->names[*CVAL(js, f, int)], YAML_PLAIN_SCALAR_STYLE);
            break;
        case F_INTLIST:
        case F_ENUMLIST:
            emit_seq_start(&e);
            for (int k = 0; k < *CCNT(js, f); k++) {
                int v = CVAL(js, f, int)[k];
                if (f->type == F_INTLIST) {
                    snprintf(buf, sizeof buf, "%d", v);
                    emit_scalar(&e, buf, YAML_PLAIN_SCALAR_STYLE);
                } else {
                    ASSERT(v >= 0 && v < f->nnames);
                    emit_scalar(&e, f->names[v], YAML_PLAIN_SCALAR_STYLE);
                }
            }
            emit_end(&e, 0);
            break;
        }
    }
    while (nopen-- > 0) emit_end(&e, 1);
    emit_end(&e, 1);
    if (e.ok) {
        yaml_document_end_event_initialize(&ev, 1);
        emit_ev(&e, &ev);
        yaml_stream_end_event_initialize(&ev);
        emit_ev(&e, &ev);
    }
    int ok = e.ok && yaml_emitter_flush(&e.em);
    const char *problem = e.em.problem ? e.em.problem : "write failed";
    yaml_emitter_delete(&e.em);
    if (!ok || ferror(out)) return ERR(ERR_IO, "cannot write the job spec: %s", problem);
    return ERR_OK;
}
