/* core/names.h - the words of the closed vocabularies that two layers must agree on, spelled once.
 *
 * sched/ gives samplers, model predictions and timestep spacings their meaning (the registries:
 * SamplerKind in sched/sampler.h, SchedPred and SchedSpacing in sched/schedule.h, in this order),
 * and the job-spec schema in io/ parses the same words; neither may include the other, so the
 * spelling lives here, below both. Each list is in the order of its sched/ enum, and a
 * _Static_assert next to each registry checks the count. Datasets are spelled in their own
 * registry, io/dataset.h.
 *
 * To add a word: append it here and its enum value in sched/ (same position), and extend the
 * schema row that offers it (io/jobspec_keys.c).
 */
#ifndef DFM_CORE_NAMES_H
#define DFM_CORE_NAMES_H

/* SamplerKind: ancestral DDPM, DDIM, DPM-Solver++(2M) (diffusion); Euler, midpoint, Heun, RK4,
 * adaptive Dormand-Prince RK45 (the flow ODE, or an SDE's probability-flow ODE); reverse-SDE
 * Euler-Maruyama, predictor-corrector, annealed Langevin (SDE models). */
#define DFM_SAMPLER_NAMES \
    "ddpm", "ddim", "dpmpp2m", "euler", "midpoint", "heun", "rk4", "rk45", "em", "pc", "langevin"
#define DFM_SAMPLER_COUNT 11
#define DFM_SAMPLER_FIRST_FLOW 3 /* "euler": the ODE samplers follow */
#define DFM_SAMPLER_FIRST_SDE 8  /* "em": the samplers of SDE models only follow */

/* SchedPred: noise, clean sample, v (diffusion); velocity (flow). */
#define DFM_PRED_NAMES "eps", "x0", "v", "velocity"
#define DFM_PRED_COUNT 4

/* SchedSpacing. */
#define DFM_SPACING_NAMES "uniform", "quadratic", "trailing"
#define DFM_SPACING_COUNT 3

#endif
