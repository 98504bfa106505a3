/* io/runlog.h - what a user sees of a training run: a live progress line or plain log lines,
 * and metrics appended as JSON lines to <run dir>/metrics.jsonl.
 *
 * Only the rank that opens a RunLog writes (the training loop opens it on rank 0). On a terminal
 * the progress line is redrawn in place (carriage return) at most every 0.2 s; otherwise one
 * plain line is logged every `log_every` steps. The metrics file is opened in append mode, one
 * JSON object per line, flushed after every record, so a crash loses at most the line being
 * written; a resumed run trims the file to its checkpoint's step (runlog_trim) and continues it.
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
    long first_step;   /* steps already done when this process started (a resumed run) */
    /* A checkpoint committed at this step boundary (ckpt_step > 0): the step it holds, the
     * seconds training was blocked by it, the seconds from its start to its commit, bytes. */
    long ckpt_step;
    double ckpt_stall_s, ckpt_save_s;
    unsigned long long ckpt_bytes;
} RunRecord;

int runlog_open(RunLog *rl, const char *run_dir, int log_every);
/* Append the record to metrics.jsonl and update the screen. */
int runlog_record(RunLog *rl, const RunRecord *r);
/* Print a message line (finishing a live progress line first). */
void runlog_note(RunLog *rl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void runlog_close(RunLog *rl);

/* Make <run_dir>/metrics.jsonl continue a run at step keep_step: keep the complete lines whose
 * "step" is at most keep_step, drop the others (lines past it, a line cut short by a crash or a
 * full disk); keep_step 0 empties it (a fresh run never mixes with an old one). Atomic. *dropped
 * (may be NULL) receives the number of lines removed. A missing file is fine. */
int runlog_trim(const char *run_dir, long keep_step, long *dropped);

#endif
