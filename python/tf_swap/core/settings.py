"""The arguments every SWAP optimizer shares: the period discount (SPEC
sections 1 and 4) and staleness normalization (SPEC section 2)."""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import tensorflow as tf

DECAY_MODES = ("exact", "once_per_update")


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
    """The period discount and staleness normalization of an optimizer.

    Made once, by the optimizer's constructor: a value out of its domain
    raises `ValueError` naming the argument, so a typo fails when the
    optimizer is built. (The ops check their tensors again at run time,
    where values may come from anywhere.)

    Args:
        decay_rate: Discount per period, in `(0, 1]` (1: no discount).
        decay_period: Steps per period, a whole number `>= 1`.
        accumulator_floor: Lower bound of a discounted accumulator, finite
            and `>= 0`; `None` means the rule's initial accumulator value.
        decay_mode: `"exact"` or `"once_per_update"` (DeepRec's
            `AdagradDecayOptimizer`).
        staleness_exponent: `k`, `> 0`; `None` or `inf` disables the scale.
        max_staleness: Drop steps with `tau` above this whole number;
            `None` drops nothing.
        use_locking: Passed to the ops.
    """

    decay_rate: float = 0.8
    decay_period: int = 14_000_000
    accumulator_floor: float | None = None
    decay_mode: str = "exact"
    staleness_exponent: float | None = None
    max_staleness: int | None = None
    use_locking: bool = False

    def __post_init__(self):
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
    def scales(self) -> bool:
        """Whether a step is scaled by its staleness."""
        k = self.staleness_exponent
        return k is not None and math.isfinite(k)

    @property
    def uses_staleness(self) -> bool:
        """Whether steps are scaled or dropped by their staleness."""
        return self.scales or self.max_staleness is not None

    def floor(self, initial_accumulator_value: float) -> float:
        """The accumulator floor in effect for a rule's initial value."""
        if self.accumulator_floor is None:
            return initial_accumulator_value
        return self.accumulator_floor

    def staleness(self, t_read, t_apply) -> Staleness:
        """The `Staleness` terms of a step from two step tensors."""
        tau = tf.maximum(
            tf.cast(t_apply, tf.int64) - tf.cast(t_read, tf.int64),
            tf.constant(0, tf.int64),
        )
        if self.scales:
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
