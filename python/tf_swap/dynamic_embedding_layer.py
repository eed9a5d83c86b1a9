"""What the Keras `DynamicEmbedding` layers share: how the gradient of a
dynamic table's rows reaches the optimizer, and how a tf_swap optimizer
finds the table behind a variable it is given.

A dynamic table is not a variable, so Keras would compute no gradient for
it. Each layer owns one small trainable variable, its *gradient slot*
(`[1, dim]` zeros, never changed): the rows a training lookup returns are
wired to it by a custom gradient whose value is a `tf.IndexedSlices` of the
rows' gradients indexed by the *ids* (not rows of the slot). The model's
optimizer receives it with the slot; a tf_swap optimizer recognizes the
slot (`table_layer_of`) and applies the rule to the table's entries. Under
any other optimizer the first training step fails with `untrained`'s
message.
"""

from __future__ import annotations

import weakref

import numpy as np
import tensorflow as tf

from tf_swap.dynamic_table import DynamicTable, check_arguments
from tf_swap.ops import dynamic_tables as table_ops

# Before an optimizer says otherwise: one slot (Adagrad-SWAP's accumulator).
DEFAULT_SLOT_INIT = (0.1,)
# No trainer yet: a period so long that new entries are stamped period 0.
NO_PERIOD = 2**62

# id(gradient slot variable) -> the layer owning it.
_LAYERS: dict[int, weakref.ReferenceType] = {}

TF_SWAP_OPTIMIZERS = (
    "tf_swap.keras.AdagradSwap / FtrlSwap (Keras 3) or tf_swap.tf_keras."
    "AdagradSwap / FtrlSwap (tf_keras)"
)


def _forms(variable) -> tuple:
    """A Keras variable and the `tf.Variable` it wraps (Keras' TensorFlow
    optimizers pass either)."""
    inner = getattr(variable, "value", None)
    return (variable, inner) if isinstance(inner, tf.Variable) else (variable,)


def register(slot_variable, layer) -> None:
    """Marks `slot_variable` as the gradient slot of `layer`."""
    for form in _forms(slot_variable):
        _LAYERS[id(form)] = weakref.ref(layer)


def table_layer_of(variable):
    """The `DynamicEmbedding` whose gradient slot `variable` is, or None."""
    ref = _LAYERS.get(id(variable))
    layer = ref() if ref is not None else None
    if layer is None or not any(f is variable for f in _forms(layer.gradient_slot)):
        return None
    return layer


def untrained(layer) -> str:
    """The error of a training step of `layer` without a tf_swap optimizer."""
    return (
        f"DynamicEmbedding {layer.name!r} is trained by {TF_SWAP_OPTIMIZERS}, "
        "built with the model's variables before the first step (model.fit "
        "builds the compiled one; in a custom loop call "
        "optimizer.build(model.trainable_variables)); other optimizers cannot "
        "update a dynamic table."
    )


def route_gradient(rows: tf.Tensor, slot_value: tf.Tensor, ids: tf.Tensor, dim: int):
    """`rows`, whose gradient goes to `slot_value` as a `tf.IndexedSlices`
    of one row per id (`ids` flattened, int64)."""
    flat_ids = tf.reshape(ids, [-1])

    @tf.custom_gradient
    def wired(slot):
        def gradient(upstream):
            values = tf.reshape(upstream, [-1, dim])
            return tf.IndexedSlices(
                values, flat_ids, dense_shape=tf.shape(slot, out_type=tf.int64)
            )

        return tf.identity(rows), gradient

    return wired(slot_value)


class DynamicEmbeddingBase:
    """The body both Keras `DynamicEmbedding` layers share: the table, the
    gradient slot, the trainer's step and period, the lookups. The Keras 3
    and tf_keras classes add their framework's initializers and weights
    files."""

    def _init_table(self, output_dim, initializer, **table_args) -> None:
        self._table_args = dict(initializer=initializer, **table_args)
        check_arguments(output_dim, DEFAULT_SLOT_INIT, **self._table_args)
        self.output_dim = output_dim
        self.table = None
        self.gradient_slot = None

    def _build_table(self, constant) -> None:
        """Makes the table and the layer's weights; `constant(value)` is the
        framework's constant initializer."""
        # The table exists from here, so that a training step traced before
        # the optimizer is built (model.fit without a strategy) can use it;
        # the optimizer sets its slots when it attaches (before any step
        # runs).
        self.table = DynamicTable(
            self.output_dim,
            slot_init=DEFAULT_SLOT_INIT,
            name=f"{self.name}_table",
            **self._table_args,
        )
        self.gradient_slot = self.add_weight(
            name="table_gradient",
            shape=(1, self.output_dim),
            initializer=constant(0.0),
            trainable=True,
        )
        # The trainer's next step and period, read by each training lookup
        # (a new entry's `power` and `last_step`); the trainer writes them.
        self.next_step = self.add_weight(
            name="next_step",
            shape=(),
            initializer=constant(1),
            dtype="int64",
            trainable=False,
        )
        self.decay_period = self.add_weight(
            name="decay_period",
            shape=(),
            initializer=constant(NO_PERIOD),
            dtype="int64",
            trainable=False,
        )
        register(self.gradient_slot, self)

    def attach(self, core) -> None:
        """Called by a tf_swap optimizer built with this layer's gradient
        slot: its `tf_swap.core.SwapCore` (the rule's slots, the period)
        trains the table from now on."""
        slot_init = core.rule.slot_init
        with tf.init_scope():  # once, not in the step being traced
            if self.table.slot_init != slot_init:
                self.table.set_slot_init(slot_init)
            self.decay_period.assign(core.settings.decay_period)

    def _embed(self, ids, training) -> tf.Tensor:
        ids = table_ops.ids_tensor(ids)
        if not training:
            return self.table.find(ids)
        period = tf.convert_to_tensor(self.decay_period)
        # Only a tf_swap optimizer sets the period (when it is built, before
        # any step runs); under any other no step may update the table.
        trained_by_tf_swap = tf.debugging.assert_less(
            period, tf.constant(NO_PERIOD, tf.int64), message=untrained(self)
        )
        with tf.control_dependencies([trained_by_tf_swap]):
            rows = self.table.lookup(
                ids, step=tf.convert_to_tensor(self.next_step), decay_period=period
            )
        return route_gradient(
            rows, tf.convert_to_tensor(self.gradient_slot), ids, self.output_dim
        )

    def trained(self, step) -> None:
        """Called by the trainer's apply at `step`: the next training
        lookup is at `step + 1`."""
        self.next_step.assign(tf.cast(step, tf.int64) + 1)

    def table_size(self) -> int:
        """Entries stored, all shards."""
        return int(self.table.size())

    def evict(self, step=None) -> int:
        """Applies `steps_to_live` at `step` (default: the next training
        step); returns how many entries went."""
        return int(self.table.evict(self.next_step if step is None else step))

    def export_delta(self, since_step: int, path: str | None = None):
        """The entries updated after `since_step` and the ids evicted after
        it (`since_step < 0`: every entry), for pushing to a serving copy:
        a full export followed by every delta, in order, is the table.

        Args:
            since_step: The step of the previous push.
            path: If given, also writes `ids`, `values` and `evicted_ids`
                to this `.npz` file.

        Returns:
            A `tf_swap.ops.TableExport`.
        """
        data = self.table.export(since_step)
        if path is not None:
            np.savez(
                path,
                ids=data.ids.numpy(),
                values=data.values.numpy(),
                evicted_ids=data.evicted_ids.numpy(),
            )
        return data

    def _table_config(self) -> dict:
        args = self._table_args
        return dict(
            output_dim=self.output_dim,
            num_shards=args["num_shards"],
            min_count=args["min_count"],
            steps_to_live=args["steps_to_live"],
            seed=args["seed"],
        )
