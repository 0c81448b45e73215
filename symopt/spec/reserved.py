"""The names a spec may not take, and why: every name the validator accepts works in every target.

A spec's names are the generated code's public interface (keyword arguments, ``DEFAULTS`` keys,
state keys, attributes of the optimizer objects), so they are not renamed: instead each target's
internal names live outside the spec namespace (they start with ``_``, are CamelCase or contain
``__``, none of which a spec name may), and the few names generated code shares a scope with
spec names are refused here, with the reason. ``tests/test_reserved_names.py`` runs every
target with every reserved-looking name the validator accepts, in every role.
"""

from __future__ import annotations

import builtins
import keyword

#: Python's keywords, soft keywords and builtins: spec names are Python parameters and locals.
PYTHON = frozenset(
    {*keyword.kwlist, *keyword.softkwlist, *(n for n in dir(builtins) if n[:1].islower())}
)
#: C's keywords (C89 to C23), and names that headers of the C targets define as macros (a
#: hyperparameter ``isnan`` or ``linux`` would be replaced by the preprocessor).
C = frozenset(
    """
    auto break case char const continue default do double else enum extern float for goto if
    inline int long register restrict return short signed sizeof static struct switch typedef
    union unsigned void volatile while alignas alignof bool constexpr false nullptr
    static_assert thread_local true typeof typeof_unqual
    assert errno offsetof alloca fpclassify isfinite isgreater isgreaterequal isinf isless
    islessequal islessgreater isnan isnormal isunordered math_errhandling signbit stderr stdin
    stdout linux unix i386 size_t ptrdiff_t int64_t uint16_t uint32_t uint64_t
    """.split()
)
#: Modules and packages the generated code imports.
MODULES = frozenset(
    """
    np numpy math torch jax jnp lax optax ctypes triton tl os sys functools warnings typing
    dataclasses collections itertools operator annotations threading concurrent pytest
    symopt symopt_numpy symopt_torch symopt_c symopt_jax
    """.split()
)
#: Names generated code binds in a scope that also holds spec names: the parameters of step
#: functions and entry points (``count``, ``n``, ``p``, ``scalars``, ...), the attributes and
#: methods of the generated optimizer classes (a hyperparameter is an attribute of a NumPy or C
#: optimizer, so ``step`` or ``state`` would replace a method or the state), and the keys a
#: torch optimizer keeps next to the spec's in its state and param groups; ``dtype`` and
#: ``device``, parameters of the generated tests.
GENERATED = frozenset(
    """
    self cls params param_groups param_group group groups state states defaults hyper
    hyperparameters arrays arrays_in grads inputs scalars scratch masks kernel kernels
    kernel_state prelude count n i lo hi closure loss step steps step_key t_start
    foreach fused maximize capturable differentiable apply add_param_group zero_grad
    state_dict load_state_dict load new_state initial_state state_names state_names_for
    state_keys state_shape check_inputs check_hyper check_arguments kernels_check choices
    axes tuples fixed fusable layout map negated machine_epsilon run run_group scratch_for
    shutdown submit index items keys values get arguments profile_hook_step dtype device
    register_load_state_dict_post_hook register_load_state_dict_pre_hook
    register_state_dict_post_hook register_state_dict_pre_hook register_step_post_hook
    register_step_pre_hook
    """.split()
)
#: The runtime functions generated spec modules import by name: a spec name in the same
#: function would hide them (a state ``checked_hyper`` broke NumPy's functional step).
#: ``tests/test_reserved_names.py`` reads the imports of the generated modules to keep this
#: complete.
RUNTIME_IMPORTS = frozenset(
    """
    check_array check_arrays check_counter check_curvature check_state_dict_keys check_steps
    checked_hyper state_array step_arrays unaliased run_update takes_update step_in_place check
    like map_leaves nonzero numbers transformation by_shape partial add_flat as_tuple
    check_params host_scalars state_tensor zero_dim rt dataclass boundary_taus cholesky eigen
    input_factor output_factor is_positive_semidefinite minimize_damped
    negative_curvature_bound smallest_singular_pair solve_cholesky solve_lower solve_pivoted
    solve_upper_t update_radius exact_step hessian_vector_product require_x64 solve_damped
    cg_tolerance dense_hessian evaluate ggn_blocks ggn_diagonal loss_and_gradient
    loss_hessian_factors loss_hessians parameter_names per_example_jacobians
    positive_semidefinite steihaug steihaug_step secular_newton boundary_tau_min
    boundary_tau_max cauchy_length choose_subproblem closure_loss model_minimiser
    parameters_copied_when_saved steihaug_run flat
    """.split()
)
#: The suffixes of the C headers' own macros, ``SYMOPT_<SPEC>_H`` (the include guard),
#: ``SYMOPT_<SPEC>_CG``, ...: a hyperparameter's default is the macro ``SYMOPT_<SPEC>_<NAME>``,
#: so a hyperparameter ``h`` redefined the guard. ``tests/test_reserved_names.py`` reads them
#: from the templates.
C_MACROS = frozenset(
    """
    h armijo auto backtrack cg cg_forcing converged exact exact_max_n fail gradient
    hyper_defaults k_easy k_hard max_backtracks max_factorisations max_iter minimize_work
    min_radius not_finite not_positive_definite on_indefinite out_of_memory psd_tol
    radius_collapsed saddle_point solve step_work stopped subproblem max_shifts no_step rounding
    """.split()
)
#: File and module names of each target's runtime (``_runtime.py``, ``runtime.h``, ...): a spec
#: of that name would overwrite them.
RUNTIME_MODULES = frozenset(
    """
    api runtime runtime_internal runtime_dense runtime_newton runtime_radius fused triton
    triton_launch csrc tensor curvature second_order dense subproblem stepping
    arrays lib optimizer diagonal c_support numpy_support jax_support torch_support
    fused_support jax_problems conftest tests specs
    """.split()
)
#: Runtime modules of the second-order specs of those names: another kind of spec may not take
#: them.
SECOND_ORDER_MODULES = frozenset({"newton", "kfac", "block_newton", "trust_region"})
#: Names the damped rule's block solves give their own variables (symopt.spec.model): a
#: damping variable may not take them.
DAMPING = frozenset("a b c d f h k nu s u x lr layer one".split())
#: Class-level names of the generated modules and the runtimes they import.
CLASS_NAMES = frozenset(
    """
    DEFAULTS STATE SCRATCH T_START OPTIMIZERS Optimizer ApiOptimizer TensorOptimizer Tensor
    ModelOptimizer Any Callable Sequence Mapping METHOD STATUS ROUNDING
    """.split()
)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a hyperparameter, state, intermediate, flag or argument name."""
    if "__" in name:
        return "contains '__', which generated code keeps for its own names"
    if name in PYTHON:
        return "is a Python keyword or builtin"
    if name in C:
        return "is a C keyword or a macro of the C headers"
    if name in MODULES:
        return "is a module the generated code imports"
    if name in GENERATED:
        return "is a name the generated optimizers use (a parameter, method or state key)"
    if name in RUNTIME_IMPORTS:
        return "is a function the generated modules import"
    if name in C_MACROS:
        return f"would name the C macro SYMOPT_<SPEC>_{name.upper()}, which the header defines"
    return None


def spec_name_problem(name: str, second_order: bool) -> str | None:
    """Why ``name`` cannot name a spec (it names the generated files and functions)."""
    if name in RUNTIME_MODULES or (name in SECOND_ORDER_MODULES and not second_order):
        return "is the name of a file of a target's runtime"
    return name_problem(name)


def class_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a spec's class."""
    if name in PYTHON or name in dir(builtins):
        return "is a Python keyword or builtin"
    if name in CLASS_NAMES:
        return "is a name of the generated module"
    return None
