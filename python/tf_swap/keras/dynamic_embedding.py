"""Keras 3 embedding of unbounded int64 ids into a `tf_swap.DynamicTable`."""

from __future__ import annotations

import weakref

import keras
import numpy as np
import tensorflow as tf

from tf_swap import dynamic_embedding_layer as wiring
from tf_swap.dynamic_table import DynamicTable, check_arguments
from tf_swap.ops import dynamic_tables as table_ops

# Before an optimizer says otherwise: one slot (Adagrad-SWAP's accumulator).
_DEFAULT_SLOT_INIT = (0.1,)
# No trainer yet: a period so long that new entries are stamped period 0.
_NO_PERIOD = 2**62


@keras.saving.register_keras_serializable(package="tf_swap")
class DynamicEmbedding(keras.layers.Layer):
    """`keras.layers.Embedding` for ids of any int64 value, stored only once
    seen: a `tf_swap.DynamicTable` sharded over the parameter servers.

    Trained by `tf_swap.keras.AdagradSwap` or `FtrlSwap` (the model's
    optimizer), with its hyper-parameters, SWAP discount and staleness
    normalization; the table is made when that optimizer is built (its rule
    decides the slots). A training call counts each id and stores it from
    its `min_count`-th lookup (zeros before, its gradient dropped); an
    inference call never inserts and returns zeros for unknown ids.

    Args:
        output_dim: Row width.
        embeddings_initializer: A new row's distribution, a function of
            `seed` and the id alone: `"uniform"` (Keras' default),
            `"normal"`, `"truncated_normal"`, `"zeros"`, or a Keras
            `RandomUniform`, `RandomNormal`, `TruncatedNormal`, `Zeros`.
        num_shards: Shards (id `i` in shard `i mod num_shards`); default:
            the parameter servers under `ParameterServerStrategy`, else 1.
        min_count: Training lookups before an id is stored.
        steps_to_live: `evict()` removes entries not updated for more than
            this many steps; `None` keeps them.
        seed: Seed of every new row (`None`: 0).
        name: Layer name.
    """

    def __init__(
        self,
        output_dim: int,
        embeddings_initializer="uniform",
        num_shards: int | None = None,
        min_count: int = 1,
        steps_to_live: int | None = None,
        seed: int | None = None,
        name: str | None = None,
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        # As keras.layers.Embedding: a name, a config or an initializer.
        embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self._table_args = dict(
            initializer=embeddings_initializer,
            seed=seed,
            min_count=min_count,
            steps_to_live=steps_to_live,
            num_shards=num_shards,
        )
        # Checked now; the table itself is made when an optimizer attaches.
        check_arguments(output_dim, _DEFAULT_SLOT_INIT, **self._table_args)
        self.output_dim = output_dim
        self.embeddings_initializer = embeddings_initializer
        self.num_shards = num_shards
        self.min_count = min_count
        self.steps_to_live = steps_to_live
        self.seed = seed
        self.table = None
        self.gradient_slot = None
        # Not a dependency of the layer's checkpoint: the optimizer is saved
        # by its own.
        self._trainer = None

    @property
    def trainer(self):
        """The tf_swap optimizer training the table, or None."""
        return None if self._trainer is None else self._trainer()

    def build(self, input_shape=None):
        # The table exists from here, so that a training step traced before
        # the optimizer is built (model.fit without a strategy) can use it;
        # the optimizer sets its slots when it attaches (before any step
        # runs). One slot until then: Adagrad-SWAP's.
        self.table = DynamicTable(
            self.output_dim,
            slot_init=_DEFAULT_SLOT_INIT,
            name=f"{self.name}_table",
            **self._table_args,
        )
        self.gradient_slot = self.add_weight(
            shape=(1, self.output_dim), initializer="zeros", name="table_gradient"
        )
        # The trainer's next step and period, read by each training lookup
        # (a new entry's `power` and `last_step`); the trainer writes them.
        self.next_step = self.add_weight(
            shape=(),
            initializer="ones",
            dtype="int64",
            trainable=False,
            name="next_step",
        )
        self.decay_period = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(_NO_PERIOD),
            dtype="int64",
            trainable=False,
            name="decay_period",
        )
        wiring.register(self.gradient_slot, self)

    def attach(self, trainer) -> None:
        """Called by a tf_swap optimizer built with this layer's gradient
        slot: `trainer` (its `decay_period` and rule's `table_slot_init`)
        trains the table from now on."""
        slot_init = tuple(trainer.table_slot_init)
        with tf.init_scope():  # once, not in the step being traced
            if self.table.slot_init != slot_init:
                self.table.set_slot_init(slot_init)
            self.decay_period.assign(trainer.decay_period)
        self._trainer = weakref.ref(trainer)

    def call(self, ids, training=None):
        ids = table_ops.ids_tensor(ids)
        if not training:
            return self.table.find(ids)
        period = self.decay_period.value
        # Only a tf_swap optimizer sets the period (when it is built, before
        # any step runs); under any other no step may update the table.
        trained_by_tf_swap = tf.debugging.assert_less(
            period, tf.constant(_NO_PERIOD, tf.int64), message=wiring.untrained(self)
        )
        with tf.control_dependencies([trained_by_tf_swap]):
            rows = self.table.lookup(
                ids, step=self.next_step.value, decay_period=period
            )
        return wiring.route_gradient(
            rows, self.gradient_slot.value, ids, self.output_dim
        )

    def trained(self, step) -> None:
        """Called by the trainer's apply at `step`: the next training
        lookup is at `step + 1`."""
        self.next_step.value.assign(tf.cast(step, tf.int64) + 1)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def table_size(self) -> int:
        """Entries stored, all shards."""
        return int(self.table.size())

    def evict(self, step=None) -> int:
        """Applies `steps_to_live` at `step` (default: the next training
        step); returns how many entries went."""
        return int(self.table.evict(self.next_step.value if step is None else step))

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

    # Keras weights files (.weights.h5, .keras): the table's tensors.
    def save_own_variables(self, store):
        super().save_own_variables(store)
        data = self.table.export()
        for key, value in data._asdict().items():
            store[f"table_{key}"] = value.numpy()

    def load_own_variables(self, store):
        # The layer's own variables as Keras stores them ("0", "1", ...),
        # then the table's arrays.
        for i, variable in enumerate(self.weights):
            variable.assign(store[f"{i}"])
        if "table_ids" not in store.keys():
            return
        fields = {
            key: tf.constant(np.asarray(store[f"table_{key}"]))
            for key in table_ops.TableExport._fields
        }
        slots = int(fields["slots"].shape[0])
        if len(self.table.slot_init) != slots:
            # Saved from a table of another rule: its layout, until an
            # optimizer attaches (a table of FTRL-SWAP's n and z).
            self.table.set_slot_init((0.1, 0.0)[:slots] if slots == 2 else (0.1,))
        self.table.restore(table_ops.TableExport(**fields))

    def get_config(self):
        config = super().get_config()
        config.update(
            output_dim=self.output_dim,
            embeddings_initializer=keras.initializers.serialize(
                self.embeddings_initializer
            ),
            num_shards=self.num_shards,
            min_count=self.min_count,
            steps_to_live=self.steps_to_live,
            seed=self.seed,
        )
        return config
