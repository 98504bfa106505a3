/* cmd/status.c - `dfm status RUN_DIR [--json] [--lines N]`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/err.h"
#include "io/runstatus.h"

static void status_usage(FILE *f)
{
    fprintf(f,
            "usage: dfm status RUN_DIR [--json] [--lines N]\n"
            "\n"
            "Show where a run stands: its Slurm job (state, restarts, run time; from scontrol, or\n"
            "sacct when the cluster keeps accounting), the starts the batch script recorded, the\n"
            "newest checkpoint, the last metrics line (step, loss, images/s, time left) and the\n"
            "end of the Slurm log. On a sweep directory (dfm submit --sweep), one row per task.\n"
            "\n"
            "options:\n"
            "  --json      one JSON object instead of text (fields: slurm/README.md)\n"
            "  --lines N   lines of the Slurm log to show (default 10; 0 = none)\n"
            "  -h, --help  this help\n"
            "\n"
            "exit status: 0 shown, 2 usage error or not a run directory, 1 other failure.\n");
}

int cmd_status(int argc, char **argv)
{
    const char *dir = NULL;
    int json = 0, lines = 10;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cmd_is_help(a)) {
            status_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--lines") || !strncmp(a, "--lines=", 8)) {
            const char *v = a[7] == '=' ? a + 8 : (i + 1 < argc ? argv[++i] : NULL);
            char *end;
            long n = v ? strtol(v, &end, 10) : -1;
            if (!v || *end || end == v || n < 0 || n > 10000)
                return cmd_usage_error("status", "status: --lines needs a count 0..10000");
            lines = (int)n;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "dfm: status: unknown option '%s'\n", a);
            status_usage(stderr);
            return 2;
        } else if (dir) {
            return cmd_usage_error("status", "status: one run directory at a time (got '%s' and '%s')",
                                   dir, a);
        } else {
            dir = a;
        }
    }
    if (!dir) return cmd_usage_error("status", "status: missing RUN_DIR");
    return cmd_report(runstatus_print(dir, json, lines, stdout));
}
