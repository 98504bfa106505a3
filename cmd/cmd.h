/* cmd/cmd.h - the dfm subcommands and the helpers they share.
 *
 * Each subcommand lives in cmd/<name>.c as `int cmd_<name>(int argc, char **argv)` where argv[0]
 * is the subcommand name. It returns an exit status: 0 success, 2 usage or input error (bad flag,
 * invalid job spec), 1 any other failure. Errors raised below cmd/ are printed once, here, by
 * cmd_report().
 */
#ifndef DFM_CMD_CMD_H
#define DFM_CMD_CMD_H

#include <stdio.h>

#include "io/jobspec.h"

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} CmdEntry;

/* Print the current core/err.h error ("dfm: error: ...", hint, and the trace when DFM_LOG=debug)
 * and return its exit status. */
int cmd_report(int rc);

/* End a command that started MPI: on error report it and abort every rank (a lone failing rank
 * must not leave the others waiting), then finalize; returns the exit status (0 when rc is OK). */
int cmd_dist_end(int rc);

/* Print "dfm: <fmt>" and "run 'dfm <sub> --help' for usage" (sub may be NULL); returns 2. */
int cmd_usage_error(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True when s is "-h" or "--help". */
int cmd_is_help(const char *s);

/* An option that takes a value, given as "--name VALUE" or "--name=VALUE": every command accepts
 * both spellings. Returns 1 when argv[*i] is option `name` (*value set; *i advanced past a
 * separate value), 0 when argv[*i] is something else, and -1 after printing an error for
 * subcommand `sub` (exit status 2) when the value is missing or, for a path (is_path), the empty
 * string (an unset shell variable). */
int cmd_opt(int argc, char **argv, int *i, const char *sub, const char *name, int is_path,
            const char **value);

/* Parse "JOB.yaml [--set KEY=VALUE | --set=KEY=VALUE ...] [-h|--help]" for subcommand `sub`.
 * sets must have room for argc entries. Returns -1 when the command should go on (*path set,
 * sets[0..*n_sets) filled, pointing into argv), otherwise the exit status to return: 0 after
 * printing usage(stdout) for --help, 2 after a usage error (unknown option, missing, empty or
 * second job spec, --set without a value). */
int cmd_job_args(int argc, char **argv, const char *sub, void (*usage)(FILE *), const char **path,
                 const char **sets, int *n_sets);

/* cmd_job_args, then load the job spec with its --set overrides into *js. Returns -1 when the
 * command should go on (*js loaded; the caller frees it), otherwise the exit status to return
 * (help, usage error, or an invalid spec already reported). */
int cmd_load_job(int argc, char **argv, const char *sub, void (*sub_usage)(FILE *), JobSpec *js);

int cmd_validate(int argc, char **argv);
int cmd_fetch(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_submit(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_ckpt(int argc, char **argv);
int cmd_evaluator(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_sample(int argc, char **argv);

#endif
