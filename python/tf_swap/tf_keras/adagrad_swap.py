"""tf_keras (Keras 2) Adagrad-SWAP optimizer, a legacy optimizer."""

import functools

import tensorflow as tf
import tf_keras

from tf_swap import swap_step

_POWER = "power"
_ACCUMULATOR = "accumulator"


@tf_keras.saving.register_keras_serializable(package="tf_swap")
class AdagradSwap(tf_keras.optimizers.legacy.Optimizer):
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
    the forward pass. Under `model.fit`, wrap the model once with
    `tf_swap.tf_keras.record_read_step(model)`, which makes its
    `train_step` do that; in a custom loop call `read_step()` yourself, or
    pass `apply_gradients(..., read_step=t)`. Without a recorded read,
    `tau = 0`.

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

    _HAS_AGGREGATE_GRAD = True

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
        self._settings = swap_step.SwapSettings(
            initial_accumulator_value=initial_accumulator_value,
            decay_rate=decay_rate,
            decay_period=decay_period,
            accumulator_floor=accumulator_floor,
            decay_mode=decay_mode,
            epsilon=epsilon,
            epsilon_placement="after_sqrt",
            staleness_exponent=staleness_exponent,
            max_staleness=max_staleness,
        )
        super().__init__(name, **kwargs)
        self._set_hyper("learning_rate", kwargs.get("lr", learning_rate))
        self._set_hyper("decay", self._initial_decay)
        self._initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon
        self._pending_read_step = None
        self._staleness = None
        self._dropped = None
        self._omit_power = False

    @property
    def uses_staleness(self):
        """Whether steps are scaled or dropped by their staleness."""
        return self._settings.uses_staleness

    @property
    def dropped_updates(self):
        """Steps dropped for staleness: an int64 variable when
        `max_staleness` is set and the optimizer has applied, else 0."""
        if self._dropped is None:
            return tf.constant(0, tf.int64)
        return self._dropped

    def read_step(self):
        """Reads `iterations` as this step's `t_read`.

        Call it before the forward pass (and run the forward pass under
        `tf.control_dependencies([t_read])`); the next `apply_gradients` in
        the same trace uses it.

        Returns:
            The int64 scalar tensor `t_read`.
        """
        self._pending_read_step = swap_step.read_step(self.iterations)
        return self._pending_read_step

    def apply_gradients(
        self,
        grads_and_vars,
        name=None,
        experimental_aggregate_gradients=True,
        read_step=None,
    ):
        """As legacy `apply_gradients`; `read_step` is this step's `t_read`
        (default: the one `read_step()` recorded, else none: `tau = 0`)."""
        if read_step is None:
            read_step = self._pending_read_step
        self._pending_read_step = None
        if not self.uses_staleness:
            return super().apply_gradients(
                grads_and_vars, name, experimental_aggregate_gradients
            )
        grads_and_vars = list(grads_and_vars)
        t_apply = swap_step.apply_step(self.iterations, [g for g, _ in grads_and_vars])
        t_read = t_apply if read_step is None else read_step
        self._staleness = self._settings.staleness(t_read, t_apply)
        try:
            applied = super().apply_gradients(
                grads_and_vars, name, experimental_aggregate_gradients
            )
        finally:
            staleness, self._staleness = self._staleness, None
        if self._settings.max_staleness is None:
            return applied
        counted = swap_step.count_dropped(self._dropped, staleness, after=[applied])
        if tf.executing_eagerly() or tf.inside_function():
            return applied  # both run: eagerly, or by automatic dependencies
        return tf.group(applied, counted)

    def _create_slots(self, var_list):
        for var in var_list:
            self.add_slot(var, _ACCUMULATOR, self._accumulator_initializer(var))
            self.add_slot(var, _POWER)
        if self._settings.max_staleness is not None and self._dropped is None:
            self._dropped = self.add_weight(
                "dropped_updates",
                shape=[],
                dtype=tf.int64,
                trainable=False,
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )

    # A SavedModel revives an optimizer as tf_keras' RestoredOptimizer, which
    # gives every slot its variable's float dtype, so an int64 `power` slot
    # in a SavedModel makes it unloadable (and tf_keras restores no slots
    # from SavedModels anyway). SavedModels therefore leave `power` out;
    # checkpoints keep it. Each traversal of the object graph lists this
    # optimizer's children, saying which kind of save it is, before it
    # lists the slots (twice for a SavedModel).
    def _trackable_children(self, save_type="checkpoint", **kwargs):
        self._omit_power = save_type == "savedmodel"
        return super()._trackable_children(save_type, **kwargs)

    def get_slot_names(self):
        names = super().get_slot_names()
        if self._omit_power:
            return [name for name in names if name != _POWER]
        return names

    def _create_or_restore_slot_variable(
        self, slot_variable_position, slot_name, variable, slot_variable_shape=None
    ):
        # A checkpoint restored before the slots exist names a sharded
        # table's slots by the table, not by its shards: the base class
        # would make one full-size slot for the table, or wait for one that
        # never comes, and the shards' slots would keep their initial values
        # (as with legacy Adagrad). Making the shards' slots first lets the
        # restore reshard into them.
        if isinstance(variable, tf.__internal__.distribute.ShardedVariable):
            with self._distribution_strategy_scope():
                self._create_slots(variable.variables)
            self._create_slots_for_sharded_variables(variable.variables)
        return super()._create_or_restore_slot_variable(
            slot_variable_position, slot_name, variable, slot_variable_shape
        )

    def _create_slots_for_sharded_variables(self, var_list):
        self._omit_power = False
        super()._create_slots_for_sharded_variables(var_list)

    def _accumulator_initializer(self, var):
        return tf.compat.v1.constant_initializer(
            self._initial_accumulator_value, dtype=var.dtype.base_dtype
        )

    def add_slot(self, var, slot_name, initializer="zeros", shape=None):
        """As the base class; the `power` slot is int64 with one entry per
        row of `var` (the base class gives every slot `var`'s dtype)."""
        if slot_name != _POWER:
            return super().add_slot(var, slot_name, initializer, shape)
        if _POWER not in self._slot_names:
            self._slot_names.append(_POWER)
        # The accumulator's slot dictionary is `var`'s (the base class keys
        # it); checkpoint restores may ask for `power` first.
        accumulator = super().add_slot(
            var, _ACCUMULATOR, self._accumulator_initializer(var)
        )
        slots = next(
            d for d in self._slots.values() if d.get(_ACCUMULATOR) is accumulator
        )
        power = slots.get(_POWER)
        if power is not None:
            return power
        if isinstance(initializer, str) or callable(initializer):
            initial_value = functools.partial(
                tf_keras.initializers.get(initializer),
                shape=var.shape[:1] if shape is None else shape,
                dtype=tf.int64,
            )
        else:
            initial_value = initializer
        with self._distribution_strategy_scope():
            strategy = tf.distribute.get_strategy()
            with strategy.extended.colocate_vars_with(var):
                power = tf.Variable(
                    name=f"{var.name.split(':')[0]}/{_POWER}",
                    dtype=tf.int64,
                    trainable=False,
                    initial_value=initial_value,
                )
        tf_keras.__internal__.backend.track_variable(power)
        slots[_POWER] = power
        self._restore_slot_variable(
            slot_name=_POWER, variable=var, slot_variable=power
        )
        self._weights.append(power)
        return power

    def _prepare_local(self, var_device, var_dtype, apply_state):
        super()._prepare_local(var_device, var_dtype, apply_state)
        coefficients = apply_state[(var_device, var_dtype)]
        coefficients["step"] = tf.cast(self.iterations, tf.int64) + 1
        coefficients["rate"] = swap_step.step_rate(
            coefficients["lr_t"], var_dtype, self._settings, self._staleness
        )

    def _apply(self, grad, var, indices, apply_state):
        var_device, var_dtype = var.device, var.dtype.base_dtype
        coefficients = (apply_state or {}).get(
            (var_device, var_dtype)
        ) or self._fallback_apply_state(var_device, var_dtype)
        return swap_step.apply_swap(
            var,
            self.get_slot(var, _ACCUMULATOR),
            self.get_slot(var, _POWER),
            grad,
            coefficients["rate"],
            coefficients["step"],
            self._settings,
            self._staleness,
            indices=indices,
        )

    def _resource_apply_dense(self, grad, var, apply_state=None):
        return self._apply(grad, var, None, apply_state)

    def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
        return self._apply(grad, var, indices, apply_state)

    def _resource_apply_sparse_duplicate_indices(
        self, grad, handle, indices, **kwargs
    ):
        # The op sums repeated indices itself, in order of position.
        return self._resource_apply_sparse(grad, handle, indices, **kwargs)

    def set_weights(self, weights):
        params = self.weights
        # As legacy Adagrad: a weight list saved without `iterations` first.
        if len(params) == len(weights) + 1:
            weights = [0, *weights]
        super().set_weights(weights)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if "lr" in config:
            config["learning_rate"] = config.pop("lr")
        return super().from_config(config, custom_objects)

    def get_config(self):
        config = super().get_config()
        settings = self._settings
        config.update(
            {
                "learning_rate": self._serialize_hyperparameter("learning_rate"),
                "decay": self._initial_decay,
                "initial_accumulator_value": self._initial_accumulator_value,
                "epsilon": self.epsilon,
                "decay_rate": settings.decay_rate,
                "decay_period": settings.decay_period,
                "accumulator_floor": settings.accumulator_floor,
                "decay_mode": settings.decay_mode,
                "staleness_exponent": settings.staleness_exponent,
                "max_staleness": settings.max_staleness,
            }
        )
        return config
