"""The one place that depends on tf_keras internals, checked against
tf_keras 2.21.0 (`CHECKED_VERSION`; tests/python/test_tf_keras.py fails
when the installed tf_keras is another version, so that this file is read
again).

tf_keras publishes no hook for two things tf_swap needs:

- an int64 slot (`power`, one entry per row): `OptimizerV2.add_slot` gives
  every slot its variable's float dtype, so `Int64Slots.add_slot` makes the
  int64 one and files it where `add_slot` files slots (`_slots`,
  `_slot_names`, `_weights`, `_restore_slot_variable`), and a checkpoint
  restored before the slots exist (which names a sharded table's slots by
  the table, not its shards) creates the shards' slots first, so that the
  restore reshards into them;
- knowing that tf_keras is saving a SavedModel (`saving_saved_model`): the
  traces tf_keras saves must hold only stock ops, and tf_keras revives an
  optimizer's slots with float dtypes (so an int64 slot makes a SavedModel
  unloadable; SavedModels leave `power` out, checkpoints keep it).
"""

from __future__ import annotations

import functools

import tensorflow as tf
import tf_keras
from tf_keras.src.saving.legacy.saved_model import utils as saved_model_utils

CHECKED_VERSION = "2.21.0"


def saving_saved_model() -> bool:
    """Whether tf_keras is saving a SavedModel (`model.save(dir)`) now."""
    return saved_model_utils.in_tf_saved_model_scope()


class Int64Slots:
    """Mixin of an `OptimizerV2` whose slots named in `INT64_SLOTS` hold one
    int64 per row of their variable."""

    INT64_SLOTS: tuple[str, ...] = ()

    def add_slot(self, var, slot_name, initializer="zeros", shape=None):
        """As `OptimizerV2.add_slot`; an int64 slot is `[rows]` of int64."""
        if slot_name not in self.INT64_SLOTS:
            return super().add_slot(var, slot_name, initializer, shape)
        if slot_name not in self._slot_names:
            self._slot_names.append(slot_name)
        slots = self._slots.setdefault(self._slot_key(var), {})
        slot = slots.get(slot_name)
        if slot is not None:
            return slot
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
                slot = tf.Variable(
                    name=f"{var._shared_name}/{slot_name}",
                    dtype=tf.int64,
                    trainable=False,
                    initial_value=initial_value,
                )
        tf_keras.__internal__.backend.track_variable(slot)
        slots[slot_name] = slot
        self._restore_slot_variable(
            slot_name=slot_name, variable=var, slot_variable=slot
        )
        self._weights.append(slot)
        return slot

    def _slot_key(self, var):
        # The key `OptimizerV2` files `var`'s slots under (its private
        # `_var_key`): found through `var`'s first float slot, which
        # `add_slot` makes if a restore asks for the int64 one first.
        name, initializer = self._first_float_slot(var)
        made = super().add_slot(var, name, initializer)
        return next(k for k, s in self._slots.items() if s.get(name) is made)

    def _first_float_slot(self, var):
        """The name and initializer of `var`'s first float slot."""
        raise NotImplementedError

    def get_slot_names(self):
        """As `OptimizerV2.get_slot_names`; a SavedModel leaves the int64
        slots out (checkpoints keep them)."""
        names = super().get_slot_names()
        if saving_saved_model():
            return [n for n in names if n not in self.INT64_SLOTS]
        return names

    def _create_or_restore_slot_variable(
        self, slot_variable_position, slot_name, variable, slot_variable_shape=None
    ):
        # A sharded table's slots are named by the table in a checkpoint:
        # make the shards' slots first (as legacy Adagrad would not), so the
        # restore reshards into them instead of making one full-size slot.
        if isinstance(variable, tf.__internal__.distribute.ShardedVariable):
            with self._distribution_strategy_scope():
                self._create_slots(variable.variables)
            self._create_slots_for_sharded_variables(variable.variables)
        return super()._create_or_restore_slot_variable(
            slot_variable_position, slot_name, variable, slot_variable_shape
        )
