/* tests/tools/jobdoc.c - regenerate the key tables of jobs/README.md from the job-spec schema.
 *
 *   jobdoc README.md          print README.md with every generated table replaced
 *
 * A generated table sits between the lines
 *     <!-- keys SECTION: generated from io/jobspec_keys.c by `make docs` -->
 *     <!-- end keys SECTION -->
 * and everything else is copied unchanged. Exits 1 (with a message) when a marker is unmatched
 * or names an unknown section, or when a section of the schema has no marker; 2 on usage or
 * I/O errors. `make docs` writes the output back; the CLI tests compare it with the file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "io/jobspec.h"

#define BEGIN "<!-- keys "
#define END "<!-- end keys "

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: jobdoc README.md\n");
        return 2;
    }
    FILE *in = fopen(argv[1], "r");
    if (!in) {
        perror(argv[1]);
        return 2;
    }
    char seen[64][32];
    int nseen = 0, lineno = 0, rc = 0;
    char line[8192], section[32] = "";
    int inside = 0;
    while (fgets(line, sizeof line, in)) {
        lineno++;
        if (!strncmp(line, BEGIN, strlen(BEGIN))) {
            const char *s = line + strlen(BEGIN);
            size_t l = strcspn(s, ": ");
            if (inside || l == 0 || l >= sizeof section) {
                fprintf(stderr, "%s:%d: malformed or nested key-table marker\n", argv[1], lineno);
                return 1;
            }
            snprintf(section, sizeof section, "%.*s", (int)l, s);
            fputs(line, stdout);
            if (jobspec_doc_table(stdout, section) != ERR_OK) {
                fprintf(stderr, "%s:%d: %s\n", argv[1], lineno, err_message());
                return 1;
            }
            if (nseen < 64) snprintf(seen[nseen++], sizeof seen[0], "%s", section);
            inside = 1;
            continue;
        }
        if (!strncmp(line, END, strlen(END))) {
            if (!inside) {
                fprintf(stderr, "%s:%d: end marker without a start\n", argv[1], lineno);
                return 1;
            }
            inside = 0;
        }
        if (!inside) fputs(line, stdout);
    }
    fclose(in);
    if (inside) {
        fprintf(stderr, "%s: the table of section '%s' has no end marker\n", argv[1], section);
        return 1;
    }
    for (size_t i = 0; i < jobspec_nkeys(); i++) {
        const char *k = jobspec_key(i);
        size_t l = strcspn(k, ".");
        int found = 0;
        for (int s = 0; s < nseen; s++)
            if (strlen(seen[s]) == l && !strncmp(seen[s], k, l)) found = 1;
        if (!found) {
            fprintf(stderr, "%s: no generated table for section '%.*s' (add the markers)\n", argv[1],
                    (int)l, k);
            rc = 1;
            while (i + 1 < jobspec_nkeys() && !strncmp(jobspec_key(i + 1), k, l + 1)) i++;
        }
    }
    if (fflush(stdout) != 0) return 2;
    return rc;
}
