/* dist/likelihood.c - the variational bound and the ODE likelihood over the ranks. See
 * dist/likelihood.h for the contract. */
#include "dist/likelihood.h"

#include <math.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rng.h"
#include "dist/coord.h"
#include "dist/dist.h"
#include "dist/jobconf.h"
#include "io/dataset.h"
#include "sched/sde.h"
#include "sched/vlb.h"

#define LIK_EXACT_MAX_D 16          /* exact divergence up to this many values per example */
#define LIK_DEQUANT_SUB 0x40000000u /* RNG_P_EVAL sub of the dequantisation noise */

/* ---- the network as a double callback, and its vector-Jacobian product --------------------- */

typedef struct {
    Net *net;
    double tscale, toff; /* network time input = tscale * t + toff */
    size_t cap;
    float *xf, *of, *vf, *tf;
} LikNet;

static void liknet_grow(LikNet *c, size_t B, size_t D)
{
    if (B <= c->cap) return;
    c->xf = xrealloc(c->xf, B * D * sizeof(float));
    c->of = xrealloc(c->of, B * D * sizeof(float));
    c->vf = xrealloc(c->vf, B * D * sizeof(float));
    c->tf = xrealloc(c->tf, B * sizeof(float));
    c->cap = B;
}

static void liknet_free(LikNet *c)
{
    xfree(c->xf);
    xfree(c->of);
    xfree(c->vf);
    xfree(c->tf);
}

static void liknet_in(LikNet *c, const double *x, const double *t, size_t B, size_t D)
{
    liknet_grow(c, B, D);
    for (size_t i = 0; i < B * D; i++) c->xf[i] = (float)x[i];
    for (size_t j = 0; j < B; j++) c->tf[j] = (float)(c->tscale * t[j] + c->toff);
}

static int check_out(const float *o, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(o[i])) {
            ERR(ERR_NUMERIC, "the network's output is not finite (element %zu)", i);
            err_hint("check the weights: a diverged run gives NaN/Inf");
            return ERR_NUMERIC;
        }
    return ERR_OK;
}

static int lik_net(void *vctx, const double *x, const double *t, const int *labels, size_t B,
                   size_t D, double *out)
{
    LikNet *c = vctx;
    liknet_in(c, x, t, B, D);
    net_infer(c->net, c->xf, c->tf, labels, B, c->of);
    TRY(check_out(c->of, B * D));
    for (size_t i = 0; i < B * D; i++) out[i] = (double)c->of[i];
    return ERR_OK;
}

/* out = net(x), jv = J^T v through the input gradient of the training forward (no dropout). */
static int lik_vjp(void *vctx, const double *x, const double *t, const int *labels, size_t B,
                   size_t D, const double *v, double *out, double *jv)
{
    LikNet *c = vctx;
    liknet_in(c, x, t, B, D);
    for (size_t i = 0; i < B * D; i++) c->vf[i] = (float)v[i];
    NetTrainOpts fo = {.labels = labels};
    net_forward(c->net, c->xf, c->tf, B, &fo, c->of);
    net_zero_grad(c->net);
    net_backward(c->net, c->vf);
    const float *dx = net_input_grad(c->net);
    ASSERT(dx != NULL);
    TRY(check_out(c->of, B * D));
    for (size_t i = 0; i < B * D; i++) {
        out[i] = (double)c->of[i];
        jv[i] = (double)dx[i];
    }
    return ERR_OK;
}

/* ---- held-out data ----------------------------------------------------------------------- */

typedef struct {
    SampleModel *m;
    const LikelihoodArgs *a;
    size_t n, D;
    int image;
    double *x;      /* (n, D) in [-1, 1] (images: the 8-bit levels k / 127.5 - 1) */
    int *labels;    /* (n) or NULL */
    uint64_t *idx;  /* (n): 0..n-1, the examples' keys */
    LikNet ln;
    uint64_t seed;
    /* elbo */
    Schedule sch;
    SchedVar var;
    /* nll */
    int family;     /* the ODE: SCHED_SDE (sde and ddpm objectives) or SCHED_FLOW */
    Sde sde;
    SdeOut out;
    double sigma_min;
    LoglikConfig lc;
} LikCtx;

static int load_data(LikCtx *c)
{
    const JobSpec *js = &c->m->js;
    const char *name = jobconf_dataset_name(js);
    Dataset ds = {0};
    if (js->data.dataset == JOB_DATA_TOY2D)
        TRY(dataset_toy(&ds, name, c->a->n, js->run.seed ^ UINT64_C(0x5eed0001)));
    else
        TRY(dataset_open(&ds, name, c->a->data_dir, DATASET_TEST));
    size_t D = dataset_dim(&ds);
    if (D != c->D) {
        dataset_free(&ds);
        return ERR(ERR_FORMAT, "dataset %s has %zu values per example, the model %zu", name, D,
                   c->D);
    }
    c->n = c->a->n < ds.n ? c->a->n : ds.n;
    c->x = xmalloc(c->n * D * sizeof(double) + 1);
    for (size_t i = 0; i < c->n * D; i++)
        c->x[i] = ds.u8 ? (double)((float)ds.u8[i] / 127.5f - 1.0f) : (double)ds.f32[i];
    c->image = ds.u8 != NULL;
    if (js->model.num_classes > 0 && ds.labels) {
        c->labels = xmalloc(c->n * sizeof(int));
        for (size_t j = 0; j < c->n; j++) c->labels[j] = ds.labels[j];
    }
    c->idx = xmalloc(c->n * sizeof(uint64_t) + 1);
    for (size_t j = 0; j < c->n; j++) c->idx[j] = j;
    dataset_free(&ds);
    return ERR_OK;
}

/* ---- the variational bound: items (t, example), t-major ------------------------------------ */

static int elbo_work(void *vctx, uint64_t first, size_t count, void *vout)
{
    LikCtx *c = vctx;
    double *out = vout;
    size_t n = c->n, D = c->D, bs = c->a->batch > 0 ? c->a->batch : 1;
    int levels = c->image ? 256 : 0;
    uint64_t u = first, end = first + count;
    while (u < end) {
        int t = (int)(u / n);
        size_t j0 = (size_t)(u % n), nb = n - j0;
        if (nb > end - u) nb = (size_t)(end - u);
        if (nb > bs) nb = bs;
        double *o = out + (u - first);
        if (t == 0) {
            for (size_t j = 0; j < nb; j++) o[j] = sched_vlb_prior(&c->sch, c->x + (j0 + j) * D, D);
        } else {
            TRY(sched_vlb_terms_at(&c->sch, c->var, levels, t, lik_net, &c->ln, c->seed,
                                   c->idx + j0, nb, D, c->labels ? c->labels + j0 : NULL,
                                   c->x + j0 * D, o));
        }
        u += nb;
    }
    return ERR_OK;
}

static int run_elbo(LikCtx *c, LikelihoodResult *r)
{
    const JobSpec *js = &c->m->js;
    TRY(jobconf_schedule(js, &c->sch));
    SamplerConfig sc;
    jobconf_sampler(js, &sc);
    c->var = sc.var;
    c->ln.tscale = jobconf_time_scale(js);
    c->ln.toff = 0.0;
    int T = c->sch.T;
    uint64_t items = (uint64_t)(T + 1) * c->n;
    double *terms = dist_rank() == 0 ? xmalloc(items * sizeof(double)) : NULL;
    double t0 = core_now();
    /* a chunk is (up to) one t for every example: batched network calls at one time */
    size_t chunk = c->n > c->a->chunk ? c->n : c->a->chunk;
    int rc = coord_run(items, chunk, sizeof(double), elbo_work, c, terms, NULL);
    r->wall_elbo = core_now() - t0;
    r->T = T;
    if (rc == ERR_OK && dist_rank() == 0) {
        /* per example: L_T, then t = 1, ..., T (the order of sched_vlb_d); then the examples */
        double tot = 0, prior = 0, kl = 0, dec = 0;
        for (size_t j = 0; j < c->n; j++) {
            double e = terms[j], k = 0;
            for (int t = 1; t <= T; t++) e += terms[(size_t)t * c->n + j];
            for (int t = 2; t <= T; t++) k += terms[(size_t)t * c->n + j];
            tot += e;
            prior += terms[j];
            kl += k;
            dec += terms[c->n + j];
        }
        double nn = (double)c->n;
        r->elbo = tot / nn;
        r->elbo_prior = prior / nn;
        r->elbo_kl = kl / nn;
        r->elbo_decoder = dec / nn;
        if (!isfinite(r->elbo)) rc = ERR(ERR_NUMERIC, "the variational bound is not finite");
    }
    xfree(terms);
    sched_free(&c->sch);
    return rc;
}

/* ---- the ODE likelihood: items = examples, 3 doubles each (nll, batch NFE mean, max) -------- */

static int nll_work(void *vctx, uint64_t first, size_t count, void *vout)
{
    LikCtx *c = vctx;
    double *out = vout;
    size_t D = c->D, bs = c->a->batch > 0 ? c->a->batch : 1;
    double *y = xmalloc(bs * D * sizeof(double)), *logp = xmalloc(bs * sizeof(double));
    int rc = ERR_OK;
    for (size_t s = 0; s < count && rc == ERR_OK; s += bs) {
        size_t nb = count - s < bs ? count - s : bs, j0 = (size_t)first + s;
        memcpy(y, c->x + j0 * D, nb * D * sizeof(double));
        if (c->image) /* uniform dequantisation inside the example's bin of width 2/256 */
            for (size_t j = 0; j < nb; j++) {
                Rng g;
                rng_init(&g, c->seed, rng_stream(RNG_P_EVAL, c->idx[j0 + j]), LIK_DEQUANT_SUB, 0);
                for (size_t i = 0; i < D; i++) {
                    double k = floor((y[j * D + i] + 1.0) * 127.5 + 0.5);
                    y[j * D + i] = 2.0 * (k + rng_uniform(&g)) / 256.0 - 1.0;
                }
            }
        SdeStats st;
        const int *lab = c->labels ? c->labels + j0 : NULL;
        if (c->family == SCHED_FLOW)
            rc = flow_loglik_d(&c->lc, c->sigma_min, lik_net, &c->ln, c->idx + j0, nb, D, lab, y,
                               logp, NULL, NULL, &st);
        else
            rc = sde_loglik_d(&c->lc, &c->sde, c->out, lik_net, &c->ln, c->idx + j0, nb, D, lab,
                              y, logp, NULL, NULL, &st);
        for (size_t j = 0; j < nb && rc == ERR_OK; j++) {
            double *o = out + (s + j) * 3;
            o[0] = -logp[j];
            o[1] = st.nfe_mean + (double)st.jvp;
            o[2] = (double)(st.nfe + st.jvp);
        }
    }
    xfree(y);
    xfree(logp);
    return rc;
}

static int setup_ode(LikCtx *c)
{
    const JobSpec *js = &c->m->js;
    loglik_config_default(&c->lc);
    c->lc.div = c->D <= LIK_EXACT_MAX_D ? SDE_DIV_EXACT : SDE_DIV_HUTCHINSON;
    c->lc.jvp = lik_vjp;
    c->lc.seed = c->seed;
    c->lc.ode.rtol = js->sample.rtol;
    c->lc.ode.atol = js->sample.atol;
    c->ln.toff = 0.0;
    c->ln.tscale = jobconf_time_scale(js);
    switch (js->objective.type) {
    case JOB_OBJ_FLOW:
        c->family = SCHED_FLOW;
        c->sigma_min = js->objective.flow.sigma_min;
        return ERR_OK;
    case JOB_OBJ_SDE:
        c->family = SCHED_SDE;
        return jobconf_sde(js, &c->sde, &c->out);
    default: {
        const JobDDPM *d = &js->objective.ddpm;
        if (d->schedule != JOB_BETAS_LINEAR || d->prediction != JOB_PRED_EPS) {
            ERR(ERR_SPEC, "nll of a ddpm model needs the linear schedule and eps prediction (the "
                "VP SDE it discretises), the model has the %s schedule and predicts %s",
                d->schedule == JOB_BETAS_LINEAR ? "linear" : "cosine",
                d->prediction == JOB_PRED_EPS ? "eps" : d->prediction == JOB_PRED_X0 ? "x0" : "v");
            err_hint("use --metrics elbo for this model");
            return ERR_SPEC;
        }
        double T = (double)d->timesteps;
        c->family = SCHED_SDE;
        c->out = SDE_OUT_EPS;
        c->ln.tscale = T; /* network timestep k = t T - 1 */
        c->ln.toff = -1.0;
        return sde_init_vp(&c->sde, T * d->beta_start, T * d->beta_end, 1.0 / T);
    }
    }
}

static int run_nll(LikCtx *c, LikelihoodResult *r)
{
    TRY(setup_ode(c));
    r->hutchinson = c->lc.div == SDE_DIV_HUTCHINSON;
    double *res = dist_rank() == 0 ? xmalloc(c->n * 3 * sizeof(double)) : NULL;
    double t0 = core_now();
    int rc = coord_run(c->n, c->a->chunk, 3 * sizeof(double), nll_work, c, res, NULL);
    r->wall_nll = core_now() - t0;
    if (rc == ERR_OK && dist_rank() == 0) {
        double tot = 0, nfe = 0, mx = 0;
        for (size_t j = 0; j < c->n; j++) {
            tot += res[3 * j];
            nfe += res[3 * j + 1];
            mx = res[3 * j + 2] > mx ? res[3 * j + 2] : mx;
        }
        r->nll = tot / (double)c->n;
        r->nfe_mean = nfe / (double)c->n;
        r->nfe_max = (uint64_t)mx;
        if (!isfinite(r->nll)) rc = ERR(ERR_NUMERIC, "the ODE log-likelihood is not finite");
    }
    xfree(res);
    return rc;
}

/* ---- entry points -------------------------------------------------------------------------- */

int likelihood_run(SampleModel *m, const LikelihoodArgs *a, LikelihoodResult *r)
{
    memset(r, 0, sizeof *r);
    if (a->n < 1) return ERR(ERR_ARG, "likelihood: no examples to score");
    LikCtx c;
    memset(&c, 0, sizeof c);
    c.m = m;
    c.a = a;
    c.D = m->ss.D;
    c.seed = m->js.sample.seed;
    c.ln.net = m->ss.net;
    memcpy(net_params(m->ss.net), m->params, sizeof(float) * m->n_params);
    int rc = load_data(&c);
    r->n = c.n;
    r->D = c.D;
    r->image = c.image;
    if (rc == ERR_OK && a->elbo) rc = run_elbo(&c, r);
    if (rc == ERR_OK && a->nll) rc = run_nll(&c, r);
    liknet_free(&c.ln);
    xfree(c.x);
    xfree(c.labels);
    xfree(c.idx);
    return rc;
}

double likelihood_bpd_elbo(const LikelihoodResult *r)
{
    return r->elbo / ((double)r->D * log(2.0));
}

double likelihood_bpd_nll(const LikelihoodResult *r)
{
    return sched_bits_per_dim(r->nll, r->D, 2.0 / 256.0);
}

void likelihood_print(FILE *out, const SampleModel *m, const LikelihoodArgs *a,
                      const LikelihoodResult *r)
{
    double dl2 = (double)r->D * log(2.0);
    const char *unit = r->image ? "bits/dim" : "nats/example";
    fprintf(out, "| %-40s | %12s |\n", "likelihood", unit);
    fprintf(out, "|------------------------------------------|--------------|\n");
    if (a->elbo) {
        double s = r->image ? 1.0 / dl2 : 1.0;
        fprintf(out, "| %-40s | %12.4f |\n", "ELBO (variational bound, -log p <=)", r->elbo * s);
        fprintf(out, "|   L_T (prior)                            | %12.4f |\n", r->elbo_prior * s);
        fprintf(out, "|   L_1 .. L_T-1 (%5d Gaussian KL terms)  | %12.4f |\n", r->T - 1,
                r->elbo_kl * s);
        fprintf(out, "|   L_0 (%-32s | %12.4f |\n",
                r->image ? "discretised decoder, 256 levels)" : "Gaussian decoder density)",
                r->elbo_decoder * s);
    }
    if (a->nll)
        fprintf(out, "| %-40s | %12.4f |\n",
                r->image ? "NLL, probability-flow ODE (dequantised)" : "NLL, probability-flow ODE",
                r->image ? likelihood_bpd_nll(r) : r->nll);
    if (r->image)
        fprintf(out, "| %-40s | %12.4f |\n", "uniform dequantisation baseline", 8.0);
    fprintf(out, "(%zu held-out %s of %s, %zu values each", r->n,
            r->image ? "test images" : "draws", jobspec_data_name(&m->js), r->D);
    if (a->elbo) fprintf(out, "; ELBO: all %d + 1 terms per example, %.1f s", r->T, r->wall_elbo);
    if (a->nll)
        fprintf(out, "; NLL: %s divergence, RK45 rtol %g atol %g, %.1f network evaluations per "
                "example on average (at most %llu), %.1f s",
                r->hutchinson ? "Hutchinson (1 Rademacher probe)" : "exact",
                m->js.sample.rtol, m->js.sample.atol, r->nfe_mean,
                (unsigned long long)r->nfe_max, r->wall_nll);
    fprintf(out, ")\n");
}

int likelihood_wanted(const JobSpec *js, int *others)
{
    int lik = 0, oth = 0;
    for (int i = 0; i < js->eval.n_metrics; i++) {
        JobMetric mt = js->eval.metrics[i];
        if (mt == JOB_METRIC_NLL || mt == JOB_METRIC_ELBO) lik = 1;
        else oth = 1;
    }
    if (others) *others = oth;
    return lik;
}

int likelihood_eval(SampleModel *m, const EvalRunArgs *ea, FILE *out)
{
    LikelihoodArgs a = {.data_dir = ea->data_dir, .n = ea->n, .chunk = ea->chunk,
                        .batch = (size_t)m->js.eval.batch};
    for (int i = 0; i < m->js.eval.n_metrics; i++) {
        a.nll |= m->js.eval.metrics[i] == JOB_METRIC_NLL;
        a.elbo |= m->js.eval.metrics[i] == JOB_METRIC_ELBO;
    }
    LikelihoodResult r;
    TRY(likelihood_run(m, &a, &r));
    if (dist_rank() == 0) likelihood_print(out, m, &a, &r);
    return ERR_OK;
}
