/* dist/preempt.h - preemption: a signal asks the run to save and stop.
 *
 * preempt_install sets handlers for SIGUSR1, SIGTERM and SIGINT that only record the signal in
 * a sig_atomic_t (async-signal-safe: no MPI, no allocation, no stdio). The training loop adds
 * preempt_pending() to the reduction it performs every step, so every rank learns of a signal
 * any rank received at the same step boundary without an extra message; it then saves a
 * checkpoint and exits with DFM_EXIT_PREEMPTED. A second SIGINT ends the process at once
 * (status 130), as an impatient Ctrl-C expects. preempt_restore puts the old handlers back.
 */
#ifndef DFM_DIST_PREEMPT_H
#define DFM_DIST_PREEMPT_H

/* "Preempted, checkpoint saved, resume me" (EX_TEMPFAIL). Batch scripts requeue on it. */
#define DFM_EXIT_PREEMPTED 75

void preempt_install(void);
void preempt_restore(void);
/* The first signal received since preempt_install (0 = none). */
int preempt_pending(void);
/* Fault injection for the preemption tests: with DFM_FAULT_SIGNAL_STEP=S in the environment,
 * the process sends itself SIGUSR1 when called with step1 == S (a real signal at a known step;
 * the training loop calls it on rank 0 before each step, 1-based). */
void preempt_fault_step(long step1);
/* "SIGUSR1", ... */
const char *preempt_signal_name(int sig);

#endif
