/* dist/fault.h - fault injection for the tests of the training loop, read once from the
 * environment (unset: never). Each answers whether the fault fires at a step; the loop acts.
 *
 *     DFM_FAULT_SIGNAL_STEP=S     rank 0 sends itself SIGUSR1 before step S (1-based): a real
 *                                 signal at a known step, for the preemption tests
 *     DFM_FAULT_NAN_STEPS=A[-B]   a NaN in the first example of micro-batch 0 at steps A..B
 *                                 (1-based), as corrupt data would put there
 *     DFM_FAULT_DIVERGE_STEP=S    the last rank nudges one parameter by one ulp after step S,
 *                                 for the parameter-agreement check
 */
#ifndef DFM_DIST_FAULT_H
#define DFM_DIST_FAULT_H

/* Sends SIGUSR1 to this process when step1 is DFM_FAULT_SIGNAL_STEP. */
void fault_signal_step(long step1);
/* Whether step1 lies in DFM_FAULT_NAN_STEPS. */
int fault_nan_step(long step1);
/* Whether step (just completed) is DFM_FAULT_DIVERGE_STEP. */
int fault_diverge_step(long step);

#endif
