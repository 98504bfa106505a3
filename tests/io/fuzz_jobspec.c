/* tests/io/fuzz_jobspec.c - libFuzzer target for the job-spec loader.
 *
 * Every input is loaded with jobspec_load_string. A spec that loads must emit, the emitted text
 * must load again to an equal spec, and emitting that must give the same text; anything else
 * aborts (a finding). Errors must leave a one-line message that starts with the input's name.
 * Leaks are caught by LeakSanitizer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "io/jobspec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *emit(const JobSpec *js, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f) abort();
    if (jobspec_emit(js, f) != ERR_OK) abort();
    fclose(f);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    JobSpec a, b;
    err_clear();
    int rc = jobspec_load_string(&a, (const char *)data, size, "fuzz.yaml");
    if (rc != ERR_OK) {
        const char *m = err_message();
        if (a.loc != NULL) abort();                         /* freed on failure */
        if (strchr(m, '\n') != NULL) abort();               /* one line */
        if ((rc == ERR_PARSE || rc == ERR_SPEC) && strncmp(m, "fuzz.yaml:", 10) != 0) abort();
        return 0;
    }
    size_t n1, n2;
    char *t1 = emit(&a, &n1);
    if (jobspec_load_string(&b, t1, n1, "emitted.yaml") != ERR_OK) {
        fprintf(stderr, "emitted spec does not load: %s\n%s\n", err_message(), t1);
        abort();
    }
    if (!jobspec_equal(&a, &b)) {
        fprintf(stderr, "emitted spec loads differently:\n%s\n", t1);
        abort();
    }
    char *t2 = emit(&b, &n2);
    if (n1 != n2 || memcmp(t1, t2, n1) != 0) {
        fprintf(stderr, "emission is not a fixed point:\n%s\n---\n%s\n", t1, t2);
        abort();
    }
    /* A first line "#section.key=value" (a YAML comment) is also applied as a --set, which must
     * either succeed or leave the spec unchanged. */
    const char *nl = memchr(data, '\n', size);
    size_t l = nl ? (size_t)(nl - (const char *)data) : size;
    if (l > 1 && l < 256 && data[0] == '#' && memchr(data, '=', l)) {
        char set[256];
        l--;
        memcpy(set, data + 1, l);
        set[l] = '\0';
        if (strlen(set) == l) {
            JobSpec before;
            jobspec_copy(&before, &b);
            if (jobspec_set(&b, set) != ERR_OK && !jobspec_equal(&b, &before)) abort();
            jobspec_free(&before);
        }
    }
    free(t1);
    free(t2);
    jobspec_free(&a);
    jobspec_free(&b);
    return 0;
}
