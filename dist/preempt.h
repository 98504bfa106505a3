/* dist/preempt.h - preemption: a signal asks the run to save and stop.
 *
 * preempt_install sets handlers for SIGUSR1, SIGTERM and SIGINT that only record the signal in
 * a sig_atomic_t (async-signal-safe: no MPI, no allocation, no stdio). The training loop adds
 * preempt_pending() to the reduction it performs every step, so every rank learns of a signal
 * any rank received at the same step boundary without an extra message; it then saves a
 * checkpoint and exits with DFM_EXIT_PREEMPTED. A second SIGINT ends the process at once
 * (status 130), as an impatient Ctrl-C expects. preempt_restore puts the old handlers back.
 *
 * Start-up: `dfm train` calls preempt_block first and preempt_install next, and keeps the
 * signals blocked until the OpenMP wait-policy decision is taken (dist_choose_wait_policy).
 * That decision may re-exec the process, which resets handlers to the default (terminate) but
 * keeps the signal mask and pending signals: a signal that arrives meanwhile stays pending
 * instead of killing the process unrecorded or setting a flag the new image would not see, and
 * the re-executed image starts with the signals blocked until its own handlers are installed.
 * preempt_unblock then lets a pending signal in; from there on (MPI_Init, the data, the
 * resume) the handlers record it. The ranks agree on it before the first step
 * (dist/trainckpt.h): a run preempted before step 1 stops at once with DFM_EXIT_PREEMPTED and
 * saves nothing, since its state is the one it started from (a fresh start, or the checkpoint
 * it resumed). Two SIGINTs within the blocked window (the spec loading, milliseconds) count as
 * one.
 */
#ifndef DFM_DIST_PREEMPT_H
#define DFM_DIST_PREEMPT_H

/* "Preempted, checkpoint saved, resume me" (EX_TEMPFAIL). Batch scripts requeue on it. */
#define DFM_EXIT_PREEMPTED 75

void preempt_install(void);
/* Block / unblock SIGUSR1, SIGTERM and SIGINT in the calling thread (see Start-up above). */
void preempt_block(void);
void preempt_unblock(void);
void preempt_restore(void);
/* The first signal received since preempt_install (0 = none). */
int preempt_pending(void);
/* Fault injection for the start-up tests: with DFM_FAULT_SIGNAL_STARTUP=POINT[@RANK], the
 * process sends itself SIGUSR1 at POINT: `exec` (before the wait-policy re-exec, signals blocked;
 * the variable is then removed, so only the first process image sends it), `mpi-init` (before
 * MPI_Init),
 * `resume` (after the data loaded, before the checkpoint is looked for). @RANK: that rank only
 * (rank -1: not known yet, never matches a @RANK). */
void preempt_fault_startup(const char *point, int rank);
/* "SIGUSR1", ... */
const char *preempt_signal_name(int sig);

#endif
