"""What every tf_keras tf_swap optimizer shares: the legacy optimizer's
hooks (`_create_slots`, `apply_gradients`, `_resource_apply_*`) around the
optimizer core."""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from tf_swap.core import SwapCore, SwapSettings, UpdateRule
from tf_swap.table_gradients import gradient_slot_owner
from tf_swap.tf_keras.legacy_internals import Int64Slots

POWER = "power"


class SwapOptimizer(Int64Slots, tf_keras.optimizers.legacy.Optimizer):
    """A tf_keras legacy optimizer running a `tf_swap.core` rule.

    The step SWAP counts is `iterations`, which tf_keras advances with one
    atomic `assign_add` per apply (so it is exact under
    `ParameterServerStrategy` too). Each variable gets the rule's slots and
    an int64 `power` slot (one entry per row) placed with it; a sharded
    table's shards each get their own, on their own parameter server.
    """

    _HAS_AGGREGATE_GRAD = True
    INT64_SLOTS = (POWER,)

    def __init__(
        self, rule: UpdateRule, settings: SwapSettings, name, learning_rate, **kwargs
    ):
        super().__init__(name, **kwargs)
        self._set_hyper("learning_rate", kwargs.get("lr", learning_rate))
        self._set_hyper("decay", self._initial_decay)
        self._core = SwapCore(rule, settings)
        self._state = None
        self._dropped = None

    @property
    def uses_staleness(self) -> bool:
        """Whether steps are scaled or dropped by their staleness."""
        return self._core.uses_staleness

    @property
    def dropped_updates(self):
        """Steps dropped for staleness: an int64 variable when
        `max_staleness` is set and the optimizer has applied, else 0."""
        if self._dropped is None:
            return tf.constant(0, tf.int64)
        return self._dropped

    def read_step(self):
        """Reads `iterations` as this training step's `t_read`.

        Call it before the forward pass (and run the forward pass under
        `tf.control_dependencies([t_read])`); `tf_swap.tf_keras.Model` does
        it in `model.fit`. The next `apply_gradients` in the same trace uses
        it.

        Returns:
            The int64 scalar tensor `t_read`.
        """
        return self._core.read_step(self.iterations)

    def apply_gradients(
        self,
        grads_and_vars,
        name=None,
        experimental_aggregate_gradients=True,
        read_step=None,
    ):
        """As legacy `apply_gradients`; `read_step` is this step's `t_read`
        (default: the one `read_step()` recorded, else none: `tau = 0`)."""
        grads_and_vars = list(grads_and_vars)
        self._state = self._core.begin(
            self.iterations, [g for g, _ in grads_and_vars], read_step
        )
        try:
            applied = super().apply_gradients(
                grads_and_vars, name, experimental_aggregate_gradients
            )
        finally:
            state, self._state = self._state, None
        state.updates.append(applied)
        made, _ = self._core.finish(state, dropped=self._dropped)
        if not made or tf.executing_eagerly() or tf.inside_function():
            return applied  # eagerly both ran; in a function, by auto deps
        return tf.group(applied, *made)

    def _first_float_slot(self, var):
        spec = self._core.rule.slots[0]
        return spec.key, self._slot_initializer(spec.initial_value, var)

    @staticmethod
    def _slot_initializer(value, var):
        return tf.compat.v1.constant_initializer(value, dtype=var.dtype.base_dtype)

    def _create_slots(self, var_list):
        for var in var_list:
            layer = gradient_slot_owner(var)
            if layer is not None:
                layer.attach(self._core)
            for spec in self._core.rule.slots:
                self.add_slot(
                    var, spec.key, self._slot_initializer(spec.initial_value, var)
                )
            self.add_slot(var, POWER)
        if self._core.settings.max_staleness is not None and self._dropped is None:
            self._dropped = self.add_weight(
                "dropped_updates",
                shape=[],
                dtype=tf.int64,
                trainable=False,
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )

    def _apply(self, grad, var, indices, apply_state):
        var_device, var_dtype = var.device, var.dtype.base_dtype
        coefficients = (apply_state or {}).get(
            (var_device, var_dtype)
        ) or self._fallback_apply_state(var_device, var_dtype)
        layer = gradient_slot_owner(var)
        if layer is not None:  # a DynamicEmbedding's gradient slot
            op = self._core.update_table(
                self._state,
                layer.table,
                tf.IndexedSlices(grad, indices),
                coefficients["lr_t"],
            )
            layer.trained(self._state.step)
            return op
        return self._core.update(
            self._state,
            var,
            [self.get_slot(var, spec.key) for spec in self._core.rule.slots],
            self.get_slot(var, POWER),
            grad,
            coefficients["lr_t"],
            indices=indices,
        )

    def _resource_apply_dense(self, grad, var, apply_state=None):
        return self._apply(grad, var, None, apply_state)

    def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
        return self._apply(grad, var, indices, apply_state)

    def _resource_apply_sparse_duplicate_indices(self, grad, handle, indices, **kwargs):
        # The op sums repeated indices itself, in order of position.
        return self._resource_apply_sparse(grad, handle, indices, **kwargs)

    def get_config(self):
        config = super().get_config()
        settings = self._core.settings
        config.update(
            {
                "learning_rate": self._serialize_hyperparameter("learning_rate"),
                "decay": self._initial_decay,
                "decay_rate": settings.decay_rate,
                "decay_period": settings.decay_period,
                "accumulator_floor": settings.accumulator_floor,
                "decay_mode": settings.decay_mode,
                "staleness_exponent": settings.staleness_exponent,
                "max_staleness": settings.max_staleness,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if "lr" in config:
            config["learning_rate"] = config.pop("lr")
        return super().from_config(config, custom_objects)
