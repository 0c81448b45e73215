// symopt's C runtime: thread control, and the dense second-order solvers (Cholesky, Newton's
// method with its fallbacks or with a line search, the trust-region method with its
// More-Sorensen and Steihaug-CG subproblem solvers) that every generated second-order module
// calls with its own model.
//
// A model (symopt_runtime_model) is what the derivation of a spec gives: the entries of the
// system matrix A(H, lam), the right-hand side b(g) and the predicted decrease of the model, as
// functions, and the constants of the method. include/symopt/NAME.h of a second-order spec
// declares the spec's functions, which call these with its model. The element-wise kernels
// (src/NAME.c of an element-wise spec) need nothing from here.
//
// Double precision, C99, no library beyond libm. Matrices are dense n x n, row-major and
// symmetric. Nothing allocates except the minimize functions when they are passed no workspace.
#ifndef SYMOPT_RUNTIME_H
#define SYMOPT_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// The _OPENMP date (such as 201511) the library was compiled with, or 0 without OpenMP.
long symopt_openmp(void);

// Sets the number of threads for later steps called from this thread (omp_set_num_threads), and
// returns the number that will be used: always 1 without OpenMP. n < 1 changes nothing.
int symopt_set_num_threads(int n);

// The number of threads later steps called from this thread may use (1 without OpenMP).
int symopt_get_num_threads(void);

// For symopt_c, the Python package (C programs have no use for these): the fields of NumPy
// arrays that its pointer tables depend on, read from the array objects themselves, so that
// checking hundreds of arrays before every step costs nanoseconds. arrays[k] is the address of a
// NumPy array object whose fields (NumPy's PyArrayObject_fields: data, nd, dimensions, strides,
// base, descr, flags) start head bytes in, after the Python object header; symopt_c confirms this
// layout on arrays it knows before it relies on it. A record is SYMOPT_NDARRAY_WORDS words: the
// data address, the element count, the dtype object's address, the flags and the number of
// dimensions.
#define SYMOPT_NDARRAY_WORDS 5

// Writes the record of each of count arrays to records[SYMOPT_NDARRAY_WORDS * k ...].
void symopt_ndarray_records(
    size_t count, const void *const *arrays, size_t head, uintptr_t *records);

// The index of the first of count arrays whose record differs from records, or whose shape
// differs from its dimensions in dims (every array's, one after the other): count if none does.
size_t symopt_ndarray_changed(
    size_t count, const void *const *arrays, size_t head, const uintptr_t *records,
    const intptr_t *dims);

#ifndef SYMOPT_OBJECTIVE_DEFINED
#define SYMOPT_OBJECTIVE_DEFINED
// The objective of the minimize functions: at x (n doubles) write f(x) to *f, the gradient to
// g[0..n) and the Hessian to H[0..n*n) (row-major, symmetric), each only where its pointer is not
// NULL. minimize asks for f alone at trial points, for g at x0 and once per step it would accept
// (so a call asking for g, after the first, marks a new iterate; the trust region's only if that
// g is finite, else it rejects the step), and for H at most once per
// point. Return 0, or nonzero to stop minimize.
typedef int (*symopt_objective)(
    size_t n, const double *x, double *f, double *g, double *H, void *user);
#endif

// An entry (i, j) of a matrix built from H (n x n, row-major) and a scalar s.
typedef double (*symopt_runtime_entry)(size_t n, const double *H, double s, size_t i, size_t j);

// What a second-order spec's derivation gives the solvers, and the method's constants.
typedef struct symopt_runtime_model {
    symopt_runtime_entry system; // A_ij of the derived system, for the damping s (0: undamped)
    double (*rhs)(size_t n, const double *g, size_t i); // b_i, the system's right-hand side
    // m(0) - m(d) of the undamped model for a step d, given Hd = H d (trust region only)
    double (*predicted)(size_t n, const double *g, const double *d, const double *Hd);
    double psd_tol; // the final check: H + psd_tol max(1, ||H||_inf) I must factorise
    double armijo; // Newton's steepest-descent fallback: f(x - t g) <= f - armijo t g^T g,
    double backtrack; // t multiplied by backtrack
    int max_backtracks; // at most this many times
    double k_easy; // trust region, exact subproblem: | ||d|| - r | <= k_easy r,
    double k_hard; // the hard case's tolerance,
    int max_factorisations; // Cholesky factorisations per subproblem,
    double cg_forcing; // CG's residual target min(cg_forcing, sqrt(||g|| / ||g0||)) ||g||,
    double min_radius; // stop when r < min_radius max(1, ||x||),
    double rounding; // rho's rounding guard delta = rounding eps |f|,
    // and the trust region's scalar formulas, derived from the spec: Newton's next lam on the
    // secular equation 1/||d(lam)|| = 1/r (w_sq = ||L^-1 d||^2 with L L^T = H + lam I), the
    // smaller and larger roots tau of ||p + tau d|| = r (pp = p^T p, pd = p^T d, dd = d^T d > 0),
    // and the length t of the Cauchy step -t g (gg = g^T g, ghg = g^T H g)
    double (*secular_newton)(double lam, double d_norm, double w_sq, double radius);
    double (*boundary_tau_min)(double pp, double pd, double dd, double radius);
    double (*boundary_tau_max)(double pp, double pd, double dd, double radius);
    double (*cauchy_length)(double gg, double ghg, double radius);
} symopt_runtime_model;

// Statuses of the minimize functions (result.status).
#define SYMOPT_RUNTIME_CONVERGED 0 // ||g|| <= gtol
#define SYMOPT_RUNTIME_MAX_ITER 1 // max_iter iterations
#define SYMOPT_RUNTIME_NOT_POSITIVE_DEFINITE 2 // Newton: on_indefinite = FAIL; or SOLVE, H singular
#define SYMOPT_RUNTIME_RADIUS_COLLAPSED 2 // trust region: r < min_radius max(1, ||x||)
#define SYMOPT_RUNTIME_NOT_FINITE 3 // f, g or (trust region) H or a CG product H p not finite
#define SYMOPT_RUNTIME_SADDLE_POINT 4 // ||g|| <= gtol, but H is not positive semidefinite
#define SYMOPT_RUNTIME_STOPPED 5 // the objective returned nonzero
#define SYMOPT_RUNTIME_OUT_OF_MEMORY 6 // work was NULL and could not be allocated

// Newton's on_indefinite, and the trust region's subproblem solvers.
#define SYMOPT_RUNTIME_FAIL 0
#define SYMOPT_RUNTIME_GRADIENT 1
#define SYMOPT_RUNTIME_SOLVE 2
#define SYMOPT_RUNTIME_AUTO 0
#define SYMOPT_RUNTIME_EXACT 1
#define SYMOPT_RUNTIME_CG 2

// Workspace, in doubles, of the step and minimize functions.
#define SYMOPT_RUNTIME_NEWTON_STEP_WORK(n) ((n) * (n))
#define SYMOPT_RUNTIME_NEWTON_MINIMIZE_WORK(n) (2 * (n) * (n) + 3 * (n))
#define SYMOPT_RUNTIME_RADIUS_STEP_WORK(n) ((n) * (n) + 4 * (n))
#define SYMOPT_RUNTIME_RADIUS_MINIMIZE_WORK(n) (2 * (n) * (n) + 8 * (n))

// The outcome of symopt_runtime_newton_minimize (x itself is updated in place).
typedef struct symopt_runtime_newton_result {
    double fun; // f at the final x
    double grad_norm; // ||g|| at the final x
    double pivot; // NOT_POSITIVE_DEFINITE: the failed Cholesky pivot
    long column; // and its column + 1 (0: H was singular, on_indefinite = SOLVE)
    long nit; // steps taken
    long nfev; // evaluations of f
    long ngev; // evaluations of the gradient
    long nhev; // evaluations of the Hessian (the final second-order check included)
    long n_fallback; // steps that took the on_indefinite fallback
    int maximum; // SADDLE_POINT: 1 when -H is positive semidefinite there (a maximum)
    int status; // SYMOPT_RUNTIME_CONVERGED, ...
} symopt_runtime_newton_result;

// The radius rule's hyperparameters (the order of the spec's [hyper] tables).
typedef struct symopt_runtime_radius_hyper {
    double eta; // accept a step when rho > eta
    double shrink_below; // rho below this shrinks the radius
    double shrink; // to shrink ||d||
    double expand_above; // rho above this, with d on the boundary, expands the radius
    double expand; // to max(r, expand ||d||)
    double radius0; // the initial radius
    double max_radius; // the largest radius
} symopt_runtime_radius_hyper;

// What a trust-region subproblem solver reports besides d.
typedef struct symopt_runtime_radius_step_info {
    double lam_lower; // a lower bound on lam, valid for every smaller radius (0 for cg)
    int on_boundary; // 0 for an interior step (exact: lam = 0 and ||d|| < r), else 1
    int hard_case; // exact: 1 when d was finished along an approximate eigenvector
    int inner; // Cholesky factorisations (exact) or CG iterations (cg)
} symopt_runtime_radius_step_info;

// The outcome of symopt_runtime_radius_minimize (x itself is updated in place).
typedef struct symopt_runtime_radius_result {
    double fun; // f at the final x
    double grad_norm; // ||g|| at the final x
    double radius; // the final trust radius
    long nit; // iterations, rejected steps included (as scipy counts them)
    long nfev; // evaluations of f
    long ngev; // evaluations of the gradient
    long nhev; // evaluations of the Hessian (one more for the final second-order check)
    int status; // SYMOPT_RUNTIME_CONVERGED, ...
    int not_finite; // NOT_FINITE: what was not finite (SYMOPT_RUNTIME_RADIUS_F_OR_G, ...)
} symopt_runtime_radius_result;

// What symopt_runtime_radius_result.not_finite reports with the status NOT_FINITE (else 0).
#define SYMOPT_RUNTIME_RADIUS_F_OR_G 1 // f or g at the current point
#define SYMOPT_RUNTIME_RADIUS_HESSIAN 2 // an entry of H at the current point
#define SYMOPT_RUNTIME_RADIUS_PRODUCT 3 // p^T H p in CG (H finite, the product overflowed)

// The lower Cholesky factor L (n x n, row-major, upper triangle zero) of the system matrix A with
// damping lam, by blocks of 64 columns (the trailing updates threaded under OpenMP, with the same
// result for any thread count; -DSYMOPT_LAPACK calls LAPACK's dpotrf_ instead, linked by the
// user); reads the lower triangle of H. Returns 0 (and
// *pivot = 0), or k + 1 when the pivot of column k (0-based) is not positive: A is not positive
// definite, *pivot gets that pivot (pivot may be NULL) and L holds columns 0..k-1.
int symopt_runtime_cholesky(
    const symopt_runtime_model *model, size_t n, const double *H, double lam, double *L,
    double *pivot);

// d = (L L^T)^-1 b, b the model's right-hand side at g, by forward and back substitution. d may
// be g.
void symopt_runtime_solve(
    const symopt_runtime_model *model, size_t n, const double *L, const double *g, double *d);

// Whether H is positive semidefinite up to rounding: the Cholesky factorisation of H + tau I,
// tau = psd_tol max(1, ||H||_inf), succeeds (negate != 0: the same test for -H). L: n x n scratch.
int symopt_runtime_is_positive_semidefinite(
    const symopt_runtime_model *model, size_t n, const double *H, int negate, double *L);

// The Newton step d of the undamped system, by the Cholesky factorisation of A into work
// (SYMOPT_RUNTIME_NEWTON_STEP_WORK(n) doubles). Returns 0, or k + 1 as symopt_runtime_cholesky
// (then d is not written). d may be g.
int symopt_runtime_newton_step(
    const symopt_runtime_model *model, size_t n, const double *H, const double *g, double *d,
    double *work, double *pivot);

// Newton's method from x (in place), x <- x + d with no line search, and on_indefinite
// (SYMOPT_RUNTIME_FAIL, _GRADIENT: an Armijo steepest-descent step, or _SOLVE: Gaussian
// elimination) where the factorisation fails. work: SYMOPT_RUNTIME_NEWTON_MINIMIZE_WORK(n)
// doubles, or NULL to allocate it here once. Returns result->status.
int symopt_runtime_newton_minimize(
    const symopt_runtime_model *model, size_t n, double *x, symopt_objective objective,
    void *user, int on_indefinite, int check_second_order, double gtol, long max_iter,
    double *work, symopt_runtime_newton_result *result);

// Newton's method with a line search (the "line_search" rule): the model's slope along d at
// t = 0, d/dt m(t d) = g^T d, derived from the spec; its hyperparameters (the order of the rule's
// [hyper] tables); what minimize reports; its status 2, and why it had no step.
typedef double (*symopt_runtime_slope)(size_t n, const double *g, const double *d);
typedef struct symopt_runtime_line_search_hyper {
    double c1; // Armijo: accept t when f(x + t d) <= f(x) + c1 t g^T d
    double rho; // a rejected t becomes rho t
    double beta; // the smallest shift of an indefinite H, in units of max_ij |H_ij|
} symopt_runtime_line_search_hyper;
typedef struct symopt_runtime_line_search_result {
    double fun; // f at the final x
    double grad_norm; // ||g|| at the final x
    double t; // NO_STEP: the last step length tried
    long nit; // steps taken
    long nfev; // evaluations of f (the line search's trials included)
    long ngev; // evaluations of the gradient
    long nhev; // evaluations of the Hessian (the final second-order check included)
    long n_fallback; // steps whose Hessian was shifted (tau > 0)
    long n_backtracks; // trial step lengths the Armijo test rejected
    int maximum; // SADDLE_POINT: 1 when -H is positive semidefinite there (a maximum)
    int not_finite; // NOT_FINITE: SYMOPT_RUNTIME_LINE_SEARCH_F_OR_G or _HESSIAN
    int no_step; // NO_STEP: SYMOPT_RUNTIME_LINE_SEARCH_TRIALS, _ROUNDING or _SHIFTS
    int status; // SYMOPT_RUNTIME_CONVERGED, ...
} symopt_runtime_line_search_result;
#define SYMOPT_RUNTIME_NO_STEP 2 // line search: no step length passed the Armijo test
#define SYMOPT_RUNTIME_LINE_SEARCH_F_OR_G 1 // f or g at the current point
#define SYMOPT_RUNTIME_LINE_SEARCH_HESSIAN 2 // an entry of H at the current point
#define SYMOPT_RUNTIME_LINE_SEARCH_TRIALS 1 // max_backtracks trials failed
#define SYMOPT_RUNTIME_LINE_SEARCH_ROUNDING 2 // t d fell below the rounding of x
#define SYMOPT_RUNTIME_LINE_SEARCH_SHIFTS 3 // no shift made H + tau I positive definite
#define SYMOPT_RUNTIME_LINE_SEARCH_STEP_WORK(n) ((n) * (n))
#define SYMOPT_RUNTIME_LINE_SEARCH_MINIMIZE_WORK(n) (2 * (n) * (n) + 3 * (n))

// Nocedal & Wright's Algorithm 3.3 and the step: tau = 0 when min_i H_ii > 0, else
// beta s - min_i H_ii, then tau <- max(2 tau, beta s) until the Cholesky factorisation of the
// system matrix with damping tau succeeds (s = max_ij |H_ij|, 1 when H = 0; at most
// max_shifts tries); d solves it (d may not be g), *tau gets tau. work:
// SYMOPT_RUNTIME_LINE_SEARCH_STEP_WORK(n) doubles. Returns 0, or 1 when no shift succeeded (d
// is not written). H must be finite.
int symopt_runtime_shifted_step(
    const symopt_runtime_model *model, size_t n, const double *H, const double *g, double beta,
    long max_shifts, double *d, double *work, double *tau);

// Newton's method with a line search from x (in place): the shifted step d, then
// t = 1, rho, rho^2, ... (at most model->max_backtracks trials) until f(x + t d) is finite and
// f(x + t d) <= f(x) + c1 t slope(g, d), or only finite where |slope(g, d)| <= rounding
// DBL_EPSILON max(1, |f(x)|) (f cannot measure that decrease); x <- x + t d. hyper must not be
// NULL. work: SYMOPT_RUNTIME_LINE_SEARCH_MINIMIZE_WORK(n) doubles, or NULL to allocate it here
// once. Returns result->status.
int symopt_runtime_line_search_minimize(
    const symopt_runtime_model *model, symopt_runtime_slope slope,
    const symopt_runtime_line_search_hyper *hyper, long max_shifts, double rounding, size_t n,
    double *x, symopt_objective objective, void *user, int check_second_order, double gtol,
    long max_iter, double *work, symopt_runtime_line_search_result *result);

// The radius rule for rho (actual over predicted reduction), the step length ||d|| and
// x_scale = max(1, ||x||) at the point the step started from (expansion stops at
// max_radius x_scale).
double symopt_runtime_radius_update(
    const symopt_runtime_radius_hyper *hyper, double radius, double rho, double step_norm,
    int on_boundary, double x_scale);

// The exact (More-Sorensen) subproblem step: d, the multiplier *lam_out and the predicted
// decrease; work: SYMOPT_RUNTIME_RADIUS_STEP_WORK(n) doubles; info may be NULL. Returns 0 when a
// tolerance was met, 1 when the factorisations ran out first (then d is the better, by the
// model, of the last iterate cut to the boundary and the Cauchy point). H must be finite.
int symopt_runtime_radius_step(
    const symopt_runtime_model *model, size_t n, const double *H, const double *g, double radius,
    double lam_lower, double k_easy, double k_hard, int max_factorisations, double *d,
    double *lam_out, double *predicted, double *work, symopt_runtime_radius_step_info *info);

// Steihaug's truncated conjugate gradients on the subproblem; work and info as above. Returns 0,
// or 1 when a product p^T H p is not finite (then d and *predicted are not meaningful).
int symopt_runtime_radius_cg_step(
    const symopt_runtime_model *model, size_t n, const double *H, const double *g, double radius,
    double tol, long max_iter, double *d, double *predicted, double *work,
    symopt_runtime_radius_step_info *info);

// The trust-region method from x (in place) with the hyperparameters hyper (not NULL), subproblem
// SYMOPT_RUNTIME_AUTO (= _EXACT: the dense H is at hand), _EXACT or _CG. The radius is unlimited
// (the model's minimiser is the step) until a step fails or the model is unbounded below (then
// radius0 max(1, ||x||)). work: SYMOPT_RUNTIME_RADIUS_MINIMIZE_WORK(n) doubles, or NULL to
// allocate it here once. Returns result->status.
int symopt_runtime_radius_minimize(
    const symopt_runtime_model *model, size_t n, double *x, symopt_objective objective,
    void *user, const symopt_runtime_radius_hyper *hyper, int subproblem, int check_second_order,
    double gtol, long max_iter, double *work, symopt_runtime_radius_result *result);

#ifdef __cplusplus
}
#endif

#endif
