"""A dynamic table as stock TensorFlow ops, for serving."""

import keras
import numpy as np

from tf_swap.serving_rows import row_index, rows_with_zeros, serving_lookup


class ServingTable(keras.layers.Layer):
    """The rows of a dynamic table frozen into stock ops: a
    `tf.lookup.StaticHashTable` maps each stored id to its row of a
    `[entries + 1, dim]` weight, whose last row (zeros) every unknown id
    gets, as `DynamicEmbedding`'s inference lookup gives it.

    Args:
        ids: The stored ids, int64 `[entries]`.
        rows: Their rows, float32 `[entries, dim]`.
    """

    def __init__(self, ids: np.ndarray, rows: np.ndarray, **kwargs):
        super().__init__(**kwargs)
        entries, self.dim = rows.shape
        self.index = row_index(ids)
        self.rows = self.add_weight(
            shape=(entries + 1, self.dim),
            initializer="zeros",
            trainable=False,
            name="rows",
        )
        self.rows.assign(rows_with_zeros(rows))

    def call(self, ids):
        return serving_lookup(self.index, self.rows, ids)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.dim)
