/* model/net_int.h - what model/net.c (parameter table, activation arena, public calls),
 * model/unet.c and model/mlp.c share. Not part of the public API: only these three files
 * include it.
 *
 * A network is built as a sequence of STEPS (the time embedding and input layer, each U-Net
 * block, the output head; for the MLP each layer). Every tensor a step writes is an Act
 * registered with act_new while that step is built, and every tensor a step reads from an
 * earlier step is declared with act_use. From these the arena plans memory by liveness
 * (net.c, plan_*): two tensors share bytes when they are never needed at the same time.
 *
 *   inference  step s runs at time s; an Act lives from its step to its last reader.
 *   training   forward step s at time s, its backward at time 2S-1-s (S steps); a value lives
 *              from its step until its step's backward, except: ACT_FWD_ONLY values only until
 *              their last forward reader, ACT_RECOMPUTE values from their step to their last
 *              reader and again from that reader's backward (which recomputes them first) to
 *              their own step's backward. A gradient lives from its last reader's backward to
 *              its own step's backward, and is cleared when that interval starts.
 */
#ifndef DFM_MODEL_NET_INT_H
#define DFM_MODEL_NET_INT_H

#include "model/net.h"
#include "model/conv2d.h"

#include <stddef.h>
#include <stdint.h>

typedef enum { INIT_GLOROT = 0, INIT_ZERO, INIT_ONE, INIT_NORMAL } InitKind;

typedef struct {
    ParamEntry *e;
    int *init;
    double *fan; /* fan_in + fan_out for Glorot */
    size_t n, cap, total;
} Table;

/* Act flags */
enum {
    ACT_GRAD = 1,       /* on the gradient path: has a gradient buffer d in training */
    ACT_TRAIN_ONLY = 2, /* not needed by inference (dropout masks, pre-SiLU norm outputs) */
    ACT_RECOMPUTE = 4,  /* training: not kept from forward to backward; the backward recomputes
                         * it (from saved statistics or kept inputs) before reading it */
    ACT_FWD_ONLY = 8,   /* training: read by no backward (only by forward steps) */
};

/* An activation: value x and (ACT_GRAD, training only) gradient d, both (B, n), views into the
 * arena set by the current layout (NULL where the layout has no room for them). */
typedef struct {
    float *x, *d;
    size_t n;     /* floats per sample */
    int flags;
    int step;     /* the step that writes it */
    int last_use; /* the last step that reads it (>= step) */
    size_t off_x, off_d; /* per-sample offsets of the current plan (in floats) */
} Act;

/* layer handles: offsets of their tensors in the flat parameter buffers */
typedef struct {
    size_t w, b;
    Conv2dShape s;
} Conv;

typedef struct {
    size_t g, b;
    size_t C, G;
} Norm;

typedef struct {
    size_t w, b;
    size_t in, out;
} Dense;

typedef enum { LAYOUT_NONE = 0, LAYOUT_INFER, LAYOUT_TRAIN } Layout;

/* A memory plan: per-sample offsets for every Act of a network in one layout. */
typedef struct {
    size_t *off_x, *off_d; /* per Act, SIZE_MAX = none */
    size_t units;          /* floats per sample of the whole plan */
    int **zero_at;         /* training: per backward step, the Acts whose gradient starts there */
    int *n_zero_at;
    int ready;
} Plan;

struct UNet;
struct MLP;

/* The time (and class) embedding every network starts with:
 * emb = dense1(silu(dense0(sinusoid(t)))) (+ class_emb[label]); semb = silu(emb). */
typedef struct {
    size_t dim, hidden;
    Dense dense0, dense1;
    size_t class_table; /* offset of class_emb.weight (num_classes > 0) */
    int num_classes;
    Act *sinusoid, *hidden_pre, *hidden_act, *emb, *semb;
} TimeEmbed;

struct Net {
    NetKind kind;
    Table tab;
    float *params, *grads;
    int threads;
    double flops; /* forward, per sample */

    /* activations and their memory */
    Act **acts;
    size_t n_acts, cap_acts;
    int n_steps;    /* steps registered so far (build), then the network's S */
    int build_step; /* the step being built */
    Plan plan[3];   /* by Layout */
    Layout layout;  /* the layout the Act pointers follow now */
    size_t layout_B;
    float *arena;
    size_t arena_floats;
    float *ws; /* workspace of the largest layer */
    size_t ws_floats;

    /* what the current pass is doing */
    size_t B;
    Layout pass; /* LAYOUT_INFER or LAYOUT_TRAIN */
    int dropout_on;
    uint64_t *sample_idx; /* (Bcap) copy of the forward's sample indices (dropout recompute) */
    uint64_t seed;
    uint32_t dstep;
    int have_fwd;
    const float *dout; /* during net_backward: the caller's gradient of the output */
    int *labels; /* (Bcap) sanitised class ids */
    size_t labels_cap;

    NetGradReadyFn ready_fn; /* see net_set_grad_ready */
    void *ready_ctx;
    size_t ready_hi; /* gradients in [ready_hi, total) reported final */

    TimeEmbed temb;
    Act *xin, *y; /* network input and output */
    float dropout;

    struct UNet *unet;
    struct MLP *mlp;
    UNetConfig ucfg;
    MLPConfig mcfg;
};

#define PP(off) (n->params + (off))
#define GG(off) (n->grads + (off))

/* registration while building (net.c) */
size_t table_add(Table *t, InitKind init, double fan, int ndim, const int *shape, const char *fmt,
                 ...) __attribute__((format(printf, 6, 7)));
int net_begin_step(Net *n); /* starts a new step, returns its index */
Act *act_new(Net *n, size_t per_sample, int flags);
void act_use(Net *n, Act *a); /* the current step reads a */
Conv conv_new(Net *n, const char *name, Conv2dShape s, InitKind init);
Dense dense_new(Net *n, const char *name, size_t in, size_t out, InitKind init);
Norm norm_new(Net *n, const char *name, size_t C, size_t G);

/* the time embedding (net.c): built in the current step; forward writes semb */
void temb_build(Net *n, size_t dim, size_t hidden, int num_classes);
void temb_forward(Net *n, const float *t, const int *labels, size_t B);
void temb_backward(Net *n, size_t B);

/* training backward: clear the gradients whose live range starts at step s's backward, and
 * report parameters [lo, ...) final to the listener */
void net_backward_step_begin(Net *n, int step);
void grad_ready(Net *n, size_t lo);

/* per network kind (unet.c, mlp.c) */
void unet_build(Net *n);
void unet_forward(Net *n, size_t B);
void unet_backward(Net *n, size_t B);
size_t unet_ws_floats(const Net *n, size_t B);
void unet_free(Net *n);

void mlp_build(Net *n);
void mlp_forward(Net *n, size_t B);
void mlp_backward(Net *n, size_t B);
void mlp_free(Net *n);

#endif
