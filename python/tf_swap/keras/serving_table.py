"""A dynamic table as stock TensorFlow ops, for serving."""

import keras
import numpy as np
import tensorflow as tf


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
        entries, dim = rows.shape
        self.dim = dim
        self.index = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(ids, tf.int64), tf.range(entries, dtype=tf.int64)
            ),
            default_value=entries,
        )
        self.rows = self.add_weight(
            shape=(entries + 1, dim), initializer="zeros", trainable=False, name="rows"
        )
        self.rows.assign(np.concatenate([rows, np.zeros((1, dim), rows.dtype)]))

    def call(self, ids):
        return tf.gather(self.rows, self.index.lookup(tf.cast(ids, tf.int64)))

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.dim)
