"""`tf.compat.v1.train` Adagrad-SWAP optimizer."""

from tf_swap.compat.v1.swap_optimizer import SwapOptimizer
from tf_swap.core import AdagradSwapRule, SwapSettings


class AdagradSwapOptimizer(SwapOptimizer):
    """Adagrad whose accumulator is discounted once per sampling period.

    A drop-in for `tf.compat.v1.train.AdagradOptimizer` (same arguments,
    defaults, slot name `accumulator` and update), plus the SWAP discount:
    every `decay_period` updates each accumulator row is multiplied once by
    `decay_rate`, never below `accumulator_floor`. Works in graph mode
    (`tf.compat.v1.Session`, `MonitoredTrainingSession`) and eagerly, on
    partitioned variables (each part gets its slots on its own device).

    The update number is `global_step + 1`, read just before the update:
    pass `global_step` to `minimize`/`apply_gradients` so it advances (see
    `SwapOptimizer` for the step variable). Unlike TensorFlow's
    `AdagradOptimizer`, a Python-number learning rate is converted straight
    to each variable's dtype (float64 variables get the float64 nearest to
    it, not a float32 widened).

    Staleness normalization (SPEC section 2, off by default): a step that
    read the parameters at global step `t_read` and applies at `t_apply`
    (`tau = max(0, t_apply - t_read)`) uses
    `lr_eff = lr * max(1, tau) ** (-1 / staleness_exponent)`; only the step
    is scaled, the accumulator receives the raw `g * g`. With
    `max_staleness` set, a step with `tau > max_staleness` writes no
    variable, accumulator or `power` and increments the non-slot counter
    `dropped_updates` (the global step still advances, as TensorFlow's
    `apply_gradients` always advances it).

    Args:
        learning_rate: A `Tensor`, float or callable. The learning rate.
        initial_accumulator_value: Starting value of the accumulators,
            positive.
        use_locking: If `True` use locks for update operations.
        name: Name prefix for the operations created when applying
            gradients. Defaults to "AdagradSwap".
        decay_rate: Discount applied once per period, in `(0, 1]`.
        decay_period: Updates per period, a whole number `>= 1`.
        accumulator_floor: Lower bound of a discounted accumulator, `>= 0`;
            `None` uses `initial_accumulator_value`.
        decay_mode: `"exact"` or `"once_per_update"` (DeepRec's
            `AdagradDecayOptimizer`).
        global_step: The step variable to read (see above).
        staleness_exponent: `k` of the staleness scale, `> 0`; `None` (the
            default) or `inf` disables the scaling.
        max_staleness: Drop steps staler than this whole number of global
            steps; `None` (the default) drops nothing.
    """

    def __init__(
        self,
        learning_rate,
        initial_accumulator_value=0.1,
        use_locking=False,
        name="AdagradSwap",
        *,
        decay_rate=0.8,
        decay_period=14_000_000,
        accumulator_floor=None,
        decay_mode="exact",
        global_step=None,
        staleness_exponent=None,
        max_staleness=None,
    ):
        super().__init__(
            AdagradSwapRule(initial_accumulator_value, 0.0, "after_sqrt"),
            SwapSettings(
                decay_rate=decay_rate,
                decay_period=decay_period,
                accumulator_floor=accumulator_floor,
                decay_mode=decay_mode,
                staleness_exponent=staleness_exponent,
                max_staleness=max_staleness,
                use_locking=use_locking,
            ),
            learning_rate,
            use_locking,
            name,
            global_step,
            slot_names={"accumulator": ("accumulator", None)},
        )
        self._initial_accumulator_value = initial_accumulator_value
