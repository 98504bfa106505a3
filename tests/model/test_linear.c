/* tests/model/test_linear.c - dense layer against a double loop and finite differences. */
#include <criterion/criterion.h>

#include "model/linear.h"
#include "ref.h"

typedef struct {
    size_t B, IN, OUT;
    double *x, *w, *b, *r, *out;
} LinCtx;

static double lin_loss(void *p)
{
    LinCtx *c = p;
    ref_linear(c->out, c->x, c->w, c->b, c->B, c->IN, c->OUT);
    double l = 0;
    for (size_t i = 0; i < c->B * c->OUT; i++) l += c->r[i] * c->out[i];
    return l;
}

static void check_linear(size_t B, size_t IN, size_t OUT)
{
    float *x = malloc(B * IN * 4), *w = malloc(OUT * IN * 4), *b = malloc(OUT * 4);
    float *r = malloc(B * OUT * 4), *out = malloc(B * OUT * 4);
    float *dx = calloc(B * IN, 4), *dw = calloc(OUT * IN, 4), *db = calloc(OUT, 4);
    fill_uniform(x, B * IN, 1.0f, 41);
    fill_uniform(w, OUT * IN, 0.5f, 42);
    fill_uniform(b, OUT, 0.5f, 43);
    fill_uniform(r, B * OUT, 1.0f, 44);
    linear_forward(out, x, w, b, B, IN, OUT);
    LinCtx c = {B, IN, OUT, to_double(x, B * IN), to_double(w, OUT * IN), to_double(b, OUT),
                to_double(r, B * OUT), malloc(B * OUT * sizeof(double))};
    lin_loss(&c);
    double e = max_rel_err(out, c.out, B * OUT, max_abs(c.out, B * OUT));
    cr_assert(e < 1e-5, "forward error %g", e);
    linear_backward(dx, dw, db, r, x, w, B, IN, OUT);
    double ex = fd_check(lin_loss, &c, c.x, dx, B * IN, 1e-4);
    double ew = fd_check(lin_loss, &c, c.w, dw, OUT * IN, 1e-4);
    double eb = fd_check(lin_loss, &c, c.b, db, OUT, 1e-4);
    cr_assert(ex < 1e-4 && ew < 1e-4 && eb < 1e-4, "FD: dx %g dw %g db %g", ex, ew, eb);
    free(x); free(w); free(b); free(r); free(out); free(dx); free(dw); free(db);
    free(c.x); free(c.w); free(c.b); free(c.r); free(c.out);
}

Test(linear, small) { check_linear(3, 5, 4); }
/* more samples than one row block, more outputs than one weight-gradient chunk */
Test(linear, multi_block) { check_linear(37, 7, 70); }
