/* dist/watchdog.h - ends a rank that waits too long for the next step boundary.
 *
 * A rank that dies (kill -9, out of memory) or hangs leaves the others blocked in the next
 * collective. mpirun notices a dead rank and ends the job, and `srun --kill-on-bad-exit=1` (the
 * batch scripts of `dfm submit`) does the same under Slurm; the watchdog covers what neither
 * sees: a rank that hangs, or a launcher that does not end the job.
 *
 * watchdog_start(seconds) starts a thread (it never calls MPI: MPI is FUNNELED) that wakes four
 * times a second. The training loop calls watchdog_kick() at every step boundary. When no
 * boundary has been reached for `seconds` (train.watchdog), the thread prints one line naming
 * the rank and the limit and ends the process with _exit(DFM_EXIT_HUNG); every other rank
 * blocked in the same collective does the same on its own, and the launcher ends the rest. So
 * a job whose rank died or hangs ends within train.watchdog seconds (plus a quarter second) of
 * the last step boundary.
 *
 * Legitimately slow phases do not count: between watchdog_hold() and watchdog_release() (nested)
 * the clock stands still, and release restarts it. The training loop holds it during
 * synchronous checkpoint saves (and the wait for an async one), progress sample grids, the
 * evaluations of eval.every (the sampling; rank 0's scoring runs in the background), and
 * everything before the first step and after the last (data, resume, final outputs): there a
 * dead rank is caught by the launcher only.
 */
#ifndef DFM_DIST_WATCHDOG_H
#define DFM_DIST_WATCHDOG_H

/* Exit status of a rank ended by the watchdog (EX_SOFTWARE): not 75, so batch scripts do not
 * requeue it. */
#define DFM_EXIT_HUNG 70

/* Start the thread (seconds <= 0: do nothing). One watchdog per process. */
void watchdog_start(double seconds);
/* A step boundary: restart the clock. Cheap (one atomic store). */
void watchdog_kick(void);
void watchdog_hold(void);
void watchdog_release(void);
/* Stop and join the thread; NULL-safe to call without a start. */
void watchdog_stop(void);

#endif
