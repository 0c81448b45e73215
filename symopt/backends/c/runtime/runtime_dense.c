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

// The blocked Cholesky factorisation: columns per block, and the register tile (rows x columns)
// of its block update. Each entry is computed in a fixed order whatever the vector width or the
// number of threads, so results are the same on every machine.
#define RT_BLOCK 64
#define RT_TILE_ROWS 4
#define RT_TILE_COLS 8
// Block updates of fewer than this many row x depth products run in the calling thread.
#define RT_PARALLEL_MIN 16384

// The tile kernel is compiled for AVX-512, AVX2 and the SSE2 baseline on x86-64 Linux (the
// loader picks one, as for the generated kernels; SYMOPT_NO_CLONES: the baseline only). GCC's
// loop vectoriser would vectorise its depth loop with gathers: it is switched off there, so that
// the basic-block vectoriser turns each tile row into vector operations kept in registers.
#if defined(__has_attribute) && defined(__x86_64__) && defined(__GLIBC__)
#if __has_attribute(target_clones) && !defined(SYMOPT_NO_CLONES)
#define RT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef RT_CLONES
#define RT_CLONES
#endif
#if defined(__GNUC__) && !defined(__clang__)
#define RT_TILE_VECTORISE __attribute__((optimize("no-tree-loop-vectorize")))
#else
#define RT_TILE_VECTORISE
#endif

// A[i.., c..] -= L[i.., :depth] U[:depth, c..] on the tile at rows i, columns c of L, where
// U[q, c] = L[c, q] is stored in the upper triangle (row q, columns c > q).
RT_CLONES RT_TILE_VECTORISE static void rt_update_tile(
    size_t n, double *L, size_t i, size_t c, size_t depth)
{
    double acc[RT_TILE_ROWS][RT_TILE_COLS];
    size_t q;
    size_t r;
    size_t k;
    for (r = 0; r < RT_TILE_ROWS; ++r) {
        for (k = 0; k < RT_TILE_COLS; ++k) {
            acc[r][k] = L[(i + r) * n + c + k];
        }
    }
    for (q = 0; q < depth; ++q) {
        const double *u = L + q * n + c;
        for (r = 0; r < RT_TILE_ROWS; ++r) {
            const double a = L[(i + r) * n + q];
            for (k = 0; k < RT_TILE_COLS; ++k) {
                acc[r][k] -= a * u[k];
            }
        }
    }
    for (r = 0; r < RT_TILE_ROWS; ++r) {
        for (k = 0; k < RT_TILE_COLS; ++k) {
            L[(i + r) * n + c + k] = acc[r][k];
        }
    }
}

// The same update of row i, columns c0..c1-1, one row of U at a time (the edges of the tiling).
RT_CLONES static void rt_update_row(
    size_t n, double *L, size_t i, size_t c0, size_t c1, size_t depth)
{
    double *row = L + i * n;
    size_t q;
    size_t c;
    for (q = 0; q < depth; ++q) {
        const double a = row[q];
        const double *u = L + q * n;
        for (c = c0; c < c1; ++c) {
            row[c] -= a * u[c];
        }
    }
}

// Left-looking step of block j0..j1-1: A[i, j0:j1] -= L[i, :j0] L[j0:j1, :j0]^T for every row
// i >= j0 (in the diagonal block also above the diagonal, where nothing is read), with
// L[j0:j1, :j0]^T first copied into the upper triangle so that both operands are rows.
static void rt_update_block(size_t n, double *L, size_t j0, size_t j1)
{
    const size_t tiles = (n - j0) / RT_TILE_ROWS;
    const size_t wide = j0 + (j1 - j0) / RT_TILE_COLS * RT_TILE_COLS;
    size_t t;
    size_t i;
    size_t q;
    for (i = j0; i < j1; ++i) {
        for (q = 0; q < j0; ++q) {
            L[q * n + i] = L[i * n + q];
        }
    }
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((n - j0) * j0 >= RT_PARALLEL_MIN)
#endif
    for (t = 0; t < tiles; ++t) {
        const size_t row = j0 + t * RT_TILE_ROWS;
        size_t c;
        size_t r;
        for (c = j0; c < wide; c += RT_TILE_COLS) {
            rt_update_tile(n, L, row, c, j0);
        }
        for (r = 0; r < RT_TILE_ROWS && wide < j1; ++r) {
            rt_update_row(n, L, row + r, wide, j1, j0);
        }
    }
    for (i = j0 + tiles * RT_TILE_ROWS; i < n; ++i) {
        rt_update_row(n, L, i, j0, j1, j0);
    }
}

// y[0:m] -= a x[0:m].
RT_CLONES static void rt_axpy(size_t m, double a, const double *x, double *y)
{
    size_t k;
    for (k = 0; k < m; ++k) {
        y[k] -= a * x[k];
    }
}

// Columns j0..j1-1 of L, right-looking inside the block, every row below included: column k's
// pivot is then A_kk - sum_{j<k} L_kj^2. Returns k + 1 for the first pivot that is not positive
// (also NaN), with *pivot set, else 0. Row k's columns k+1..j1-1 keep L[k+1:j1, k] (a row).
static size_t rt_factor_block(size_t n, double *L, size_t j0, size_t j1, double *pivot)
{
    size_t k;
    size_t i;
    for (k = j0; k < j1; ++k) {
        double *row = L + k * n;
        const double p = row[k];
        double d;
        if (!(p > 0.0)) { // also catches NaN
            *pivot = p;
            return k + 1;
        }
        // L_kk = sqrt(pivot), L_ik = A_ik / L_kk, then A[i, k+1:j1] -= L_ik L[k+1:j1, k]^T
        d = sqrt(p);
        row[k] = d;
        for (i = k + 1; i < j1; ++i) {
            L[i * n + k] /= d;
            row[i] = L[i * n + k];
        }
        for (i = k + 1; i < n; ++i) {
            double *other = L + i * n;
            if (i >= j1) {
                other[k] /= d;
            }
            rt_axpy(j1 - k - 1, other[k], row + k + 1, other + k + 1);
        }
    }
    return 0;
}

// L's lower triangle <- that of the matrix with entries entry(n, H, s, i, j).
static void rt_fill(size_t n, const double *H, double s, rt_entry entry, double *L)
{
    size_t i;
    size_t j;
    for (i = 0; i < n; ++i) {
        for (j = 0; j <= i; ++j) {
            L[i * n + j] = entry(n, H, s, i, j);
        }
    }
}

#ifdef SYMOPT_LAPACK
// Optional: the factorisation by LAPACK's dpotrf where it succeeds. Build with -DSYMOPT_LAPACK
// and link a LAPACK (SYMOPT_C_CFLAGS="-DSYMOPT_LAPACK -Wl,--no-as-needed -llapack" for symopt_c).
// Results then depend on that library (rounding), no longer the same on every machine. A library
// with other names: -DSYMOPT_LAPACK_DPOTRF=name, -DSYMOPT_LAPACK_INT=type (e.g. ILP64).
#include <limits.h>
#ifndef SYMOPT_LAPACK_DPOTRF
#define SYMOPT_LAPACK_DPOTRF dpotrf_
#endif
#ifndef SYMOPT_LAPACK_INT
#define SYMOPT_LAPACK_INT int
#endif
// The Fortran interface, with the hidden length of the character argument.
void SYMOPT_LAPACK_DPOTRF(
    const char *uplo, const SYMOPT_LAPACK_INT *n, double *a, const SYMOPT_LAPACK_INT *lda,
    SYMOPT_LAPACK_INT *info, size_t uplo_length);

// Factors the lower triangle of L (row-major: the column-major upper triangle, A = U^T U with
// U = L^T) in place. Returns whether every pivot was positive (dpotrf lets NaN through).
static int rt_lapack_factor(size_t n, double *L)
{
    const SYMOPT_LAPACK_INT order = (SYMOPT_LAPACK_INT)n;
    SYMOPT_LAPACK_INT info = 0;
    size_t k;
    if (n == 0 || n > (size_t)INT_MAX) {
        return 0;
    }
    SYMOPT_LAPACK_DPOTRF("U", &order, L, &order, &info, 1);
    for (k = 0; k < n && info == 0; ++k) {
        if (!(L[k * n + k] > 0.0)) {
            info = 1;
        }
    }
    return info == 0;
}
#endif

// The Cholesky factorisation A = L L^T of the matrix with entries entry(n, H, s, i, j): its lower
// triangle is read into L, then factored in place by blocks of RT_BLOCK columns (left-looking:
// block j is updated by all columns before it, then factored). Returns 0, or k + 1 with *pivot
// when column k fails; then L holds columns 0..k-1. The upper triangle is left zero. With
// SYMOPT_LAPACK, LAPACK factors first, and the blocks find the failing column where it fails.
static int rt_factor(
    size_t n, const double *H, double s, rt_entry entry, double *L, double *pivot)
{
    double p = 0.0;
    size_t fail = 0;
    size_t i;
    size_t j0;
    rt_fill(n, H, s, entry, L);
#ifdef SYMOPT_LAPACK
    if (rt_lapack_factor(n, L)) {
        j0 = n; // done
    } else {
        rt_fill(n, H, s, entry, L);
        j0 = 0;
    }
#else
    j0 = 0;
#endif
    for (; j0 < n && fail == 0; j0 += RT_BLOCK) {
        const size_t j1 = j0 + RT_BLOCK < n ? j0 + RT_BLOCK : n;
        rt_update_block(n, L, j0, j1);
        fail = rt_factor_block(n, L, j0, j1, &p);
    }
    // zero the upper triangle (scratch above) and, after a failure at k, the columns from k on
    for (i = 0; i < n; ++i) {
        const size_t from = fail == 0 || i + 1 < fail ? i + 1 : fail - 1;
        memset(L + i * n + from, 0, (n - from) * sizeof *L);
    }
    if (pivot != NULL) {
        *pivot = p;
    }
    return (int)fail;
}

// Forward substitution in place: y with L y = b, row by row (b comes in y).
void symopt_runtime_forward(size_t n, const double *L, double *y)
{
    size_t i;
    size_t j;
    for (i = 0; i < n; ++i) {
        // y_i = (b_i - sum_{j<i} L_ij y_j) / L_ii, the sum in order j = 0, 1, ...
        const double *row = L + i * n;
        double s = y[i];
        for (j = 0; j < i; ++j) {
            s -= row[j] * y[j];
        }
        y[i] = s / row[i];
    }
}

// Back substitution in place on the leading m x m block of L (row stride n): x with L^T x = y
// (y comes in x).
void symopt_runtime_backward(size_t m, size_t n, const double *L, double *x)
{
    size_t k;
    for (k = m; k-- > 0;) {
        // x_k = y_k / L_kk once rows k+1.. are done, then y_i -= L_ki x_k for i < k (row k of L)
        const double *row = L + k * n;
        x[k] /= row[k];
        rt_axpy(k, x[k], row, x);
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

double *symopt_runtime_workspace(double *work, size_t n, size_t vectors, double **own)
{
    const size_t most = SIZE_MAX / sizeof(double);
    *own = NULL;
    if (work != NULL) {
        return work;
    }
    // 2 n^2 + vectors n <= 2 n (n + vectors): refused when that overflows
    if (n > most || (n > 0 && n + vectors > most / 2 / n)) {
        return NULL;
    }
    *own = malloc((2 * n * n + vectors * n) * sizeof(double) + 1);
    return *own;
}
