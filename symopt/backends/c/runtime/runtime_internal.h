// What the files of symopt's C runtime share and nothing else uses: small helpers and the
// triangular solves of runtime_dense.c. Not installed (include/symopt/runtime.h is the API).
#ifndef SYMOPT_RUNTIME_INTERNAL_H
#define SYMOPT_RUNTIME_INTERNAL_H

#include "symopt/runtime.h"

#include <math.h>
#include <stddef.h>

// max and min as Python's max(a, b) and min(a, b) compute them: a unless b is larger (smaller).
static inline double rt_max(double a, double b)
{
    return b > a ? b : a;
}

static inline double rt_min(double a, double b)
{
    return b < a ? b : a;
}

static inline double rt_dot(size_t n, const double *a, const double *b)
{
    size_t i;
    double s = 0.0;
    for (i = 0; i < n; ++i) {
        s += a[i] * b[i];
    }
    return s;
}

// Whether all count values of a are finite.
static inline int rt_all_finite(size_t count, const double *a)
{
    size_t i;
    for (i = 0; i < count; ++i) {
        if (!isfinite(a[i])) {
            return 0;
        }
    }
    return 1;
}

// Forward substitution in place: y with L y = b, row by row (b comes in y).
void symopt_runtime_forward(size_t n, const double *L, double *y);

// Back substitution in place on the leading m x m block of L (row stride n): x with L^T x = y
// (y comes in x).
void symopt_runtime_backward(size_t m, size_t n, const double *L, double *x);

// The workspace of a minimize function: work itself, or, when work is NULL, 2 n^2 + vectors n
// doubles from malloc, also stored in *own for the caller to free. NULL when that count overflows
// or malloc fails.
double *symopt_runtime_workspace(double *work, size_t n, size_t vectors, double **own);

#endif
