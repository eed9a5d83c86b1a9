"""The update rules: what each adds to the SWAP step (its slots, their
initial values, its hyper-parameters and its op). Adagrad-SWAP is SPEC
section 1, FTRL-SWAP section 4."""

from __future__ import annotations

import abc
import math
from typing import NamedTuple

import tensorflow as tf

from tf_swap import ops
from tf_swap.core.settings import SwapSettings

EPSILON_PLACEMENTS = ("after_sqrt", "inside_sqrt")


class SlotSpec(NamedTuple):
    """A slot shaped like its variable.

    Attributes:
        key: The rule's name for it (front ends map it to their framework's
            slot name).
        initial_value: Its constant initial value.
    """

    key: str
    initial_value: float


def _constant(value, dtype) -> tf.Tensor:
    # Python numbers convert straight to the dtype (0.1 stays the nearest
    # float64 to 0.1 for float64 variables, not a float32 widened).
    return tf.convert_to_tensor(value, dtype=dtype)


class UpdateRule(abc.ABC):
    """One update rule of the core: its slots and its op.

    Subclasses set `slots` (every one shaped like the variable; the
    per-row int64 `power` is the core's) and `initial_accumulator_value`
    (the default accumulator floor), and whether staleness scales the
    learning rate (`scales_learning_rate`) or is passed to the op.
    """

    slots: tuple[SlotSpec, ...] = ()
    initial_accumulator_value: float = 0.1
    scales_learning_rate: bool = True

    @abc.abstractmethod
    def constants(self, dtype, settings: SwapSettings) -> dict:
        """The op's constant inputs for variables of `dtype`, as tensors
        (made once per apply and dtype by the core)."""

    @abc.abstractmethod
    def update(
        self,
        variable,
        slots,
        power,
        gradient,
        indices,
        step,
        rate,
        scale,
        constants,
        settings: SwapSettings,
    ):
        """Runs the op: dense when `indices` is None, else sparse.

        Args:
            variable, slots, power: The variable, its slots in `self.slots`
                order, its int64 `power`.
            gradient: Dense gradient, or the gradient rows of `indices`.
            step: int64 1-based number of this update.
            rate: This step's learning rate in the variable's dtype (scaled
                by the staleness when `scales_learning_rate`).
            scale: The staleness scale in the variable's dtype (when it is
                not folded into `rate`).
            constants: From `constants()`.

        Returns:
            The op (graph mode), `None` eagerly.
        """

    @property
    def slot_init(self) -> tuple[float, ...]:
        """Each slot's initial value, in `slots` order (what a dynamic
        table's new entries start with)."""
        return tuple(spec.initial_value for spec in self.slots)

    @abc.abstractmethod
    def update_table(
        self, table, gradient, ids, step, rate, scale, constants, settings
    ):
        """Runs the rule's table op on the entries of `ids` of a
        `tf_swap.DynamicTable`, gradient rows `gradient`; other arguments
        as in `update`. Returns the ops (graph mode)."""


class AdagradSwapRule(UpdateRule):
    """Adagrad-SWAP (SPEC section 1): one `accumulator` slot.

    Args:
        initial_accumulator_value: Starting accumulator, `> 0`.
        epsilon: Denominator guard, finite and `>= 0`.
        epsilon_placement: `"after_sqrt"` (TensorFlow's ops, tf_keras and
            v1 Adagrad) or `"inside_sqrt"` (Keras 3's Adagrad).
    """

    scales_learning_rate = True

    def __init__(
        self,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        epsilon_placement: str = "after_sqrt",
    ):
        if not initial_accumulator_value > 0.0:
            raise ValueError(
                "initial_accumulator_value must be positive, got "
                f"{initial_accumulator_value}"
            )
        if not (math.isfinite(epsilon) and epsilon >= 0.0):
            raise ValueError(f"epsilon must be finite and >= 0, got {epsilon}")
        if epsilon_placement not in EPSILON_PLACEMENTS:
            raise ValueError(
                f"epsilon_placement must be one of {EPSILON_PLACEMENTS}, got "
                f"{epsilon_placement!r}"
            )
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon
        self.epsilon_placement = epsilon_placement
        self.slots = (SlotSpec("accumulator", initial_accumulator_value),)

    def constants(self, dtype, settings):
        return dict(
            epsilon=_constant(self.epsilon, dtype),
            decay_rate=_constant(settings.decay_rate, dtype),
            accumulator_floor=_constant(
                settings.floor(self.initial_accumulator_value), dtype
            ),
            decay_period=_constant(settings.decay_period, tf.int64),
        )

    def update(
        self,
        variable,
        slots,
        power,
        gradient,
        indices,
        step,
        rate,
        scale,
        constants,
        settings,
    ):
        (accumulator,) = slots
        kwargs = dict(
            decay_mode=settings.decay_mode,
            epsilon_placement=self.epsilon_placement,
            use_locking=settings.use_locking,
            **constants,
        )
        if indices is None:
            return ops.resource_apply_adagrad_swap(
                variable, accumulator, power, rate, gradient, step, **kwargs
            )
        return ops.resource_sparse_apply_adagrad_swap(
            variable, accumulator, power, rate, gradient, indices, step, **kwargs
        )

    def update_table(
        self, table, gradient, ids, step, rate, scale, constants, settings
    ):
        return table.apply(
            ops.dynamic_table_apply_adagrad_swap,
            gradient,
            ids,
            lr=rate,
            step=step,
            decay_mode=settings.decay_mode,
            epsilon_placement=self.epsilon_placement,
            **constants,
        )


class FtrlSwapRule(UpdateRule):
    """FTRL-SWAP (SPEC section 4): `accumulator` (`n`) and `linear` (`z`)
    slots; the staleness scale multiplies the gradient's contribution to
    `z` inside the op (scaling the learning rate would shrink the weight).

    Args (Keras' `Ftrl` names):
        learning_rate_power: `<= 0` (0: a fixed learning rate).
        initial_accumulator_value: Starting `n`, `>= 0`.
        l1_regularization_strength, l2_regularization_strength,
        l2_shrinkage_regularization_strength, beta: `>= 0`.
        messages: Whose wording a bad argument's `ValueError` takes:
            `"keras"` (Keras 3 and tf_keras `Ftrl`) or `"v1"`
            (`tf.compat.v1.train.FtrlOptimizer`).
    """

    scales_learning_rate = False

    def __init__(
        self,
        learning_rate_power: float = -0.5,
        initial_accumulator_value: float = 0.1,
        l1_regularization_strength: float = 0.0,
        l2_regularization_strength: float = 0.0,
        l2_shrinkage_regularization_strength: float = 0.0,
        beta: float = 0.0,
        messages: str = "keras",
    ):
        for name, value, sign in (
            ("initial_accumulator_value", initial_accumulator_value, "positive"),
            ("learning_rate_power", -learning_rate_power, "negative"),
            ("l1_regularization_strength", l1_regularization_strength, "positive"),
            ("l2_regularization_strength", l2_regularization_strength, "positive"),
            (
                "l2_shrinkage_regularization_strength",
                l2_shrinkage_regularization_strength,
                "positive",
            ),
            ("beta", beta, "positive"),
        ):
            if value < 0.0:
                shown = -value if name == "learning_rate_power" else value
                if messages == "v1":
                    raise ValueError(f"{name} {shown:f} needs to be {sign} or zero")
                raise ValueError(
                    f"`{name}` needs to be {sign} or zero. Received: {name}={shown}."
                )
        self.learning_rate_power = learning_rate_power
        self.initial_accumulator_value = initial_accumulator_value
        self.l1 = l1_regularization_strength
        self.l2 = l2_regularization_strength
        self.l2_shrinkage = l2_shrinkage_regularization_strength
        self.beta = beta
        self.slots = (
            SlotSpec("accumulator", initial_accumulator_value),
            SlotSpec("linear", 0.0),
        )

    def constants(self, dtype, settings):
        return dict(
            l1=_constant(self.l1, dtype),
            l2=_constant(self.l2, dtype),
            l2_shrinkage=_constant(self.l2_shrinkage, dtype),
            lr_power=_constant(self.learning_rate_power, dtype),
            beta=_constant(self.beta, dtype),
            decay_rate=_constant(settings.decay_rate, dtype),
            accumulator_floor=_constant(
                settings.floor(self.initial_accumulator_value), dtype
            ),
            decay_period=_constant(settings.decay_period, tf.int64),
        )

    def update(
        self,
        variable,
        slots,
        power,
        gradient,
        indices,
        step,
        rate,
        scale,
        constants,
        settings,
    ):
        accumulator, linear = slots
        kwargs = dict(
            staleness_scale=scale,
            decay_mode=settings.decay_mode,
            use_locking=settings.use_locking,
            **constants,
        )
        if indices is None:
            return ops.resource_apply_ftrl_swap(
                variable,
                accumulator,
                linear,
                power,
                gradient,
                rate,
                step=step,
                **kwargs,
            )
        return ops.resource_sparse_apply_ftrl_swap(
            variable,
            accumulator,
            linear,
            power,
            gradient,
            indices,
            rate,
            step=step,
            **kwargs,
        )

    def update_table(
        self, table, gradient, ids, step, rate, scale, constants, settings
    ):
        return table.apply(
            ops.dynamic_table_apply_ftrl_swap,
            gradient,
            ids,
            lr=rate,
            step=step,
            staleness_scale=scale,
            decay_mode=settings.decay_mode,
            **constants,
        )
