"""Adagrad-SWAP ops: Adagrad whose accumulator decays once per period."""

import tensorflow as tf

from tf_swap import _ops
from tf_swap.ops import _convert


def _common_inputs(
    var, lr, step, epsilon, decay_rate, decay_period, accumulator_floor, dtype
):
    dtype = tf.as_dtype(dtype)
    return dict(
        lr=_convert.scalar(lr, dtype, "lr"),
        epsilon=_convert.scalar(epsilon, dtype, "epsilon"),
        step=_convert.scalar(step, tf.int64, "step"),
        decay_rate=_convert.scalar(decay_rate, dtype, "decay_rate"),
        decay_period=_convert.period(decay_period),
        accumulator_floor=_convert.scalar(
            accumulator_floor, dtype, "accumulator_floor"
        ),
    )


def resource_apply_adagrad_swap(
    var,
    accum,
    power,
    lr,
    grad,
    step,
    *,
    decay_rate,
    decay_period,
    accumulator_floor,
    epsilon=0.0,
    decay_mode="exact",
    epsilon_placement="after_sqrt",
    use_locking=False,
    name=None,
):
    """Adagrad-SWAP update of every row of `var` (SPEC section 1).

    For each row `r`, with `p = step // decay_period`: if `p > power[r]` the
    accumulator row is multiplied by `decay_rate ** (p - power[r])` (or by
    `decay_rate` once, with `decay_mode="once_per_update"`), floored at
    `accumulator_floor`, and `power[r]` advances; then
    `accum += grad ** 2` and `var -= lr * grad / (sqrt(accum) + epsilon)`.

    Args:
        var: `tf.Variable` (or resource handle) of float32 or float64.
        accum: Accumulator variable, same shape and dtype as `var`.
        power: int64 variable of shape `[rows]` (`[]` for a scalar `var`):
            the periods already applied to each row.
        lr: Learning rate, scalar.
        grad: Gradient, same shape as `var`.
        step: 1-based number of this update (global step + 1), int64.
        decay_rate: Discount per period, in `(0, 1]` (1 is plain Adagrad).
        decay_period: Steps per period, `>= 1`.
        accumulator_floor: Lower bound of a decayed accumulator, `>= 0`.
        epsilon: Added to the denominator, `>= 0`.
        decay_mode: `"exact"` or `"once_per_update"` (DeepRec's
            `AdagradDecayOptimizer`).
        epsilon_placement: `"after_sqrt"` (TensorFlow's
            `ResourceApplyAdagradV2`, the default) or `"inside_sqrt"`
            (Keras 3's `Adagrad`).
        use_locking: Hold the variables' locks exclusively during the update.
        name: Op name.

    Returns:
        The op (in graph mode); `None` when executing eagerly.

    Raises:
        InvalidArgumentError: a shape, dtype or hyper-parameter is invalid,
            or two of `var`, `accum`, `power` are one variable; no variable
            is changed. A `grad` or scalar tensor of another dtype than
            `var` is refused as TensorFlow's ops refuse it (`TypeError`
            while tracing); Python numbers are converted exactly.
    """
    dtype = _convert.variable_dtype(var, grad)
    return _ops.library().tf_swap_resource_apply_adagrad_swap(
        var=_convert.resource_handle(var),
        accum=_convert.resource_handle(accum),
        power=_convert.resource_handle(power),
        grad=grad,
        decay_mode=decay_mode,
        epsilon_placement=epsilon_placement,
        use_locking=use_locking,
        name=name,
        **_common_inputs(
            var, lr, step, epsilon, decay_rate, decay_period, accumulator_floor, dtype
        ),
    )


def resource_sparse_apply_adagrad_swap(
    var,
    accum,
    power,
    lr,
    grad,
    indices,
    step,
    *,
    decay_rate,
    decay_period,
    accumulator_floor,
    epsilon=0.0,
    decay_mode="exact",
    epsilon_placement="after_sqrt",
    use_locking=False,
    name=None,
):
    """Adagrad-SWAP update of the rows of `var` named by `indices`.

    As `resource_apply_adagrad_swap`, for rows `indices[i]` with gradient
    rows `grad[i]`. The gradient rows of a repeated index are summed (in
    order of position) and the row is updated once, whatever the number of
    threads.

    Args:
        var: `tf.Variable` (or resource handle), rank >= 1.
        accum: Accumulator variable, same shape and dtype as `var`.
        power: int64 variable of shape `[rows]`.
        lr: Learning rate, scalar.
        grad: Gradient rows, shape `[len(indices)] + var.shape[1:]`.
        indices: int32 or int64 row indices, each in `[0, rows)`.
        step: 1-based number of this update, int64.
        decay_rate: Discount per period, in `(0, 1]`.
        decay_period: Steps per period, `>= 1`.
        accumulator_floor: Lower bound of a decayed accumulator, `>= 0`.
        epsilon: Added to the denominator, `>= 0`.
        decay_mode: `"exact"` or `"once_per_update"`.
        epsilon_placement: `"after_sqrt"` (default) or `"inside_sqrt"`.
        use_locking: Hold the variables' locks exclusively during the update.
        name: Op name.

    Returns:
        The op (in graph mode); `None` when executing eagerly.

    Raises:
        InvalidArgumentError: an index is out of range, a shape, dtype or
            hyper-parameter is invalid, or two of `var`, `accum`, `power` are
            one variable; no variable is changed. Tensors of another dtype
            are refused as in `resource_apply_adagrad_swap`.
    """
    dtype = _convert.variable_dtype(var, grad)
    return _ops.library().tf_swap_resource_sparse_apply_adagrad_swap(
        var=_convert.resource_handle(var),
        accum=_convert.resource_handle(accum),
        power=_convert.resource_handle(power),
        grad=grad,
        indices=indices,
        decay_mode=decay_mode,
        epsilon_placement=epsilon_placement,
        use_locking=use_locking,
        name=name,
        **_common_inputs(
            var, lr, step, epsilon, decay_rate, decay_period, accumulator_floor, dtype
        ),
    )
