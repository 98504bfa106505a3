/* tests/bench/bench_model.c - training-step and forward throughput of a U-Net (fmnist-small by
 * default).
 *
 * Usage: bench_model [batch=64] [threads=1,2] [reps=3] [model=fmnist-small[,ch=C][,img=S]]
 * model: fmnist-small (jobs/bench-fmnist-small.yaml) or cifar10-ddpm (jobs/cifar10-ddpm.yaml),
 * optionally with another base width C or image size S; with another image size the attention
 * sits at the lowest level (S / 4 for fmnist-small), as 7x7 does at 28. tests/bench/bench_torch.py
 * takes the same spelling.
 * Prints images/s for forward only and for a training step (forward + backward + Adam), the
 * MEDIAN of `reps` after one warm-up, for each thread count, and the best repetition too.
 * Timer: with 1 thread the process CPU time (robust against other work on a busy machine: time
 * the process is not running is not counted); with more threads the wall time (CPU time would
 * count every thread's seconds). Each repetition is also printed ("rep ..." lines) with both.
 * Compare with tests/bench/bench_torch.py, which measures the same way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_REPS 64

#include "core/log.h"
#include "core/mem.h"
#include "core/rng.h"
#include "model/gemm.h"
#include "model/net.h"
#include "model/optim.h"

/* CPU seconds of the whole process: with one thread, robust against a busy machine */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int k)
{
    double s[MAX_REPS];
    memcpy(s, v, (size_t)k * sizeof *s);
    qsort(s, (size_t)k, sizeof *s, cmp_double);
    return k % 2 ? s[k / 2] : 0.5 * (s[k / 2 - 1] + s[k / 2]);
}

static double minimum(const double *v, int k)
{
    double m = v[0];
    for (int i = 1; i < k; i++) m = v[i] < m ? v[i] : m;
    return m;
}

/* "fmnist-small" or "cifar10-ddpm", then ",ch=C" and ",img=S" in any order; 0 on success */
static int parse_model(const char *spec, UNetConfig *c)
{
    static const UNetConfig fmnist = {1, 28, 64, {1, 2, 2}, 3, 2, {7}, 1, 1, 0.1f, 32, 64, 256, 0};
    static const UNetConfig cifar = {3, 32, 128, {1, 2, 2, 2}, 4, 2, {16}, 1, 1, 0.1f, 32, 128, 512, 0};
    size_t n = strcspn(spec, ",");
    if (n == 12 && !strncmp(spec, "fmnist-small", n))
        *c = fmnist;
    else if (n == 12 && !strncmp(spec, "cifar10-ddpm", n))
        *c = cifar;
    else
        return 1;
    for (const char *p = spec + n; *p == ',';) {
        int v = 0, used = 0;
        if (sscanf(p, ",ch=%d%n", &v, &used) == 1 && used > 0 && v > 0 && v % c->groups == 0) {
            c->temb_hidden = c->temb_hidden / c->ch * v;
            c->ch = v;
        } else if (sscanf(p, ",img=%d%n", &v, &used) == 1 && used > 0 &&
                   v % (1 << (c->n_mult - 1)) == 0) {
            c->attn_res[0] = c->attn_res[0] * v / c->img_size;
            c->img_size = v;
        } else {
            return 1;
        }
        p += used;
        if (*p && *p != ',') return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    size_t B = argc > 1 ? (size_t)atoi(argv[1]) : 64;
    const char *threads = argc > 2 ? argv[2] : "1,2";
    int reps = argc > 3 ? atoi(argv[3]) : 3;
    const char *spec = argc > 4 ? argv[4] : "fmnist-small";
    UNetConfig c;
    if (B == 0 || reps < 1 || reps > MAX_REPS || parse_model(spec, &c)) {
        fprintf(stderr, "usage: bench_model [batch=64] [threads=1,2] [reps=3 (1..%d)] "
                        "[model=fmnist-small|cifar10-ddpm[,ch=C][,img=S]]\n", MAX_REPS);
        return 2;
    }
    Net *n = net_create_unet(&c);
    if (!n) return 1;
    net_init_params(n, 1);
    size_t per = net_sample_floats(n), np = net_num_params(n);
    float *x = xmalloc(B * per * 4), *out = xmalloc(B * per * 4), *t = xmalloc(B * 4);
    float *dout = xmalloc(B * per * 4);
    uint64_t *idx = xmalloc(B * 8);
    rng_fill_normal(x, B * per, 1, rng_stream(RNG_P_TEST, 1), 0);
    rng_fill_normal(dout, B * per, 1, rng_stream(RNG_P_TEST, 2), 0);
    for (size_t i = 0; i < B; i++) t[i] = (float)(i * 15 % 1000), idx[i] = i;
    OptimConfig oc = optim_config_default();
    oc.grad_clip = 1.0f;
    oc.ema_decay = 0.9999f;
    Optim o;
    optim_init(&o, &oc, np, net_params(n));
    printf("%s U-Net: %zu parameters, %.3f GFLOP forward per image, batch %zu\n", spec, np,
           unet_flops_per_sample(&c) / 1e9, B);
    printf("gemm: %s\n", gemm_engine_name(gemm_engine()));
    for (const char *p = threads; *p;) {
        int th = atoi(p);
        net_set_threads(n, th);
        double wf[MAX_REPS], ws[MAX_REPS], cf[MAX_REPS], cs[MAX_REPS];
        for (int r = 0; r <= reps; r++) {
            double c0 = cpu_now(), t0 = core_now();
            net_infer(n, x, t, NULL, B, out);
            double t1 = core_now(), c1 = cpu_now();
            net_zero_grad(n);
            NetTrainOpts fo = {.sample_idx = idx, .seed = 1, .step = (uint32_t)r, .dropout = 1};
            net_forward(n, x, t, B, &fo, out);
            net_backward(n, dout);
            optim_step(&o, net_params(n), net_grads(n), 1e-4f);
            double t2 = core_now(), c2 = cpu_now();
            if (r == 0) continue; /* warm-up */
            wf[r - 1] = t1 - t0, ws[r - 1] = t2 - t1, cf[r - 1] = c1 - c0, cs[r - 1] = c2 - c1;
            printf("rep threads %d: forward wall %.4f cpu %.4f s, step wall %.4f cpu %.4f s\n", th,
                   wf[r - 1], cf[r - 1], ws[r - 1], cs[r - 1]);
        }
        /* 1 thread: CPU time; more: wall time (see the top comment) */
        const double *vf = th == 1 ? cf : wf, *vs = th == 1 ? cs : ws;
        double mf = median(vf, reps), ms = median(vs, reps);
        double flop = unet_flops_per_sample(&c);
        printf("threads %d: forward %.2f images/s (%.1f GFLOP/s), train step %.2f images/s "
               "(%.3f s/step, %.1f GFLOP/s at 3x forward); median of %d, timer %s; best: "
               "forward %.2f, step %.2f images/s; activations %.0f MB\n",
               th, (double)B / mf, flop * (double)B / mf / 1e9, (double)B / ms, ms,
               3.0 * flop * (double)B / ms / 1e9, reps, th == 1 ? "cpu" : "wall",
               (double)B / minimum(vf, reps), (double)B / minimum(vs, reps),
               (double)net_activation_bytes(n) / 1e6);
        fflush(stdout);
        while (*p && *p != ',') p++;
        if (*p == ',') p++;
    }
    optim_free(&o);
    net_destroy(&n);
    free(x); free(out); free(t); free(dout); free(idx);
    return 0;
}
