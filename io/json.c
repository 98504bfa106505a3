/* io/json.c - streaming JSON writer. See io/json.h. */
#include "io/json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"

void json_init(JsonWriter *w, FILE *f)
{
    memset(w, 0, sizeof *w);
    w->f = f;
}

/* Separator before a value (or a key) at the current level. */
static void before_item(JsonWriter *w, int is_key)
{
    ASSERT(!w->top_done);
    if (w->depth == 0) return;
    if (w->is_object[w->depth]) {
        if (is_key) {
            ASSERT(!w->key_pending);
            if (w->count[w->depth]++ > 0) fputc(',', w->f);
        } else {
            ASSERT(w->key_pending);
            w->key_pending = 0;
        }
    } else {
        ASSERT(!is_key);
        if (w->count[w->depth]++ > 0) fputc(',', w->f);
    }
}

static void after_value(JsonWriter *w)
{
    if (w->depth == 0) w->top_done = 1;
}

static void begin(JsonWriter *w, int object)
{
    before_item(w, 0);
    ASSERT(w->depth < JSON_MAX_DEPTH);
    w->depth++;
    w->count[w->depth] = 0;
    w->is_object[w->depth] = (char)object;
    fputc(object ? '{' : '[', w->f);
}

static void end(JsonWriter *w, int object)
{
    ASSERT(w->depth > 0 && w->is_object[w->depth] == object && !w->key_pending);
    w->depth--;
    fputc(object ? '}' : ']', w->f);
    after_value(w);
}

void json_object_begin(JsonWriter *w) { begin(w, 1); }
void json_object_end(JsonWriter *w) { end(w, 1); }
void json_array_begin(JsonWriter *w) { begin(w, 0); }
void json_array_end(JsonWriter *w) { end(w, 0); }

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not valid (overlong forms,
 * surrogates and code points above U+10FFFF are not). */
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned cp, min;
    if ((c & 0xE0) == 0xC0) n = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) n = 3, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) n = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

static void write_string(FILE *f, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    fputc('"', f);
    while (*s) {
        unsigned c = *s;
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc((int)c, f);
            s++;
        } else if (c < 0x20) {
            switch (c) {
            case '\n': fputs("\\n", f); break;
            case '\r': fputs("\\r", f); break;
            case '\t': fputs("\\t", f); break;
            case '\b': fputs("\\b", f); break;
            case '\f': fputs("\\f", f); break;
            default: fprintf(f, "\\u%04x", c); break;
            }
            s++;
        } else {
            size_t n = utf8_len(s);
            if (n == 0) {
                fputs("\\ufffd", f);
                s++;
            } else {
                fwrite(s, 1, n, f);
                s += n;
            }
        }
    }
    fputc('"', f);
}

void json_key(JsonWriter *w, const char *key)
{
    ASSERT(w->depth > 0 && w->is_object[w->depth] && key);
    before_item(w, 1);
    write_string(w->f, key);
    fputc(':', w->f);
    w->key_pending = 1;
}

void json_str(JsonWriter *w, const char *s)
{
    before_item(w, 0);
    if (s)
        write_string(w->f, s);
    else
        fputs("null", w->f);
    after_value(w);
}

void json_num(JsonWriter *w, double v)
{
    before_item(w, 0);
    if (!isfinite(v)) {
        fputs("null", w->f);
    } else {
        /* The shortest of %.15g .. %.17g that reads back exactly. */
        char buf[40];
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, v);
            if (strtod(buf, NULL) == v) break;
        }
        fputs(buf, w->f);
    }
    after_value(w);
}

void json_int(JsonWriter *w, long long v)
{
    before_item(w, 0);
    fprintf(w->f, "%lld", v);
    after_value(w);
}

void json_uint(JsonWriter *w, unsigned long long v)
{
    before_item(w, 0);
    fprintf(w->f, "%llu", v);
    after_value(w);
}

void json_bool(JsonWriter *w, int v)
{
    before_item(w, 0);
    fputs(v ? "true" : "false", w->f);
    after_value(w);
}

void json_null(JsonWriter *w)
{
    before_item(w, 0);
    fputs("null", w->f);
    after_value(w);
}

void json_kv_str(JsonWriter *w, const char *key, const char *s) { json_key(w, key); json_str(w, s); }
void json_kv_num(JsonWriter *w, const char *key, double v) { json_key(w, key); json_num(w, v); }
void json_kv_int(JsonWriter *w, const char *key, long long v) { json_key(w, key); json_int(w, v); }
void json_kv_bool(JsonWriter *w, const char *key, int v) { json_key(w, key); json_bool(w, v); }

void json_kv_uint(JsonWriter *w, const char *key, unsigned long long v)
{
    json_key(w, key);
    json_uint(w, v);
}

void json_kv_hex64(JsonWriter *w, const char *key, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%016llx", (unsigned long long)v);
    json_kv_str(w, key, buf);
}

int json_end_line(JsonWriter *w, const char *what)
{
    ASSERT(w->depth == 0 && w->top_done);
    fputc('\n', w->f);
    int bad = fflush(w->f) != 0 || ferror(w->f);
    int e = errno;
    w->top_done = 0;
    if (bad) return ERR(ERR_IO, "writing %s: %s", what, strerror(e ? e : EIO));
    return ERR_OK;
}

int json_line_num(const char *line, const char *key, double *v)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p) return 0;
    p += strlen(pat);
    if (!strncmp(p, "null", 4)) return 0;
    char *e;
    *v = strtod(p, &e);
    return e != p;
}
