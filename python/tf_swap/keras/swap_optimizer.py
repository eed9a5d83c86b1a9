"""What every Keras 3 tf_swap optimizer shares: the framework's hooks
(`build`, `apply`, `update_step`, config) around the optimizer core."""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_swap.core import SwapCore, SwapSettings, UpdateRule
from tf_swap.table_gradients import gradient_slot_owner

# The arguments of Keras 3's optimizer base class, as every Keras optimizer
# documents them.
BASE_ARGUMENTS_DOC = """name: String. The name to use for momentum accumulator weights
            created by the optimizer.
        weight_decay: Float. If set, weight decay is applied.
        clipnorm: Float. If set, the gradient of each weight is individually
            clipped so that its norm is no higher than this value.
        clipvalue: Float. If set, the gradient of each weight is clipped to
            be no higher than this value.
        global_clipnorm: Float. If set, the gradient of all weights is
            clipped so that their global norm is no higher than this value.
        use_ema: Boolean, defaults to `False`. If `True`, exponential moving
            average (EMA) is applied.
        ema_momentum: Float, defaults to 0.99. Only used if `use_ema=True`.
        ema_overwrite_frequency: Int or None, defaults to None. Every
            `ema_overwrite_frequency` steps the model variables are
            overwritten with their moving average.
        loss_scale_factor: Float or `None`. If a float, the scale factor is
            multiplied with the loss before computing gradients, and the
            inverse of the scale factor is multiplied with the gradients
            before updating variables.
        gradient_accumulation_steps: Int or `None`. If an int, model and
            optimizer variables are updated every this many steps, with the
            mean of the gradients since the last update."""

SWAP_ARGUMENTS_DOC = """decay_rate: Discount applied once per period, in `(0, 1]`.
            Defaults to `0.8`.
        decay_period: Steps per period, a whole number `>= 1`. Defaults to
            `14_000_000`.
        accumulator_floor: Lower bound of a discounted accumulator, `>= 0`;
            `None` (the default) uses `initial_accumulator_value`.
        decay_mode: `"exact"` (default) or `"once_per_update"` (DeepRec's
            `AdagradDecayOptimizer`).
        staleness_exponent: `k` of the staleness scale, `> 0`; `None` (the
            default) or `inf` disables it. SPEC's reference is 2.
        max_staleness: Drop steps staler than this whole number of global
            steps; `None` (the default) drops nothing."""


def document(cls):
    """Fills `{{base_optimizer_keyword_args}}` and `{{swap_keyword_args}}`
    in a tf_swap optimizer's own docstring."""
    cls.__doc__ = cls.__doc__.replace(
        "{{base_optimizer_keyword_args}}", BASE_ARGUMENTS_DOC
    ).replace("{{swap_keyword_args}}", SWAP_ARGUMENTS_DOC)
    return cls


def _cast(gradient, dtype):
    """The gradient in the variable's dtype, as Keras 3's update steps cast
    it (the ops refuse other dtypes)."""
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(
            tf.cast(gradient.values, dtype), gradient.indices, gradient.dense_shape
        )
    return tf.cast(gradient, dtype)


def _tf_variable(variable):
    return variable.value if isinstance(variable, keras.Variable) else variable


class SwapOptimizer(keras.optimizers.Optimizer):
    """A Keras 3 optimizer running a `tf_swap.core` rule.

    The step SWAP counts is `swap_step`, an int64 variable of the
    optimizer's own advanced with one atomic `assign_add` per apply:
    Keras advances `iterations` with a read and a separate write, which
    loses increments when several workers apply to one parameter server at
    once. With one worker (or `model.fit`) the two are equal. `t_read` is
    recorded by `read_step()` before the forward pass; `t_apply` is read in
    `apply` after the gradients exist. TensorFlow backend only.
    """

    def __init__(self, rule: UpdateRule, settings: SwapSettings, **kwargs):
        if keras.backend.backend() != "tensorflow":
            raise ValueError(
                f"{type(self).__name__} runs tf_swap's TensorFlow ops and needs "
                f"the tensorflow backend, not {keras.backend.backend()!r}."
            )
        super().__init__(**kwargs)
        self._core = SwapCore(rule, settings)
        self._state = None
        # Made with the optimizer, as Keras makes `iterations`.
        self._swap_step = self.add_variable(
            shape=(),
            initializer="zeros",
            dtype="int64",
            aggregation="only_first_replica",
            name="swap_step",
        )

    @property
    def uses_staleness(self) -> bool:
        """Whether steps are scaled or dropped by their staleness."""
        return self._core.uses_staleness

    @property
    def swap_step(self):
        """The int64 step SWAP counts (see the class docstring)."""
        return self._swap_step

    @property
    def dropped_updates(self):
        """Steps dropped for staleness: an int64 variable when
        `max_staleness` is set and the optimizer is built, else 0."""
        if self._core.settings.max_staleness is None or not self.built:
            return tf.constant(0, tf.int64)
        return self._dropped_updates

    def read_step(self):
        """Reads `swap_step` as this training step's `t_read`.

        Call it before the forward pass (and run the forward pass under
        `tf.control_dependencies([t_read])`); the next `apply` in the same
        trace uses it.

        Returns:
            The int64 scalar tensor `t_read`.
        """
        return self._core.read_step(_tf_variable(self._swap_step))

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        rule = self._core.rule
        self._slots = [
            self.add_optimizer_variables(
                var_list,
                spec.key,
                initializer=keras.initializers.Constant(spec.initial_value),
            )
            for spec in rule.slots
        ]
        self._powers = [self._add_power(v) for v in var_list]
        if self._core.settings.max_staleness is not None:
            self._dropped_updates = self.add_variable(
                shape=(), initializer="zeros", dtype="int64", name="dropped_updates"
            )
        for variable in var_list:
            layer = gradient_slot_owner(variable)
            if layer is not None:
                layer.attach(self._core)

    def _add_power(self, variable):
        """One int64 per row of `variable`, placed with it, named as Keras
        names optimizer variables."""
        name = getattr(variable, "path", None) or str(variable.name)
        name = name.replace("/", "_").replace(":", "_")
        strategy = tf.distribute.get_strategy()
        with strategy.extended.colocate_vars_with(_tf_variable(variable)):
            return self.add_variable(
                shape=tuple(variable.shape[:1]),
                initializer="zeros",
                dtype="int64",
                name=f"{name}_power",
            )

    def apply_gradients(self, grads_and_vars, read_step=None):
        """As Keras' `apply_gradients`; `read_step` is this step's `t_read`
        (default: the one `read_step()` recorded, else none: `tau = 0`)."""
        grads, trainable_variables = zip(*grads_and_vars, strict=True)
        self.apply(grads, trainable_variables, read_step=read_step)
        return self._iterations

    def apply(self, grads, trainable_variables=None, read_step=None):
        """As Keras' `apply`, with the SWAP step; returns this step's
        staleness `tau` (int64; 0 without staleness normalization)."""
        if not self.built and trainable_variables is not None:
            with tf.name_scope(self.name):
                self.build(list(trainable_variables))
        swap_step = _tf_variable(self._swap_step)
        self._state = self._core.begin(swap_step, grads, read_step)
        try:
            super().apply(grads, trainable_variables)
        finally:
            state, self._state = self._state, None
        dropped = getattr(self, "_dropped_updates", None)
        _, tau = self._core.finish(
            state,
            dropped=None if dropped is None else _tf_variable(dropped),
            own_step=swap_step,
        )
        return tau

    def update_step(self, gradient, variable, learning_rate):
        """Update step given gradient and the associated model variable."""
        layer = gradient_slot_owner(variable)
        if layer is not None:  # a DynamicEmbedding's gradient slot
            self._core.update_table(self._state, layer.table, gradient, learning_rate)
            layer.trained(self._state.step)
            return
        index = self._get_variable_index(variable)
        self._core.update(
            self._state,
            variable,
            [slot[index] for slot in self._slots],
            self._powers[index],
            _cast(gradient, variable.dtype),
            learning_rate,
        )

    def get_config(self):
        config = super().get_config()
        settings = self._core.settings
        config.update(
            {
                "decay_rate": settings.decay_rate,
                "decay_period": settings.decay_period,
                "accumulator_floor": settings.accumulator_floor,
                "decay_mode": settings.decay_mode,
                "staleness_exponent": settings.staleness_exponent,
                "max_staleness": settings.max_staleness,
            }
        )
        return config
