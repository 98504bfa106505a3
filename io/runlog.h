/* io/runlog.h - what a user sees of a training run: a live progress line or plain log lines,
 * and metrics appended as JSON lines to <run dir>/metrics.jsonl.
 *
 * Only the rank that opens a RunLog writes (the training loop opens it on rank 0). On a terminal
 * the progress line is redrawn in place (carriage return) at most every 0.2 s; otherwise one
 * plain line is logged every `log_every` steps. The metrics file is opened in append mode, one
 * JSON object per line, flushed after every record, so a crash loses at most the line being
 * written and a resumed run continues the same file.
 */
#ifndef DFM_IO_RUNLOG_H
#define DFM_IO_RUNLOG_H

#include <stdio.h>

typedef struct {
    FILE *metrics; /* owned */
    int tty;       /* progress line on stderr */
    int log_every;
    double last_draw;
    int line_open; /* a progress line is on screen without its newline */
} RunLog;

typedef struct {
    long step, steps;
    double loss;
    double loss_q[4];  /* mean loss per quartile of t (NaN when the quartile had no sample) */
    double grad_norm;
    double lr;
    double img_per_s;
    double wall_s;
    long nonfinite;    /* steps skipped so far for a non-finite loss */
} RunRecord;

int runlog_open(RunLog *rl, const char *run_dir, int log_every);
/* Append the record to metrics.jsonl and update the screen. */
int runlog_record(RunLog *rl, const RunRecord *r);
/* Print a message line (finishing a live progress line first). */
void runlog_note(RunLog *rl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void runlog_close(RunLog *rl);

#endif
