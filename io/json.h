/* io/json.h - a small streaming JSON writer: the one way dfm writes JSON (final.json,
 * metrics.jsonl, evaluation outputs).
 *
 *     JsonWriter w;
 *     json_init(&w, f);
 *     json_object_begin(&w);
 *     json_kv_int(&w, "step", 12);
 *     json_kv_num(&w, "loss", loss);      // NaN and +-Inf are written as null
 *     json_key(&w, "loss_q");
 *     json_array_begin(&w);
 *     for (int q = 0; q < 4; q++) json_num(&w, lq[q]);
 *     json_array_end(&w);
 *     json_object_end(&w);
 *     TRY(json_end_line(&w, "metrics.jsonl"));  // "\n", then ERR_IO if any write failed
 *
 * The output is always valid JSON (RFC 8259): non-finite numbers become null, strings are
 * escaped (quote, backslash, control characters; bytes that are not valid UTF-8 become U+FFFD),
 * doubles are written with the fewest digits that read back to the same value. Commas and
 * colons are placed by the writer. Calling the functions in an order that cannot give valid
 * JSON (a value where a key is due, an end without a begin) is a bug and ASSERTs.
 */
#ifndef DFM_IO_JSON_H
#define DFM_IO_JSON_H

#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 32

typedef struct {
    FILE *f;
    int depth;
    int count[JSON_MAX_DEPTH + 1];     /* items written at each level */
    char is_object[JSON_MAX_DEPTH + 1];
    int key_pending;                   /* a key was written, its value is due */
    int top_done;                      /* a complete top-level value was written */
} JsonWriter;

void json_init(JsonWriter *w, FILE *f);

void json_object_begin(JsonWriter *w);
void json_object_end(JsonWriter *w);
void json_array_begin(JsonWriter *w);
void json_array_end(JsonWriter *w);
void json_key(JsonWriter *w, const char *key);

void json_str(JsonWriter *w, const char *s);       /* NULL is written as null */
void json_num(JsonWriter *w, double v);            /* non-finite: null */
void json_int(JsonWriter *w, long long v);
void json_uint(JsonWriter *w, unsigned long long v);
void json_bool(JsonWriter *w, int v);
void json_null(JsonWriter *w);

/* key + value in one call, inside an object. */
void json_kv_str(JsonWriter *w, const char *key, const char *s);
void json_kv_num(JsonWriter *w, const char *key, double v);
void json_kv_int(JsonWriter *w, const char *key, long long v);
void json_kv_uint(JsonWriter *w, const char *key, unsigned long long v);
void json_kv_bool(JsonWriter *w, const char *key, int v);
/* A 64-bit value as a 16-digit hex string ("00ff..."): hashes, which a double cannot hold. */
void json_kv_hex64(JsonWriter *w, const char *key, uint64_t v);

/* End of a complete top-level value: writes "\n", flushes, and returns ERR_IO naming `what`
 * when any write to the stream failed. The writer is then ready for the next value (JSON
 * lines). */
int json_end_line(JsonWriter *w, const char *what);

/* Reading back a line this writer wrote (metrics.jsonl): the number after the first "key": in
 * line, into *v; 0 when the key is absent, null or not a number. A flat scan, enough for the
 * scalars of one JSON line (start it inside a nested object to read that object's key). */
int json_line_num(const char *line, const char *key, double *v);

#endif
