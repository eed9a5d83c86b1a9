"""Keras 3 Adagrad-SWAP optimizer."""

import keras

from tf_swap.core import AdagradSwapRule, SwapSettings
from tf_swap.keras.swap_optimizer import SwapOptimizer, document


@keras.saving.register_keras_serializable(package="tf_swap")
@document
class AdagradSwap(SwapOptimizer):
    """Adagrad whose accumulator is discounted once per sampling period.

    A drop-in for `keras.optimizers.Adagrad`: same arguments, defaults and
    update (`variable -= lr * g / sqrt(accumulator + epsilon)`), plus the
    SWAP discount: every `decay_period` steps each accumulator row is
    multiplied once by `decay_rate` (never below `accumulator_floor`), so
    long incremental training keeps learning from new data. With
    `decay_rate=1` it computes `keras.optimizers.Adagrad`'s update bit for
    bit (sparse gradients: repeated rows summed first, as TensorFlow's
    sparse Adagrad does).

    A row untouched for `m` periods is discounted by `decay_rate ** m` when
    it is next updated (`decay_mode="exact"`), or by `decay_rate` once per
    update (`"once_per_update"`). Each variable gets an `accumulator` slot
    like Adagrad's and an int64 `power` slot with one entry per row. The
    gradient is cast to the variable's dtype, as Keras' Adagrad casts it.

    Staleness normalization (SPEC section 2, off by default): a step that
    read the parameters at `t_read` and applies at `t_apply` (values of
    `swap_step`; `tau = max(0, t_apply - t_read)`) uses

        lr_eff = lr * max(1, tau) ** (-1 / staleness_exponent)

    (only the step is scaled; the accumulator receives the raw `g * g`).
    With `max_staleness` set, a staler step writes no variable,
    accumulator or `power`, and `dropped_updates` counts it (`iterations`
    and `swap_step` still advance). Record `t_read` before the forward
    pass:

    ```python
    @tf.function
    def step_fn(x, y):
        t_read = optimizer.read_step()
        with tf.control_dependencies([t_read]):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        tau = optimizer.apply(grads, model.trainable_variables)
    ```

    or pass it: `apply_gradients(..., read_step=t_read)`. A step with no
    recorded `t_read` (e.g. Keras' synchronous `model.fit`) has `tau = 0`.

    Args:
        learning_rate: A float, a
            `keras.optimizers.schedules.LearningRateSchedule` instance, or
            a callable that takes no arguments and returns the actual value to
            use. The learning rate. Defaults to `0.001`.
        initial_accumulator_value: Starting value of the accumulators,
            positive. Defaults to `0.1`.
        epsilon: Small floating point value for maintaining numerical
            stability, added inside the square root as in Keras' Adagrad.
            Defaults to `1e-7`.
        {{swap_keyword_args}}
        {{base_optimizer_keyword_args}}

    Reference:
    - [Duchi et al., 2011](
        http://www.jmlr.org/papers/volume12/duchi11a/duchi11a.pdf).
    """

    def __init__(
        self,
        learning_rate=0.001,
        initial_accumulator_value=0.1,
        epsilon=1e-7,
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
        name="adagrad_swap",
        **kwargs,
    ):
        super().__init__(
            AdagradSwapRule(initial_accumulator_value, epsilon, "inside_sqrt"),
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
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon,
            }
        )
        return config
