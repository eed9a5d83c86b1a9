"""tf_keras (Keras 2) Adagrad-SWAP optimizer, a legacy optimizer."""

import tf_keras

from tf_swap.core import AdagradSwapRule, SwapSettings
from tf_swap.tf_keras.swap_optimizer import SwapOptimizer


@tf_keras.saving.register_keras_serializable(package="tf_swap")
class AdagradSwap(SwapOptimizer):
    """Adagrad whose accumulator is discounted once per sampling period.

    A drop-in for `tf_keras.optimizers.legacy.Adagrad`: same arguments,
    defaults, name, slot name `accumulator` and update
    (`var -= lr * g / (sqrt(accumulator) + epsilon)`, TensorFlow's
    `ResourceApplyAdagradV2`), plus the SWAP discount: every `decay_period`
    steps each accumulator row is multiplied once by `decay_rate` (never
    below `accumulator_floor`). With `decay_rate=1` it is legacy Adagrad.

    The update number is `iterations + 1`. Each variable gets an
    `accumulator` slot and an int64 `power` slot, one entry per row, placed
    with the variable. Under `tf.distribute.ParameterServerStrategy` with a
    `variable_partitioner` a table is a `ShardedVariable`; every shard gets
    its own slots on its own parameter server, and `get_slot(table,
    "power")` is a `ShardedVariable` of them, so checkpoints restore into
    another number of shards. Sparse gradients (`tf.IndexedSlices`, e.g.
    from an `Embedding`) update only their rows; repeated indices are summed
    by the op (in order of position).

    Staleness normalization (SPEC section 2, off by default): a step that
    read the parameters at `t_read` and applies at `t_apply` (both values of
    `iterations`; `tau = max(0, t_apply - t_read)`) uses
    `lr * max(1, tau) ** (-1 / staleness_exponent)`; only the step is
    scaled. With `max_staleness` set, a staler step writes nothing and
    `dropped_updates` counts it. `t_apply` is read in `apply_gradients`
    after the gradients exist; `t_read` is recorded by `read_step()` before
    the forward pass: build the model as a `tf_swap.tf_keras.Model` and
    `model.fit` does it, or call `read_step()` in a custom loop, or pass
    `apply_gradients(..., read_step=t)`. Without a recorded read, `tau = 0`.

    Args:
        learning_rate: A float, a `LearningRateSchedule` or a callable, as in
            legacy Adagrad. Defaults to `0.001`.
        initial_accumulator_value: Starting value of the accumulators,
            positive. Defaults to `0.1`.
        epsilon: Added to the square root of the accumulator, as in legacy
            Adagrad. Defaults to `1e-7`.
        name: Name prefix of the optimizer's ops. Defaults to `"Adagrad"`,
            legacy Adagrad's, so that checkpoints keep their names.
        decay_rate: Discount applied once per period, in `(0, 1]`.
        decay_period: Steps per period, a whole number `>= 1`.
        accumulator_floor: Lower bound of a discounted accumulator, `>= 0`;
            `None` uses `initial_accumulator_value`.
        decay_mode: `"exact"` or `"once_per_update"` (DeepRec's
            `AdagradDecayOptimizer`).
        staleness_exponent: `k`, `> 0`; `None` (the default) or `inf`
            disables the scale.
        max_staleness: Drop steps staler than this whole number of steps;
            `None` (the default) drops nothing.
        **kwargs: `clipvalue`, `clipnorm`, `global_clipnorm`, `decay`, as in
            legacy Adagrad.
    """

    def __init__(
        self,
        learning_rate=0.001,
        initial_accumulator_value=0.1,
        epsilon=1e-7,
        name="Adagrad",
        decay_rate=0.8,
        decay_period=14_000_000,
        accumulator_floor=None,
        decay_mode="exact",
        staleness_exponent=None,
        max_staleness=None,
        **kwargs,
    ):
        if epsilon is None:
            epsilon = tf_keras.backend.epsilon()
        super().__init__(
            AdagradSwapRule(initial_accumulator_value, epsilon, "after_sqrt"),
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
        self._initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon

    def set_weights(self, weights):
        params = self.weights
        # As legacy Adagrad: a weight list saved without `iterations` first.
        if len(params) == len(weights) + 1:
            weights = [0, *weights]
        super().set_weights(weights)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "initial_accumulator_value": self._initial_accumulator_value,
                "epsilon": self.epsilon,
            }
        )
        return config
