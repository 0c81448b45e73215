// symopt's C runtime, the trust-region method with its More-Sorensen and Steihaug-CG subproblem
// solvers (see include/symopt/runtime.h). The algorithm is the NumPy target's, line for line.
#include "runtime_internal.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// out = H v, the undamped curvature along v.
static void rt_curvature(size_t n, const double *H, const double *v, double *out)
{
    size_t i;
    size_t j;
    for (i = 0; i < n; ++i) {
        double s = 0.0;
        for (j = 0; j < n; ++j) {
            s += H[i * n + j] * v[j];
        }
        out[i] = s;
    }
}

// out = A v for the system matrix A of the model (with damping lam).
static void rt_system_times(const symopt_runtime_model *model, size_t n, const double *H,
    double lam, const double *v, double *out)
{
    size_t i;
    size_t j;
    for (i = 0; i < n; ++i) {
        double s = 0.0;
        for (j = 0; j < n; ++j) {
            s += model->system(n, H, lam, i, j) * v[j];
        }
        out[i] = s;
    }
}

double symopt_runtime_radius_update(
    const symopt_runtime_radius_hyper *hyper, double radius, double rho, double step_norm,
    int on_boundary, double x_scale)
{
    const symopt_runtime_radius_hyper *h = hyper;
    // rho < shrink_below: r <- shrink ||d||
    if (rho < h->shrink_below) {
        return h->shrink * step_norm;
    }
    // rho > expand_above, d on the boundary: r <- min(max(r, expand ||d||), max_radius x_scale)
    if (rho > h->expand_above && on_boundary) {
        return rt_min(rt_max(radius, h->expand * step_norm), h->max_radius * x_scale);
    }
    return radius;
}

// rho = (f(x) - f(x + d) + delta) / (m(0) - m(d) + delta), delta = rounding eps |f| (Conn,
// Gould & Toint 2000, 17.4.2: near a minimiser both differences fall to the rounding error of
// f, and delta makes rho tend to 1 there instead of collapsing the radius; relative to |f| it is
// invariant to the scale of f); -inf (rejected) without a positive finite predicted decrease or
// for a non-finite f(x + d).
static double rt_ratio(double f, double f_new, double predicted, double rounding)
{
    double delta;
    if (!(predicted > 0.0 && isfinite(predicted) && isfinite(f_new))) {
        return -HUGE_VAL;
    }
    delta = rounding * DBL_EPSILON * fabs(f);
    return ((f - f_new) + delta) / (predicted + delta);
}

// m(d) - m(0) = g^T d + d^T H d / 2, given hd = H d.
static double rt_model_value(size_t n, const double *g, const double *d, const double *hd)
{
    return rt_dot(n, g, d) + 0.5 * rt_dot(n, d, hd);
}

// A guess inside the bracket [lb, ub] (Conn, Gould & Toint 7.3.14):
// max(sqrt(lb ub), lb + 0.01 (ub - lb)); a bracket collapsed onto -lam_min(H) (g ~ 0, or
// rounding) is reopened by margin.
static double rt_inside(double lb, double ub, double margin)
{
    if (ub <= lb) {
        ub = lb + margin;
    }
    return rt_max(sqrt(fabs(lb * ub)), lb + 0.01 * (ub - lb));
}

// An upper bound on the smallest eigenvalue of A after its Cholesky factorisation failed at
// column k with this pivot (More & Sorensen 1983): with l = L[k, :k], L_k the leading k x k block
// and v = (-L_k^-T l, 1, 0, ...), v^T A v = pivot <= 0, so lam_min(A) <= pivot / ||v||^2.
// w: k doubles of scratch.
static double rt_negative_curvature_bound(
    size_t n, const double *L, size_t k, double pivot, double *w)
{
    size_t j;
    for (j = 0; j < k; ++j) {
        w[j] = -L[k * n + j];
    }
    symopt_runtime_backward(k, n, L, w);
    return pivot / (1.0 + rt_dot(k, w, w));
}

// An estimate s of the smallest singular value of L^T and a unit z with ||L^T z|| ~ s: the
// LINPACK estimator (Cline, Moler, Stewart & Wilkinson 1979). Pick e in {+1, -1}^n making the
// solution w of L w = e large, then solve L^T v = w; s = ||w|| / ||v||, z = v / ||v||. In the hard
// case z is the direction of least curvature: z^T A z = ||L^T z||^2 ~ s^2. p: n doubles of scratch.
static double rt_smallest_singular_pair(size_t n, const double *L, double *p, double *z)
{
    size_t i;
    size_t k;
    double w_norm;
    double v_norm;
    for (i = 0; i < n; ++i) {
        p[i] = 0.0;
    }
    for (k = 0; k < n; ++k) {
        // w_k = (+-1 - p_k) / L_kk, the sign with the larger |w_k| + sum_{i>k} |p_i + L_ik w_k|
        const double wp = (1.0 - p[k]) / L[k * n + k];
        const double wm = (-1.0 - p[k]) / L[k * n + k];
        double sp = 0.0;
        double sm = 0.0;
        for (i = k + 1; i < n; ++i) {
            sp += fabs(p[i] + L[i * n + k] * wp);
            sm += fabs(p[i] + L[i * n + k] * wm);
        }
        z[k] = fabs(wp) + sp >= fabs(wm) + sm ? wp : wm;
        // p_i += L_ik w_k, for i > k
        for (i = k + 1; i < n; ++i) {
            p[i] += L[i * n + k] * z[k];
        }
    }
    w_norm = sqrt(rt_dot(n, z, z));
    // L^T v = w
    symopt_runtime_backward(n, n, L, z);
    v_norm = sqrt(rt_dot(n, z, z));
    for (i = 0; i < n; ++i) {
        z[i] /= v_norm;
    }
    return w_norm / v_norm;
}

// The roots ta <= tb of ||z + t p|| = radius, from the model's derived formulas; (0, 0) when
// p = 0.
static void rt_boundary_taus(const symopt_runtime_model *model, size_t n, const double *z,
    const double *p, double radius, double *ta, double *tb)
{
    const double pp = rt_dot(n, z, z);
    const double pd = rt_dot(n, z, p);
    const double dd = rt_dot(n, p, p);
    if (dd == 0.0) {
        *ta = 0.0;
        *tb = 0.0;
        return;
    }
    *ta = model->boundary_tau_min(pp, pd, dd, radius);
    *tb = model->boundary_tau_max(pp, pd, dd, radius);
}

// When the factorisations ran out: d (with hd = H d on return) becomes the better, by the model,
// of itself cut back to the boundary and the Cauchy point -t g, so that the step decreases the
// model at least as much as the Cauchy point (the condition of the convergence theory). hg and
// dc: n doubles of scratch each. Returns whether d ends on the boundary: ||d|| >= (1 - k_easy) r.
static int rt_better_than_cauchy(const symopt_runtime_model *model, size_t n, const double *H,
    const double *g, double radius, double k_easy, double *d, double *hd, double *hg, double *dc)
{
    const double d_norm = sqrt(rt_dot(n, d, d));
    double t;
    size_t i;
    if (d_norm > radius) {
        // d = -(H + lam I)^-1 g with H + lam I > 0: m(t d) < m(0) for 0 < t <= 1
        for (i = 0; i < n; ++i) {
            d[i] = d[i] * (radius / d_norm);
        }
    }
    rt_curvature(n, H, d, hd);
    rt_curvature(n, H, g, hg);
    t = model->cauchy_length(rt_dot(n, g, g), rt_dot(n, g, hg), radius);
    for (i = 0; i < n; ++i) {
        dc[i] = -t * g[i];
        hg[i] = -t * hg[i]; // H dc
    }
    if (rt_model_value(n, g, dc, hg) < rt_model_value(n, g, d, hd)) {
        memcpy(d, dc, n * sizeof *d);
        memcpy(hd, hg, n * sizeof *hd);
    }
    return sqrt(rt_dot(n, d, d)) >= (1.0 - k_easy) * radius;
}

int symopt_runtime_radius_step(const symopt_runtime_model *model, size_t n, const double *H,
    const double *g, double radius, double lam_lower, double k_easy, double k_hard,
    int max_factorisations, double *d, double *lam_out, double *predicted, double *work,
    symopt_runtime_radius_step_info *info)
{
    // Workspace: the Cholesky factor, then four vectors.
    double *L = work;
    double *w = L + n * n;
    double *p = w + n;
    double *z = p + n;
    double *Ad = z + n;
    const double g_norm = sqrt(rt_dot(n, g, g));
    double gersh_lo = HUGE_VAL;
    double gersh_hi = -HUGE_VAL;
    double h_fro = 0.0;
    double h_inf = -HUGE_VAL;
    double min_diag = HUGE_VAL;
    double lam_lb;
    double lam_ub;
    double margin;
    double lam;
    double lam_d = 0.0; // the multiplier d was computed with
    double pivot = 0.0;
    int fail;
    int factorisations = 0;
    int converged = 0;
    int hard_case = 0;
    int on_boundary = 0;
    size_t i;
    size_t j;
    for (i = 0; i < n; ++i) {
        d[i] = 0.0;
    }
    if (n == 0) {
        *lam_out = 0.0;
        *predicted = 0.0;
        if (info != NULL) {
            info->lam_lower = 0.0;
            info->on_boundary = 0;
            info->hard_case = 0;
            info->inner = 0;
        }
        return 0;
    }
    // Gershgorin's discs H_ii -+ sum_{j != i} |H_ij| hold the eigenvalues of H; ||H||_F and
    // ||H||_inf bound them too.
    for (i = 0; i < n; ++i) {
        const double diag = H[i * n + i];
        double row = 0.0;
        double off;
        for (j = 0; j < n; ++j) {
            row += fabs(H[i * n + j]);
            h_fro += H[i * n + j] * H[i * n + j];
        }
        off = row - fabs(diag);
        gersh_lo = rt_min(gersh_lo, diag - off);
        gersh_hi = rt_max(gersh_hi, diag + off);
        h_inf = rt_max(h_inf, row);
        min_diag = rt_min(min_diag, diag);
    }
    h_fro = sqrt(h_fro);
    // CGT 7.3.8: ||g|| / r - lam_max(H) <= lam* <= ||g|| / r - lam_min(H), lam* >= -H_ii
    lam_ub = rt_max(
        0.0, g_norm / radius + rt_min(rt_min(-gersh_lo, h_fro), h_inf));
    lam_lb = rt_max(rt_max(0.0, -min_diag),
        g_norm / radius - rt_min(rt_min(gersh_hi, h_fro), h_inf));
    lam_lb = rt_max(lam_lb, lam_lower);
    margin = sqrt(DBL_EPSILON) * rt_max(1.0, h_inf);
    lam = lam_lb == 0.0 ? 0.0 : rt_inside(lam_lb, lam_ub, margin);
    fail = symopt_runtime_cholesky(model, n, H, lam, L, &pivot);
    factorisations += 1;
    for (;;) {
        if (fail) {
            // H + lam I is indefinite, so lam < -lam_min(H) <= lam*: raise the lower bound
            const double bound
                = rt_negative_curvature_bound(n, L, (size_t)(fail - 1), pivot, w);
            lam_lb = rt_max(lam_lb, lam - bound);
            lam = rt_inside(lam_lb, lam_ub, margin);
        } else if (g_norm == 0.0) {
            // g = 0: a boundary step along the least-curvature direction solves the subproblem
            double s_min;
            if (lam == 0.0) {
                for (i = 0; i < n; ++i) {
                    d[i] = 0.0;
                }
                converged = 1;
                break;
            }
            s_min = rt_smallest_singular_pair(n, L, p, z);
            for (i = 0; i < n; ++i) {
                d[i] = radius * z[i];
            }
            lam_d = lam;
            if (s_min * s_min <= k_hard * lam) {
                hard_case = 1;
                converged = 1;
                break;
            }
            lam_ub = lam;
            lam_lb = rt_max(lam_lb, lam - s_min * s_min);
            lam = rt_inside(lam_lb, lam_ub, margin);
        } else {
            double d_norm;
            double lam_newton;
            // the derived system, with the factor of its matrix
            symopt_runtime_solve(model, n, L, g, d);
            lam_d = lam;
            d_norm = sqrt(rt_dot(n, d, d));
            if (d_norm <= radius && lam == 0.0) {
                converged = 1; // interior: the Newton step itself
                break;
            }
            // Newton on the secular equation (the derived formula), with L w = d
            for (i = 0; i < n; ++i) {
                w[i] = d[i];
            }
            symopt_runtime_forward(n, L, w);
            lam_newton = model->secular_newton(lam, d_norm, rt_dot(n, w, w), radius);
            if (d_norm > radius) {
                lam_lb = lam; // ||d(.)|| decreases in lam, so lam < lam*
                if (d_norm - radius <= k_easy * radius) {
                    converged = 1;
                    break;
                }
                lam = lam_newton <= lam_ub ? lam_newton
                                            : rt_inside(lam_lb, lam_ub, margin);
            } else {
                // lam too large, or the hard case: try to reach the boundary along z
                double ta;
                double tb;
                double tau;
                const double s_min = rt_smallest_singular_pair(n, L, p, z);
                rt_boundary_taus(model, n, d, z, radius, &ta, &tb);
                tau = fabs(ta) < fabs(tb) ? ta : tb;
                // More-Sorensen: accept if tau^2 s^2 <= k_hard (d^T (H + lam I) d + lam r^2)
                rt_system_times(model, n, H, lam, d, Ad);
                if (tau * tau * s_min * s_min
                    <= k_hard * (rt_dot(n, d, Ad) + lam * radius * radius)) {
                    for (i = 0; i < n; ++i) {
                        d[i] = d[i] + tau * z[i];
                    }
                    hard_case = 1;
                    converged = 1;
                    break;
                }
                lam_ub = lam;
                lam_lb = rt_max(lam_lb, lam - s_min * s_min);
                lam = lam_newton > lam_lb ? lam_newton
                                           : rt_inside(lam_lb, lam_ub, margin);
            }
        }
        if (factorisations >= max_factorisations) {
            on_boundary = rt_better_than_cauchy(model, n, H, g, radius, k_easy, d, Ad, w, p);
            break;
        }
        fail = symopt_runtime_cholesky(model, n, H, lam, L, &pivot);
        factorisations += 1;
    }
    if (converged) {
        rt_curvature(n, H, d, Ad);
        on_boundary = !(lam_d == 0.0 && sqrt(rt_dot(n, d, d)) < radius);
    }
    *lam_out = lam_d;
    *predicted = model->predicted(n, g, d, Ad);
    if (info != NULL) {
        info->lam_lower = lam_lb;
        info->on_boundary = on_boundary;
        info->hard_case = hard_case;
        info->inner = factorisations;
    }
    return converged ? 0 : 1;
}

int symopt_runtime_radius_cg_step(const symopt_runtime_model *model, size_t n, const double *H,
    const double *g, double radius, double tol, long max_iter, double *d, double *predicted,
    double *work, symopt_runtime_radius_step_info *info)
{
    // Workspace: the residual r = H d + g, the direction p, H p and H d.
    double *r = work;
    double *p = r + n;
    double *hp = p + n;
    double *hd = hp + n;
    double rr;
    int on_boundary = 0;
    int not_finite = 0;
    long it;
    long inner = max_iter;
    size_t i;
    for (i = 0; i < n; ++i) {
        d[i] = 0.0;
        r[i] = g[i];
        p[i] = -g[i];
    }
    rr = rt_dot(n, r, r);
    for (it = 0; it < max_iter; ++it) {
        double php;
        double alpha;
        double ta;
        double tb;
        double zz = 0.0;
        rt_curvature(n, H, p, hp);
        php = rt_dot(n, p, hp);
        if (!isfinite(php)) {
            not_finite = 1;
            inner = it + 1;
            break;
        }
        if (php <= 0.0) {
            // curvature <= 0 along p: to the boundary, at the root with the lower model value
            double gd_a = 0.0;
            double dhd_a = 0.0;
            double gd_b = 0.0;
            double dhd_b = 0.0;
            double t;
            rt_boundary_taus(model, n, d, p, radius, &ta, &tb);
            for (i = 0; i < n; ++i) {
                // m(d + t p) - m(0) = g^T (d + t p) + (d + t p)^T H (d + t p) / 2, with
                // H (d + t p) = (r - g) + t H p
                const double da = d[i] + ta * p[i];
                const double db = d[i] + tb * p[i];
                gd_a += g[i] * da;
                dhd_a += da * ((r[i] - g[i]) + ta * hp[i]);
                gd_b += g[i] * db;
                dhd_b += db * ((r[i] - g[i]) + tb * hp[i]);
            }
            t = gd_b + 0.5 * dhd_b < gd_a + 0.5 * dhd_a ? tb : ta;
            for (i = 0; i < n; ++i) {
                d[i] = d[i] + t * p[i];
                hd[i] = (r[i] - g[i]) + t * hp[i];
            }
            on_boundary = 1;
            inner = it + 1;
            break;
        }
        alpha = rr / php;
        for (i = 0; i < n; ++i) {
            const double zi = d[i] + alpha * p[i];
            zz += zi * zi;
        }
        if (zz >= radius * radius) {
            // the next iterate leaves the region: stop on the boundary along p
            rt_boundary_taus(model, n, d, p, radius, &ta, &tb);
            for (i = 0; i < n; ++i) {
                d[i] = d[i] + tb * p[i];
                hd[i] = (r[i] - g[i]) + tb * hp[i];
            }
            on_boundary = 1;
            inner = it + 1;
            break;
        }
        for (i = 0; i < n; ++i) {
            d[i] = d[i] + alpha * p[i];
            r[i] = r[i] + alpha * hp[i];
        }
        {
            const double rr_next = rt_dot(n, r, r);
            if (sqrt(rr_next) <= tol) {
                inner = it + 1;
                break;
            }
            // p = -r + beta p, beta = ||r+||^2 / ||r||^2
            for (i = 0; i < n; ++i) {
                p[i] = -r[i] + (rr_next / rr) * p[i];
            }
            rr = rr_next;
        }
    }
    if (!on_boundary) {
        for (i = 0; i < n; ++i) {
            hd[i] = r[i] - g[i];
        }
    }
    *predicted = not_finite ? NAN : model->predicted(n, g, d, hd);
    if (info != NULL) {
        info->lam_lower = 0.0;
        info->on_boundary = on_boundary;
        info->hard_case = 0;
        info->inner = (int)inner;
    }
    return not_finite;
}

// A minimiser of the model without a radius (while the radius is unlimited): with the dense
// solver (cholesky != 0), Newton's step where the damped matrix at lam = 0 has a Cholesky factor;
// otherwise conjugate gradients on H d = -g from 0 to the residual tol, at most 2 n iterations,
// which converge where g lies in the range of a positive semidefinite H. Returns 0 where the
// model is taken as unbounded below: CG met curvature <= 0 (or a product that is not finite) or
// did not converge. work: SYMOPT_RUNTIME_RADIUS_STEP_WORK(n) doubles.
static int rt_model_minimiser(const symopt_runtime_model *model, size_t n, const double *H,
    const double *g, int cholesky, double tol, double *d, double *predicted, double *work,
    symopt_runtime_radius_step_info *info)
{
    double *r = work;
    double *p = r + n;
    double *hp = p + n;
    double rr = rt_dot(n, g, g);
    long it;
    size_t i;
    info->lam_lower = 0.0;
    info->on_boundary = 0;
    info->hard_case = 0;
    if (cholesky && symopt_runtime_cholesky(model, n, H, 0.0, work, NULL) == 0) {
        symopt_runtime_solve(model, n, work, g, d);
        rt_curvature(n, H, d, r);
        *predicted = model->predicted(n, g, d, r);
        info->inner = 1;
        return 1;
    }
    for (i = 0; i < n; ++i) {
        d[i] = 0.0;
        r[i] = g[i];
        p[i] = -g[i];
    }
    for (it = 0; it < 2 * (long)n; ++it) {
        double php;
        double alpha;
        double rr_next;
        rt_curvature(n, H, p, hp);
        php = rt_dot(n, p, hp);
        if (!(php > 0.0 && isfinite(php))) { // curvature <= 0, or not finite: no bounded minimiser
            return 0;
        }
        alpha = rr / php;
        for (i = 0; i < n; ++i) {
            d[i] = d[i] + alpha * p[i];
            r[i] = r[i] + alpha * hp[i];
        }
        rr_next = rt_dot(n, r, r);
        if (sqrt(rr_next) <= tol) {
            for (i = 0; i < n; ++i) {
                hp[i] = r[i] - g[i]; // H d
            }
            *predicted = model->predicted(n, g, d, hp);
            info->inner = (int)(it + 1);
            return 1;
        }
        for (i = 0; i < n; ++i) {
            p[i] = -r[i] + (rr_next / rr) * p[i];
        }
        rr = rr_next;
    }
    return 0;
}

int symopt_runtime_radius_minimize(
    const symopt_runtime_model *model, size_t n, double *x, symopt_objective objective, void *user,
    const symopt_runtime_radius_hyper *hyper, int subproblem, int check_second_order, double gtol,
    long max_iter, double *work, symopt_runtime_radius_result *result)
{
    const symopt_runtime_radius_hyper *h = hyper;
    double *own = NULL;
    double *H;
    double *g;
    double *d;
    double *x_new;
    double *g_new;
    double *step_work;
    double f = NAN;
    double g0_norm;
    // The radius is unlimited until the model is unbounded below (then radius0 max(1, ||x||)) or
    // a step fails (then shrink ||d||): while Newton's steps work they are taken whole.
    double radius = HUGE_VAL;
    double lam_lower = 0.0; // after a rejection r shrinks and lam* only grows: keep the bound
    int have_h = 0; // H holds the Hessian at x
    int status = SYMOPT_RUNTIME_MAX_ITER;
    long k = 0;
    size_t i;
    memset(result, 0, sizeof *result);
    work = symopt_runtime_workspace(work, n, 8, &own); // SYMOPT_RUNTIME_RADIUS_MINIMIZE_WORK(n)
    if (work == NULL) {
        result->status = SYMOPT_RUNTIME_OUT_OF_MEMORY;
        return result->status;
    }
    H = work;
    g = H + n * n;
    d = g + n;
    x_new = d + n;
    g_new = x_new + n;
    step_work = g_new + n;
    // auto: exact, as with only the dense Hessian CG's products cost at least as much as the few
    // factorisations of the exact solver, which takes fewer iterations
    if (subproblem == SYMOPT_RUNTIME_AUTO) {
        subproblem = SYMOPT_RUNTIME_EXACT;
    }
    for (i = 0; i < n; ++i) {
        g[i] = 0.0;
    }
    result->nfev = 1;
    result->ngev = 1;
    if (objective(n, x, &f, g, NULL, user) != 0) {
        status = SYMOPT_RUNTIME_STOPPED;
        goto done;
    }
    g0_norm = sqrt(rt_dot(n, g, g));
    for (;;) {
        const double g_norm = sqrt(rt_dot(n, g, g));
        symopt_runtime_radius_step_info info;
        double pred;
        double f_new;
        double rho;
        double new_radius;
        double x_scale;
        double tol;
        int accept = 0;
        int found = 0;
        if (!(isfinite(f) && isfinite(g_norm))) {
            status = SYMOPT_RUNTIME_NOT_FINITE;
            result->not_finite = SYMOPT_RUNTIME_RADIUS_F_OR_G;
            break;
        }
        if (g_norm <= gtol) {
            status = SYMOPT_RUNTIME_CONVERGED;
            break;
        }
        if (k >= max_iter) {
            break;
        }
        // r < MIN_RADIUS max(1, ||x||): no representable progress
        x_scale = rt_max(1.0, sqrt(rt_dot(n, x, x)));
        if (radius < model->min_radius * x_scale) {
            status = SYMOPT_RUNTIME_RADIUS_COLLAPSED;
            break;
        }
        if (!have_h) {
            // the Hessian at x, evaluated once per accepted point
            result->nhev += 1;
            if (objective(n, x, NULL, NULL, H, user) != 0) {
                status = SYMOPT_RUNTIME_STOPPED;
                break;
            }
            have_h = 1;
            if (!rt_all_finite(n * n, H)) {
                status = SYMOPT_RUNTIME_NOT_FINITE;
                result->not_finite = SYMOPT_RUNTIME_RADIUS_HESSIAN;
                break;
            }
        }
        // CG's residual target min(CG_FORCING, sqrt(||g|| / ||g0||)) ||g||
        tol = rt_min(model->cg_forcing, sqrt(g_norm / g0_norm)) * g_norm;
        if (radius == HUGE_VAL) {
            // no radius yet: the model's minimiser while the model is bounded below
            found = rt_model_minimiser(model, n, H, g, subproblem == SYMOPT_RUNTIME_EXACT, tol, d,
                &pred, step_work, &info);
            if (!found) {
                radius = h->radius0 * x_scale;
            }
        }
        if (!found && subproblem == SYMOPT_RUNTIME_EXACT) {
            double lam;
            symopt_runtime_radius_step(
                model, n, H, g, radius, lam_lower, model->k_easy, model->k_hard,
                model->max_factorisations, d, &lam, &pred, step_work, &info);
        } else if (!found) {
            if (symopt_runtime_radius_cg_step(
                    model, n, H, g, radius, tol, 2 * (long)n, d, &pred, step_work, &info)) {
                status = SYMOPT_RUNTIME_NOT_FINITE;
                result->not_finite = SYMOPT_RUNTIME_RADIUS_PRODUCT;
                break;
            }
        }
        for (i = 0; i < n; ++i) {
            x_new[i] = x[i] + d[i];
        }
        result->nfev += 1;
        if (objective(n, x_new, &f_new, NULL, NULL, user) != 0) {
            status = SYMOPT_RUNTIME_STOPPED;
            break;
        }
        rho = rt_ratio(f, f_new, pred, model->rounding);
        if (rho > h->eta) {
            // the gradient at the trial point before accepting it: a non-finite one rejects it
            result->ngev += 1;
            if (objective(n, x_new, NULL, g_new, NULL, user) != 0) {
                status = SYMOPT_RUNTIME_STOPPED;
                break;
            }
            accept = rt_all_finite(n, g_new);
            if (!accept) {
                rho = -HUGE_VAL;
            }
        }
        new_radius = symopt_runtime_radius_update(
            h, radius, rho, sqrt(rt_dot(n, d, d)), info.on_boundary, x_scale);
        if (accept) {
            memcpy(x, x_new, n * sizeof *x);
            memcpy(g, g_new, n * sizeof *g);
            f = f_new;
            have_h = 0;
            lam_lower = 0.0;
        } else if (new_radius < radius) {
            lam_lower = info.lam_lower;
        }
        radius = new_radius;
        k += 1;
    }
    if (status == SYMOPT_RUNTIME_CONVERGED && check_second_order) {
        // the second-order condition: H positive semidefinite, else a saddle point
        if (!have_h) {
            result->nhev += 1;
            if (objective(n, x, NULL, NULL, H, user) != 0) {
                status = SYMOPT_RUNTIME_STOPPED;
                goto done;
            }
        }
        if (!symopt_runtime_is_positive_semidefinite(model, n, H, 0, step_work)) {
            status = SYMOPT_RUNTIME_SADDLE_POINT;
        }
    }
done:
    result->fun = f;
    result->grad_norm = sqrt(rt_dot(n, g, g));
    result->radius = radius;
    result->nit = k;
    result->status = status;
    free(own);
    return status;
}
