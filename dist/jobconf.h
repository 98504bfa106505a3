/* dist/jobconf.h - a job spec translated into the configurations of the modules that act on it.
 *
 * The one place where JobSpec fields (io/jobspec.h) become NetConfig, Schedule, SamplerConfig,
 * TrainTargetConfig, LrSchedule, OptimConfig and LoaderConfig. `dfm train`, `dfm validate` and
 * every later command that builds a model or samples from one (sample, eval) call these, so a
 * key means the same thing to all of them. Nothing here talks to MPI or allocates beyond what the
 * filled configuration owns (the Schedule: free it with sched_free).
 *
 * The functions that can fail validate the configuration the way its module does (lr_check,
 * optim_config_check, sched_init_*) and return ERR_SPEC / ERR_ARG with that module's message.
 */
#ifndef DFM_DIST_JOBCONF_H
#define DFM_DIST_JOBCONF_H

#include "io/jobspec.h"
#include "io/loader.h"
#include "model/net.h"
#include "model/optim.h"
#include "sched/lr.h"
#include "sched/sampler.h"
#include "sched/schedule.h"
#include "sched/sde.h"
#include "sched/targets.h"

/* Flow and SDE models see 1000 * tau (1000 * t) as their time input, so the sinusoidal
 * embedding covers the same range as a DDPM model's 0..T-1 timesteps. */
#define JOBCONF_FLOW_TIME_SCALE 1000.0

/* The network (data dimensions included). */
void jobconf_net(const JobSpec *js, NetConfig *nc);
/* The noise schedule (DDPM), probability path (flow) or SDE (sde); *s owned, sched_free it. */
int jobconf_schedule(const JobSpec *js, Schedule *s);
/* objective sde: the SDE and the network's output kind (ERR_SPEC for other objectives). */
int jobconf_sde(const JobSpec *js, Sde *sde, SdeOut *out);
/* Network time input = jobconf_time_scale * the schedule's time. */
double jobconf_time_scale(const JobSpec *js);
/* The sampler of the sample section (seed = sample.seed). */
void jobconf_sampler(const JobSpec *js, SamplerConfig *c);
/* Training targets: t distribution, label dropout, seed = run.seed. */
void jobconf_targets(const JobSpec *js, TrainTargetConfig *tc);
/* Learning-rate schedule over train.steps, checked. */
int jobconf_lr(const JobSpec *js, LrSchedule *lr);
/* Optimizer, clipping and EMA, checked. */
int jobconf_optim(const JobSpec *js, OptimConfig *oc);
/* Data order and augmentation of the global batch. */
void jobconf_loader(const JobSpec *js, LoaderConfig *lc);
/* The dataset registry name of data.dataset (and data.toy for toy2d): "fashion-mnist", "moons". */
const char *jobconf_dataset_name(const JobSpec *js);

#endif
