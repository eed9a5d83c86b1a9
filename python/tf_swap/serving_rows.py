"""A dynamic table's rows as stock TensorFlow ops, what both Keras front
ends' serving layers hold."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def row_index(ids: np.ndarray) -> tf.lookup.StaticHashTable:
    """A stock hash table from each stored id to its row number; unknown
    ids get `len(ids)`, the zeros row `rows_with_zeros` appends."""
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(ids, tf.int64), tf.range(len(ids), dtype=tf.int64)
        ),
        default_value=len(ids),
    )


def rows_with_zeros(rows: np.ndarray) -> np.ndarray:
    """`rows` and a last row of zeros (the row of every unknown id)."""
    return np.concatenate([rows, np.zeros((1, rows.shape[1]), rows.dtype)])


def serving_lookup(index: tf.lookup.StaticHashTable, rows, ids) -> tf.Tensor:
    """`ids.shape + [dim]` rows of `ids` (any integer dtype)."""
    return tf.gather(rows, index.lookup(tf.cast(ids, tf.int64)))
