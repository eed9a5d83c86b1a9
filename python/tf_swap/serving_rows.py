"""A dynamic table's rows as stock TensorFlow ops, what both Keras front
ends' serving layers hold."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


class ServingRows:
    """The body of a Keras serving layer (Keras 3 or tf_keras, mixed in
    before its `Layer`): a stock `tf.lookup.StaticHashTable` from each
    stored id to its row of a `[entries + 1, dim]` weight, whose last row
    (zeros) every unknown id gets, as a dynamic table's inference lookup
    gives it."""

    def _freeze(self, ids: np.ndarray, rows: np.ndarray) -> None:
        entries, self.dim = rows.shape
        self.index = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(ids, tf.int64), tf.range(entries, dtype=tf.int64)
            ),
            default_value=entries,
        )
        self.rows = self.add_weight(
            name="rows",
            shape=(entries + 1, self.dim),
            initializer="zeros",
            trainable=False,
        )
        self.rows.assign(np.concatenate([rows, np.zeros((1, self.dim), rows.dtype)]))

    def call(self, ids):
        return tf.gather(self.rows, self.index.lookup(tf.cast(ids, tf.int64)))
