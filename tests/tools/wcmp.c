/* tests/tools/wcmp.c - compare two weights files: wcmp A.bin B.bin [RTOL]
 *
 * Prints the largest absolute difference relative to the largest magnitude in A, for the
 * parameters and the EMA weights, and exits 0 when both are <= RTOL (default 0: bitwise), 1
 * otherwise, 2 on unreadable files or different tables. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "io/weights.h"

static double rel_diff(const float *a, const float *b, size_t n)
{
    double amax = 0.0, dmax = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= dmax)) dmax = d; /* NaN propagates */
        if (fabs((double)a[i]) > amax) amax = fabs((double)a[i]);
    }
    return amax > 0 ? dmax / amax : dmax;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: wcmp A.bin B.bin [RTOL]\n");
        return 2;
    }
    double rtol = argc == 4 ? atof(argv[3]) : 0.0;
    Weights a, b;
    if (weights_read(&a, argv[1]) || weights_read(&b, argv[2])) {
        fprintf(stderr, "wcmp: %s\n", err_message());
        return 2;
    }
    if (a.n != b.n || a.n_tensors != b.n_tensors || !a.ema != !b.ema) {
        fprintf(stderr, "wcmp: the files hold different models\n");
        return 2;
    }
    double dp = rel_diff(a.params, b.params, a.n);
    double de = a.ema ? rel_diff(a.ema, b.ema, a.n) : 0.0;
    int same = memcmp(a.params, b.params, sizeof(float) * a.n) == 0;
    printf("params: max relative difference %.3g%s; ema: %.3g\n", dp, same ? " (bitwise equal)" : "",
           de);
    int ok = dp <= rtol && de <= rtol;
    weights_free(&a);
    weights_free(&b);
    return ok ? 0 : 1;
}
