"""The Adagrad-SWAP step with staleness normalization, once for the three
front ends (`tf_swap.keras`, `tf_swap.tf_keras`, `tf_swap.compat.v1`).

Each optimizer class adapts its framework's hooks (slot creation,
`apply_gradients`, config) and calls this module for everything else: the
argument checks (`SwapSettings`), the staleness terms of SPEC section 2
(`SwapSettings.staleness`), the scaled learning rate, the drop branch and the
op call (`apply_swap`), and the dropped-update counter (`count_dropped`).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import NamedTuple

import tensorflow as tf

from tf_swap import ops

DECAY_MODES = ("exact", "once_per_update")
EPSILON_PLACEMENTS = ("after_sqrt", "inside_sqrt")


class Staleness(NamedTuple):
    """The staleness terms of one step (SPEC section 2).

    Attributes:
        tau: int64 scalar, `max(0, t_apply - t_read)`.
        scale: float64 scalar, `1 / max(1, tau) ** (1/k)` (1 without `k`).
        drop: bool scalar, `tau > max_staleness` (always false without it).
    """

    tau: tf.Tensor
    scale: tf.Tensor
    drop: tf.Tensor


@dataclasses.dataclass(frozen=True)
class SwapSettings:
    """The hyper-parameters of Adagrad-SWAP and staleness normalization.

    Constructing it checks every argument (`ValueError` naming the first one
    out of its domain), so a typo fails when the optimizer is built; the ops
    check again at run time, where values may come from tensors.

    Args:
        initial_accumulator_value: Starting accumulator, > 0.
        decay_rate: Discount per period, in (0, 1].
        decay_period: Steps per period, a whole number >= 1.
        accumulator_floor: Lower bound of a discounted accumulator, finite
            and >= 0; `None` means `initial_accumulator_value`.
        decay_mode: `"exact"` or `"once_per_update"`.
        epsilon: Added to the denominator, >= 0.
        epsilon_placement: `"after_sqrt"` (TensorFlow's ops) or
            `"inside_sqrt"` (Keras 3's Adagrad).
        staleness_exponent: `k`, > 0; `None` or `inf` disables the scale.
        max_staleness: Drop steps with `tau` above this whole number;
            `None` drops nothing.
        use_locking: Passed to the ops.
    """

    initial_accumulator_value: float
    decay_rate: float
    decay_period: int
    accumulator_floor: float | None
    decay_mode: str
    epsilon: float = 0.0
    epsilon_placement: str = "after_sqrt"
    staleness_exponent: float | None = None
    max_staleness: int | None = None
    use_locking: bool = False

    def __post_init__(self):
        if not self.initial_accumulator_value > 0.0:
            raise ValueError(
                "initial_accumulator_value must be positive, got "
                f"{self.initial_accumulator_value}"
            )
        if not 0.0 < self.decay_rate <= 1.0:
            raise ValueError(f"decay_rate must be in (0, 1], got {self.decay_rate}")
        period = self.decay_period
        if not (period >= 1 and float(period).is_integer()):
            raise ValueError(f"decay_period must be a whole number >= 1, got {period}")
        floor = self.accumulator_floor
        if floor is not None and not (math.isfinite(floor) and floor >= 0.0):
            raise ValueError(f"accumulator_floor must be finite and >= 0, got {floor}")
        if self.decay_mode not in DECAY_MODES:
            raise ValueError(
                f"decay_mode must be one of {DECAY_MODES}, got {self.decay_mode!r}"
            )
        if not (math.isfinite(self.epsilon) and self.epsilon >= 0.0):
            raise ValueError(f"epsilon must be finite and >= 0, got {self.epsilon}")
        if self.epsilon_placement not in EPSILON_PLACEMENTS:
            raise ValueError(
                f"epsilon_placement must be one of {EPSILON_PLACEMENTS}, got "
                f"{self.epsilon_placement!r}"
            )
        k = self.staleness_exponent
        if k is not None and not (k > 0 and not math.isnan(k)):
            raise ValueError(
                f"staleness_exponent must be None or > 0 (inf disables), got {k}"
            )
        limit = self.max_staleness
        if limit is not None and not (
            limit >= 0 and math.isfinite(limit) and float(limit).is_integer()
        ):
            raise ValueError(
                f"max_staleness must be None or a whole number >= 0, got {limit}"
            )
        object.__setattr__(self, "decay_period", int(period))
        object.__setattr__(self, "staleness_exponent", None if k is None else float(k))
        object.__setattr__(self, "max_staleness", None if limit is None else int(limit))

    @property
    def floor(self) -> float:
        """The accumulator floor in effect."""
        if self.accumulator_floor is None:
            return self.initial_accumulator_value
        return self.accumulator_floor

    @property
    def scales_lr(self) -> bool:
        """Whether a step's learning rate is scaled by its staleness."""
        k = self.staleness_exponent
        return k is not None and math.isfinite(k)

    @property
    def uses_staleness(self) -> bool:
        """Whether steps are scaled or dropped by their staleness."""
        return self.scales_lr or self.max_staleness is not None

    def staleness(self, t_read, t_apply) -> Staleness:
        """The `Staleness` terms of a step from two step tensors."""
        tau = tf.maximum(
            tf.cast(t_apply, tf.int64) - tf.cast(t_read, tf.int64),
            tf.constant(0, tf.int64),
        )
        if self.scales_lr:
            base = tf.cast(tf.maximum(tau, tf.constant(1, tf.int64)), tf.float64)
            # 1 / tau**(1/k) rather than tau**(-1/k): grappler rewrites a
            # power of -0.5 as rsqrt, which is not correctly rounded; x**0.5
            # it rewrites as sqrt, which is (as libm's pow is).
            exponent = tf.constant(1.0 / self.staleness_exponent, tf.float64)
            scale = tf.constant(1.0, tf.float64) / tf.pow(base, exponent)
        else:
            scale = tf.constant(1.0, tf.float64)
        if self.max_staleness is None:
            drop = tf.constant(False)
        else:
            drop = tau > tf.constant(self.max_staleness, tf.int64)
        return Staleness(tau, scale, drop)


def read_step(step_variable) -> tf.Tensor:
    """`t_read`: the step variable's value now, as an int64 scalar."""
    return tf.cast(tf.identity(step_variable), tf.int64)


def apply_step(step_variable, grads) -> tf.Tensor:
    """`t_apply`: the step variable read after every gradient in `grads`
    exists (dense tensors, `IndexedSlices` or `None`), as an int64 scalar."""
    deps = [
        g.values if isinstance(g, tf.IndexedSlices) else g
        for g in grads
        if g is not None
    ]
    with tf.control_dependencies(deps):
        return read_step(step_variable)


def learning_rate(lr, dtype, staleness: Staleness | None = None) -> tf.Tensor:
    """`lr` as a scalar of `dtype`: a Python number converted straight to
    it, a tensor cast; times the staleness scale in float64 and rounded once
    when `staleness` is given."""
    if staleness is None:
        if isinstance(lr, numbers.Number):
            return tf.convert_to_tensor(lr, dtype=dtype)
        return tf.cast(lr, dtype)
    if isinstance(lr, numbers.Number):
        lr64 = tf.convert_to_tensor(lr, tf.float64)
    else:
        lr64 = tf.cast(lr, tf.float64)
    return tf.cast(lr64 * staleness.scale, dtype)


def step_rate(lr, dtype, settings: SwapSettings, staleness: Staleness | None):
    """The learning rate a step applies to variables of `dtype`: `lr`
    converted (and scaled by the staleness when the settings use it).
    Computed once per step and dtype, shared by the step's variables."""
    return learning_rate(lr, dtype, staleness if settings.uses_staleness else None)


def apply_swap(
    variable,
    accumulator,
    power,
    gradient,
    rate,
    step,
    settings: SwapSettings,
    staleness: Staleness | None = None,
    indices=None,
):
    """One Adagrad-SWAP update of `variable` (SPEC sections 1 and 2).

    Args:
        variable, accumulator, power: The variable and its two slots
            (variables or resource handles).
        gradient: A dense gradient, a `tf.IndexedSlices`, or the rows of a
            sparse gradient when `indices` is given.
        rate: This step's learning rate in the variable's dtype
            (`step_rate`).
        step: The 1-based step number of this update (int64).
        settings: The `SwapSettings`.
        staleness: This step's `Staleness` (its `drop` decides), or `None`.
        indices: Row indices of a sparse `gradient` given as its rows.

    Returns:
        The update op (graph mode), `None` eagerly. A dropped step (its
        `staleness.drop` is true) writes no variable, accumulator or power.
    """
    if isinstance(gradient, tf.IndexedSlices):
        gradient, indices = gradient.values, gradient.indices
    hyper = dict(
        decay_rate=settings.decay_rate,
        decay_period=settings.decay_period,
        accumulator_floor=settings.floor,
        epsilon=settings.epsilon,
        decay_mode=settings.decay_mode,
        epsilon_placement=settings.epsilon_placement,
        use_locking=settings.use_locking,
    )
    state = (variable, accumulator, power)

    def update():
        if indices is None:
            return ops.resource_apply_adagrad_swap(
                *state, rate, gradient, step, **hyper
            )
        return ops.resource_sparse_apply_adagrad_swap(
            *state, rate, gradient, indices, step, **hyper
        )

    if staleness is None or settings.max_staleness is None:
        return update()

    def applied():
        # An eager update returns None: control_dependencies is a no-op then.
        with tf.control_dependencies([update()]):
            return tf.constant(True)

    return tf.cond(staleness.drop, lambda: tf.constant(False), applied)


def count_dropped(counter, staleness: Staleness, after=()):
    """Adds 1 to `counter` if the step is dropped (after the ops `after`);
    returns the op (graph mode)."""
    with tf.control_dependencies(list(after)):
        return tf.cond(
            staleness.drop,
            lambda: tf.identity(counter.assign_add(1)),
            lambda: tf.identity(counter),
        )
