// symopt's C runtime, Newton's method with its fallbacks, and with a line search (see
// include/symopt/runtime.h). The algorithms are the NumPy target's, line for line.
#include "runtime_internal.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// The solution x of the derived system (undamped) by Gaussian elimination with partial pivoting, for
// any nonsingular matrix; m: n x n doubles of scratch. Returns 0, or 1 when a pivot is below
// n eps max(1, max_ij |A_ij|) (A is singular to working precision).
static int rt_solve_pivoted(
    const symopt_runtime_model *model, size_t n, const double *H, const double *g, double *m, double *x)
{
    double scale = 1.0;
    size_t i;
    size_t j;
    size_t k;
    for (i = 0; i < n; ++i) {
        for (j = 0; j < n; ++j) {
            m[i * n + j] = model->system(n, H, 0.0, i, j);
            scale = fabs(m[i * n + j]) > scale ? fabs(m[i * n + j]) : scale;
        }
        // b_i, the right-hand side
        x[i] = model->rhs(n, g, i);
    }
    for (k = 0; k < n; ++k) {
        // the row p >= k with the largest |m_pk| becomes row k
        size_t p = k;
        for (i = k + 1; i < n; ++i) {
            if (fabs(m[i * n + k]) > fabs(m[p * n + k])) {
                p = i;
            }
        }
        if (fabs(m[p * n + k]) <= (double)n * DBL_EPSILON * scale) {
            return 1;
        }
        if (p != k) {
            double t;
            for (j = 0; j < n; ++j) {
                t = m[k * n + j];
                m[k * n + j] = m[p * n + j];
                m[p * n + j] = t;
            }
            t = x[k];
            x[k] = x[p];
            x[p] = t;
        }
        // eliminate below the pivot: row_i -= (m_ik / m_kk) row_k
        for (i = k + 1; i < n; ++i) {
            const double factor = m[i * n + k] / m[k * n + k];
            for (j = k; j < n; ++j) {
                m[i * n + j] -= factor * m[k * n + j];
            }
            x[i] -= factor * x[k];
        }
    }
    for (k = n; k-- > 0;) {
        // x_k = (x_k - sum_{j>k} m_kj x_j) / m_kk, for k = n-1, ..., 0
        double s = 0.0;
        for (j = k + 1; j < n; ++j) {
            s += m[k * n + j] * x[j];
        }
        x[k] = (x[k] - s) / m[k * n + k];
    }
    return 0;
}

int symopt_runtime_newton_minimize(
    const symopt_runtime_model *model, size_t n, double *x, symopt_objective objective, void *user, int on_indefinite,
    int check_second_order, double gtol, long max_iter, double *work, symopt_runtime_newton_result *result)
{
    double *own = NULL;
    double *H;
    double *L;
    double *g;
    double *d;
    double *x_new;
    double f = NAN;
    int status = SYMOPT_RUNTIME_MAX_ITER;
    long k = 0;
    size_t i;
    memset(result, 0, sizeof *result);
    work = symopt_runtime_workspace(work, n, 3, &own); // SYMOPT_RUNTIME_NEWTON_MINIMIZE_WORK(n)
    if (work == NULL) {
        result->status = SYMOPT_RUNTIME_OUT_OF_MEMORY;
        return result->status;
    }
    H = work;
    L = H + n * n;
    g = L + n * n;
    d = g + n;
    x_new = d + n;
    for (i = 0; i < n; ++i) {
        g[i] = 0.0;
    }
    result->nfev = 1;
    result->ngev = 1;
    if (objective(n, x, &f, g, NULL, user) != 0) {
        status = SYMOPT_RUNTIME_STOPPED;
        goto done;
    }
    for (;;) {
        const double g_norm = sqrt(rt_dot(n, g, g));
        double pivot = 0.0;
        int fail;
        if (!(isfinite(f) && isfinite(g_norm))) {
            status = SYMOPT_RUNTIME_NOT_FINITE;
            break;
        }
        if (g_norm <= gtol) {
            status = SYMOPT_RUNTIME_CONVERGED;
            break;
        }
        if (k >= max_iter) {
            break;
        }
        result->nhev += 1;
        if (objective(n, x, NULL, NULL, H, user) != 0) {
            status = SYMOPT_RUNTIME_STOPPED;
            break;
        }
        fail = symopt_runtime_newton_step(model, n, H, g, d, L, &pivot);
        if (fail && on_indefinite == SYMOPT_RUNTIME_SOLVE) {
            // Newton's step regardless of curvature, by Gaussian elimination
            result->n_fallback += 1;
            if (rt_solve_pivoted(model, n, H, g, L, d)) {
                result->column = 0;
                status = SYMOPT_RUNTIME_NOT_POSITIVE_DEFINITE;
                break;
            }
        } else if (fail && on_indefinite == SYMOPT_RUNTIME_GRADIENT) {
            // steepest descent d = -t g: Armijo backtracking from the Cauchy length
            // t = g^T g / g^T H g (or 1 / ||g|| where g^T H g <= 0)
            const double gg = rt_dot(n, g, g);
            double ghg = 0.0;
            double t;
            double f_new = NAN;
            int tries;
            size_t j;
            result->n_fallback += 1;
            for (i = 0; i < n; ++i) {
                double s = 0.0;
                for (j = 0; j < n; ++j) {
                    s += H[i * n + j] * g[j];
                }
                ghg += g[i] * s;
            }
            t = ghg > 0.0 ? gg / ghg : 1.0 / g_norm;
            for (tries = 0; tries < model->max_backtracks; ++tries) {
                if (tries > 0) {
                    t *= model->backtrack;
                }
                for (i = 0; i < n; ++i) {
                    x_new[i] = x[i] - t * g[i];
                }
                result->nfev += 1;
                if (objective(n, x_new, &f_new, NULL, NULL, user) != 0) {
                    status = SYMOPT_RUNTIME_STOPPED;
                    goto done;
                }
                // Armijo: f(x - t g) <= f - c1 t g^T g
                if (f_new <= f - model->armijo * t * gg) {
                    break;
                }
            }
            // x <- x - t g (the last point tried when no t passed), with f there known
            memcpy(x, x_new, n * sizeof *x);
            f = f_new;
            k += 1;
            result->ngev += 1;
            if (objective(n, x, NULL, g, NULL, user) != 0) {
                status = SYMOPT_RUNTIME_STOPPED;
                break;
            }
            continue;
        } else if (fail) {
            // H is not positive definite: the Newton step would not minimise the model
            result->pivot = pivot;
            result->column = fail;
            status = SYMOPT_RUNTIME_NOT_POSITIVE_DEFINITE;
            break;
        }
        // x <- x + d, then f and g there
        for (i = 0; i < n; ++i) {
            x[i] = x[i] + d[i];
        }
        k += 1;
        result->nfev += 1;
        result->ngev += 1;
        if (objective(n, x, &f, g, NULL, user) != 0) {
            status = SYMOPT_RUNTIME_STOPPED;
            break;
        }
    }
    if (status == SYMOPT_RUNTIME_CONVERGED && check_second_order) {
        // the second-order condition at the final x: H positive semidefinite
        result->nhev += 1;
        if (objective(n, x, NULL, NULL, H, user) != 0) {
            status = SYMOPT_RUNTIME_STOPPED;
        } else if (!symopt_runtime_is_positive_semidefinite(model, n, H, 0, L)) {
            status = SYMOPT_RUNTIME_SADDLE_POINT;
            result->maximum = symopt_runtime_is_positive_semidefinite(model, n, H, 1, L);
        }
    }
done:
    result->fun = f;
    result->grad_norm = sqrt(rt_dot(n, g, g));
    result->nit = k;
    result->status = status;
    free(own);
    return status;
}

int symopt_runtime_shifted_step(
    const symopt_runtime_model *model, size_t n, const double *H, const double *g, double beta,
    long max_shifts, double *d, double *work, double *tau)
{
    double scale = 0.0;
    double smallest = n > 0 ? H[0] : 0.0;
    double shift;
    double s;
    long k;
    size_t i;
    for (i = 0; i < n * n; ++i) {
        scale = rt_max(scale, fabs(H[i]));
    }
    for (i = 1; i < n; ++i) {
        smallest = rt_min(smallest, H[i * n + i]);
    }
    // the smallest shift beta max_ij |H_ij| (beta when H = 0), and the first tau to try
    shift = beta * (scale > 0.0 ? scale : 1.0);
    s = smallest > 0.0 ? 0.0 : shift - smallest;
    for (k = 0; k < max_shifts; ++k) {
        if (symopt_runtime_cholesky(model, n, H, s, work, NULL) == 0) {
            // d = (L L^T)^-1 b: the step of the shifted model
            symopt_runtime_solve(model, n, work, g, d);
            *tau = s;
            return 0;
        }
        s = rt_max(2.0 * s, shift);
    }
    return 1;
}

// One backtracking line search from x along d (f = f(x), slope = g^T d): t = 1, rho, ... until
// f(x + t d) is finite and passes Armijo (or is finite, where |slope| is below f's rounding);
// x_new and *f_new get the point accepted. Returns 0, a SYMOPT_RUNTIME_LINE_SEARCH_TRIALS or
// _ROUNDING when no t passed, or -1 when the objective stopped it.
static int rt_backtrack(
    const symopt_runtime_model *model, const symopt_runtime_line_search_hyper *hyper,
    double rounding, size_t n, const double *x, double f, const double *d, double slope,
    symopt_objective objective, void *user, double *x_new, double *f_new,
    symopt_runtime_line_search_result *result)
{
    // |g^T d| below f's rounding: the Armijo test cannot be decided, a finite f(x + t d) does
    const int unmeasurable = -slope <= rounding * DBL_EPSILON * rt_max(1.0, fabs(f));
    double t = 1.0;
    int trial;
    size_t i;
    for (trial = 0; trial < model->max_backtracks; ++trial) {
        int same = 1;
        if (trial > 0) {
            t *= hyper->rho;
        }
        result->t = t;
        for (i = 0; i < n; ++i) {
            x_new[i] = x[i] + t * d[i];
            same = same && x_new[i] == x[i];
        }
        if (same) {
            return SYMOPT_RUNTIME_LINE_SEARCH_ROUNDING; // so would every smaller t
        }
        result->nfev += 1;
        if (objective(n, x_new, f_new, NULL, NULL, user) != 0) {
            return -1;
        }
        // Armijo: f(x + t d) <= f + c1 t g^T d, where f(x + t d) is finite
        if (isfinite(*f_new) && (unmeasurable || *f_new <= f + hyper->c1 * t * slope)) {
            return 0;
        }
        result->n_backtracks += 1;
    }
    return SYMOPT_RUNTIME_LINE_SEARCH_TRIALS;
}

int symopt_runtime_line_search_minimize(
    const symopt_runtime_model *model, symopt_runtime_slope slope,
    const symopt_runtime_line_search_hyper *hyper, long max_shifts, double rounding, size_t n,
    double *x, symopt_objective objective, void *user, int check_second_order, double gtol,
    long max_iter, double *work, symopt_runtime_line_search_result *result)
{
    double *own = NULL;
    double *H;
    double *L;
    double *g;
    double *d;
    double *x_new;
    double f = NAN;
    int status = SYMOPT_RUNTIME_MAX_ITER;
    long k = 0;
    size_t i;
    memset(result, 0, sizeof *result);
    work = symopt_runtime_workspace(work, n, 3, &own); // SYMOPT_RUNTIME_LINE_SEARCH_MINIMIZE_WORK(n)
    if (work == NULL) {
        result->status = SYMOPT_RUNTIME_OUT_OF_MEMORY;
        return result->status;
    }
    H = work;
    L = H + n * n;
    g = L + n * n;
    d = g + n;
    x_new = d + n;
    for (i = 0; i < n; ++i) {
        g[i] = 0.0;
    }
    result->nfev = 1;
    result->ngev = 1;
    if (objective(n, x, &f, g, NULL, user) != 0) {
        status = SYMOPT_RUNTIME_STOPPED;
        goto done;
    }
    for (;;) {
        const double g_norm = sqrt(rt_dot(n, g, g));
        double tau = 0.0;
        double f_new = NAN;
        int why;
        if (!(isfinite(f) && isfinite(g_norm))) {
            result->not_finite = SYMOPT_RUNTIME_LINE_SEARCH_F_OR_G;
            status = SYMOPT_RUNTIME_NOT_FINITE;
            break;
        }
        if (g_norm <= gtol) {
            status = SYMOPT_RUNTIME_CONVERGED;
            break;
        }
        if (k >= max_iter) {
            break;
        }
        result->nhev += 1;
        if (objective(n, x, NULL, NULL, H, user) != 0) {
            status = SYMOPT_RUNTIME_STOPPED;
            break;
        }
        if (!rt_all_finite(n * n, H)) {
            result->not_finite = SYMOPT_RUNTIME_LINE_SEARCH_HESSIAN;
            status = SYMOPT_RUNTIME_NOT_FINITE;
            break;
        }
        if (symopt_runtime_shifted_step(model, n, H, g, hyper->beta, max_shifts, d, L, &tau)) {
            result->no_step = SYMOPT_RUNTIME_LINE_SEARCH_SHIFTS;
            status = SYMOPT_RUNTIME_NO_STEP;
            break;
        }
        result->n_fallback += tau > 0.0;
        why = rt_backtrack(model, hyper, rounding, n, x, f, d, slope(n, g, d), objective, user,
            x_new, &f_new, result);
        if (why != 0) {
            result->no_step = why > 0 ? why : 0;
            status = why > 0 ? SYMOPT_RUNTIME_NO_STEP : SYMOPT_RUNTIME_STOPPED;
            break;
        }
        // x <- x + t d, with f there known; then g there
        memcpy(x, x_new, n * sizeof *x);
        f = f_new;
        k += 1;
        result->ngev += 1;
        if (objective(n, x, NULL, g, NULL, user) != 0) {
            status = SYMOPT_RUNTIME_STOPPED;
            break;
        }
    }
    if (status == SYMOPT_RUNTIME_CONVERGED && check_second_order) {
        // the second-order condition at the final x: H positive semidefinite
        result->nhev += 1;
        if (objective(n, x, NULL, NULL, H, user) != 0) {
            status = SYMOPT_RUNTIME_STOPPED;
        } else if (!symopt_runtime_is_positive_semidefinite(model, n, H, 0, L)) {
            status = SYMOPT_RUNTIME_SADDLE_POINT;
            result->maximum = symopt_runtime_is_positive_semidefinite(model, n, H, 1, L);
        }
    }
done:
    result->fun = f;
    result->grad_norm = sqrt(rt_dot(n, g, g));
    result->nit = k;
    result->status = status;
    free(own);
    return status;
}
