"""Keras 3 FTRL-SWAP optimizer."""

import keras

from tf_swap.core import FtrlSwapRule, SwapSettings
from tf_swap.keras.swap_optimizer import SwapOptimizer, document


@keras.saving.register_keras_serializable(package="tf_swap")
@document
class FtrlSwap(SwapOptimizer):
    """FTRL-proximal whose accumulator is discounted once per sampling period.

    A drop-in for `keras.optimizers.Ftrl` (McMahan et al., 2013): same
    arguments, defaults, slots (`accumulator` `n`, `linear` `z`) and
    update, plus the SWAP discount (SPEC section 4): every `decay_period`
    steps each row's `n` is multiplied once by `decay_rate` (never below
    `accumulator_floor`) and its `z` re-anchored so that no weight changes
    at the discount; only the later steps grow. With `decay_rate=1` it is
    `keras.optimizers.Ftrl` (within rounding: the op follows TensorFlow's
    `ResourceApplyFtrlV2`, bit for bit). L1 keeps most weights of a wide,
    sparse model exactly zero.

    Update of one row with gradient `g` (`p = learning_rate_power`,
    `l2 += beta / (2 lr)`, `g_s = g + 2 * l2_shrinkage * w`):

        n_new = n + g * g
        z += s * g_s - (n_new ** -p - n ** -p) / lr * w
        w  = (clip(z, -l1, l1) - z) / (n_new ** -p / lr + 2 * l2)

    where `s` is the staleness scale `max(1, tau) ** (-1 /
    staleness_exponent)` (1 by default): staleness scales the gradient's
    contribution to `z`, never `n` nor the learning rate, so with `l1 = l2
    = 0` a stale step moves `w` by exactly `s` times the fresh one. Each
    variable also gets an int64 `power` slot, one entry per row; `t_read`
    is recorded as for `AdagradSwap` (`read_step()`). Repeated rows of a
    sparse gradient are summed first. The gradient is cast to the
    variable's dtype.

    Args:
        learning_rate: A float, a
            `keras.optimizers.schedules.LearningRateSchedule` instance, or
            a callable that takes no arguments and returns the actual value to
            use. The learning rate. Defaults to `0.001`.
        learning_rate_power: A float value, must be less or equal to zero.
            Controls how the learning rate decreases during training. Use
            zero for a fixed learning rate. Defaults to `-0.5`.
        initial_accumulator_value: The starting value for accumulators. Only
            zero or positive values are allowed. Defaults to `0.1`.
        l1_regularization_strength: A float value, must be greater than or
            equal to zero. Defaults to `0.0`.
        l2_regularization_strength: A float value, must be greater than or
            equal to zero. Defaults to `0.0`.
        l2_shrinkage_regularization_strength: A float value, must be greater
            than or equal to zero: a magnitude penalty (on the gradient),
            where `l2_regularization_strength` is a stabilization penalty.
            When the gradient is sparse, only the active rows shrink.
        beta: A float value, the beta of the paper. Defaults to `0.0`.
        {{swap_keyword_args}}
        {{base_optimizer_keyword_args}}

    Reference:
    - [McMahan et al., 2013](
        https://research.google.com/pubs/archive/41159.pdf).
    """

    def __init__(
        self,
        learning_rate=0.001,
        learning_rate_power=-0.5,
        initial_accumulator_value=0.1,
        l1_regularization_strength=0.0,
        l2_regularization_strength=0.0,
        l2_shrinkage_regularization_strength=0.0,
        beta=0.0,
        decay_rate=0.8,
        decay_period=14_000_000,
        accumulator_floor=None,
        decay_mode="exact",
        staleness_exponent=None,
        max_staleness=None,
        weight_decay=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        use_ema=False,
        ema_momentum=0.99,
        ema_overwrite_frequency=None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        name=None,
        **kwargs,
    ):
        super().__init__(
            FtrlSwapRule(
                learning_rate_power,
                initial_accumulator_value,
                l1_regularization_strength,
                l2_regularization_strength,
                l2_shrinkage_regularization_strength,
                beta,
            ),
            SwapSettings(
                decay_rate=decay_rate,
                decay_period=decay_period,
                accumulator_floor=accumulator_floor,
                decay_mode=decay_mode,
                staleness_exponent=staleness_exponent,
                max_staleness=max_staleness,
            ),
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            name=name,
            **kwargs,
        )
        self.learning_rate_power = learning_rate_power
        self.initial_accumulator_value = initial_accumulator_value
        self.l1_regularization_strength = l1_regularization_strength
        self.l2_regularization_strength = l2_regularization_strength
        self.l2_shrinkage_regularization_strength = l2_shrinkage_regularization_strength
        self.beta = beta

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "learning_rate_power": self.learning_rate_power,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1_regularization_strength,
                "l2_regularization_strength": self.l2_regularization_strength,
                "l2_shrinkage_regularization_strength": (
                    self.l2_shrinkage_regularization_strength
                ),
                "beta": self.beta,
            }
        )
        return config
