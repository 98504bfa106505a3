/* model/net.h - the networks dfm trains: a DDPM U-Net for images and an MLP for low-dimensional
 * data, behind one handle.
 *
 * Parameters. One table of tensors (name, shape, offset, count), in a fixed order (the order
 * of the forward pass), drives one flat float buffer per role: params and grads here, Adam
 * moments and EMA in model/optim.h, checkpoints and the gradient all-reduce elsewhere. Tensors
 * are packed back to back without padding; buffers are 64-byte aligned. Shapes use PyTorch's
 * layouts (conv weight (OC, IC, K, K), linear weight (OUT, IN), vectors (N)), so a tensor's slice
 * of the flat buffer can be loaded into torch unchanged (model/README.md lists the names).
 *
 * Activations live in one arena sized for the largest batch seen (grown on first use of a larger
 * B, never shrunk), planned by liveness: two activations share memory when they are never
 * needed at the same time. net_forward keeps what net_backward needs; net_backward must follow
 * the net_forward whose gradients it computes. net_infer keeps nothing and needs only what its
 * live tensors take (for a U-Net: the skip connections and one block's tensors).
 *
 * Gradients accumulate: net_backward adds into grads; call net_zero_grad once per optimizer step
 * (several forward/backward pairs before a step = gradient accumulation).
 *
 * Determinism: for a fixed batch size, forward outputs and parameter gradients are bitwise
 * identical for any thread count (net_set_threads); a sample's output does not depend on the
 * other samples in the batch; parameter gradients sum the samples in sample order. Dropout
 * masks are drawn from rng_stream(RNG_P_DROPOUT, sample_idx[b]) with sub = step, so they do not
 * depend on how the batch is split either.
 *
 * Invalid configurations are user errors: net_create_* return NULL and record an ERR_SPEC
 * message (core/err.h); unet_config_check / mlp_config_check do the same checks without
 * building anything.
 */
#ifndef DFM_MODEL_NET_H
#define DFM_MODEL_NET_H

#include <stddef.h>
#include <stdint.h>

#define UNET_MAX_LEVELS 8
#define UNET_MAX_ATTN 8
#define PARAM_NAME_MAX 64

typedef struct {
    int in_ch;                    /* image channels, in and out */
    int img_size;                 /* square images, img_size x img_size */
    int ch;                       /* base channels */
    int ch_mult[UNET_MAX_LEVELS]; /* channels of level i = ch * ch_mult[i] */
    int n_mult;                   /* number of levels (resolutions img_size >> i) */
    int num_res_blocks;           /* per level on the way down (num_res_blocks + 1 up) */
    int attn_res[UNET_MAX_ATTN];  /* resolutions (pixels) with self-attention; middle always */
    int n_attn;
    int heads;                    /* attention heads (1 = DDPM) */
    float dropout;                /* ResBlock dropout rate, in [0, 1) */
    int groups;                   /* GroupNorm groups */
    int temb_dim;                 /* sinusoidal embedding width */
    int temb_hidden;              /* time-embedding MLP width (DDPM: 4 ch) */
    int num_classes;              /* 0 = unconditional; else table of num_classes + 1 rows */
} UNetConfig;

typedef struct {
    int in_dim;      /* data dimension D (output has the same) */
    int hidden;      /* hidden width */
    int n_layers;    /* hidden layers (>= 1) */
    int temb_dim;    /* sinusoidal embedding width */
    int temb_hidden; /* time-embedding MLP width */
    int num_classes; /* 0 = unconditional */
} MLPConfig;

typedef enum { NET_UNET = 1, NET_MLP = 2 } NetKind;

typedef struct {
    NetKind kind;
    UNetConfig unet; /* when kind == NET_UNET */
    MLPConfig mlp;   /* when kind == NET_MLP */
} NetConfig;

typedef struct {
    char name[PARAM_NAME_MAX];
    int shape[4];
    int ndim;
    size_t offset; /* into the flat buffers, in floats */
    size_t count;
} ParamEntry;

typedef struct Net Net;

/* Configuration checks (ERR_SPEC with a message naming the field). */
int unet_config_check(const UNetConfig *cfg);
int mlp_config_check(const MLPConfig *cfg);
int net_config_check(const NetConfig *cfg);

/* Size of a model without allocating its buffers. Return 0 for an invalid config. */
size_t net_count_params(const NetConfig *cfg);
double net_flops_per_sample(const NetConfig *cfg); /* forward, 2 per multiply-add */
size_t unet_count_params(const UNetConfig *cfg);
double unet_flops_per_sample(const UNetConfig *cfg);
size_t mlp_count_params(const MLPConfig *cfg);
double mlp_flops_per_sample(const MLPConfig *cfg);

/* Create / destroy. Parameters are zero until net_init_params or a checkpoint fills them. */
Net *net_create(const NetConfig *cfg);
Net *net_create_unet(const UNetConfig *cfg);
Net *net_create_mlp(const MLPConfig *cfg);
void net_destroy(Net **net); /* NULL-safe, sets *net = NULL */

NetKind net_kind(const Net *net);
const ParamEntry *net_param_table(const Net *net, size_t *n_tensors);
size_t net_num_params(const Net *net);
float *net_params(Net *net); /* flat, net_num_params floats, 64-byte aligned (a view) */
float *net_grads(Net *net);
/* Per-sample input/output size in floats (C*H*W or D). */
size_t net_sample_floats(const Net *net);
/* Bytes of activation memory held now (the arena of values and gradients + workspace). */
size_t net_activation_bytes(const Net *net);

/* What one training rank needs, by category, as the arena plans it (bytes). */
typedef struct {
    size_t params;      /* parameters and their gradients */
    size_t optimizer;   /* Adam moments m and v, and the EMA copy when there is one */
    size_t activations; /* the training layout of the arena (values and gradients) */
    size_t workspace;   /* scratch of the largest layer */
    size_t total;
} NetMemory;
/* For micro-batch B and `threads` threads (<= 0: omp_get_max_threads()), with an EMA copy when
 * ema is nonzero. Returns ERR_OK, or the config's ERR_SPEC. */
int net_memory_estimate(const NetConfig *cfg, size_t B, int threads, int ema, NetMemory *m);

/* Deterministic init: tensor i from rng_stream(RNG_P_INIT, i). Conv and linear weights
 * Glorot-uniform (fan_avg, DDPM's variance scaling), zero for the ResBlock second conv, the
 * attention output projection and the output conv; biases 0; GroupNorm gamma 1, beta 0; class
 * embeddings N(0, 1). */
void net_init_params(Net *net, uint64_t seed);

/* Threads used by forward/backward (default: omp_get_max_threads() at creation). */
void net_set_threads(Net *net, int n);

/* Options of a training forward (all zero = no labels, no dropout). */
typedef struct {
    const int *labels;          /* (B) class ids, -1 = null class; NULL = all null (ignored
                                 * when unconditional) */
    const uint64_t *sample_idx; /* (B) global sample indices: the keys of the dropout masks */
    uint64_t seed;              /* run seed (dropout masks) */
    uint32_t step;              /* optimizer step (dropout masks) */
    int dropout;                /* 1: apply dropout (then sample_idx is required) */
} NetTrainOpts;

/* Training forward: x (B, C, H, W) or (B, D); t (B) times (continuous allowed; the caller scales
 * them); out like x. Keeps what net_backward needs. opt may be NULL. */
void net_forward(Net *net, const float *x, const float *t, size_t B, const NetTrainOpts *opt,
                 float *out);
/* Inference forward (sampling, evaluation): no dropout, keeps nothing for a backward (its
 * buffers are reused by liveness, GroupNorm + SiLU fused), so it needs far less memory than
 * net_forward. Its output is bitwise equal to net_forward's without dropout, for any thread
 * count, and a sample's output does not depend on the rest of its batch. It overwrites what
 * the last net_forward kept: call net_backward before it, not after. labels as in
 * NetTrainOpts. */
void net_infer(Net *net, const float *x, const float *t, const int *labels, size_t B,
               float *out);
/* dout: like out of the last net_forward; adds d loss / d params into grads. */
void net_backward(Net *net, const float *dout);
/* Listener for gradients becoming final during net_backward, for overlapping their reduction
 * with the rest of the backward (dist/reduce.h). During each net_backward, fn(ctx, lo, hi) is
 * called with disjoint ranges of the flat buffer that together cover [0, net_num_params) once,
 * in descending offset order (the U-Net reports the output layers, then each block from the
 * last to the first, then the input convolution and the time embedding); after the call,
 * grads[lo, hi) hold their final values for this backward. fn = NULL removes the listener. */
typedef void (*NetGradReadyFn)(void *ctx, size_t lo, size_t hi);
void net_set_grad_ready(Net *net, NetGradReadyFn fn, void *ctx);
/* Gradient of the loss w.r.t. the last forward's input x (valid after net_backward), or NULL. */
const float *net_input_grad(const Net *net);
void net_zero_grad(Net *net);

#endif
