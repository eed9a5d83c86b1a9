"""Keras 3 Adagrad-SWAP optimizer."""

import keras
import tensorflow as tf

from tf_swap import ops
from tf_swap._hyper import check_adagrad_swap_args


@keras.saving.register_keras_serializable(package="tf_swap")
class AdagradSwap(keras.optimizers.Optimizer):
    """Adagrad whose accumulator is discounted once per sampling period.

    A drop-in for `keras.optimizers.Adagrad`: same arguments, defaults and
    update (`variable -= lr * g / sqrt(accumulator + epsilon)`), plus the
    SWAP discount: every `decay_period` steps each accumulator row is
    multiplied once by `decay_rate` (never below `accumulator_floor`), so
    long incremental training keeps learning from new data. With
    `decay_rate=1` it reproduces `keras.optimizers.Adagrad` bit for bit.

    The update number is `iterations + 1`. A row untouched for `m` periods
    is discounted by `decay_rate ** m` when it is next updated
    (`decay_mode="exact"`), or by `decay_rate` once per update
    (`"once_per_update"`, DeepRec's `AdagradDecayOptimizer`). Sparse
    gradients (`tf.IndexedSlices`, e.g. from an `Embedding`) update only
    their rows; repeated indices are summed first. Each variable gets an
    `accumulator` slot like Adagrad's and an int64 `power` slot with one
    entry per row. TensorFlow backend only.

    Args:
        learning_rate: A float, a
            `keras.optimizers.schedules.LearningRateSchedule` instance, or
            a callable that takes no arguments and returns the actual value to
            use. The learning rate. Defaults to `0.001`.
        initial_accumulator_value: Starting value of the accumulators,
            positive. Defaults to `0.1`.
        epsilon: Small floating point value for maintaining numerical
            stability, added inside the square root as in Keras' Adagrad.
        decay_rate: Discount applied once per period, in `(0, 1]`.
            Defaults to `0.8`.
        decay_period: Steps per period, a whole number `>= 1`. Defaults to
            `14_000_000`.
        accumulator_floor: Lower bound of a discounted accumulator, `>= 0`;
            `None` (the default) uses `initial_accumulator_value`.
        decay_mode: `"exact"` (default) or `"once_per_update"`.
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
        if keras.backend.backend() != "tensorflow":
            raise ValueError(
                "AdagradSwap runs tf_swap's TensorFlow ops and needs the "
                f"tensorflow backend, not {keras.backend.backend()!r}."
            )
        check_adagrad_swap_args(
            initial_accumulator_value,
            decay_rate,
            decay_period,
            accumulator_floor,
            decay_mode,
        )
        super().__init__(
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
        self.decay_rate = decay_rate
        self.decay_period = int(decay_period)
        self.accumulator_floor = accumulator_floor
        self.decay_mode = decay_mode

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._accumulators = self.add_optimizer_variables(
            var_list,
            "accumulator",
            initializer=keras.initializers.Constant(self.initial_accumulator_value),
        )
        self._powers = [self._add_power(v) for v in var_list]

    def _add_power(self, variable):
        """One int64 per row of `variable`, placed with it."""
        reference = variable.value if isinstance(variable, keras.Variable) else variable
        name = f"{variable.path.replace('/', '_')}_power"
        with self._distribution_strategy.extended.colocate_vars_with(reference):
            return self.add_variable(
                shape=tuple(variable.shape[:1]),
                initializer="zeros",
                dtype="int64",
                name=name,
            )

    def update_step(self, gradient, variable, learning_rate):
        """Update step given gradient and the associated model variable."""
        index = self._get_variable_index(variable)
        floor = self.accumulator_floor
        hyper = dict(
            decay_rate=self.decay_rate,
            decay_period=self.decay_period,
            accumulator_floor=(
                self.initial_accumulator_value if floor is None else floor
            ),
            epsilon=self.epsilon,
            decay_mode=self.decay_mode,
            epsilon_placement="inside_sqrt",
        )
        lr = tf.cast(learning_rate, variable.dtype)
        step = tf.cast(self.iterations, tf.int64) + 1
        state = (variable, self._accumulators[index], self._powers[index])
        if isinstance(gradient, tf.IndexedSlices):
            ops.resource_sparse_apply_adagrad_swap(
                *state, lr, gradient.values, gradient.indices, step, **hyper
            )
        else:
            ops.resource_apply_adagrad_swap(*state, lr, gradient, step, **hyper)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon,
                "decay_rate": self.decay_rate,
                "decay_period": self.decay_period,
                "accumulator_floor": self.accumulator_floor,
                "decay_mode": self.decay_mode,
            }
        )
        return config


def _base_keyword_args():
    """Keras' shared optimizer argument docs, taken from the public Adagrad
    docstring (the template lives in keras.src, which we do not import)."""
    doc = keras.optimizers.Adagrad.__doc__ or ""
    start, end = doc.find("        name:"), doc.find("    Reference:")
    return doc[start:end].strip() if 0 <= start < end else ""


AdagradSwap.__doc__ = AdagradSwap.__doc__.replace(
    "{{base_optimizer_keyword_args}}", _base_keyword_args()
)
