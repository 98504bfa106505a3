/* io/jobspec.h - job specs: one strict YAML schema parsed into typed C structs.
 *
 * A job spec is a YAML mapping of sections (run, data, model, objective, train, checkpoint,
 * sample, eval, slurm). Every key is one row of the schema in io/jobspec_keys.c (type, range,
 * default or derivation rule, meaning), from which jobs/README.md's tables are generated
 * (`make docs`); a spec names only what it changes. Loading is strict: malformed YAML, an
 * unknown key (with the nearest valid key suggested), a wrong type, an out-of-range value, a duplicate key, anchors/aliases/tags and
 * multiple documents are errors. Every error is one line that starts with the place it was found:
 *
 *     jobs/x.yaml:12:5: train.lr: expected a number > 0, got "abc"
 *     jobs/x.yaml:3:3: unknown key 'lrr' in section 'train'; did you mean 'lr'?
 *     --set train.lr=abc: train.lr: expected a number > 0, got "abc"
 *
 * with ERR_PARSE for malformed YAML and ERR_SPEC for schema errors (core/err.h). Lines and
 * columns are 1-based (columns count characters).
 *
 * Life cycle (CONTRIBUTING.md, Ownership: caller-owned value):
 *     JobSpec js;
 *     TRY(jobspec_load(&js, "jobs/fmnist-ddpm.yaml"));   // parse + resolve + cross-check
 *     TRY(jobspec_set(&js, "train.lr=1e-4"));             // override, same validation
 *     ... use js ...
 *     jobspec_free(&js);
 * On failure every function leaves *js freed and zeroed (load) or unchanged (set), so
 * jobspec_free is always safe. All strings and string lists are owned by the JobSpec.
 *
 * Derived values: some keys default to a value computed from others (run.out_dir = runs/<name>,
 * checkpoint.dir = <out_dir>/ckpt, model.unet.temb_dim = channels, train.micro_batch, the
 * sampler, ...). A derived key follows its sources until it is set explicitly (in the file or
 * by --set); jobspec_set re-derives, so `--set run.name=x` also moves out_dir. Values computed
 * from the dataset that are not keys (image size, channels, class count) are in the `data.img_*`
 * and `data.n_labels` members.
 *
 * Inactive subsections: model.unet applies when model.type is unet, model.mlp when it is mlp,
 * objective.ddpm when objective.type is ddpm, objective.flow when it is flow, objective.sde when
 * it is sde. Setting a key of an
 * inactive subsection explicitly is an error; jobspec_emit writes only the active ones.
 *
 * Limits: a spec file is at most JOBSPEC_MAX_BYTES, YAML nesting at most 16 levels, at most
 * 100000 nodes; a UTF-8 (or UTF-16) byte-order mark is accepted.
 */
#ifndef DFM_IO_JOBSPEC_H
#define DFM_IO_JOBSPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define JOBSPEC_MAX_BYTES (1u << 20) /* 1 MiB */
#define JOB_MAX_LEVELS 8             /* U-Net resolution levels (ch_mult entries) */
#define JOB_MAX_ATTN 8               /* attention resolutions */
#define JOB_MAX_LIST 64              /* string lists (mirrors, slurm.extra, slurm.setup) */
#define JOB_MAX_STR 4096             /* bytes in one string value */

typedef enum { JOB_DATA_FASHION_MNIST, JOB_DATA_MNIST, JOB_DATA_CIFAR10, JOB_DATA_TOY2D } JobDataset;
typedef enum { JOB_TOY_MOONS, JOB_TOY_8GAUSSIANS, JOB_TOY_CHECKERBOARD, JOB_TOY_SWISSROLL } JobToy;
typedef enum { JOB_MODEL_UNET, JOB_MODEL_MLP } JobModelType;
typedef enum { JOB_OBJ_DDPM, JOB_OBJ_FLOW, JOB_OBJ_SDE } JobObjectiveType;
typedef enum { JOB_SDE_VP, JOB_SDE_VE } JobSdeKind;
typedef enum { JOB_SDE_W_SIGMA2, JOB_SDE_W_G2 } JobSdeWeighting;
typedef enum { JOB_SDE_PRED_EPS, JOB_SDE_PRED_SCORE } JobSdePrediction;
typedef enum { JOB_PREDICTOR_REVERSE, JOB_PREDICTOR_EM } JobPredictor;
typedef enum { JOB_BETAS_LINEAR, JOB_BETAS_COSINE } JobBetaSchedule;
typedef enum { JOB_PRED_EPS, JOB_PRED_X0, JOB_PRED_V } JobPrediction;
typedef enum { JOB_TSAMP_UNIFORM, JOB_TSAMP_LOGIT_NORMAL } JobTSampling;
typedef enum { JOB_OPT_ADAM, JOB_OPT_ADAMW } JobOptimizer;
typedef enum { JOB_LR_CONSTANT, JOB_LR_COSINE } JobLrSchedule;
typedef enum { JOB_REDUCE_DETERMINISTIC, JOB_REDUCE_OVERLAP } JobReduce;
typedef enum { JOB_RESUME_AUTO, JOB_RESUME_NEVER, JOB_RESUME_MUST } JobResume;
typedef enum {
    JOB_SAMPLER_DDPM, JOB_SAMPLER_DDIM, JOB_SAMPLER_DPMPP2M, /* objective ddpm */
    JOB_SAMPLER_EULER, JOB_SAMPLER_MIDPOINT, JOB_SAMPLER_HEUN, JOB_SAMPLER_RK4, /* flow, sde */
    JOB_SAMPLER_RK45,                                                          /* flow, sde */
    JOB_SAMPLER_EM, JOB_SAMPLER_PC, JOB_SAMPLER_LANGEVIN                       /* sde */
} JobSampler;
typedef enum { JOB_TS_UNIFORM, JOB_TS_QUADRATIC, JOB_TS_TRAILING } JobTimesteps;
typedef enum { JOB_VAR_BETA_TILDE, JOB_VAR_BETA } JobVariance;
typedef enum {
    JOB_METRIC_SWD, JOB_METRIC_FD_FMNIST, JOB_METRIC_SPECTRUM,
    JOB_METRIC_NLL, JOB_METRIC_ELBO, /* likelihoods of held-out data (dist/likelihood.h) */
    JOB_METRIC_COUNT
} JobMetric;
typedef enum { JOB_LAUNCH_SRUN, JOB_LAUNCH_MPIRUN } JobLauncher;

typedef struct {
    char *name;    /* [A-Za-z0-9._-], used in paths and the Slurm job name */
    char *out_dir; /* derived: runs/<name> */
    uint64_t seed;
} JobRun;

typedef struct {
    JobDataset dataset;
    JobToy toy;       /* toy2d only */
    int toy_size;     /* toy2d: examples generated */
    char *dir;        /* download cache */
    char **mirrors;   /* base URLs used instead of the built-in ones (tried in order); none = built-in */
    int n_mirrors;
    bool flip;        /* random horizontal flip (image datasets) */
    bool allow_unpinned; /* accept downloaded bytes that match no pinned hash (this run) */
    bool conditional; /* feed class labels to the model */
    /* Resolved from the dataset (not keys): */
    int img_channels; /* 1 (MNIST, Fashion-MNIST), 3 (CIFAR-10), 0 (toy2d) */
    int img_size;     /* 28, 32, 0 (toy2d) */
    int data_dim;     /* values per example: C*H*W, or 2 for toy2d */
    int n_labels;     /* classes in the dataset: 10, or 0 (toy2d, unlabelled) */
} JobData;

typedef struct {
    int channels;               /* base width */
    int ch_mult[JOB_MAX_LEVELS];
    int n_ch_mult;              /* resolution levels; level i has channels*ch_mult[i] channels */
    int num_res_blocks;         /* residual blocks per level (encoder side) */
    int attn_resolutions[JOB_MAX_ATTN]; /* feature-map sizes with self-attention; the middle
                                           block always has attention */
    int n_attn;
    int heads;
    double dropout;
    int groups;                 /* GroupNorm groups */
    int temb_dim;               /* derived: channels (sinusoidal embedding width) */
    int temb_hidden;            /* derived: 4*channels (time-embedding MLP width) */
} JobUNet;

typedef struct {
    int hidden;
    int layers;
    int temb_dim;
} JobMLP;

typedef struct {
    JobModelType type;
    int num_classes; /* 0 = unconditional; derived: data.n_labels when data.conditional */
    JobUNet unet;
    JobMLP mlp;
} JobModel;

typedef struct {
    JobBetaSchedule schedule;
    int timesteps; /* T */
    double beta_start, beta_end;
    double cosine_s;
    JobPrediction prediction;
} JobDDPM;

typedef struct {
    double sigma_min; /* 0 = rectified flow */
    JobTSampling t_sampling;
    double logit_mean, logit_std;
} JobFlow;

typedef struct {
    JobSdeKind kind;
    double beta_min, beta_max;   /* VP: beta(t) linear on [0, 1] */
    double sigma_min, sigma_max; /* VE: geometric noise levels */
    JobSdeWeighting weighting;   /* lambda(t) = s(t)^2 or g(t)^2 */
    JobSdePrediction prediction; /* eps or the score */
    double t_eps;                /* smallest time (training, sampling, likelihood) */
} JobSDE;

typedef struct {
    JobObjectiveType type;
    double label_dropout; /* probability of replacing the label by the null label (CFG) */
    JobDDPM ddpm;
    JobFlow flow;
    JobSDE sde;
} JobObjective;

typedef struct {
    double decay; /* 0 = no EMA */
    bool warmup;  /* decay_eff(n) = min(decay, (1+n)/(10+n)) */
    int start;    /* optimizer steps before the EMA starts (copies the weights until then) */
} JobEMA;

typedef struct {
    int batch;       /* global batch per optimizer step, independent of the rank count */
    int micro_batch; /* derived: largest divisor of batch <= 16; must divide batch */
    int steps;
    JobOptimizer optimizer;
    double lr, beta1, beta2, eps, weight_decay;
    int warmup;      /* linear warm-up steps */
    JobLrSchedule lr_schedule;
    double min_lr;
    double grad_clip; /* global-norm clip; 0 = off */
    JobEMA ema;
    int threads;     /* 0 = auto */
    JobReduce reduce;
    bool zero1;
    int log_every, sample_every, sample_count, check_every, max_nonfinite;
    int watchdog; /* seconds; 0 = off */
} JobTrain;

typedef struct {
    char *dir; /* derived: <out_dir>/ckpt */
    int every; /* 0 = only at the end */
    int keep;  /* 0 = keep all */
    int keep_every; /* also keep steps that are multiples of it; 0 = none */
    bool async;     /* write in a background thread while training goes on */
    JobResume resume;
} JobCheckpoint;

typedef struct {
    JobSampler sampler; /* derived: ddim (objective ddpm) or euler (objective flow) */
    int steps;          /* derived: timesteps (sampler ddpm) or 50 */
    double eta;
    JobVariance variance; /* ddpm sampler: sigma^2 = beta~ ("fixedsmall") or beta ("fixedlarge") */
    JobTimesteps timesteps; /* derived: trailing for the cosine schedule, uniform otherwise */
    bool clip_x0;       /* derived: true for image datasets */
    double guidance;    /* CFG scale w: out = uncond + w*(cond - uncond); 1 = no guidance */
    double rtol, atol;  /* rk45 step control */
    int correctors;     /* pc: corrector moves per step; langevin: moves per level */
    double snr;         /* pc: corrector signal-to-noise ratio */
    JobPredictor predictor; /* pc */
    double langevin_eps;    /* langevin step scale */
    int resample;       /* RePaint resampling of inpainting (dfm sample --inpaint); 1 = off */
    int label;          /* class to sample, -1 = cycle through the classes */
    int count, batch;
    uint64_t seed;      /* derived: run.seed */
    bool use_ema;       /* derived: train.ema.decay > 0 */
    char *out;          /* derived: <out_dir>/samples.png (.csv for toy2d) */
} JobSample;

typedef struct {
    int every; /* 0 = off */
    int count, batch;
    int ref;   /* reference images (first of the test split); 0 = all */
    JobMetric metrics[JOB_METRIC_COUNT];
    int n_metrics;
} JobEval;

typedef struct {
    char *job_name; /* derived: run.name */
    char *partition, *account, *qos, *mem; /* "" = not written */
    int nodes, ntasks_per_node, cpus_per_task;
    char *time;     /* HH:MM:SS or D-HH:MM:SS */
    char *signal;   /* [B:]NAME@SECONDS */
    bool requeue;
    char *output;   /* derived: <out_dir>/slurm-%j.out */
    char **extra;   /* raw #SBATCH option lines */
    int n_extra;
    char **setup;   /* shell lines before the launch */
    int n_setup;
    JobLauncher launcher;
    char *mpi;      /* srun --mpi= */
} JobSlurm;

/* Where a key's value came from (for error messages and derived defaults). */
typedef struct {
    int line, col; /* 1-based position in `file`; 0 when not from the file */
    int set;       /* 1-based index into `sets` when set by --set; 0 otherwise */
} JobSpecLoc;

typedef struct {
    JobRun run;
    JobData data;
    JobModel model;
    JobObjective objective;
    JobTrain train;
    JobCheckpoint checkpoint;
    JobSample sample;
    JobEval eval;
    JobSlurm slurm;
    /* Provenance (owned; ignored by jobspec_equal). */
    char *file;      /* name used in messages, NULL for defaults */
    JobSpecLoc *loc; /* one entry per key, indexed like jobspec_key() */
    char **sets;     /* --set assignments applied, in order */
    int n_sets;
} JobSpec;

/* Fill *js with every default (resolved). *js need not be initialised. */
int jobspec_defaults(JobSpec *js);

/* Load a spec file: defaults, parse, resolve derived values, cross-check. */
int jobspec_load(JobSpec *js, const char *path);
/* Same, then apply the --set assignments before resolving and cross-checking. */
int jobspec_load_with(JobSpec *js, const char *path, const char *const *sets, int n_sets);
/* Same from memory; `name` is used in messages. text need not be NUL-terminated. */
int jobspec_load_string(JobSpec *js, const char *text, size_t len, const char *name);

/* Apply one "section.key=value" override (value is a YAML scalar or flow list, e.g.
 * model.unet.ch_mult=[1,2,2]), re-derive and cross-check. On error *js is unchanged and the
 * message starts with "--set <assignment>: ". */
int jobspec_set(JobSpec *js, const char *assignment);

/* The warm-up the learning-rate schedule uses: train.warmup, or train.steps - 1 when it is not
 * below train.steps (so `--set train.steps=3` is a valid smoke run of any job). */
int jobspec_warmup_steps(const JobSpec *js);

/* Cross-field validation of a resolved spec. */
int jobspec_check(const JobSpec *js);

/* Write the fully resolved spec as YAML (active subsections only). Loading that text gives a
 * spec equal to *js. Returns ERR_IO if writing fails. */
int jobspec_emit(const JobSpec *js, FILE *out);

/* 1 when every key has the same value (provenance ignored), 0 otherwise. */
int jobspec_equal(const JobSpec *a, const JobSpec *b);

/* Deep copy (dst need not be initialised). */
void jobspec_copy(JobSpec *dst, const JobSpec *src);

void jobspec_free(JobSpec *js);

/* The schema's keys as dotted paths ("train.ema.decay"), in emission order. */
size_t jobspec_nkeys(void);
const char *jobspec_key(size_t i);

/* 1 when `key` was written in the spec file or given with --set (not a default). */
int jobspec_explicit(const JobSpec *js, const char *key);

/* The key table of one section ("train") as jobs/README.md shows it (Markdown), generated from
 * the schema; `make docs` writes them into the README. ERR_ARG for an unknown section. */
int jobspec_doc_table(FILE *out, const char *section);

/* The dataset registry's name (io/dataset.h) of the data the spec trains on: data.dataset, or
 * data.toy for toy2d ("fashion-mnist", "moons"). */
const char *jobspec_data_name(const JobSpec *js);

#endif
