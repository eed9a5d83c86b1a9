"""Local Batch Normalization ops (SPEC section 3): batch normalization over
the last dimension with this batch's own statistics, accumulated in float64.
"""

import tensorflow as tf

from tf_swap import _ops
from tf_swap.ops import _convert


def _inputs(x, **per_channel):
    """`x` as a tensor, and each per-channel input converted to its dtype."""
    x = tf.convert_to_tensor(x, name="x")
    return x, {
        name: tf.convert_to_tensor(value, dtype=x.dtype, name=name)
        for name, value in per_channel.items()
    }


def local_batch_norm(x, gamma, beta, epsilon=1e-3, name=None, return_variance=False):
    """Batch normalization of `x` with its own batch statistics.

    With `x` of shape `[..., C]` flattened to `[N, C]`:
    `mean = sum_n x / N`, `var = sum_n (x - mean)^2 / N` (biased),
    `inv_std = 1 / sqrt(var + epsilon)`,
    `y = gamma * (x - mean) * inv_std + beta`. Sums, `x - mean` and the
    normalization are computed in float64 (also for float32 inputs), so a
    channel whose mean is large relative to its spread still normalizes
    accurately.

    Differentiable in `x`, `gamma` and `beta` through `y` (the gradient op
    is `TfSwapLocalBatchNormGrad`). `batch_mean`, `batch_inv_std` and
    `batch_variance` are statistics for bookkeeping (moving averages) and
    carry no gradient: gradients flowing into them are ignored.

    Args:
        x: float32 or float64 tensor of rank >= 2, channels last, `N > 0`.
        gamma: Scale, shape `[C]`, same dtype as `x`.
        beta: Offset, shape `[C]`, same dtype as `x`.
        epsilon: Finite, > 0; added to the variance. A Python number is
            converted straight to `x`'s dtype.
        name: Op name.
        return_variance: Also return the (biased) batch variance the op
            computed, for moving statistics.

    Returns:
        `(y, batch_mean, batch_inv_std)`, or with `return_variance`
        `(y, batch_mean, batch_inv_std, batch_variance)`: `y` of `x`'s
        shape, the others of shape `[C]`.

    Raises:
        InvalidArgumentError: `x` has rank < 2 or no rows, `gamma` or `beta`
            is not of shape `[C]`, or `epsilon` is not finite and > 0.
    """
    x, inputs = _inputs(x, gamma=gamma, beta=beta)
    y, mean, inv_std, variance = _ops.library().tf_swap_local_batch_norm(
        x=x,
        epsilon=_convert.scalar(epsilon, x.dtype, "epsilon"),
        name=name,
        **inputs,
    )
    if return_variance:
        return y, mean, inv_std, variance
    return y, mean, inv_std


def local_batch_norm_inference(
    x, gamma, beta, mean, variance, epsilon=1e-3, name=None
):
    """Batch normalization of `x` with given statistics (inference).

    `y = (x - mean) * (gamma * rsqrt(variance + epsilon)) + beta` over the
    last dimension, in stock TensorFlow ops and `x`'s dtype, so a model
    exported with it serves where tf_swap's library is not loaded (TF
    Serving, `tf.saved_model.load`). `x - mean` comes first: folding the
    statistics into `x * scale + shift` cancels catastrophically when
    `|mean|` is much larger than the spread (float32, mean 1e4, std 1e-2).
    Differentiable (ordinary TensorFlow ops).

    Args:
        x: float32 or float64 tensor of rank >= 2, channels last.
        gamma, beta, mean, variance: Shape `[C]`, converted to `x`'s dtype.
        epsilon: Finite, > 0 (a Python number, or a scalar tensor checked
            when the graph runs).
        name: Name scope.

    Returns:
        `y`, of `x`'s shape.

    Raises:
        InvalidArgumentError: `x` has rank < 2, a per-channel input is not
            of shape `[C]`, or `epsilon` is not finite and > 0.
    """
    with tf.name_scope(name or "local_batch_norm_inference"):
        x, inputs = _inputs(
            x, gamma=gamma, beta=beta, mean=mean, variance=variance
        )
        _check_shapes(x, inputs)
        epsilon = _convert.scalar(epsilon, x.dtype, "epsilon")
        value = tf.get_static_value(epsilon)
        if value is not None:
            if not (value > 0.0 and value != float("inf")):
                raise tf.errors.InvalidArgumentError(
                    None, None, f"epsilon must be finite and > 0, got {value}"
                )
        else:
            check = tf.debugging.Assert(
                tf.logical_and(epsilon > 0, tf.math.is_finite(epsilon)),
                ["epsilon must be finite and > 0, got", epsilon],
            )
            with tf.control_dependencies([check]):
                epsilon = tf.identity(epsilon)
        scale = inputs["gamma"] * tf.math.rsqrt(inputs["variance"] + epsilon)
        return (x - inputs["mean"]) * scale + inputs["beta"]


def _check_shapes(x, per_channel):
    """Static checks of `local_batch_norm_inference`'s shapes."""
    if x.shape.rank is not None and x.shape.rank < 2:
        raise tf.errors.InvalidArgumentError(
            None,
            None,
            "x must have rank >= 2 ([N, ..., C], channels last), got shape "
            f"{x.shape}",
        )
    channels = x.shape[-1] if x.shape.rank is not None else None
    for name, value in per_channel.items():
        shape = value.shape
        if shape.rank is not None and (
            shape.rank != 1
            or (channels is not None and shape[0] is not None and shape[0] != channels)
        ):
            raise tf.errors.InvalidArgumentError(
                None,
                None,
                f"{name} must have shape [C] = [{channels}] (the last "
                f"dimension of x {x.shape}), got {shape}",
            )


@tf.RegisterGradient("TfSwapLocalBatchNorm")
def _local_batch_norm_grad(op, dy, *unused_statistics_grads):
    """Gradient through `y`; the batch statistics get none."""
    x, gamma = op.inputs[0], op.inputs[1]
    batch_mean, batch_inv_std = op.outputs[1], op.outputs[2]
    if dy is None:
        dy = tf.zeros_like(x)
    dx, dgamma, dbeta = _ops.library().tf_swap_local_batch_norm_grad(
        dy=dy,
        x=x,
        gamma=gamma,
        batch_mean=batch_mean,
        batch_inv_std=batch_inv_std,
    )
    return dx, dgamma, dbeta, None
