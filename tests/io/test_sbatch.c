/* tests/io/test_sbatch.c - batch-script template expansion, rendering, cross-section checks,
 * signal and time parsing, shell quoting, Slurm output patterns, and the process runner. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "io/jobspec.h"
#include "io/proc.h"
#include "io/sbatch.h"
#include "io/submit.h"

Test(sbatch, expand_drops_and_repeats_lines)
{
    const char *list[] = {"--a", "--b"};
    const SbatchVar v[] = {
        {"X", "1", NULL, 0, 0},
        {"NONE", NULL, NULL, 0, 0},
        {"L", NULL, list, 2, 1},
        {"EMPTY", NULL, NULL, 0, 1},
    };
    char *out;
    cr_assert_eq(sbatch_expand("a=@X@ b=@X@\n#drop @NONE@\n#SBATCH @L@\n@EMPTY@\nmail@host @x@ @@\n",
                               "t", v, 4, &out), ERR_OK);
    cr_assert_str_eq(out, "a=1 b=1\n#SBATCH --a\n#SBATCH --b\nmail@host @x@ @@\n");
    xfree(out);
    /* the last line needs no newline */
    cr_assert_eq(sbatch_expand("x @X@", "t", v, 4, &out), ERR_OK);
    cr_assert_str_eq(out, "x 1\n");
    xfree(out);
}

Test(sbatch, expand_errors_name_the_line)
{
    const char *list[] = {"a"};
    const SbatchVar v[] = {{"L", NULL, list, 1, 1}, {"M", NULL, list, 1, 1}};
    char *out = NULL;
    cr_assert_eq(sbatch_expand("ok\n\n@NOPE@\n", "tmpl.in", v, 2, &out), ERR_FORMAT);
    cr_assert_str_eq(err_message(), "tmpl.in:3: unknown placeholder @NOPE@");
    cr_assert_eq(sbatch_expand("@L@ @M@\n", "tmpl.in", v, 2, &out), ERR_FORMAT);
    cr_assert(strstr(err_message(), "two list placeholders") != NULL, "%s", err_message());
    cr_assert_null(out);
}

Test(sbatch, builtin_template_has_every_placeholder_known)
{
    JobSpec js;
    cr_assert_eq(jobspec_defaults(&js), ERR_OK);
    const char *dirs[] = {"runs/a b", "runs/c"};
    SbatchJob job = {"/opt/dfm/bin/dfm", "/home/u/x", "jobs/x.yaml", "0.1.0", "abc", dirs, 2, "o-%A_%a"};
    char *s;
    cr_assert_eq(sbatch_render(&js, &job, NULL, NULL, &s), ERR_OK, "%s", err_message());
    cr_assert(strstr(s, "#SBATCH --array=0-1\n") != NULL);
    cr_assert(strstr(s, "#SBATCH --output=o-%A_%a\n") != NULL);
    cr_assert(strstr(s, "    'runs/a b'\n    runs/c\n") != NULL);
    cr_assert(strstr(s, "#SBATCH --signal=USR1@300\n") != NULL);
    cr_assert(strstr(s, "#SBATCH --partition") == NULL);
    cr_assert(strstr(s, "@") == NULL || strstr(s, "@300") != NULL);
    cr_assert(strstr(s, "srun --mpi=pmix --kill-on-bad-exit=1 --cpus-per-task=1 \"$DFM\" train") !=
              NULL);
    xfree(s);
    cr_assert_eq(jobspec_set(&js, "slurm.mpi=pmi2"), ERR_OK);
    cr_assert_eq(sbatch_render(&js, &job, NULL, NULL, &s), ERR_OK, "%s", err_message());
    cr_assert(strstr(s, "srun --mpi=pmi2 --kill-on-bad-exit=1 ") != NULL, "slurm.mpi is used");
    xfree(s);
    jobspec_free(&js);
}

Test(sbatch, checks_across_sections)
{
    JobSpec js;
    cr_assert_eq(jobspec_defaults(&js), ERR_OK);
    cr_assert_eq(jobspec_set(&js, "train.batch=64"), ERR_OK);
    cr_assert_eq(jobspec_set(&js, "train.micro_batch=16"), ERR_OK); /* 4 micro-batches */
    int w = 0;
    log_set_level(LOG_ERROR); /* the warnings are counted, not shown */
    cr_assert_eq(sbatch_check(&js, "x", &w), ERR_OK);
    cr_assert_eq(w, 0);
    cr_assert_eq(jobspec_set(&js, "slurm.ntasks_per_node=3"), ERR_OK);
    cr_assert_eq(sbatch_check(&js, "x", &w), ERR_OK);
    cr_assert_eq(w, 1); /* 3 ranks: not bitwise across rank counts */
    cr_assert_eq(jobspec_set(&js, "slurm.nodes=2"), ERR_OK);
    cr_assert_eq(sbatch_check(&js, "x", &w), ERR_SPEC); /* 6 ranks > 4 micro-batches */
    cr_assert_eq(jobspec_set(&js, "slurm.nodes=1"), ERR_OK);
    cr_assert_eq(jobspec_set(&js, "slurm.ntasks_per_node=2"), ERR_OK);
    cr_assert_eq(jobspec_set(&js, "train.threads=2"), ERR_OK);
    cr_assert_eq(sbatch_check(&js, "x", NULL), ERR_SPEC);
    cr_assert_eq(jobspec_set(&js, "slurm.cpus_per_task=2"), ERR_OK);
    cr_assert_eq(sbatch_check(&js, "x", NULL), ERR_OK);
    cr_assert_eq(jobspec_set(&js, "slurm.signal=B:SIGUSR1@3600"), ERR_OK);
    cr_assert_eq(sbatch_check(&js, "x", NULL), ERR_SPEC); /* lead == time limit */
    cr_assert_eq(jobspec_set(&js, "slurm.time=1-00:00:00"), ERR_OK);
    cr_assert_eq(sbatch_check(&js, "x", NULL), ERR_OK);
    cr_assert_eq(jobspec_set(&js, "slurm.signal=HUP@60"), ERR_OK);
    cr_assert_eq(sbatch_check(&js, "x", NULL), ERR_SPEC);
    jobspec_free(&js);
}

Test(sbatch, signal_time_quote)
{
    int b, s;
    char name[8];
    cr_assert_eq(sbatch_parse_signal("B:SIGUSR1@90", &b, name, &s), ERR_OK);
    cr_assert(b == 1 && s == 90 && !strcmp(name, "USR1"));
    cr_assert_eq(sbatch_parse_signal("USR1@0", &b, name, &s), ERR_OK);
    cr_assert(b == 0 && s == 0);
    cr_assert_eq(sbatch_parse_signal("USR1", &b, name, &s), ERR_SPEC);
    cr_assert_eq(sbatch_time_seconds("01:02:03"), 3723);
    cr_assert_eq(sbatch_time_seconds("2-00:00:10"), 2 * 86400 + 10);
    char *q = sbatch_shell_quote("runs/x-1.5");
    cr_assert_str_eq(q, "runs/x-1.5");
    xfree(q);
    q = sbatch_shell_quote("it's $HOME");
    cr_assert_str_eq(q, "'it'\\''s $HOME'");
    xfree(q);
    q = sbatch_shell_quote("");
    cr_assert_str_eq(q, "''");
    xfree(q);
}

Test(sbatch, output_patterns)
{
    char b[256];
    submit_expand_output("runs/x/slurm-%j.out", 42, -1, 0, "x", b, sizeof b);
    cr_assert_str_eq(b, "runs/x/slurm-42.out");
    submit_expand_output("r/p%3a/s-%A_%a-%x%%-%q", 7, 7, 5, "nm", b, sizeof b);
    cr_assert_str_eq(b, "r/p005/s-7_5-nm%-%q");
    submit_expand_output("%a", 7, -1, 0, "nm", b, sizeof b);
    cr_assert_str_eq(b, "4294967294");
}

Test(proc, captures_status_and_streams)
{
    const char *ok[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
    ProcResult r;
    cr_assert_eq(proc_run(ok, 10, &r), ERR_OK);
    cr_assert_eq(r.status, 3);
    cr_assert_str_eq(r.out, "out\n");
    cr_assert_str_eq(r.err, "err");
    char why[256];
    proc_describe(&r, "sh", 10, why, sizeof why);
    cr_assert_str_eq(why, "sh exited 3: err");
    proc_result_free(&r);
    const char *missing[] = {"dfm-no-such-program", NULL};
    cr_assert_eq(proc_run(missing, 10, &r), ERR_OK);
    cr_assert_eq(r.status, PROC_NOT_FOUND);
    proc_result_free(&r);
    const char *slow[] = {"sleep", "30", NULL};
    cr_assert_eq(proc_run(slow, 0.3, &r), ERR_OK);
    cr_assert_eq(r.status, PROC_TIMED_OUT);
    proc_result_free(&r);
}
