/* tests/sched/test_targets.c - training inputs/targets per example, their distributions, the
 * loss and its gradient, and independence from batch composition. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "sched/schedule.h"
#include "sched/targets.h"

typedef struct {
    float *xt, *target, *noise;
    double *tnet, *tpaper;
    int *labels;
} Out;

static Out run(const TrainTargetConfig *c, const Schedule *s, uint64_t step, const uint64_t *idx,
               size_t B, size_t D, const float *x0, const int *lab)
{
    Out o;
    o.xt = malloc(B * D * sizeof(float));
    o.target = malloc(B * D * sizeof(float));
    o.noise = malloc(B * D * sizeof(float));
    o.tnet = malloc(B * sizeof(double));
    o.tpaper = malloc(B * sizeof(double));
    o.labels = malloc(B * sizeof(int));
    cr_assert_eq(sched_train_targets(c, s, step, idx, B, D, x0, lab, o.xt, o.tnet, o.target,
                                     lab ? o.labels : NULL, o.noise, o.tpaper), ERR_OK);
    return o;
}

static void out_free(Out *o)
{
    free(o->xt);
    free(o->target);
    free(o->noise);
    free(o->tnet);
    free(o->tpaper);
    free(o->labels);
}

static float *data(size_t B, size_t D)
{
    float *x = malloc(B * D * sizeof(float));
    for (size_t i = 0; i < B * D; i++) x[i] = (float)sin(0.37 * (double)i) * 0.8f;
    return x;
}

Test(targets, draws_depend_on_sample_index_not_batch)
{
    Schedule s;
    cr_assert_eq(sched_init_linear(&s, 1000, 1e-4, 0.02, SCHED_PRED_EPS), ERR_OK);
    TrainTargetConfig c;
    train_target_config_default(&c);
    c.seed = 42;
    c.p_uncond = 0.5;
    size_t D = 8;
    const uint64_t all[3] = {5, 9, 12}, part[2] = {12, 5};
    float *x0 = data(3, D), x0p[16];
    memcpy(x0p, x0 + 2 * D, D * sizeof(float)); /* row of sample 12 */
    memcpy(x0p + D, x0, D * sizeof(float));     /* row of sample 5 */
    const int lab[3] = {1, 2, 3}, labp[2] = {3, 1};
    Out a = run(&c, &s, 17, all, 3, D, x0, lab), b = run(&c, &s, 17, part, 2, D, x0p, labp);
    cr_assert_eq(memcmp(a.xt + 2 * D, b.xt, D * sizeof(float)), 0);
    cr_assert_eq(memcmp(a.xt, b.xt + D, D * sizeof(float)), 0);
    cr_assert_eq(memcmp(a.target + 2 * D, b.target, D * sizeof(float)), 0);
    cr_assert_eq(a.tnet[2], b.tnet[0]);
    cr_assert_eq(a.tnet[0], b.tnet[1]);
    cr_assert_eq(a.labels[2], b.labels[0]);
    cr_assert_eq(a.labels[0], b.labels[1]);
    /* another step draws other t and noise */
    Out n = run(&c, &s, 18, all, 3, D, x0, lab);
    cr_assert_neq(memcmp(n.noise, a.noise, 3 * D * sizeof(float)), 0);
    out_free(&a);
    out_free(&b);
    out_free(&n);
    free(x0);
    sched_free(&s);
}

Test(targets, diffusion_inputs_and_targets_per_parameterisation)
{
    size_t B = 16, D = 5;
    float *x0 = data(B, D);
    uint64_t idx[16];
    for (size_t j = 0; j < B; j++) idx[j] = 1000 + j;
    TrainTargetConfig c;
    train_target_config_default(&c);
    c.seed = 7;
    for (int p = SCHED_PRED_EPS; p <= SCHED_PRED_V; p++) {
        Schedule s;
        cr_assert_eq(sched_init_cosine(&s, 1000, 0.008, 0.999, (SchedPred)p), ERR_OK);
        Out o = run(&c, &s, 3, idx, B, D, x0, NULL);
        for (size_t j = 0; j < B; j++) {
            int t = (int)o.tpaper[j];
            cr_assert(t >= 1 && t <= 1000);
            cr_assert_eq(o.tnet[j], (double)(t - 1), "network time is the 0-based t - 1");
            double a = s.sqrt_abar[t], sg = s.sqrt_1m_abar[t];
            for (size_t i = 0; i < D; i++) {
                size_t q = j * D + i;
                double e = (double)o.noise[q], x = (double)x0[q];
                cr_assert(fabs((double)o.xt[q] - (a * x + sg * e)) < 1e-6);
                double want = p == SCHED_PRED_EPS ? e : (p == SCHED_PRED_X0 ? x : a * e - sg * x);
                cr_assert(fabs((double)o.target[q] - want) < 1e-6, "%s", sched_pred_name((SchedPred)p));
            }
        }
        out_free(&o);
        sched_free(&s);
    }
    free(x0);
}

/* C6: t ~ U{1..T} per example; the noise is N(0, 1). */
Test(targets, timestep_and_noise_distributions)
{
    Schedule s;
    cr_assert_eq(sched_init_linear(&s, 10, 1e-4, 0.02, SCHED_PRED_EPS), ERR_OK);
    size_t B = 20000, D = 2;
    float *x0 = calloc(B * D, sizeof(float));
    uint64_t *idx = malloc(B * sizeof(uint64_t));
    for (size_t j = 0; j < B; j++) idx[j] = j;
    TrainTargetConfig c;
    train_target_config_default(&c);
    Out o = run(&c, &s, 0, idx, B, D, x0, NULL);
    int hist[11] = {0};
    for (size_t j = 0; j < B; j++) hist[(int)o.tpaper[j]]++;
    cr_assert_eq(hist[0], 0);
    double chi2 = 0, e = (double)B / 10;
    for (int t = 1; t <= 10; t++) chi2 += (hist[t] - e) * (hist[t] - e) / e;
    cr_assert(chi2 < 27.9, "chi-square %.2f with 9 dof (p < 0.001)", chi2);
    double m = 0, v = 0;
    for (size_t i = 0; i < B * D; i++) m += (double)o.noise[i];
    m /= (double)(B * D);
    for (size_t i = 0; i < B * D; i++) v += ((double)o.noise[i] - m) * ((double)o.noise[i] - m);
    v /= (double)(B * D);
    cr_assert(fabs(m) < 4 / sqrt((double)(B * D)));
    cr_assert(fabs(v - 1) < 4 * sqrt(2.0 / (double)(B * D)));
    out_free(&o);
    free(x0);
    free(idx);
    sched_free(&s);
}

Test(targets, flow_inputs_targets_and_time_distributions)
{
    Schedule s;
    cr_assert_eq(sched_init_flow(&s, 0.01), ERR_OK);
    size_t B = 20000, D = 3;
    float *x1 = data(B, D);
    uint64_t *idx = malloc(B * sizeof(uint64_t));
    for (size_t j = 0; j < B; j++) idx[j] = 77 + j;
    TrainTargetConfig c;
    train_target_config_default(&c);
    Out o = run(&c, &s, 5, idx, B, D, x1, NULL);
    double m = 0, v = 0;
    for (size_t j = 0; j < B; j++) {
        double tau = o.tnet[j];
        cr_assert(tau > 0 && tau < 1);
        m += tau;
        v += (tau - 0.5) * (tau - 0.5);
        for (size_t i = 0; i < D; i++) {
            size_t q = j * D + i;
            double n = (double)o.noise[q], x = (double)x1[q];
            cr_assert(fabs((double)o.xt[q] - (tau * x + (1 - 0.99 * tau) * n)) < 1e-6);
            cr_assert(fabs((double)o.target[q] - (x - 0.99 * n)) < 1e-6);
        }
    }
    m /= (double)B;
    v /= (double)B;
    cr_assert(fabs(m - 0.5) < 4 * sqrt(1.0 / 12 / (double)B));
    cr_assert(fabs(v - 1.0 / 12) < 0.004);
    out_free(&o);
    /* logit-normal (m = 0.5, s = 0.8): logit(tau) has that mean and std */
    c.tdist = SCHED_TIME_LOGIT_NORMAL;
    c.ln_mean = 0.5;
    c.ln_std = 0.8;
    o = run(&c, &s, 5, idx, B, D, x1, NULL);
    double lm = 0, lv = 0;
    for (size_t j = 0; j < B; j++) lm += log(o.tnet[j] / (1 - o.tnet[j]));
    lm /= (double)B;
    for (size_t j = 0; j < B; j++) {
        double l = log(o.tnet[j] / (1 - o.tnet[j]));
        lv += (l - lm) * (l - lm);
    }
    lv /= (double)B;
    cr_assert(fabs(lm - 0.5) < 4 * 0.8 / sqrt((double)B), "logit mean %g", lm);
    cr_assert(fabs(sqrt(lv) - 0.8) < 0.02, "logit std %g", sqrt(lv));
    out_free(&o);
    c.ln_std = 0;
    float xt[3], tg[3];
    double tn;
    cr_assert_eq(sched_train_targets(&c, &s, 0, idx, 1, D, x1, NULL, xt, &tn, tg, NULL, NULL, NULL),
                 ERR_ARG);
    free(x1);
    free(idx);
    sched_free(&s);
}

Test(targets, label_dropout_rate)
{
    Schedule s;
    cr_assert_eq(sched_init_linear(&s, 100, 1e-4, 0.02, SCHED_PRED_EPS), ERR_OK);
    size_t B = 20000, D = 1;
    float *x0 = calloc(B, sizeof(float));
    uint64_t *idx = malloc(B * sizeof(uint64_t));
    int *lab = malloc(B * sizeof(int));
    for (size_t j = 0; j < B; j++) {
        idx[j] = j;
        lab[j] = (int)(j % 10);
    }
    const double ps[3] = {0.0, 0.1, 1.0};
    for (int k = 0; k < 3; k++) {
        TrainTargetConfig c;
        train_target_config_default(&c);
        c.p_uncond = ps[k];
        Out o = run(&c, &s, 9, idx, B, D, x0, lab);
        size_t dropped = 0;
        for (size_t j = 0; j < B; j++) {
            if (o.labels[j] == -1) dropped++;
            else cr_assert_eq(o.labels[j], lab[j]);
        }
        double rate = (double)dropped / (double)B;
        double se = sqrt(ps[k] * (1 - ps[k]) / (double)B);
        cr_assert(fabs(rate - ps[k]) <= 4 * se + 1e-12, "p=%g rate %g", ps[k], rate);
        out_free(&o);
    }
    TrainTargetConfig c;
    train_target_config_default(&c);
    c.p_uncond = 1.5;
    float xt[1], tg[1];
    double tn;
    int lo[1];
    cr_assert_eq(sched_train_targets(&c, &s, 0, idx, 1, 1, x0, lab, xt, &tn, tg, lo, NULL, NULL),
                 ERR_ARG);
    c.p_uncond = 0;
    cr_assert_eq(sched_train_targets(&c, &s, (uint64_t)1 << 33, idx, 1, 1, x0, lab, xt, &tn, tg, lo,
                                     NULL, NULL), ERR_ARG);
    free(x0);
    free(idx);
    free(lab);
    sched_free(&s);
}

/* Micro-batches with the global normaliser sum to the global mean; the gradient is the exact
 * derivative; per-sample values are means over D; zero output gives L_simple = mean(eps^2). */
Test(targets, mse_loss_and_gradient)
{
    size_t B = 6, D = 7, n = B * D;
    float out[42], tgt[42], dout[42], dpart[42];
    for (size_t i = 0; i < n; i++) {
        out[i] = (float)cos(0.3 * (double)i);
        tgt[i] = (float)sin(0.7 * (double)i);
    }
    double per[6];
    double full = sched_loss_mse(out, tgt, B, D, (double)n, dout, per);
    double want = 0;
    for (size_t i = 0; i < n; i++) want += ((double)out[i] - (double)tgt[i]) * ((double)out[i] - (double)tgt[i]);
    cr_assert(fabs(full - want / (double)n) < 1e-15);
    double a = sched_loss_mse(out, tgt, 2, D, (double)n, dpart, NULL);
    double b = sched_loss_mse(out + 2 * D, tgt + 2 * D, 4, D, (double)n, dpart + 2 * D, NULL);
    cr_assert(fabs(a + b - full) < 1e-15);
    cr_assert_eq(memcmp(dpart, dout, sizeof dout), 0);
    for (size_t j = 0; j < B; j++) {
        double sj = 0;
        for (size_t i = 0; i < D; i++) {
            double r = (double)out[j * D + i] - (double)tgt[j * D + i];
            sj += r * r;
        }
        cr_assert(fabs(per[j] - sj / (double)D) < 1e-15);
    }
    /* central finite difference of the loss in one output */
    for (size_t q = 0; q < n; q += 5) {
        float o2[42];
        memcpy(o2, out, sizeof o2);
        float h = 1e-2f;
        o2[q] = out[q] + h;
        double lp = sched_loss_mse(o2, tgt, B, D, (double)n, NULL, NULL);
        o2[q] = out[q] - h;
        double lm = sched_loss_mse(o2, tgt, B, D, (double)n, NULL, NULL);
        double fd = (lp - lm) / (2.0 * (double)h);
        cr_assert(fabs(fd - (double)dout[q]) < 1e-5, "grad %zu: %g vs %g", q, fd, (double)dout[q]);
    }
}

Test(targets, time_quartiles)
{
    Schedule s, f;
    cr_assert_eq(sched_init_linear(&s, 1000, 1e-4, 0.02, SCHED_PRED_EPS), ERR_OK);
    cr_assert_eq(sched_init_flow(&f, 0.0), ERR_OK);
    cr_assert_eq(sched_time_quartile(&s, 0), 0);
    cr_assert_eq(sched_time_quartile(&s, 249), 0);
    cr_assert_eq(sched_time_quartile(&s, 250), 1);
    cr_assert_eq(sched_time_quartile(&s, 999), 3);
    cr_assert_eq(sched_time_quartile(&f, 0.0), 0);
    cr_assert_eq(sched_time_quartile(&f, 0.5), 2);
    cr_assert_eq(sched_time_quartile(&f, 1.0), 3);
    sched_free(&s);
    sched_free(&f);
}
