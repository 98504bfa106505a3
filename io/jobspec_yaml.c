/* io/jobspec_yaml.c - the strict YAML layer of the job-spec loader: text -> a small owned tree,
 * and the block-style writer behind jobspec_emit. The only file that uses libyaml.
 *
 * Nothing is interpreted while the stream parses: anchors, aliases, tags and second documents
 * are rejected as they arrive, depth and node count are bounded, and only a complete tree is
 * handed to the schema walk, so a YAML syntax error always wins over a schema error and the
 * reported position is deterministic. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "core/err.h"
#include "core/mem.h"
#include "io/jobspec_int.h"

#define YAML_MAX_DEPTH 16
#define YAML_MAX_NODES 100000

/* ---- messages ------------------------------------------------------------------------------- */

/* Quote user text for a one-line message: printable ASCII kept, the rest escaped, truncated. */
void js_show(char *buf, size_t n, const char *s, size_t len)
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
size_t js_edit_distance(const char *a, size_t la, const char *b, size_t lb)
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

int js_close_enough(size_t dist, size_t len) { return dist <= (len + 2) / 3 || dist <= 1; }

int ctx_err(const Ctx *c, int code, int line, int col, const char *fmt, ...)
{
    char msg[ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->set) {
        char s[2 * KEY_SHOW_MAX + 16];
        js_show(s, sizeof s, c->set, strlen(c->set));
        return ERR(code, "--set %s: %s", s, msg);
    }
    return ERR(code, "%s:%d:%d: %s", c->file, line, col, msg);
}

/* ---- the reader ---------------------------------------------------------------------------- */

void ynode_free(YNode *y)
{
    if (!y) return;
    for (size_t i = 0; i < y->n; i++) ynode_free(y->kid[i]);
    xfree(y->kid);
    xfree(y->str);
    xfree(y);
}

int ynode_is_null(const YNode *y)
{
    if (!y) return 1;
    if (y->kind != YN_SCALAR || !y->plain) return 0;
    return y->len == 0 || !strcmp(y->str, "~") || !strcmp(y->str, "null") ||
           !strcmp(y->str, "Null") || !strcmp(y->str, "NULL");
}

/* Where messages are anchored: a file position, or a --set assignment. */
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
int yaml_tree(const Ctx *c, const char *text, size_t len, YNode **root)
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
            js_show(t, sizeof t, (const char *)tag, strlen((const char *)tag));
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


/* ---- the writer ----------------------------------------------------------------------------- */

struct YamlWriter {
    yaml_emitter_t em;
    FILE *out;
    int ok;
};

static void yw_event(YamlWriter *w, yaml_event_t *ev, int made)
{
    if (!made) {
        w->ok = 0;
        return;
    }
    if (w->ok && !yaml_emitter_emit(&w->em, ev)) w->ok = 0;
}

static void yw_scalar(YamlWriter *w, const char *s, yaml_scalar_style_t style)
{
    yaml_event_t ev;
    if (!w->ok) return;
    yw_event(w, &ev, yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)(uintptr_t)s,
                                                  (int)strlen(s), 1, 1, style));
}

YamlWriter *yw_open(FILE *out)
{
    YamlWriter *w = xcalloc(1, sizeof *w);
    yaml_event_t ev;
    w->out = out;
    w->ok = yaml_emitter_initialize(&w->em);
    if (!w->ok) return w;
    yaml_emitter_set_output_file(&w->em, out);
    yaml_emitter_set_unicode(&w->em, 1);
    yaml_emitter_set_width(&w->em, -1);
    yaml_emitter_set_indent(&w->em, 2);
    yw_event(w, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
    if (w->ok) yw_event(w, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1));
    return w;
}

void yw_map_start(YamlWriter *w)
{
    yaml_event_t ev;
    if (w->ok)
        yw_event(w, &ev, yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                                             YAML_BLOCK_MAPPING_STYLE));
}

void yw_map_end(YamlWriter *w)
{
    yaml_event_t ev;
    if (w->ok) yw_event(w, &ev, yaml_mapping_end_event_initialize(&ev));
}

void yw_seq_start(YamlWriter *w)
{
    yaml_event_t ev;
    if (w->ok)
        yw_event(w, &ev, yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                                              YAML_FLOW_SEQUENCE_STYLE));
}

void yw_seq_end(YamlWriter *w)
{
    yaml_event_t ev;
    if (w->ok) yw_event(w, &ev, yaml_sequence_end_event_initialize(&ev));
}

void yw_plain(YamlWriter *w, const char *s) { yw_scalar(w, s, YAML_PLAIN_SCALAR_STYLE); }

void yw_string(YamlWriter *w, const char *s)
{
    static const char *const nullish[] = {"", "~", "null", "Null", "NULL"};
    for (size_t i = 0; i < sizeof nullish / sizeof nullish[0]; i++)
        if (!strcmp(s, nullish[i])) {
            yw_scalar(w, s, YAML_DOUBLE_QUOTED_SCALAR_STYLE);
            return;
        }
    yw_scalar(w, s, YAML_ANY_SCALAR_STYLE);
}

int yw_close(YamlWriter *w)
{
    yaml_event_t ev;
    if (w->ok) yw_event(w, &ev, yaml_document_end_event_initialize(&ev, 1));
    if (w->ok) yw_event(w, &ev, yaml_stream_end_event_initialize(&ev));
    int ok = w->ok && yaml_emitter_flush(&w->em);
    char problem[256];
    snprintf(problem, sizeof problem, "%s", w->em.problem ? w->em.problem : "write failed");
    FILE *out = w->out;
    yaml_emitter_delete(&w->em);
    xfree(w);
    if (!ok || ferror(out)) return ERR(ERR_IO, "cannot write the job spec: %s", problem);
    return ERR_OK;
}
