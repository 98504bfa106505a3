/* io/jobspec_keys.c - the job-spec schema: every key is one row of g_fields.
 *
 * A row says everything about its key: the dotted path and the JobSpec member, the type and
 * range, the default (as YAML text, parsed exactly like a value in a file) or - for a derived
 * default - the rule in words (the rule itself is coded in jobspec_resolve()), the one-line
 * meaning, and, when `dfm train` does not read the key, the one command that does (.only).
 * tests/dist/test_keys.c fails for a key that nothing reads. The loader, --set, emission, copy/equal/free and the key tables of
 * jobs/README.md (`make docs`) all come from these rows.
 *
 * To add a key: add its member to io/jobspec.h, add one row below (in emission order, inside
 * its section), read it where it acts, run `make docs`. `make test` fails when the README tables
 * and these rows disagree, and when a key changes nothing (tests/io/test_jobspec.c).
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/names.h"
#include "io/dataset.h"
#include "io/jobspec_int.h"

#define NN(a) (int)(sizeof(a) / sizeof((a)[0]))
#define OFF(m) offsetof(JobSpec, m)

/* ---- the choices ---------------------------------------------------------------------------- */

/* Datasets are spelled by their registry (io/dataset.h); "toy2d" is the schema's word for "one
 * of the 2-D toys, chosen by data.toy". Samplers, predictions and spacings are spelled in
 * core/names.h, in the order of their sched/ enums. */
static const char *const k_dataset[] = {DATASET_FASHION_MNIST, DATASET_MNIST, DATASET_CIFAR10,
                                        "toy2d"};
static const char *const k_toy[] = {DATASET_MOONS, DATASET_8GAUSSIANS, DATASET_CHECKERBOARD,
                                    DATASET_SWISSROLL};
static const char *const k_model[] = {"unet", "mlp"};
static const char *const k_obj[] = {"ddpm", "flow", "sde"};
static const char *const k_sde_kind[] = {"vp", "ve"};
static const char *const k_sde_weight[] = {"sigma2", "g2"};
static const char *const k_sde_pred[] = {"eps", "score"};
static const char *const k_predictor[] = {"reverse_diffusion", "em"};
static const char *const k_betas[] = {"linear", "cosine"};
static const char *const k_pred[] = {DFM_PRED_NAMES}; /* objective ddpm offers eps, x0, v */
static const char *const k_tsamp[] = {"uniform", "logit_normal"};
static const char *const k_opt[] = {"adam", "adamw"};
static const char *const k_lrs[] = {"constant", "cosine"};
static const char *const k_reduce[] = {"deterministic", "overlap"};
static const char *const k_resume[] = {"auto", "never", "must"};
static const char *const k_sampler[] = {DFM_SAMPLER_NAMES};
static const char *const k_tspace[] = {DFM_SPACING_NAMES};
static const char *const k_variance[] = {"beta_tilde", "beta"};
static const char *const k_metric[] = {"swd", "fd_fmnist", "spectrum", "nll", "elbo"};
static const char *const k_launch[] = {"srun", "mpirun"};

_Static_assert(NN(k_dataset) == JOB_DATA_TOY2D + 1 && NN(k_toy) == JOB_TOY_SWISSROLL + 1 &&
                   NN(k_sampler) == JOB_SAMPLER_LANGEVIN + 1 && NN(k_tspace) == JOB_TS_TRAILING + 1 &&
                   NN(k_pred) > JOB_PRED_V && JOB_SAMPLER_EULER == DFM_SAMPLER_FIRST_FLOW &&
                   JOB_SAMPLER_EM == DFM_SAMPLER_FIRST_SDE && NN(k_obj) == JOB_OBJ_SDE + 1 &&
                   NN(k_metric) == JOB_METRIC_COUNT,
               "the schema's choices follow the enums of io/jobspec.h");
_Static_assert(sizeof(JobDataset) == sizeof(int) && sizeof(JobSampler) == sizeof(int) &&
                   sizeof(JobMetric) == sizeof(int),
               "enum-valued keys are stored through int pointers");

/* ---- string checks -------------------------------------------------------------------------- */

static int check_name(const char *s, char *why, size_t nwhy)
{
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._-", *p)) {
            snprintf(why, nwhy, "expected letters, digits, '.', '_' or '-'");
            return 1;
        }
    if (s[0] == '.' || s[0] == '-') {
        snprintf(why, nwhy, "must not start with '.' or '-'");
        return 1;
    }
    return 0;
}

static int check_url(const char *s, char *why, size_t nwhy)
{
    static const char *const schemes[] = {"http://", "https://", "file://"};
    for (size_t i = 0; i < 3; i++) {
        size_t l = strlen(schemes[i]);
        if (!strncmp(s, schemes[i], l) && s[l]) {
            for (const char *p = s; *p; p++)
                if (*p == ' ') {
                    snprintf(why, nwhy, "a URL must not contain spaces");
                    return 1;
                }
            return 0;
        }
    }
    snprintf(why, nwhy, "expected a URL starting with http://, https:// or file://");
    return 1;
}

/* Digits only, 1..maxd of them, value <= maxv. */
static int num_field(const char *s, size_t len, size_t maxd, long maxv, long *out)
{
    if (len == 0 || len > maxd) return 1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i])) return 1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > maxv) return 1;
    *out = v;
    return 0;
}

static int check_time(const char *s, char *why, size_t nwhy)
{
    long d = 0, h = 0, m = 0, sec = 0;
    const char *p = s, *dash = strchr(s, '-');
    int ok = 1;
    if (dash) {
        ok = !num_field(p, (size_t)(dash - p), 3, 365, &d);
        p = dash + 1;
    }
    const char *c1 = strchr(p, ':');
    const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (ok && c1 && c2 && !strchr(c2 + 1, ':')) {
        ok = !num_field(p, (size_t)(c1 - p), dash ? 2 : 4, dash ? 23 : 9999, &h) &&
             !num_field(c1 + 1, (size_t)(c2 - c1 - 1), 2, 59, &m) &&
             !num_field(c2 + 1, strlen(c2 + 1), 2, 59, &sec);
    } else {
        ok = 0;
    }
    if (ok && d + h + m + sec == 0) ok = 0;
    if (!ok) snprintf(why, nwhy, "expected a time limit HH:MM:SS or D-HH:MM:SS (not zero)");
    return !ok;
}

static int check_signal(const char *s, char *why, size_t nwhy)
{
    static const char *const sigs[] = {"USR1", "USR2", "TERM", "INT", "HUP", "QUIT", "CONT"};
    const char *p = s;
    if (!strncmp(p, "B:", 2)) p += 2;
    if (!strncmp(p, "SIG", 3)) p += 3;
    const char *at = strchr(p, '@');
    long secs;
    int ok = 0;
    if (at) {
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
            if (strlen(sigs[i]) == (size_t)(at - p) && !strncmp(p, sigs[i], (size_t)(at - p))) ok = 1;
        if (ok) ok = !num_field(at + 1, strlen(at + 1), 5, 65535, &secs);
    }
    if (!ok)
        snprintf(why, nwhy, "expected [B:]SIGNAL@SECONDS with SIGNAL one of USR1, USR2, TERM, INT, "
                            "HUP, QUIT, CONT (e.g. USR1@300)");
    return !ok;
}

static int check_mem(const char *s, char *why, size_t nwhy)
{
    size_t n = strlen(s), i = 0;
    while (i < n && isdigit((unsigned char)s[i])) i++;
    int ok = i > 0 && i <= 9 && (i == n || (i + 1 == n && strchr("KMGT", s[i])));
    if (!ok) snprintf(why, nwhy, "expected a Slurm memory size like 16G, 4000M or 0");
    return !ok;
}

/* srun --mpi=TYPE: a plugin name as `srun --mpi=list` prints them (pmix, pmix_v4, pmi2,
 * cray_shasta, none, ...). */
static int check_mpi(const char *s, char *why, size_t nwhy)
{
    size_t n = strlen(s), i = 0;
    while (i < n && (islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_'))
        i++;
    int ok = n > 0 && i == n && isalpha((unsigned char)s[0]);
    if (!ok)
        snprintf(why, nwhy, "expected an srun MPI plugin name (`srun --mpi=list`): pmix, "
                            "pmix_v4, pmi2, none, ...");
    return !ok;
}

static int check_sbatch(const char *s, char *why, size_t nwhy)
{
    if (s[0] != '-') {
        snprintf(why, nwhy, "expected an sbatch option starting with '-' (written after #SBATCH)");
        return 1;
    }
    return 0;
}


/* ---- the table ------------------------------------------------------------------------------ */


/* One macro per type; the trailing designated initializers are the row's default (.def or
 * .derive), documentation (.doc, .allowed, .also) and who reads it (.only, .pending). */
#define S(p, m, maxlen, fl_, chk, ...) \
    {.path = p, .type = F_STR, .off = OFF(m), .hi = maxlen, .fl = fl_, .check = chk, __VA_ARGS__}
#define SL(p, m, n, chk, ...)                                                                    \
    {.path = p, .type = F_STRLIST, .off = OFF(m), .noff = OFF(n), .maxn = JOB_MAX_LIST,          \
     .hi = JOB_MAX_STR, .check = chk, __VA_ARGS__}
#define I(p, m, lo_, hi_, fl_, ...) \
    {.path = p, .type = F_INT, .off = OFF(m), .lo = lo_, .hi = hi_, .fl = fl_, __VA_ARGS__}
#define U(p, m, ...) {.path = p, .type = F_U64, .off = OFF(m), __VA_ARGS__}
#define D(p, m, lo_, hi_, fl_, ...) \
    {.path = p, .type = F_DBL, .off = OFF(m), .lo = lo_, .hi = hi_, .fl = fl_, __VA_ARGS__}
#define B(p, m, ...) {.path = p, .type = F_BOOL, .off = OFF(m), __VA_ARGS__}
#define E(p, m, names_, ...) EN(p, m, names_, NN(names_), __VA_ARGS__)
#define EN(p, m, names_, n, ...) /* the first n words of a shared list */ \
    {.path = p, .type = F_ENUM, .off = OFF(m), .names = names_, .nnames = n, __VA_ARGS__}
#define IL(p, m, n, cap, lo_, hi_, fl_, ...)                                                     \
    {.path = p, .type = F_INTLIST, .off = OFF(m), .noff = OFF(n), .maxn = cap, .lo = lo_,        \
     .hi = hi_, .fl = fl_, __VA_ARGS__}
#define EL(p, m, n, names_, ...)                                                                 \
    {.path = p, .type = F_ENUMLIST, .off = OFF(m), .noff = OFF(n), .maxn = NN(names_),           \
     .names = names_, .nnames = NN(names_), __VA_ARGS__}

#define SUBMIT "dfm submit"

/* Order = emission order; the members of a section are contiguous, a subsection's selector
 * comes before the subsection. */
const Field g_fields[] = {
    S("run.name", run.name, 64, FL_NONEMPTY, check_name, .def = "dfm",
      .allowed = "1..64 of `A-Z a-z 0-9 . _ -`, not starting with `.` or `-`",
      .doc = "run name; used in paths and as the Slurm job name"),
    S("run.out_dir", run.out_dir, 1024, FL_PATH, NULL, .derive = "`runs/<name>`",
      .doc = "output directory (logs, checkpoints, samples)"),
    U("run.seed", run.seed, .def = "0",
      .doc = "seed of every random stream (initialisation, data order, noise, dropout)"),

    E("data.dataset", data.dataset, k_dataset, .def = "fashion-mnist",
      .doc = "training data. Image size and channels follow: 28x28x1, 28x28x1, 32x32x3; `toy2d` "
             "is 2-D points"),
    E("data.toy", data.toy, k_toy, .def = "moons",
      .doc = "the toy distribution (`toy2d` only)"),
    I("data.toy_size", data.toy_size, 1, 100000000, 0, .def = "65536",
      .doc = "number of toy examples generated (`toy2d` only)"),
    S("data.dir", data.dir, 1024, FL_PATH, NULL, .def = "data",
      .doc = "download cache directory"),
    SL("data.mirrors", data.mirrors, data.n_mirrors, check_url, .def = "[]",
       .allowed = "up to 64 URLs starting `http://`, `https://` or `file://`",
       .doc = "base URLs that replace the built-in download locations, tried in order; empty = "
              "the built-in ones"),
    B("data.allow_unpinned", data.allow_unpinned, .def = "false",
      .doc = "accept, for this run, downloaded bytes that match no pinned or recorded SHA-256 "
             "(trust on first use; their hash is recorded with where it came from). Off: such "
             "bytes are refused"),
    B("data.flip", data.flip, .def = "false",
      .doc = "random horizontal flip augmentation (image datasets only)"),
    B("data.conditional", data.conditional, .def = "false",
      .doc = "feed class labels to the model (needs a labelled dataset: not `toy2d`)"),

    E("model.type", model.type, k_model, .def = "unet",
      .doc = "the network. Image datasets need `unet`; `toy2d` needs `mlp`"),
    I("model.num_classes", model.num_classes, 0, 1000, 0,
      .derive = "`n_labels` when `data.conditional`, else `0`",
      .also = "must equal the dataset's class count when conditional, 0 otherwise",
      .doc = "class-embedding size (the null label for guidance is one extra embedding)"),
    I("model.unet.channels", model.unet.channels, 1, 4096, 0, .def = "64",
      .doc = "base width; level `i` has `channels * ch_mult[i]` channels"),
    IL("model.unet.ch_mult", model.unet.ch_mult, model.unet.n_ch_mult, JOB_MAX_LEVELS, 1, 64,
       FL_NONEMPTY, .def = "[1, 2, 2]",
       .also = "the image size must be divisible by 2^(entries-1)",
       .doc = "one entry per resolution level; the image is halved between levels"),
    I("model.unet.num_res_blocks", model.unet.num_res_blocks, 1, 16, 0, .def = "2",
      .doc = "residual blocks per level on the way down (the way up has one more, as in the DDPM "
             "U-Net)"),
    IL("model.unet.attn_resolutions", model.unet.attn_resolutions, model.unet.n_attn,
       JOB_MAX_ATTN, 1, 4096, 0, .def = "[]",
       .allowed = "up to 8 distinct feature-map sizes reached by the levels (e.g. 28, 14, 7 for "
                  "mults of length 3 on 28x28)",
       .doc = "levels with self-attention after each residual block; the middle block always has "
              "attention"),
    I("model.unet.heads", model.unet.heads, 1, 64, 0, .def = "1",
      .also = "must divide the channels of every attention level and of the middle block",
      .doc = "attention heads"),
    D("model.unet.dropout", model.unet.dropout, 0, 1, FL_HI_OPEN, .def = "0.1",
      .doc = "dropout in the residual blocks"),
    I("model.unet.groups", model.unet.groups, 1, 1024, 0, .def = "32",
      .also = "must divide every level's channel count", .doc = "GroupNorm groups"),
    I("model.unet.temb_dim", model.unet.temb_dim, 2, 16384, FL_EVEN,
      .derive = "`channels` (rounded up to even)", .doc = "width of the sinusoidal time embedding"),
    I("model.unet.temb_hidden", model.unet.temb_hidden, 1, 65536, 0, .derive = "`4 * channels`",
      .doc = "width of the time-embedding MLP (sinusoid -> Linear -> SiLU -> Linear)"),
    I("model.mlp.hidden", model.mlp.hidden, 1, 65536, 0, .def = "256",
      .doc = "hidden width of the MLP"),
    I("model.mlp.layers", model.mlp.layers, 1, 64, 0, .def = "4", .doc = "hidden layers of the MLP"),
    I("model.mlp.temb_dim", model.mlp.temb_dim, 2, 16384, FL_EVEN, .def = "64",
      .doc = "width of the sinusoidal time embedding of the MLP"),

    E("objective.type", objective.type, k_obj, .def = "ddpm",
      .doc = "denoising diffusion (discrete time), flow matching (continuous time), or "
             "denoising score matching on a continuous-time SDE (the score/SDE view)"),
    D("objective.label_dropout", objective.label_dropout, 0, 1, FL_HI_OPEN, .def = "0",
      .also = "> 0 needs `data.conditional`",
      .doc = "probability of replacing the label by the null label in training (classifier-free "
             "guidance)"),
    E("objective.ddpm.schedule", objective.ddpm.schedule, k_betas, .def = "linear",
      .doc = "beta schedule: linear from `beta_start` to `beta_end`, or the cosine schedule of "
             "Nichol & Dhariwal (betas clipped at 0.999)"),
    I("objective.ddpm.timesteps", objective.ddpm.timesteps, 2, 100000, 0, .def = "1000",
      .doc = "number of diffusion steps T"),
    D("objective.ddpm.beta_start", objective.ddpm.beta_start, 0, 1, FL_LO_OPEN | FL_HI_OPEN,
      .def = "0.0001", .doc = "beta_1 of the linear schedule"),
    D("objective.ddpm.beta_end", objective.ddpm.beta_end, 0, 1, FL_LO_OPEN | FL_HI_OPEN,
      .def = "0.02", .also = ">= `beta_start`", .doc = "beta_T of the linear schedule"),
    D("objective.ddpm.cosine_s", objective.ddpm.cosine_s, 0, 1, 0, .def = "0.008",
      .doc = "offset s of the cosine schedule"),
    EN("objective.ddpm.prediction", objective.ddpm.prediction, k_pred, JOB_PRED_V + 1, .def = "eps",
      .doc = "what the network predicts: the noise, the clean sample, or v = sqrt(abar) eps - "
             "sqrt(1-abar) x0"),
    D("objective.flow.sigma_min", objective.flow.sigma_min, 0, 1, FL_HI_OPEN, .def = "0",
      .doc = "path x_t = t x1 + (1 - (1 - sigma_min) t) x0 (t from noise x0 to data x1); 0 is "
             "rectified flow"),
    E("objective.flow.t_sampling", objective.flow.t_sampling, k_tsamp, .def = "uniform",
      .doc = "distribution of training times t"),
    D("objective.flow.logit_mean", objective.flow.logit_mean, -10, 10, 0, .def = "0",
      .doc = "mean of the logit-normal time distribution; here t = 1 is the data end, so a "
             "positive mean puts more training times near the data (the opposite of SD3, whose "
             "t = 1 is noise)"),
    D("objective.flow.logit_std", objective.flow.logit_std, 0, 10, FL_LO_OPEN, .def = "1",
      .doc = "standard deviation of the logit-normal time distribution"),
    E("objective.sde.kind", objective.sde.kind, k_sde_kind, .def = "vp",
      .doc = "variance preserving (beta(t) linear from `beta_min` to `beta_max`, prior N(0, I)) "
             "or variance exploding (sigma(t) = sigma_min (sigma_max/sigma_min)^t, the NCSN noise "
             "levels, prior N(0, sigma_max^2 I)); t runs from data (0) to noise (1)"),
    D("objective.sde.beta_min", objective.sde.beta_min, 0, 1000, FL_LO_OPEN, .def = "0.1",
      .doc = "beta(0) of the VP SDE (`vp` only in effect)"),
    D("objective.sde.beta_max", objective.sde.beta_max, 0, 1000, FL_LO_OPEN, .def = "20",
      .also = ">= `beta_min`", .doc = "beta(1) of the VP SDE (`vp` only in effect)"),
    D("objective.sde.sigma_min", objective.sde.sigma_min, 0, 1e6, FL_LO_OPEN, .def = "0.01",
      .doc = "smallest noise level of the VE SDE (`ve` only in effect)"),
    D("objective.sde.sigma_max", objective.sde.sigma_max, 0, 1e6, FL_LO_OPEN, .def = "50",
      .also = "> `sigma_min`",
      .doc = "largest noise level of the VE SDE, about the largest distance between training "
             "examples (`ve` only in effect)"),
    E("objective.sde.weighting", objective.sde.weighting, k_sde_weight, .def = "sigma2",
      .doc = "denoising score matching weight lambda(t): `sigma2` = s(t)^2 (for eps outputs the "
             "plain MSE of the noise), `g2` = g(t)^2 (= beta(t) for VP; the likelihood "
             "weighting)"),
    E("objective.sde.prediction", objective.sde.prediction, k_sde_pred, .def = "eps",
      .doc = "what the network outputs: the noise eps, or the score grad log p_t = -eps / s(t)"),
    D("objective.sde.t_eps", objective.sde.t_eps, 0, 0.5, FL_LO_OPEN | FL_HI_OPEN,
      .def = "1e-05",
      .doc = "smallest time: training draws t ~ U(t_eps, 1), samplers stop and likelihoods "
             "start there"),

    I("train.batch", train.batch, 1, 1048576, 0, .def = "64",
      .doc = "global batch per optimizer step, the same whatever the number of ranks"),
    I("train.micro_batch", train.micro_batch, 1, 1048576, 0,
      .derive = "largest divisor of `batch` that is <= 16", .also = "must divide `batch`",
      .doc = "examples per forward/backward pass, so it bounds the activation memory; also the "
             "fixed shard size of the gradient reduction (gradients are summed per micro-batch in "
             "a fixed order, so results do not depend on the rank count)"),
    I("train.steps", train.steps, 1, 1000000000, 0, .def = "10000", .doc = "optimizer steps"),
    E("train.optimizer", train.optimizer, k_opt, .def = "adam",
      .doc = "Adam (weight decay added to the gradient) or AdamW (decoupled weight decay)"),
    D("train.lr", train.lr, 0, 1, FL_LO_OPEN, .def = "0.0002", .doc = "peak learning rate"),
    D("train.beta1", train.beta1, 0, 1, FL_HI_OPEN, .def = "0.9",
      .doc = "Adam first-moment decay"),
    D("train.beta2", train.beta2, 0, 1, FL_HI_OPEN, .def = "0.999",
      .doc = "Adam second-moment decay"),
    D("train.eps", train.eps, 0, 1, FL_LO_OPEN, .def = "1e-08", .doc = "Adam epsilon"),
    D("train.weight_decay", train.weight_decay, 0, 1, 0, .def = "0", .doc = "weight decay"),
    I("train.warmup", train.warmup, 0, 1000000000, 0, .def = "0",
      .doc = "linear learning-rate warm-up steps (from 0 to `lr`); when it is not below `steps` "
             "(a short smoke run) the run warms up for `steps - 1` and says so"),
    E("train.lr_schedule", train.lr_schedule, k_lrs, .def = "constant",
      .doc = "after warm-up: constant, or cosine decay from `lr` to `min_lr` at `steps`"),
    D("train.min_lr", train.min_lr, 0, 1, 0, .def = "0", .also = "<= `lr`",
      .doc = "final learning rate of the cosine schedule"),
    D("train.grad_clip", train.grad_clip, 0, 1e6, 0, .def = "1",
      .doc = "clip the global gradient norm to this value; 0 = off"),
    D("train.ema.decay", train.ema.decay, 0, 1, FL_HI_OPEN, .def = "0.9999",
      .doc = "exponential moving average of the weights; 0 = no EMA"),
    B("train.ema.warmup", train.ema.warmup, .def = "false",
      .doc = "use decay min(decay, (1 + n) / (10 + n)) at EMA update n"),
    I("train.ema.start", train.ema.start, 0, 1000000000, 0, .def = "0", .also = "<= `steps`",
      .doc = "optimizer steps before the EMA starts (it copies the weights until then)"),
    I("train.threads", train.threads, 0, 4096, 0, .def = "0",
      .doc = "OpenMP threads per rank; 0 = automatic (Slurm's CPUs per task, `OMP_NUM_THREADS`, "
             "or the cores available)"),
    E("train.reduce", train.reduce, k_reduce, .def = "deterministic",
      .doc = "gradient all-reduce: bitwise reproducible fixed-order reduction, or overlapped with "
             "the backward pass"),
    B("train.zero1", train.zero1, .def = "false",
      .doc = "shard the optimizer state across ranks (ZeRO stage 1)"),
    I("train.log_every", train.log_every, 1, 1000000000, 0, .def = "100",
      .doc = "steps between log lines"),
    I("train.sample_every", train.sample_every, 0, 1000000000, 0, .def = "0",
      .doc = "steps between sample grids written during training; 0 = never"),
    I("train.sample_count", train.sample_count, 1, 100000, 0, .def = "64",
      .doc = "samples in each of those grids"),
    I("train.check_every", train.check_every, 0, 1000000000, 0, .def = "1000",
      .doc = "steps between checks that all ranks hold identical parameters; 0 = never"),
    I("train.max_nonfinite", train.max_nonfinite, 1, 1000000, 0, .def = "5",
      .doc = "consecutive non-finite losses (steps skipped) before training stops with an error"),
    I("train.watchdog", train.watchdog, 0, 1000000, 0, .def = "300",
      .doc = "seconds without a step boundary (checkpoint saves, sample grids and evaluations "
             "not counted) after which a rank ends the job with exit status 70, because "
             "another rank died or hangs; 0 = off"),

    S("checkpoint.dir", checkpoint.dir, 2048, FL_PATH, NULL, .derive = "`<out_dir>/ckpt`",
      .doc = "checkpoint directory"),
    I("checkpoint.every", checkpoint.every, 0, 1000000000, 0, .def = "1000",
      .doc = "steps between checkpoints; 0 = only at the end"),
    I("checkpoint.keep", checkpoint.keep, 0, 1000000, 0, .def = "3",
      .doc = "checkpoints kept (older ones deleted); 0 = keep all"),
    I("checkpoint.keep_every", checkpoint.keep_every, 0, 1000000000, 0, .def = "0",
      .doc = "also keep every checkpoint whose step is a multiple of this (milestones); 0 = none"),
    B("checkpoint.async", checkpoint.async, .def = "false",
      .doc = "write checkpoints in a background thread while training goes on (the state is "
             "copied at the step boundary; one save in flight)"),
    E("checkpoint.resume", checkpoint.resume, k_resume, .def = "auto",
      .doc = "resume from the newest checkpoint that verifies, if there is one / start fresh "
             "(refused while `dir` holds an earlier run's checkpoints, unless `dfm train --force`) "
             "/ fail unless one exists"),

    E("sample.sampler", sample.sampler, k_sampler,
      .derive = "`ddim` (objective ddpm), `euler` (objective flow), `em` (objective sde)",
      .allowed = "`ddpm`, `ddim`, `dpmpp2m` for ddpm; `euler`, `midpoint`, `heun`, `rk4`, `rk45` "
                 "for flow and sde; `em`, `pc`, `langevin` for sde",
      .doc = "the sampler: ancestral DDPM, DDIM, DPM-Solver++(2M); ODE integrators of the flow or "
             "of an SDE's probability-flow ODE (fixed steps, or adaptive Dormand-Prince `rk45`); "
             "reverse-SDE Euler-Maruyama, predictor-corrector, annealed Langevin"),
    I("sample.steps", sample.steps, 1, 100000, 0,
      .derive = "`timesteps` for `ddpm`, min(50, `timesteps`) for the other ddpm samplers, 50 for "
                "flow and sde",
      .also = "<= `objective.ddpm.timesteps` for ddpm objectives",
      .doc = "network evaluations per sample (per guidance branch) of the ddpm samplers and "
             "Euler; solver steps of the other ODE solvers (ignored by `rk45`), of `em` and `pc`; "
             "noise levels of `langevin`"),
    D("sample.eta", sample.eta, 0, 1, 0, .def = "0",
      .doc = "DDIM stochasticity: 0 deterministic, 1 DDPM-like (ddim only; ignored by the other "
             "samplers)"),
    E("sample.variance", sample.variance, k_variance, .def = "beta_tilde",
      .doc = "variance of each `ddpm` sampler step: the posterior variance beta~_t (\"fixedsmall\") "
             "or beta_t (\"fixedlarge\", the DDPM paper's CIFAR-10 sampler); ignored by the other "
             "samplers"),
    E("sample.timesteps", sample.timesteps, k_tspace,
      .derive = "`trailing` for the cosine schedule, `uniform` otherwise",
      .also = "`trailing` for ddpm objectives only",
      .doc = "how the `steps` times are spaced: evenly, quadratically denser near the data, or "
             "evenly ending at T (the \"trailing\" spacing); see \"Timestep spacing\""),
    B("sample.clip_x0", sample.clip_x0, .derive = "`true` for image datasets, `false` for `toy2d`",
      .doc = "clip the predicted x0 to [-1, 1] inside the sampler"),
    D("sample.guidance", sample.guidance, 0, 100, 0, .def = "1",
      .also = "!= 1 needs `label_dropout > 0`",
      .doc = "classifier-free guidance scale w (see the convention above)"),
    D("sample.rtol", sample.rtol, 0, 1, FL_LO_OPEN | FL_HI_OPEN, .def = "1e-05",
      .doc = "relative tolerance of `rk45`'s step control (per sample)"),
    D("sample.atol", sample.atol, 0, 1, FL_LO_OPEN | FL_HI_OPEN, .def = "1e-05",
      .doc = "absolute tolerance of `rk45`'s step control"),
    I("sample.correctors", sample.correctors, 0, 10000, 0, .def = "1",
      .also = ">= 1 for `langevin`",
      .doc = "`pc`: Langevin corrector moves after each predictor step; `langevin`: moves per "
             "noise level"),
    D("sample.snr", sample.snr, 0, 100, FL_LO_OPEN, .def = "0.16",
      .doc = "`pc`: the corrector's signal-to-noise ratio r, step 2 alpha (r norm(z) / norm(score))^2"),
    E("sample.predictor", sample.predictor, k_predictor, .def = "reverse_diffusion",
      .doc = "`pc`: the predictor, the reverse diffusion (ancestral) step or Euler-Maruyama"),
    D("sample.langevin_eps", sample.langevin_eps, 0, 100, FL_LO_OPEN, .def = "2e-05",
      .doc = "`langevin`: step a_i = eps sigma_i^2 / sigma_L^2 at noise level i of L"),
    I("sample.resample", sample.resample, 1, 1000, 0, .def = "1",
      .also = "> 1 needs `ddpm` or `ddim` (objective ddpm) or a fixed-step sampler of objective flow",
      .doc = "inpainting (`dfm sample --inpaint`): RePaint resampling, each noise level's step "
             "taken this many times with the sample re-noised back in between (1 = off; costs "
             "that many times the network evaluations)"),
    I("sample.label", sample.label, -1, 999, 0, .def = "-1",
      .also = "< `num_classes`; >= 0 needs `data.conditional`",
      .doc = "class to sample; -1 cycles through the classes (sample i has class i mod "
             "num_classes)"),
    I("sample.count", sample.count, 1, 10000000, 0, .def = "64",
      .doc = "samples generated by `dfm sample`"),
    I("sample.batch", sample.batch, 1, 65536, 0, .def = "64",
      .doc = "samples per network batch"),
    U("sample.seed", sample.seed, .derive = "`run.seed`", .doc = "seed of the sampling noise"),
    B("sample.use_ema", sample.use_ema, .derive = "`train.ema.decay > 0`",
      .also = "`true` needs `train.ema.decay > 0`", .doc = "sample with the EMA weights"),
    S("sample.out", sample.out, 2048, FL_PATH, NULL,
      .derive = "`<out_dir>/samples.png` (`samples.csv` for toy2d)", .doc = "output file"),

    I("eval.every", eval.every, 0, 1000000000, 0, .def = "0",
      .doc = "steps between evaluations during training; 0 = never"),
    I("eval.count", eval.count, 1, 10000000, 0, .def = "1000",
      .doc = "samples generated per evaluation"),
    I("eval.batch", eval.batch, 1, 65536, 0, .def = "256",
      .doc = "samples per network batch during evaluation"),
    I("eval.ref", eval.ref, 0, 10000000, 0, .def = "0",
      .doc = "reference images of an evaluation during training: the first N of the test "
             "split; 0 = all"),
    EL("eval.metrics", eval.metrics, eval.n_metrics, k_metric, .def = "[swd]",
       .also = "`fd_fmnist` needs fashion-mnist, `spectrum` an image dataset, `elbo` objective "
               "ddpm",
       .doc = "sliced Wasserstein distance to held-out data; Fréchet distance in the feature "
              "space of a Fashion-MNIST classifier; radially averaged power spectrum compared "
              "with the data's; negative log-likelihood of held-out data through the "
              "probability-flow ODE; the DDPM variational bound (`dfm eval --metrics nll,elbo`, "
              "bits/dim for images)",
       .only = "dfm eval"),

    S("slurm.job_name", slurm.job_name, 64, FL_NONEMPTY, check_name, .derive = "`run.name`",
      .allowed = "like `run.name`", .doc = "`#SBATCH --job-name`", .only = SUBMIT),
    S("slurm.partition", slurm.partition, 256, 0, NULL, .def = "\"\"",
      .doc = "`#SBATCH --partition`; empty = not written", .only = SUBMIT),
    S("slurm.account", slurm.account, 256, 0, NULL, .def = "\"\"",
      .doc = "`#SBATCH --account`; empty = not written", .only = SUBMIT),
    S("slurm.qos", slurm.qos, 256, 0, NULL, .def = "\"\"",
      .doc = "`#SBATCH --qos`; empty = not written", .only = SUBMIT),
    I("slurm.nodes", slurm.nodes, 1, 100000, 0, .def = "1", .doc = "`#SBATCH --nodes`",
      .only = SUBMIT),
    I("slurm.ntasks_per_node", slurm.ntasks_per_node, 1, 4096, 0, .def = "1",
      .doc = "`#SBATCH --ntasks-per-node` (MPI ranks per node)", .only = SUBMIT),
    I("slurm.cpus_per_task", slurm.cpus_per_task, 1, 4096, 0, .def = "1",
      .doc = "`#SBATCH --cpus-per-task` (threads per rank)", .only = SUBMIT),
    S("slurm.mem", slurm.mem, 32, 0, check_mem, .def = "\"\"",
      .allowed = "digits with an optional `K`, `M`, `G` or `T` suffix",
      .doc = "`#SBATCH --mem` (per node); empty = not written", .only = SUBMIT),
    S("slurm.time", slurm.time, 32, FL_NONEMPTY, check_time, .def = "01:00:00",
      .allowed = "`HH:MM:SS` (hours 0..9999) or `D-HH:MM:SS` (days 0..365, hours 0..23); minutes "
                 "and seconds 0..59; not zero",
      .doc = "`#SBATCH --time`", .only = SUBMIT),
    S("slurm.signal", slurm.signal, 32, FL_NONEMPTY, check_signal, .def = "USR1@300",
      .allowed = "`[B:][SIG]NAME@SECONDS`, NAME one of USR1, USR2, TERM, INT, HUP, QUIT, CONT; "
                 "seconds 0..65535",
      .doc = "`#SBATCH --signal`: the warning signal before the time limit, on which the run "
             "checkpoints and (with `requeue`) requeues itself",
      .only = SUBMIT),
    B("slurm.requeue", slurm.requeue, .def = "true",
      .doc = "`#SBATCH --requeue`, and requeue on the warning signal", .only = SUBMIT),
    S("slurm.output", slurm.output, 2048, FL_PATH, NULL,
      .derive = "`<out_dir>/slurm-%j.out`", .doc = "`#SBATCH --output`", .only = SUBMIT),
    SL("slurm.extra", slurm.extra, slurm.n_extra, check_sbatch, .def = "[]",
       .allowed = "up to 64 options, each starting with `-`",
       .doc = "extra lines written as `#SBATCH <entry>`", .only = SUBMIT),
    SL("slurm.setup", slurm.setup, slurm.n_setup, NULL, .def = "[]",
       .allowed = "up to 64 lines",
       .doc = "shell lines run before the launch (`module load ...`)", .only = SUBMIT),
    E("slurm.launcher", slurm.launcher, k_launch, .def = "srun",
      .doc = "how the ranks are started", .only = SUBMIT),
    S("slurm.mpi", slurm.mpi, 32, FL_NONEMPTY, check_mpi, .def = "pmix",
      .allowed = "an `srun --mpi` plugin name: `pmix`, `pmix_v4`, `pmi2`, `none`, ...",
      .doc = "`srun --mpi=` of the launch (with `launcher: srun`): the PMI the MPI library was "
             "built with (`srun --mpi=list` names those of the cluster)",
      .only = SUBMIT),
};
const size_t g_nfields = sizeof g_fields / sizeof g_fields[0];

/* Keys that no longer exist: naming one is an error that says what to do instead (an unknown
 * key would only suggest a similar name). */
const RemovedKey g_removed[] = {
    {"data.drop_last",
     "every epoch is floor(examples / train.batch) full batches of a fresh permutation, so the "
     "examples left over change from epoch to epoch and none is left out for good; delete the "
     "key"},
    {"train.grad_accum",
     "each rank already runs its part of train.batch in passes of train.micro_batch examples and "
     "sums their gradients before the step, so train.micro_batch bounds the memory per pass; "
     "delete the key and lower train.micro_batch (a divisor of train.batch) to use less memory"},
};
const size_t g_nremoved = sizeof g_removed / sizeof g_removed[0];

const Subsection g_subsections[] = {
    {"model.unet.", "model.type", JOB_MODEL_UNET},
    {"model.mlp.", "model.type", JOB_MODEL_MLP},
    {"objective.ddpm.", "objective.type", JOB_OBJ_DDPM},
    {"objective.flow.", "objective.type", JOB_OBJ_FLOW},
    {"objective.sde.", "objective.type", JOB_OBJ_SDE},
};
const size_t g_nsubsections = sizeof g_subsections / sizeof g_subsections[0];

/* ---- names of choices ----------------------------------------------------------------------- */

const char *jobspec_dataset_name(JobDataset d)
{
    return (int)d >= 0 && (int)d < NN(k_dataset) ? k_dataset[d] : "?";
}

const char *jobspec_sampler_name(JobSampler s)
{
    return (int)s >= 0 && (int)s < NN(k_sampler) ? k_sampler[s] : "?";
}

const char *jobspec_data_name(const JobSpec *js)
{
    if (js->data.dataset == JOB_DATA_TOY2D)
        return (int)js->data.toy >= 0 && (int)js->data.toy < NN(k_toy) ? k_toy[js->data.toy] : "?";
    return jobspec_dataset_name(js->data.dataset);
}
