// symopt's C runtime, dense linear algebra: the Cholesky factorisation of a model's system
// matrix, the triangular solves and the semidefiniteness test (see include/symopt/runtime.h).
#include "runtime_internal.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// An entry (i, j) of a matrix built from H (n x n, row-major) and a scalar.
typedef symopt_runtime_entry rt_entry;

// H_ij + s delta_ij and -H_ij + s delta_ij: the matrices of the semidefiniteness tests.
static double rt_shifted(size_t n, const double *H, double s, size_t i, size_t j)
{
    return H[i * n + j] + (i == j ? s : 0.0);
}

static double rt_negated_shifted(size_t n, const double *H, double s, size_t i, size_t j)
{
    return -H[i * n + j] + (i == j ? s : 0.0);
}

// The Cholesky factorisation A = L L^T of the matrix with entries entry(n, H, s, i, j).
static int rt_factor(
    size_t n, const double *H, double s, rt_entry entry, double *L, double *pivot)
{
    size_t i;
    size_t j;
    size_t k;
    for (i = 0; i < n * n; ++i) {
        L[i] = 0.0;
    }
    for (k = 0; k < n; ++k) {
        // L_kk^2 = A_kk - sum_{j<k} L_kj^2
        double sum = 0.0;
        double p;
        for (j = 0; j < k; ++j) {
            sum += L[k * n + j] * L[k * n + j];
        }
        p = entry(n, H, s, k, k) - sum;
        if (!(p > 0.0)) { // also catches NaN
            if (pivot != NULL) {
                *pivot = p;
            }
            return (int)(k + 1);
        }
        L[k * n + k] = sqrt(p);
        // L_ik = (A_ik - sum_{j<k} L_ij L_kj) / L_kk, for i > k
        for (i = k + 1; i < n; ++i) {
            sum = 0.0;
            for (j = 0; j < k; ++j) {
                sum += L[i * n + j] * L[k * n + j];
            }
            L[i * n + k] = (entry(n, H, s, i, k) - sum) / L[k * n + k];
        }
    }
    if (pivot != NULL) {
        *pivot = 0.0;
    }
    return 0;
}

// Forward substitution in place: y with L y = b, column by column (b comes in y).
void symopt_runtime_forward(size_t n, const double *L, double *y)
{
    size_t i;
    size_t k;
    for (k = 0; k < n; ++k) {
        // y_k = b_k / L_kk, then b_i -= L_ik y_k for i > k
        y[k] /= L[k * n + k];
        for (i = k + 1; i < n; ++i) {
            y[i] -= L[i * n + k] * y[k];
        }
    }
}

// Back substitution in place on the leading m x m block of L (row stride n): x with L^T x = y
// (y comes in x).
void symopt_runtime_backward(size_t m, size_t n, const double *L, double *x)
{
    size_t i;
    size_t k;
    for (k = m; k-- > 0;) {
        // x_k = (y_k - sum_{i>k} L_ik x_i) / L_kk, for k = m-1, ..., 0
        double s = 0.0;
        for (i = k + 1; i < m; ++i) {
            s += L[i * n + k] * x[i];
        }
        x[k] = (x[k] - s) / L[k * n + k];
    }
}
int symopt_runtime_cholesky(
    const symopt_runtime_model *model, size_t n, const double *H, double lam, double *L,
    double *pivot)
{
    return rt_factor(n, H, lam, model->system, L, pivot);
}

void symopt_runtime_solve(
    const symopt_runtime_model *model, size_t n, const double *L, const double *g, double *d)
{
    size_t i;
    // b_i: the right-hand side of the derived system
    for (i = 0; i < n; ++i) {
        d[i] = model->rhs(n, g, i);
    }
    // L y = b, then L^T d = y: d = (L L^T)^-1 b = A^-1 b
    symopt_runtime_forward(n, L, d);
    symopt_runtime_backward(n, n, L, d);
}

int symopt_runtime_is_positive_semidefinite(
    const symopt_runtime_model *model, size_t n, const double *H, int negate, double *L)
{
    double h_inf = 0.0;
    size_t i;
    size_t j;
    for (i = 0; i < n; ++i) {
        double row = 0.0;
        for (j = 0; j < n; ++j) {
            row += fabs(H[i * n + j]);
        }
        h_inf = row > h_inf ? row : h_inf;
    }
    // tau = PSD_TOL max(1, ||H||_inf)
    h_inf = model->psd_tol * (h_inf > 1.0 ? h_inf : 1.0);
    return rt_factor(
               n, H, h_inf, negate ? rt_negated_shifted : rt_shifted, L, NULL)
        == 0;
}

int symopt_runtime_newton_step(
    const symopt_runtime_model *model, size_t n, const double *H, const double *g, double *d, double *work, double *pivot)
{
    // the derived system: A = L L^T, then d = (L L^T)^-1 b
    const int fail = symopt_runtime_cholesky(model, n, H, 0.0, work, pivot);
    if (fail) {
        return fail;
    }
    symopt_runtime_solve(model, n, work, g, d);
    return 0;
}
