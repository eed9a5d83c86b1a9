"""What every `tf.compat.v1.train` tf_swap optimizer shares: the v1
optimizer's hooks (`_create_slots`, `_prepare`, `_resource_apply_*`,
`_finish`) around the optimizer core, and the training of
`tf_swap.compat.v1.DynamicTable`s through their gradient slots."""

from __future__ import annotations

import tensorflow as tf

from tf_swap.core import SwapCore, SwapSettings, UpdateRule
from tf_swap.table_gradients import gradient_slot_owner

_COUNTER = "iterations"
_DROPPED = "dropped_updates"
POWER = "power"


class SwapOptimizer(tf.compat.v1.train.Optimizer):
    """A `tf.compat.v1.train.Optimizer` running a `tf_swap.core` rule.

    The step SWAP counts is `global_step` if given, else the graph's global
    step (`tf.compat.v1.train.get_global_step()`): `apply_gradients`
    advances it with one `assign_add`, as TensorFlow's optimizers do. With
    neither, the optimizer keeps its own counter (a non-slot variable named
    `iterations`) and advances it after each apply.

    `t_read` is read by `compute_gradients` (so by `minimize`), in the same
    `session.run` as the forward pass; for a read strictly before the
    forward pass, call `read_step()` first and put the forward pass under
    `tf.control_dependencies([t_read])`. With no step variable at all
    (eagerly, without a global step) `tau` is 0.

    Args:
        rule: The `UpdateRule`.
        settings: The `SwapSettings`.
        learning_rate: A `Tensor`, float or callable.
        use_locking: Passed to the ops.
        name: Name prefix of the ops.
        global_step: The step variable (see above).
        slot_names: The framework's name of each rule slot, by rule key.
    """

    def __init__(
        self,
        rule: UpdateRule,
        settings: SwapSettings,
        learning_rate,
        use_locking,
        name,
        global_step,
        slot_names: dict[str, tuple],
    ):
        super().__init__(use_locking, name)
        self._core = SwapCore(rule, settings)
        self._learning_rate = learning_rate
        self._global_step = global_step
        self._slot_names_of = slot_names
        self._step_variable = None
        self._pending_grads = None
        self._state = None
        self._trained_tables = []

    @property
    def uses_staleness(self) -> bool:
        """Whether steps are scaled or dropped by their staleness."""
        return self._core.uses_staleness

    def _find_step_variable(self):
        # `is not None`: a variable's truth value is its value, which a graph
        # cannot know while it is being built.
        if self._global_step is not None:
            return self._global_step
        return tf.compat.v1.train.get_global_step()

    def read_step(self):
        """Reads the global step as `t_read` of the next `apply_gradients`.

        Returns:
            The int64 scalar tensor, or `None` when there is no step variable
            yet (then `tau` is 0).
        """
        step_variable = self._find_step_variable()
        if step_variable is None:
            self._core.forget_read_step()
            return None
        return self._core.read_step(step_variable)

    def compute_gradients(self, loss, var_list=None, **kwargs):
        """As the base class; also records `t_read` (see the class docstring)
        unless `read_step()` already did."""
        if self.uses_staleness and not self._core.has_read_step:
            self.read_step()
        return super().compute_gradients(loss, var_list=var_list, **kwargs)

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        """As the base class, with staleness normalization when enabled."""
        grads_and_vars = tuple(grads_and_vars)
        self._pending_grads = [g for g, _ in grads_and_vars]
        try:
            return super().apply_gradients(grads_and_vars, global_step, name)
        finally:
            self._pending_grads = None
            self._state = None
            self._trained_tables = []
            self._core.forget_read_step()

    @property
    def dropped_updates(self):
        """Steps dropped for staleness: an int64 non-slot variable when
        `max_staleness` is set and the optimizer has applied, else 0 (as
        in the Keras optimizers)."""
        counter = self._dropped_counter()
        return tf.constant(0, tf.int64) if counter is None else counter

    def _dropped_counter(self):
        if self._core.settings.max_staleness is None:
            return None
        with tf.init_scope():
            graph = None if tf.executing_eagerly() else tf.compat.v1.get_default_graph()
            return self._get_non_slot_variable(_DROPPED, graph=graph)

    def _create_slots(self, var_list):
        tables = [gradient_slot_owner(v) for v in var_list]
        for owner in tables:
            if owner is not None:
                owner.attach(self._core)
        first = min(var_list, key=lambda x: x.name)
        for v in (v for v, owner in zip(var_list, tables, strict=True) if not owner):
            dtype = v.dtype.base_dtype
            shape = v.get_shape()
            for spec in self._core.rule.slots:
                slot, op_name = self._slot_names_of[spec.key]
                self._get_or_make_slot_with_initializer(
                    v,
                    tf.compat.v1.constant_initializer(spec.initial_value),
                    shape,
                    dtype,
                    slot,
                    op_name or self._name,
                )
            self._get_or_make_slot_with_initializer(
                v,
                tf.compat.v1.zeros_initializer(),
                shape[:1],
                tf.int64,
                POWER,
                self._name,
            )
        self._step_variable = self._find_step_variable()
        if self._core.settings.max_staleness is not None:
            self._create_non_slot_variable(
                initial_value=tf.constant(0, tf.int64),
                name=_DROPPED,
                colocate_with=first,
            )
        if self._step_variable is None:
            self._create_non_slot_variable(
                initial_value=tf.constant(0, tf.int64),
                name=_COUNTER,
                colocate_with=first,
            )

    def _own_counter(self):
        with tf.init_scope():
            graph = None if tf.executing_eagerly() else tf.compat.v1.get_default_graph()
            return self._get_non_slot_variable(_COUNTER, graph=graph)

    def _prepare(self):
        self._learning_rate_value = self._call_if_callable(self._learning_rate)
        step_variable = self._step_variable
        own = step_variable is None
        if own:
            step_variable = self._own_counter()
            self._core.forget_read_step()  # no global step: no t_read
        self._state = self._core.begin(step_variable, self._pending_grads or [])

    def _apply(self, grad, var, indices=None):
        return self._core.update(
            self._state,
            var,
            [
                self.get_slot(var, self._slot_names_of[s.key][0])
                for s in self._core.rule.slots
            ],
            self.get_slot(var, POWER),
            grad,
            self._learning_rate_value,
            indices=indices,
        )

    def _resource_apply_dense(self, grad, var):
        return self._apply(grad, var)

    def _resource_apply_sparse(self, grad, var, indices):
        return self._apply(grad, var, indices)

    def _resource_apply_sparse_duplicate_indices(self, grad, handle, indices):
        owner = gradient_slot_owner(handle)
        if owner is None:
            return super()._resource_apply_sparse_duplicate_indices(
                grad, handle, indices
            )
        # A table's gradient: rows indexed by ids, summed per id by the op.
        self._trained_tables.append(owner)
        return self._core.update_table(
            self._state,
            owner.table,
            tf.IndexedSlices(grad, indices),
            self._learning_rate_value,
        )

    def _finish(self, update_ops, name_scope):
        state = self._state
        state.updates.extend(update_ops)
        own = self._own_counter() if self._step_variable is None else None
        made, _ = self._core.finish(
            state, dropped=self._dropped_counter(), own_step=own
        )
        with tf.control_dependencies(update_ops):
            made.extend(
                owner.trained(state.step) for owner in self._trained_tables
            )
        if own is None:
            return super()._finish([*update_ops, *made], name_scope)
        return tf.group(*update_ops, *made, name=name_scope)
