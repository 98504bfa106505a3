/* tests/dist/test_jobconf.c - job-spec keys reach the configurations they name (no MPI). */
#include <criterion/criterion.h>
#include <string.h>

#include "core/err.h"
#include "dist/jobconf.h"
#include "io/jobspec.h"
#include "sched/oracle.h"
#include "sched/sampler.h"

static int load_str(JobSpec *js, const char *text)
{
    return jobspec_load_string(js, text, strlen(text), "t.yaml");
}

/* sample.variance selects the ddpm sampler's step variance, and it changes the samples. */
Test(jobconf, sample_variance_reaches_the_sampler)
{
    JobSpec a, b;
    cr_assert_eq(load_str(&a, "sample:\n  sampler: ddpm\n  steps: 20\n"), ERR_OK, "%s", err_message());
    cr_assert_eq(load_str(&b, "sample:\n  sampler: ddpm\n  steps: 20\n  variance: beta\n"), ERR_OK,
                 "%s", err_message());
    SamplerConfig ca, cb;
    jobconf_sampler(&a, &ca);
    jobconf_sampler(&b, &cb);
    cr_assert_eq(ca.var, SCHED_VAR_BETA_TILDE);
    cr_assert_eq(cb.var, SCHED_VAR_BETA);
    Schedule s;
    cr_assert_eq(jobconf_schedule(&b, &s), ERR_OK, "%s", err_message());
    const double mu[4] = {0.2, -0.1, 0.2, -0.1};
    Oracle o;
    memset(&o, 0, sizeof o);
    o.kind = ORACLE_GAUSS;
    o.time = ORACLE_TIME_INDEX;
    o.sched = &s;
    o.pred = s.pred;
    o.D = 2;
    o.K = 1;
    o.mu = mu;
    o.sd = 0.3;
    uint64_t idx[2] = {0, 1};
    double xa[4], xb[4];
    cr_assert_eq(sched_sample_d(&ca, &s, oracle_net_d, &o, idx, 2, 2, NULL, NULL, NULL, xa, NULL),
                 ERR_OK);
    cr_assert_eq(sched_sample_d(&cb, &s, oracle_net_d, &o, idx, 2, 2, NULL, NULL, NULL, xb, NULL),
                 ERR_OK);
    cr_assert(memcmp(xa, xb, sizeof xa) != 0, "the variance must change the samples");
    sched_free(&s);
    jobspec_free(&a);
    jobspec_free(&b);
}

/* sample.timesteps follows the schedule (trailing for cosine) unless set; the sampler gets it. */
Test(jobconf, spacing_follows_the_schedule)
{
    JobSpec js;
    SamplerConfig c;
    cr_assert_eq(load_str(&js, "objective:\n  ddpm:\n    schedule: cosine\n"), ERR_OK, "%s",
                 err_message());
    jobconf_sampler(&js, &c);
    cr_assert_eq(c.spacing, SCHED_SPACING_TRAILING);
    jobspec_free(&js);
    cr_assert_eq(load_str(&js, "objective:\n  ddpm:\n    schedule: cosine\nsample:\n  timesteps: "
                               "uniform\n"), ERR_OK, "%s", err_message());
    jobconf_sampler(&js, &c);
    cr_assert_eq(c.spacing, SCHED_SPACING_UNIFORM);
    jobspec_free(&js);
    cr_assert_eq(load_str(&js, "objective:\n  ddpm:\n    schedule: linear\n"), ERR_OK, "%s",
                 err_message());
    jobconf_sampler(&js, &c);
    cr_assert_eq(c.spacing, SCHED_SPACING_UNIFORM);
    cr_assert_eq(jobspec_set(&js, "objective.ddpm.schedule=cosine"), ERR_OK, "%s", err_message());
    jobconf_sampler(&js, &c);
    cr_assert_eq(c.spacing, SCHED_SPACING_TRAILING);
    jobspec_free(&js);
}
