/* cmd/fetch.c - `dfm fetch DATASET`: download and verify a dataset into a directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "dist/data.h"
#include "dist/dist.h"
#include "io/dataset.h"
#include "io/fetch.h"

static void fetch_usage(FILE *f)
{
    fprintf(f,
            "usage: dfm fetch DATASET [--dir DIR] [--mirror URL ...] [--no-builtin-mirrors]\n"
            "                 [--allow-unpinned] [--retries N] [--quiet]\n"
            "       dfm fetch --list\n\n"
            "Download DATASET into DIR/DATASET/ (DIR defaults to data/), check every file's size,\n"
            "SHA-256 and format, and install it atomically. Files already present are\n"
            "re-verified, not downloaded again; a partial download is resumed.\n\n"
            "options:\n"
            "  --dir DIR      data directory (default data/)\n"
            "  --mirror URL   base URL of a directory holding the dataset's files; tried before\n"
            "                 the built-in mirrors; repeatable; http://, https:// or file://\n"
            "  --no-builtin-mirrors  use only the --mirror URLs (air-gapped sites, tests)\n"
            "  --allow-unpinned  for this run, accept (and record) bytes that match no\n"
            "                 pinned or recorded SHA-256: trust on first use. Without it\n"
            "                 such bytes are refused\n"
            "  --retries N    attempts per mirror on transient errors (default 3)\n"
            "  --quiet        only warnings and errors (no progress, no per-file lines)\n"
            "  --list         list the datasets\n\n"
            "Environment: DFM_FETCH_BACKOFF_MS sets the first delay between retries (default\n"
            "1000, doubled after each retry); DFM_FETCH_DEADLINE_S bounds all attempts at one\n"
            "file (default 1800); DFM_FETCH_CA_BUNDLE names a PEM file of certificate\n"
            "authorities to trust instead of the system's (a site's own CA). Under mpirun one\n"
            "rank per node downloads while the others wait, then every rank verifies.\n"
            "Exit status: 0 verified, 1 download or verification failed, 2 usage error.\n");
}

static void list_datasets(void)
{
    for (size_t i = 0; i < dataset_count(); i++) {
        const DatasetInfo *d = dataset_info(i);
        printf("  %-14s %s\n", d->name, d->description);
    }
}

static int launched_by_mpi(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

int cmd_fetch(int argc, char **argv)
{
    const char *name = NULL, *dir = "data";
    const char **mirrors = xcalloc((size_t)argc, sizeof *mirrors);
    size_t nmirrors = 0;
    FetchOptions o;
    fetch_options_default(&o);
    int rc = 0, builtin = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int got;
        if (cmd_is_help(a)) {
            fetch_usage(stdout);
            goto done;
        } else if (!strcmp(a, "--list")) {
            list_datasets();
            goto done;
        } else if ((got = cmd_opt(argc, argv, &i, "fetch", "--dir", 1, &v)) != 0) {
            if (got < 0) goto usage;
            dir = v;
        } else if ((got = cmd_opt(argc, argv, &i, "fetch", "--mirror", 1, &v)) != 0) {
            if (got < 0) goto usage;
            mirrors[nmirrors++] = v;
        } else if ((got = cmd_opt(argc, argv, &i, "fetch", "--retries", 0, &v)) != 0) {
            if (got < 0) goto usage;
            char *end;
            long n = strtol(v, &end, 10);
            if (!*v || *end || n < 1 || n > 100) {
                rc = cmd_usage_error("fetch", "fetch: --retries must be an integer in 1..100, "
                                     "not '%s'", v);
                goto done;
            }
            o.retries = (int)n;
        } else if (!strcmp(a, "--no-builtin-mirrors")) {
            builtin = 0;
        } else if (!strcmp(a, "--allow-unpinned")) {
            o.allow_unpinned = 1;
        } else if (!strcmp(a, "--quiet")) {
            o.progress = 0;
            log_set_level(LOG_WARN);
        } else if (a[0] == '-') {
            rc = cmd_usage_error("fetch", "fetch: unknown option '%s'", a);
            goto done;
        } else if (name) {
            rc = cmd_usage_error("fetch", "fetch: one dataset at a time ('%s' and '%s')", name, a);
            goto done;
        } else {
            name = a;
        }
    }
    if (!name) {
        fprintf(stderr, "dfm: fetch needs a dataset name; one of:\n");
        for (size_t i = 0; i < dataset_count(); i++)
            if (dataset_info(i)->fetched) fprintf(stderr, "  %s\n", dataset_info(i)->name);
        rc = cmd_usage_error("fetch", "fetch: missing DATASET");
        goto done;
    }
    if (dataset_is_toy(name)) {
        fprintf(stderr, "dfm: '%s' is generated from the seed at training time; nothing to fetch\n",
                name);
        goto done;
    }
    int mpi = launched_by_mpi();
    if (mpi && (rc = dist_init(&argc, &argv)) != ERR_OK) {
        rc = cmd_report(rc);
        goto done;
    }
    if ((rc = fetch_global_init()) != ERR_OK) {
        rc = cmd_report(rc);
        goto finish;
    }
    rc = dist_dataset_fetch(name, dir, mirrors, nmirrors, builtin, &o);
    fetch_global_cleanup();
    if (rc == ERR_OK && dist_rank() == 0) printf("%s: verified in %s/%s\n", name, dir, name);
    rc = cmd_report(rc);
finish:
    if (mpi) dist_finalize();
done:
    xfree(mirrors);
    return rc;
usage:
    xfree(mirrors);
    return 2;
}
