"""Keras 3 embedding of unbounded int64 ids into a `tf_swap.DynamicTable`."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tf_swap.dynamic_embedding_layer import DynamicEmbeddingBase
from tf_swap.ops import dynamic_tables as table_ops


@keras.saving.register_keras_serializable(package="tf_swap")
class DynamicEmbedding(DynamicEmbeddingBase, keras.layers.Layer):
    """`keras.layers.Embedding` for ids of any int64 value, stored only once
    seen: a `tf_swap.DynamicTable` sharded over the parameter servers.

    Trained by `tf_swap.keras.AdagradSwap` or `FtrlSwap` (the model's
    optimizer), with its hyper-parameters, SWAP discount and staleness
    normalization; the optimizer sets the table's slots when it is built. A
    training call counts each id and stores it from its `min_count`-th
    lookup (zeros before, its gradient dropped); an inference call never
    inserts and returns zeros for unknown ids.

    Args:
        output_dim: Row width.
        embeddings_initializer: A new row's distribution, a function of
            `seed` and the id alone: `"uniform"` (Keras' default),
            `"normal"`, `"truncated_normal"`, `"zeros"`, or a Keras
            `RandomUniform`, `RandomNormal`, `TruncatedNormal`, `Zeros`
            (their own seed is not used).
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
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self._init_table(
            output_dim,
            self.embeddings_initializer,
            seed=seed,
            min_count=min_count,
            steps_to_live=steps_to_live,
            num_shards=num_shards,
        )

    def build(self, input_shape=None):
        self._build_table(keras.initializers.Constant)

    def call(self, ids, training=None):
        return self._embed(ids, training)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    # Keras weights files (.weights.h5, .keras): the layer's variables as
    # Keras stores them ("0", "1", ...), then the table's arrays.
    def save_own_variables(self, store):
        super().save_own_variables(store)
        for key, value in self.table.export()._asdict().items():
            store[f"table_{key}"] = value.numpy()

    def load_own_variables(self, store):
        for i, variable in enumerate(self.weights):
            variable.assign(store[f"{i}"])
        if "table_ids" not in store.keys():
            return
        fields = {
            key: tf.constant(np.asarray(store[f"table_{key}"]))
            for key in table_ops.TableExport._fields
        }
        if len(self.table.slot_init) != int(fields["slots"].shape[0]):
            # Saved from a table of FTRL-SWAP's n and z.
            self.table.set_slot_init((0.1, 0.0))
        self.table.restore(table_ops.TableExport(**fields))

    def get_config(self):
        config = super().get_config()
        config.update(
            embeddings_initializer=keras.initializers.serialize(
                self.embeddings_initializer
            ),
            **self._table_config(),
        )
        return config
