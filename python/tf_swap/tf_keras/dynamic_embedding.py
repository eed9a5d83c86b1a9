"""tf_keras (Keras 2) embedding of unbounded int64 ids into a
`tf_swap.DynamicTable`."""

from __future__ import annotations

import tf_keras

from tf_swap.dynamic_embedding_layer import DynamicEmbeddingBase


@tf_keras.utils.register_keras_serializable(package="tf_swap")
class DynamicEmbedding(DynamicEmbeddingBase, tf_keras.layers.Layer):
    """`tf_keras.layers.Embedding` for ids of any int64 value, stored only
    once seen, as `tf_swap.keras.DynamicEmbedding` (same arguments), trained
    by `tf_swap.tf_keras.AdagradSwap` or `FtrlSwap` in `model.fit`. The
    table is saved by TensorFlow-format checkpoints (`model.save_weights`
    to a path without `.h5`, `tf.train.Checkpoint`), not by HDF5 files.
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
        self.embeddings_initializer = tf_keras.initializers.get(embeddings_initializer)
        self._init_table(
            output_dim,
            self.embeddings_initializer,
            seed=seed,
            min_count=min_count,
            steps_to_live=steps_to_live,
            num_shards=num_shards,
        )

    def build(self, input_shape=None):
        self._build_table(tf_keras.initializers.Constant)
        super().build(input_shape)

    def call(self, ids, training=None):
        return self._embed(ids, training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            embeddings_initializer=tf_keras.initializers.serialize(
                self.embeddings_initializer
            ),
            **self._table_config(),
        )
        return config
