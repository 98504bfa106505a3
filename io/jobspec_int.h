/* io/jobspec_int.h - what the job-spec files share; nothing outside io/jobspec*.c includes it.
 *
 * The job-spec module is four files along its seams:
 *   io/jobspec_keys.c     the schema: one row per key (type, range, default or the rule that
 *                         derives it, one-line meaning, the command that reads it). Adding a key
 *                         is one row here, one member in io/jobspec.h, and the code that reads it.
 *   io/jobspec_yaml.c     the strict YAML layer: text -> a small owned tree (anchors, aliases,
 *                         tags, second documents rejected; depth and size bounded), and the event
 *                         writer used by jobspec_emit. libyaml is used in this file only.
 *   io/jobspec.c          the loader: the tree walked against the schema, --set, emission,
 *                         copy/equal/free, and the key tables of jobs/README.md.
 *   io/jobspec_resolve.c  derived defaults, the inactive-subsection rule, cross-field checks.
 */
#ifndef DFM_IO_JOBSPEC_INT_H
#define DFM_IO_JOBSPEC_INT_H

#include <stddef.h>

#include "io/jobspec.h"

#define KEY_SHOW_MAX 64 /* characters of user text quoted in messages */

/* ---- the schema ----------------------------------------------------------------------------- */

typedef enum { F_STR, F_STRLIST, F_INT, F_U64, F_DBL, F_BOOL, F_ENUM, F_INTLIST, F_ENUMLIST } FType;

enum {
    FL_LO_OPEN = 1u << 0,  /* lower bound excluded */
    FL_HI_OPEN = 1u << 1,  /* upper bound excluded */
    FL_NONEMPTY = 1u << 2, /* string must not be empty; list must have an entry */
    FL_EVEN = 1u << 3,     /* integer must be even */
    FL_PATH = 1u << 4 | FL_NONEMPTY, /* a file or directory: never empty (an unset variable) */
};

/* A string check: 0 when s is fine, else 1 with the expectation written to why. */
typedef int (*StrCheck)(const char *s, char *why, size_t nwhy);

typedef struct {
    /* What the loader needs. */
    const char *path; /* dotted: "train.ema.decay" */
    FType type;
    size_t off;       /* the member in JobSpec */
    size_t noff;      /* lists: the count member */
    int maxn;         /* lists: capacity */
    double lo, hi;    /* numeric range; strings: hi = maximum length in bytes */
    unsigned fl;      /* FL_* */
    const char *const *names; /* choices, indexed by the enum value */
    int nnames;
    StrCheck check;   /* strings and string-list entries */
    /* The default, written exactly once: */
    const char *def;    /* as YAML text ("64", "[1, 2, 2]", "\"\""), parsed like a value in a
                           file; NULL when the default is derived */
    const char *derive; /* derived defaults: the rule in words, computed in jobspec_resolve.c */
    /* What jobs/README.md says (the tables are generated from these rows). */
    const char *allowed; /* replaces the range text generated from lo/hi/names, when set */
    const char *also;    /* a constraint on other keys, appended to the range text */
    const char *doc;     /* the one-line meaning */
    /* Who reads it (tests/dist/test_keys.c proves that every key acts): */
    const char *only;    /* the one command that reads the key when `dfm train` does not
                            ("dfm submit"), else NULL */
    const char *pending; /* a key of `dfm train` whose code is not written yet: what is missing.
                            The docs say so, and the test fails once the key is read. */
} Field;

extern const Field g_fields[];
extern const size_t g_nfields;

/* A key that was removed, and what replaces it. */
typedef struct {
    const char *path;
    const char *why;
} RemovedKey;

extern const RemovedKey g_removed[];
extern const size_t g_nremoved;
const RemovedKey *removed_key(const char *path, size_t len); /* NULL when not removed */

/* Subsections that apply only for one value of a selector key (model.unet when model.type is
 * unet, ...): the one table behind emission, the inactive-key error and the docs. */
typedef struct {
    const char *prefix;   /* "model.unet." */
    const char *selector; /* "model.type" */
    int active_when;      /* enum value of the selector */
} Subsection;

extern const Subsection g_subsections[];
extern const size_t g_nsubsections;

int field_index(const char *path, size_t len); /* -1 when not a key */
int key_of(const char *path);                  /* index of a key that must exist */
int is_section(const char *path, size_t len);  /* some key starts with "path." */
/* 1 when key fi applies to js (not in an inactive subsection); *sub receives the subsection
 * that decides, or -1. */
int field_active(const JobSpec *js, size_t fi, int *sub);
/* 1 when key fi was written in the file or given with --set. */
int explicit_key(const JobSpec *js, int fi);

typedef char *Str; /* so that const Str * is char *const * in the macros below */
typedef char **StrList;
#define VAL(js, f, T) ((T *)((char *)(js) + (f)->off))
#define CVAL(js, f, T) ((const T *)((const char *)(js) + (f)->off))
#define CNT(js, f) ((int *)((char *)(js) + (f)->noff))
#define CCNT(js, f) ((const int *)((const char *)(js) + (f)->noff))

/* Names of choices, for messages. */
const char *jobspec_dataset_name(JobDataset d);
const char *jobspec_sampler_name(JobSampler s);

/* ---- messages ------------------------------------------------------------------------------- */

/* Quote user text for a one-line message: printable ASCII kept, the rest escaped, truncated. */
void js_show(char *buf, size_t n, const char *s, size_t len);
/* Optimal-string-alignment distance (a transposition costs 1); (size_t)-1 for long inputs. */
size_t js_edit_distance(const char *a, size_t la, const char *b, size_t lb);
int js_close_enough(size_t dist, size_t len);

/* Where messages are anchored: a file position, or a --set assignment. */
typedef struct {
    const char *file; /* file name for "file:line:col: " */
    const char *set;  /* non-NULL: messages start "--set <set>: " */
    JobSpec *js;
    int set_index;    /* 1-based index recorded in loc[].set */
    int is_default;   /* setting a default: the key's position is not recorded */
} Ctx;

int ctx_err(const Ctx *c, int code, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* ---- the YAML layer (io/jobspec_yaml.c) ----------------------------------------------------- */

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

/* Parse text into a tree; *root is NULL for a stream without a document. Errors are reported
 * through c (ERR_PARSE, ERR_NOMEM). */
int yaml_tree(const Ctx *c, const char *text, size_t len, YNode **root);
void ynode_free(YNode *y);
int ynode_is_null(const YNode *y); /* empty plain scalar, ~, null */

/* A block-style YAML writer: a stream with one document. Calls after a failure do nothing;
 * yw_close reports it. */
typedef struct YamlWriter YamlWriter;
YamlWriter *yw_open(FILE *out);
void yw_map_start(YamlWriter *w);
void yw_map_end(YamlWriter *w);
void yw_seq_start(YamlWriter *w); /* flow style: [a, b] */
void yw_seq_end(YamlWriter *w);
void yw_plain(YamlWriter *w, const char *s);  /* keys, numbers, booleans, choices */
void yw_string(YamlWriter *w, const char *s); /* quoted when it would read back as null */
int yw_close(YamlWriter *w);                  /* ends the document; ERR_IO on failure */

/* ---- resolution (io/jobspec_resolve.c) ------------------------------------------------------ */

/* Recompute every derived value that was not set explicitly. */
void jobspec_resolve(JobSpec *js);

#endif
