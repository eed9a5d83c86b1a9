"""FTRL-SWAP ops: FTRL-proximal whose accumulator decays once per period,
the linear term re-anchored so that no weight changes at a discount."""

import tensorflow as tf

from tf_swap import _ops
from tf_swap.ops import _convert


def _scalars(dtype, **values):
    dtype = tf.as_dtype(dtype)
    return {name: _convert.scalar(value, dtype, name) for name, value in values.items()}


def _inputs(
    var,
    grad,
    lr,
    step,
    l1,
    l2,
    l2_shrinkage,
    lr_power,
    beta,
    staleness_scale,
    decay_rate,
    decay_period,
    accumulator_floor,
):
    dtype = _convert.variable_dtype(var, grad)
    return dict(
        step=_convert.scalar(step, tf.int64, "step"),
        decay_period=_convert.period(decay_period),
        **_scalars(
            dtype,
            lr=lr,
            l1=l1,
            l2=l2,
            l2_shrinkage=l2_shrinkage,
            lr_power=lr_power,
            beta=beta,
            staleness_scale=staleness_scale,
            decay_rate=decay_rate,
            accumulator_floor=accumulator_floor,
        ),
    )


def resource_apply_ftrl_swap(
    var,
    accum,
    linear,
    power,
    grad,
    lr,
    *,
    step,
    decay_rate,
    decay_period,
    accumulator_floor,
    l1=0.0,
    l2=0.0,
    l2_shrinkage=0.0,
    lr_power=-0.5,
    beta=0.0,
    staleness_scale=1.0,
    decay_mode="exact",
    use_locking=False,
    name=None,
):
    """FTRL-SWAP update of every row of `var` (SPEC section 4).

    For each row `r`, with `q = step // decay_period`: if `q > power[r]`
    the row's `accum` (`n`) is multiplied by `decay_rate ** (q - power[r])`
    (or once, with `decay_mode="once_per_update"`), floored at
    `accumulator_floor`, and its `linear` (`z`) re-anchored so that `var`
    is unchanged; then the FTRL-proximal step of
    `tf.raw_ops.ResourceApplyFtrlV2` (`multiply_linear_by_lr=False`), with
    `staleness_scale` multiplying the gradient's contribution to `linear`
    and `beta` adding `beta / (2 lr)` to `l2`. At `decay_rate=1`,
    `staleness_scale=1`, `beta=0` it is `ResourceApplyFtrlV2` bit for bit.

    Args:
        var: `tf.Variable` (or resource handle) of float32 or float64.
        accum: Accumulator `n`, same shape and dtype as `var`.
        linear: Linear term `z`, same shape and dtype as `var`.
        power: int64 variable of shape `[rows]` (`[]` for a scalar `var`).
        grad: Gradient, same shape as `var`.
        lr: Learning rate, scalar, `> 0`.
        step: 1-based number of this update (global step + 1), int64.
        decay_rate: Discount per period, in `(0, 1]` (1 is plain FTRL).
        decay_period: Steps per period, `>= 1`.
        accumulator_floor: Lower bound of a discounted `accum`, `>= 0`.
        l1, l2, l2_shrinkage: Regularization strengths, `>= 0`.
        lr_power: `<= 0`; -0.5 (the default) takes TensorFlow's `sqrt` path.
        beta: Keras' `beta`, `>= 0`.
        staleness_scale: In `(0, 1]`.
        decay_mode: `"exact"` or `"once_per_update"`.
        use_locking: Hold the variables' locks exclusively during the update.
        name: Op name.

    Returns:
        The op (in graph mode); `None` when executing eagerly.

    Raises:
        InvalidArgumentError: a shape, dtype or hyper-parameter is invalid,
            or two of `var`, `accum`, `linear`, `power` are one variable; no
            variable is changed.
    """
    return _ops.library().tf_swap_resource_apply_ftrl_swap(
        var=_convert.resource_handle(var),
        accum=_convert.resource_handle(accum),
        linear=_convert.resource_handle(linear),
        power=_convert.resource_handle(power),
        grad=grad,
        decay_mode=decay_mode,
        use_locking=use_locking,
        name=name,
        **_inputs(
            var,
            grad,
            lr,
            step,
            l1,
            l2,
            l2_shrinkage,
            lr_power,
            beta,
            staleness_scale,
            decay_rate,
            decay_period,
            accumulator_floor,
        ),
    )


def resource_sparse_apply_ftrl_swap(
    var,
    accum,
    linear,
    power,
    grad,
    indices,
    lr,
    *,
    step,
    decay_rate,
    decay_period,
    accumulator_floor,
    l1=0.0,
    l2=0.0,
    l2_shrinkage=0.0,
    lr_power=-0.5,
    beta=0.0,
    staleness_scale=1.0,
    decay_mode="exact",
    use_locking=False,
    name=None,
):
    """FTRL-SWAP update of the rows of `var` named by `indices`.

    As `resource_apply_ftrl_swap`, for rows `indices[i]` with gradient rows
    `grad[i]` (`tf.raw_ops.ResourceSparseApplyFtrlV2` at `decay_rate=1`).
    The gradient rows of a repeated index are summed (in order of position)
    and the row is updated once, whatever the number of threads.

    Args:
        grad: Gradient rows, shape `[len(indices)] + var.shape[1:]`.
        indices: int32 or int64 row indices, each in `[0, rows)`.
        Others: as in `resource_apply_ftrl_swap`.

    Returns:
        The op (in graph mode); `None` when executing eagerly.

    Raises:
        InvalidArgumentError: an index is out of range, a shape, dtype or
            hyper-parameter is invalid, or two of the variables are one; no
            variable is changed.
    """
    return _ops.library().tf_swap_resource_sparse_apply_ftrl_swap(
        var=_convert.resource_handle(var),
        accum=_convert.resource_handle(accum),
        linear=_convert.resource_handle(linear),
        power=_convert.resource_handle(power),
        grad=grad,
        indices=indices,
        decay_mode=decay_mode,
        use_locking=use_locking,
        name=name,
        **_inputs(
            var,
            grad,
            lr,
            step,
            l1,
            l2,
            l2_shrinkage,
            lr_power,
            beta,
            staleness_scale,
            decay_rate,
            decay_period,
            accumulator_floor,
        ),
    )
