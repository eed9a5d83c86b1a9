"""What the Keras `DynamicEmbedding` layers share: the table, the
gradient slot through which a tf_swap optimizer trains it
(`tf_swap.table_gradients`), the trainer's step and period."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf_swap.dynamic_table import DEFAULT_SLOT_INIT, DynamicTable, check_arguments
from tf_swap.ops import dynamic_tables as table_ops
from tf_swap.table_gradients import (
    NO_PERIOD,
    register,
    require_trainer,
    route_gradient,
)

TF_SWAP_OPTIMIZERS = (
    "tf_swap.keras.AdagradSwap / FtrlSwap (Keras 3) or tf_swap.tf_keras."
    "AdagradSwap / FtrlSwap (tf_keras)"
)


def untrained(layer) -> str:
    """The error of a training step of `layer` without a tf_swap optimizer."""
    return (
        f"DynamicEmbedding {layer.name!r} is trained by {TF_SWAP_OPTIMIZERS}, "
        "built with the model's variables before the first step (model.fit "
        "builds the compiled one; in a custom loop call "
        "optimizer.build(model.trainable_variables)); other optimizers cannot "
        "update a dynamic table."
    )


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
        with tf.control_dependencies(
            [require_trainer(self.decay_period, untrained(self))]
        ):
            rows = self.table.lookup(
                ids,
                step=tf.convert_to_tensor(self.next_step),
                decay_period=tf.convert_to_tensor(self.decay_period),
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
