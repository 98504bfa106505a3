/* cmd/main.c - the dfm command line: dispatch to subcommands, version, help. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/mem.h"
#include "io/jobspec.h"
#include "core/err.h"
#include "core/log.h"
#include "dist/dist.h"

static int cmd_help(int argc, char **argv);

static const CmdEntry g_cmds[] = {
    {"help", "show this help, or a subcommand's help", cmd_help},
    {"validate", "check a job spec and print it fully resolved", cmd_validate},
    {"fetch", "download and verify a dataset", cmd_fetch},
    {"train", "train a model on one rank or many (mpirun)", cmd_train},
    {"submit", "submit a job spec to Slurm as a batch job (or a sweep as an array job)", cmd_submit},
    {"status", "show a submitted run: Slurm state, restarts, checkpoint, progress, log", cmd_status},
    {"ckpt", "list, verify, inspect and export checkpoints", cmd_ckpt},
    {"evaluator", "train or test the classifiers behind FD-FMNIST / FD-MNIST", cmd_evaluator},
    {"sample", "draw samples from trained weights, on one rank or many", cmd_sample},
    {"eval", "score samples: FD-FMNIST, precision/recall, spectra, beside the real floor", cmd_eval},
};
#define NCMDS (sizeof g_cmds / sizeof g_cmds[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: dfm <command> [options]\n"
               "       dfm --version\n\n"
               "dfm trains diffusion (DDPM/DDIM) and flow-matching models on a U-Net or MLP,\n"
               "data-parallel across MPI ranks.\n\ncommands:\n");
    for (size_t i = 0; i < NCMDS; i++) fprintf(f, "  %-10s %s\n", g_cmds[i].name, g_cmds[i].summary);
    fprintf(f, "\nRun 'dfm <command> --help' for a command's options.\n"
               "Job spec reference: jobs/README.md\n");
}

int cmd_is_help(const char *s) { return !strcmp(s, "-h") || !strcmp(s, "--help"); }

int cmd_dist_end(int rc)
{
    int status = cmd_report(rc);
    if (status != 0 && dist_size() > 1) dist_abort(status);
    dist_finalize();
    return status;
}

int cmd_report(int rc)
{
    if (rc == ERR_OK) return 0;
    fprintf(stderr, "dfm: %serror: %s\n", log_rank_prefix(),
            err_message()[0] ? err_message() : err_code_name(rc));
    if (err_hint_text()[0]) fprintf(stderr, "dfm: hint: %s\n", err_hint_text());
    if (log_level() >= LOG_DEBUG) {
        fprintf(stderr, "dfm: raised at %s (%s)\n", err_origin(), err_code_name(rc));
        for (size_t i = 0; i < err_trace_len(); i++)
            fprintf(stderr, "dfm:   from %s\n", err_trace_at(i));
    }
    return err_exit_status(rc);
}

int cmd_usage_error(const char *sub, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "dfm: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (sub)
        fprintf(stderr, "\nrun 'dfm %s --help' for usage\n", sub);
    else
        fprintf(stderr, "\nrun 'dfm --help' for usage\n");
    return 2;
}

int cmd_opt(int argc, char **argv, int *i, const char *sub, const char *name, int is_path,
            const char **value)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '=') {
        *value = a + n + 1;
    } else if (a[n] == '\0') {
        if (*i + 1 >= argc) {
            cmd_usage_error(sub, "%s: %s needs a value", sub, name);
            return -1;
        }
        *value = argv[++*i];
    } else {
        return 0;
    }
    if (is_path && (*value)[0] == '\0') {
        cmd_report(ERR(ERR_ARG, "%s: %s was given an empty path (an unset shell variable?)", sub,
                       name));
        return -1;
    }
    return 1;
}

int cmd_job_args(int argc, char **argv, const char *sub, void (*sub_usage)(FILE *), const char **path,
                 const char **sets, int *n_sets)
{
    *path = NULL;
    *n_sets = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int got;
        if (cmd_is_help(a)) {
            sub_usage(stdout);
            return 0;
        } else if ((got = cmd_opt(argc, argv, &i, sub, "--set", 0, &v)) != 0) {
            if (got < 0) return 2;
            sets[(*n_sets)++] = v;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "dfm: %s: unknown option '%s'\n", sub, a);
            sub_usage(stderr);
            return 2;
        } else if (*path) {
            return cmd_usage_error(sub, "%s: one job spec at a time (got '%s' and '%s')", sub,
                                   *path, a);
        } else if (a[0] == '\0') {
            return cmd_report(ERR(ERR_ARG, "%s: the job spec path is an empty string (an unset "
                                  "shell variable?)", sub));
        } else {
            *path = a;
        }
    }
    if (!*path) return cmd_usage_error(sub, "%s: missing JOB.yaml", sub);
    return -1;
}

int cmd_load_job(int argc, char **argv, const char *sub, void (*sub_usage)(FILE *), JobSpec *js)
{
    const char *path;
    const char **sets = xcalloc((size_t)argc + 1, sizeof *sets);
    int n_sets, rc = cmd_job_args(argc, argv, sub, sub_usage, &path, sets, &n_sets);
    if (rc < 0) {
        rc = jobspec_load_with(js, path, sets, n_sets);
        rc = rc == ERR_OK ? -1 : cmd_report(rc);
    }
    xfree(sets);
    return rc;
}

static void version(void)
{
    printf("dfm %s (commit %s)\n", DFM_VERSION, DFM_GIT_COMMIT);
#if defined(__clang__)
    printf("compiler: clang %s\n", __clang_version__);
#elif defined(__GNUC__)
    printf("compiler: gcc %d.%d.%d\n", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);
#endif
    printf("mpi: %s\n", dist_mpi_library_version());
}

static int cmd_help(int argc, char **argv)
{
    if (argc >= 2 && cmd_is_help(argv[1])) {
        printf("usage: dfm help [command]\n\nShow the list of commands, or one command's help.\n");
        return 0;
    }
    if (argc == 1) {
        usage(stdout);
        return 0;
    }
    if (argc > 2) return cmd_usage_error("help", "help takes at most one command name");
    for (size_t i = 0; i < NCMDS; i++) {
        if (!strcmp(g_cmds[i].name, argv[1])) {
            char *sub[] = {argv[1], (char *)"--help", NULL};
            return g_cmds[i].run(2, sub);
        }
    }
    return cmd_usage_error(NULL, "unknown command '%s'", argv[1]);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (cmd_is_help(argv[1])) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        version();
        return 0;
    }
    for (size_t i = 0; i < NCMDS; i++)
        if (!strcmp(g_cmds[i].name, argv[1])) return g_cmds[i].run(argc - 1, argv + 1);
    fprintf(stderr, "dfm: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
