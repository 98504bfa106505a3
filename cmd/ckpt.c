/* cmd/ckpt.c - `dfm ckpt ls|verify|inspect|export RUN_DIR|CKPT_DIR`. */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/err.h"
#include "io/ckptview.h"

static void ckpt_usage(FILE *f)
{
    fprintf(f,
            "usage: dfm ckpt ls RUN_DIR|CKPT_DIR\n"
            "       dfm ckpt verify RUN_DIR|CKPT_DIR\n"
            "       dfm ckpt inspect [--spec] RUN_DIR|CKPT_DIR\n"
            "       dfm ckpt export [--live] [--format safetensors|weights] -o|--output OUT RUN_DIR|CKPT_DIR\n\n"
            "Work with the checkpoints of a run. The argument is a run directory (its ckpt/ is\n"
            "used), a checkpoint directory (checkpoint.dir) or one checkpoint (step-N).\n\n"
            "  ls       one line per checkpoint: step, time, size, world size, committed or\n"
            "           partial, and which one `latest` names\n"
            "  verify   check every shard's size and SHA-256 against the manifest (every\n"
            "           checkpoint, or the one given); exit 1 naming the bad file\n"
            "  inspect  the manifest of one checkpoint (default: the newest): counters, slices,\n"
            "           the parameter table; --spec adds the saved job spec\n"
            "  export   write the EMA weights (default; --live for the trained weights) of one\n"
            "           checkpoint (default: the newest) as safetensors, whose tensor names load\n"
            "           with load_state_dict into the PyTorch U-Net of tests/torch/unet_torch.py,\n"
            "           or as a dfm weights.bin (--format weights: live and EMA weights). The\n"
            "           format follows OUT's extension (.safetensors, .bin) unless given.\n\n"
            "exit status: 0 ok, 1 a check failed or a file is unreadable, 2 usage error.\n");
}

int cmd_ckpt(int argc, char **argv)
{
    if (argc < 2 || cmd_is_help(argv[1])) {
        ckpt_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1], *path = NULL, *dest = NULL, *format = NULL;
    int live = 0, spec = 0;
    int is_export = !strcmp(sub, "export"), is_inspect = !strcmp(sub, "inspect");
    if (!is_export && !is_inspect && strcmp(sub, "ls") != 0 && strcmp(sub, "verify") != 0)
        return cmd_usage_error("ckpt", "ckpt: unknown subcommand '%s' (ls, verify, inspect, "
                               "export)", sub);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (cmd_is_help(a)) {
            ckpt_usage(stdout);
            return 0;
        } else if (is_export && !strcmp(a, "--live")) {
            live = 1;
        } else if (is_export && !strcmp(a, "--ema")) {
            live = 0;
        } else if (is_export && (!strcmp(a, "-o") || !strcmp(a, "--output") ||
                                 !strcmp(a, "--format"))) {
            if (i + 1 >= argc || !argv[i + 1][0])
                return cmd_usage_error("ckpt", "ckpt export: %s needs a value", a);
            if (!strcmp(a, "--format")) format = argv[++i]; else dest = argv[++i];
        } else if (is_export && !strncmp(a, "--output=", 9) && a[9]) {
            dest = a + 9;
        } else if (is_export && !strncmp(a, "--format=", 9) && a[9]) {
            format = a + 9;
        } else if (is_inspect && !strcmp(a, "--spec")) {
            spec = 1;
        } else if (a[0] == '-' && a[1]) {
            return cmd_usage_error("ckpt", "ckpt %s: unknown option '%s'", sub, a);
        } else if (!a[0]) {
            return cmd_usage_error("ckpt", "ckpt %s: empty path", sub);
        } else if (path) {
            return cmd_usage_error("ckpt", "ckpt %s: one directory at a time", sub);
        } else {
            path = a;
        }
    }
    if (!path) return cmd_usage_error("ckpt", "ckpt %s: missing RUN_DIR or CKPT_DIR", sub);
    int rc;
    if (!strcmp(sub, "ls")) {
        rc = ckptview_list(stdout, path);
    } else if (!strcmp(sub, "verify")) {
        rc = ckptview_verify(stdout, path);
    } else if (is_inspect) {
        rc = ckptview_inspect(stdout, path, spec);
    } else {
        if (!dest) return cmd_usage_error("ckpt", "ckpt export: missing -o OUT");
        if (!format) {
            size_t L = strlen(dest);
            format = L > 4 && !strcmp(dest + L - 4, ".bin") ? "weights" : "safetensors";
        }
        if (strcmp(format, "safetensors") != 0 && strcmp(format, "weights") != 0)
            return cmd_usage_error("ckpt", "ckpt export: --format is safetensors or weights, "
                                   "not '%s'", format);
        rc = ckptview_export(stdout, path, dest, format, !live);
    }
    fflush(stdout);
    return cmd_report(rc);
}
