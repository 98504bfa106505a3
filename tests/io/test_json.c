/* tests/io/test_json.c - the JSON writer: exact output, escaping, non-finite numbers, misuse,
 * and Python's json module accepting whatever bytes a string holds. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "io/json.h"

static char *g_buf;
static size_t g_len;

static FILE *mem_open(void)
{
    FILE *f = open_memstream(&g_buf, &g_len);
    cr_assert(f);
    return f;
}

static char *mem_close(FILE *f)
{
    fclose(f);
    return g_buf;
}

Test(json, object_with_every_kind_of_value)
{
    FILE *f = mem_open();
    JsonWriter w;
    json_init(&w, f);
    json_object_begin(&w);
    json_kv_int(&w, "step", -3);
    json_kv_num(&w, "loss", 0.25);
    json_kv_num(&w, "nan", NAN);
    json_kv_num(&w, "inf", -INFINITY);
    json_key(&w, "q");
    json_array_begin(&w);
    json_num(&w, 1.0);
    json_num(&w, INFINITY);
    json_null(&w);
    json_array_begin(&w);
    json_array_end(&w);
    json_array_end(&w);
    json_kv_bool(&w, "ok", 1);
    json_kv_uint(&w, "big", 18446744073709551615ULL);
    json_kv_hex64(&w, "hash", 0xabcULL);
    json_kv_str(&w, "name", "a\"b\\c");
    json_key(&w, "empty");
    json_object_begin(&w);
    json_object_end(&w);
    json_object_end(&w);
    cr_assert_eq(json_end_line(&w, "test"), ERR_OK);
    char *s = mem_close(f);
    cr_assert_str_eq(s, "{\"step\":-3,\"loss\":0.25,\"nan\":null,\"inf\":null,\"q\":[1,null,null,[]],"
                        "\"ok\":true,\"big\":18446744073709551615,\"hash\":\"0000000000000abc\","
                        "\"name\":\"a\\\"b\\\\c\",\"empty\":{}}\n");
    free(s);
}

Test(json, lines_and_shortest_round_trip_numbers)
{
    FILE *f = mem_open();
    JsonWriter w;
    json_init(&w, f);
    double vals[] = {0.1, 1.0 / 3.0, 1e300, -2.5e-310, 123456789.0};
    for (int i = 0; i < 5; i++) {
        json_num(&w, vals[i]);
        cr_assert_eq(json_end_line(&w, "test"), ERR_OK);
    }
    char *s = mem_close(f);
    char *p = s;
    for (int i = 0; i < 5; i++) {
        char *end;
        double v = strtod(p, &end);
        cr_assert_eq(v, vals[i], "line %d: %.*s", i, (int)(end - p), p);
        cr_assert_eq(*end, '\n');
        p = end + 1;
    }
    cr_assert(strncmp(s, "0.1\n", 4) == 0, "%s", s);
    free(s);
}

Test(json, control_characters_and_invalid_utf8_are_escaped)
{
    FILE *f = mem_open();
    JsonWriter w;
    json_init(&w, f);
    /* tab, newline, 0x01, DEL, valid 2- and 3-byte UTF-8, a lone continuation byte, an overlong
     * slash, a surrogate, a truncated sequence at the end */
    json_str(&w, "\t\n\x01\x7f\xc3\xa9\xe2\x82\xac\x80\xc0\xaf\xed\xa0\x80\xe2\x82");
    cr_assert_eq(json_end_line(&w, "test"), ERR_OK);
    char *s = mem_close(f);
    cr_assert_str_eq(s, "\"\\t\\n\\u0001\x7f\xc3\xa9\xe2\x82\xac\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd"
                        "\\ufffd\\ufffd\\ufffd\"\n");
    free(s);
}

Test(json, python_parses_random_strings)
{
    char path[] = "/tmp/dfm_json_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    JsonWriter w;
    json_init(&w, f);
    char str[64];
    Rng r;
    rng_init(&r, 7, 0, 0, 0);
    for (uint32_t i = 0; i < 500; i++) {
        for (uint32_t j = 0; j < 63; j++) str[j] = (char)(rng_below(&r, 255) + 1); /* not NUL */
        str[63] = '\0';
        json_object_begin(&w);
        json_kv_str(&w, str, str);
        json_kv_num(&w, "x", (i % 3) ? (double)i / 7.0 : (double)NAN);
        json_object_end(&w);
        cr_assert_eq(json_end_line(&w, path), ERR_OK);
    }
    fclose(f);
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import json,sys\n"
             "n=0\nfor l in open(sys.argv[1],encoding=\"utf-8\"): json.loads(l); n+=1\n"
             "assert n==500' %s",
             path);
    int st = system(cmd);
    unlink(path);
    cr_assert_eq(st, 0, "python3 rejected the writer's output");
}

Test(json, value_where_a_key_is_due_aborts, .signal = SIGABRT)
{
    JsonWriter w;
    json_init(&w, fopen("/dev/null", "w"));
    json_object_begin(&w);
    json_int(&w, 1);
}

Test(json, unbalanced_end_aborts, .signal = SIGABRT)
{
    JsonWriter w;
    json_init(&w, fopen("/dev/null", "w"));
    json_array_begin(&w);
    json_object_end(&w);
}

Test(json, write_error_is_reported)
{
    FILE *f = fopen("/dev/full", "w");
    cr_assert(f);
    JsonWriter w;
    json_init(&w, f);
    json_str(&w, "x");
    cr_assert_eq(json_end_line(&w, "/dev/full"), ERR_IO);
    cr_assert(strstr(err_message(), "/dev/full") != NULL, "%s", err_message());
    fclose(f);
}
