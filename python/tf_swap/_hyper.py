"""Argument checks shared by the Adagrad-SWAP optimizers, run when they are
constructed so a typo fails before training starts (the ops check again at
run time, where values may come from tensors)."""

import math

DECAY_MODES = ("exact", "once_per_update")


def check_adagrad_swap_args(
    initial_accumulator_value,
    decay_rate,
    decay_period,
    accumulator_floor,
    decay_mode,
):
    """Raises `ValueError` naming the first argument out of its domain."""
    if not initial_accumulator_value > 0.0:
        raise ValueError(
            "initial_accumulator_value must be positive, got "
            f"{initial_accumulator_value}"
        )
    if not 0.0 < decay_rate <= 1.0:
        raise ValueError(f"decay_rate must be in (0, 1], got {decay_rate}")
    if not (decay_period >= 1 and float(decay_period).is_integer()):
        raise ValueError(
            f"decay_period must be a whole number >= 1, got {decay_period}"
        )
    if accumulator_floor is not None and not (
        math.isfinite(accumulator_floor) and accumulator_floor >= 0.0
    ):
        raise ValueError(
            f"accumulator_floor must be finite and >= 0, got {accumulator_floor}"
        )
    if decay_mode not in DECAY_MODES:
        raise ValueError(f"decay_mode must be one of {DECAY_MODES}, got {decay_mode!r}")


def check_staleness_args(staleness_exponent, max_staleness):
    """Raises `ValueError` if the staleness arguments (SPEC section 2) are out
    of their domain: `staleness_exponent` None or > 0 (`inf` allowed, it
    disables the scaling), `max_staleness` None or a whole number >= 0."""
    if staleness_exponent is not None and not (
        staleness_exponent > 0 and not math.isnan(staleness_exponent)
    ):
        raise ValueError(
            "staleness_exponent must be None or > 0 (inf disables), got "
            f"{staleness_exponent}"
        )
    if max_staleness is not None and not (
        max_staleness >= 0
        and math.isfinite(max_staleness)
        and float(max_staleness).is_integer()
    ):
        raise ValueError(
            f"max_staleness must be None or a whole number >= 0, got {max_staleness}"
        )


def scales_lr(staleness_exponent):
    """Whether `staleness_exponent` asks for a learning-rate scale."""
    return staleness_exponent is not None and math.isfinite(staleness_exponent)


def staleness_terms(t_read, t_apply, staleness_exponent, max_staleness):
    """TensorFlow scalars of SPEC section 2 from two int64 step tensors.

    Returns `(tau, scale, drop)`: `tau = max(0, t_apply - t_read)` (int64),
    `scale = 1 / max(1, tau) ** (1/k)` in float64 (1.0 when k is None or inf),
    and `drop`, a bool that is true when `tau > max_staleness` (always false
    when `max_staleness` is None).
    """
    import tensorflow as tf

    tau = tf.maximum(
        tf.cast(t_apply, tf.int64) - tf.cast(t_read, tf.int64),
        tf.constant(0, tf.int64),
    )
    if scales_lr(staleness_exponent):
        base = tf.cast(tf.maximum(tau, tf.constant(1, tf.int64)), tf.float64)
        # 1 / tau**(1/k) rather than tau**(-1/k): grappler rewrites a
        # power of -0.5 as rsqrt, which is not correctly rounded; x**0.5 it
        # rewrites as sqrt, which is (as libm's pow is).
        root = tf.pow(base, tf.constant(1.0 / float(staleness_exponent), tf.float64))
        scale = tf.constant(1.0, tf.float64) / root
    else:
        scale = tf.constant(1.0, tf.float64)
    if max_staleness is None:
        drop = tf.constant(False)
    else:
        drop = tau > tf.constant(int(max_staleness), tf.int64)
    return tau, scale, drop


def scaled_lr(lr, scale, dtype):
    """`lr * scale` computed in float64 and rounded once to `dtype`."""
    import numbers

    import tensorflow as tf

    if isinstance(lr, numbers.Number):
        lr64 = tf.convert_to_tensor(lr, tf.float64)
    else:
        lr64 = tf.cast(lr, tf.float64)
    return tf.cast(lr64 * scale, dtype)
