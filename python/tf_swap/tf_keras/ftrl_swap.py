"""tf_keras (Keras 2) FTRL-SWAP optimizer, a legacy optimizer."""

import tf_keras

from tf_swap.core import FtrlSwapRule, SwapSettings
from tf_swap.tf_keras.swap_optimizer import SwapOptimizer


@tf_keras.saving.register_keras_serializable(package="tf_swap")
class FtrlSwap(SwapOptimizer):
    """FTRL-proximal whose accumulator is discounted once per sampling period.

    A drop-in for `tf_keras.optimizers.legacy.Ftrl`: same arguments,
    defaults, name, slot names (`accumulator`, `linear`) and update
    (TensorFlow's `ResourceApplyFtrlV2`, bit for bit at `decay_rate=1`),
    plus the SWAP discount of SPEC section 4: every `decay_period` steps a
    row's accumulator is multiplied once by `decay_rate` (never below
    `accumulator_floor`) and its linear term re-anchored so that its weight
    is unchanged. The update number is `iterations + 1`; each variable also
    gets an int64 `power` slot, one entry per row, placed with it (sharded
    tables: per shard, as `tf_swap.tf_keras.AdagradSwap`).

    Staleness normalization (off by default): a step of staleness `tau`
    (recorded as for `AdagradSwap`) scales the gradient's contribution to
    the linear term by `max(1, tau) ** (-1 / staleness_exponent)`, never
    the accumulator nor the learning rate; `max_staleness` drops staler
    steps and `dropped_updates` counts them.

    Args:
        learning_rate: A float, a `LearningRateSchedule` or a callable.
            Defaults to `0.001`.
        learning_rate_power: `<= 0`; 0 is a fixed learning rate. Defaults
            to `-0.5`.
        initial_accumulator_value: Starting value of the accumulators,
            `>= 0`. Defaults to `0.1`.
        l1_regularization_strength: `>= 0`. Defaults to `0.0`.
        l2_regularization_strength: `>= 0`. Defaults to `0.0`.
        name: Defaults to `"Ftrl"`, legacy Ftrl's.
        l2_shrinkage_regularization_strength: `>= 0`, a magnitude penalty on
            the gradient. Defaults to `0.0`.
        beta: `>= 0`, added to the L2 strength as `beta / (2 lr)`. Defaults
            to `0.0`.
        decay_rate, decay_period, accumulator_floor, decay_mode,
        staleness_exponent, max_staleness: As in
            `tf_swap.tf_keras.AdagradSwap`.
        **kwargs: `clipvalue`, `clipnorm`, `global_clipnorm`, `decay`.
    """

    def __init__(
        self,
        learning_rate=0.001,
        learning_rate_power=-0.5,
        initial_accumulator_value=0.1,
        l1_regularization_strength=0.0,
        l2_regularization_strength=0.0,
        name="Ftrl",
        l2_shrinkage_regularization_strength=0.0,
        beta=0.0,
        decay_rate=0.8,
        decay_period=14_000_000,
        accumulator_floor=None,
        decay_mode="exact",
        staleness_exponent=None,
        max_staleness=None,
        **kwargs,
    ):
        rule = FtrlSwapRule(
            learning_rate_power,
            initial_accumulator_value,
            l1_regularization_strength,
            l2_regularization_strength,
            l2_shrinkage_regularization_strength,
            beta,
        )
        super().__init__(
            rule,
            SwapSettings(
                decay_rate=decay_rate,
                decay_period=decay_period,
                accumulator_floor=accumulator_floor,
                decay_mode=decay_mode,
                staleness_exponent=staleness_exponent,
                max_staleness=max_staleness,
            ),
            name,
            learning_rate,
            **kwargs,
        )

    def get_config(self):
        config = super().get_config()
        rule = self._core.rule
        config.update(
            {
                "initial_accumulator_value": rule.initial_accumulator_value,
                "learning_rate_power": rule.learning_rate_power,
                "l1_regularization_strength": rule.l1,
                "l2_regularization_strength": rule.l2,
                "beta": rule.beta,
                "l2_shrinkage_regularization_strength": rule.l2_shrinkage,
            }
        )
        return config
