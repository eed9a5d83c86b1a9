"""The in-flight gradients of a simulation's workers: one slot per worker,
preallocated, written and read by worker id, so the state is bounded by
`W` gradients of fixed size and never holds `W` copies of the model."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


class GradientRing:
    """A slot per worker for the gradient it computed on what it read.

    Sparse variables (embedding tables, whose gradients are
    `tf.IndexedSlices` of one row per id of a batch) keep `[W, rows, dim]`
    values and `[W, rows]` indices each; the dense gradients of a worker
    are packed in one row of a `[W, D]` variable (one gather and one
    scatter for all of them).

    Args:
        variables: The model's trainable variables, in gradient order.
        sparse: Per variable, the dtype of its sparse gradient's indices
            (`tf.int32` for a fixed table's rows, `tf.int64` for a dynamic
            table's ids), or `None` for a dense gradient.
        workers: `W`.
        rows: Rows of one sparse gradient (the ids of one batch).
    """

    def __init__(self, variables, sparse: list, workers: int, rows: int):
        self._sparse = sparse
        self._rows = rows
        self._shapes = [tf.constant(tuple(v.shape), tf.int64) for v in variables]
        self._tables = [
            (
                tf.Variable(tf.zeros((workers, rows, *v.shape[1:]), v.dtype)),
                tf.Variable(tf.zeros((workers, rows), index_dtype)),
            )
            for v, index_dtype in zip(variables, sparse, strict=True)
            if index_dtype is not None
        ]
        dense = [v for v, s in zip(variables, sparse, strict=True) if not s]
        self._dense_shapes = [tuple(v.shape) for v in dense]
        self._sizes = [int(np.prod(v.shape)) for v in dense]
        self._dense = tf.Variable(tf.zeros((workers, sum(self._sizes)), tf.float32))

    def put(self, w, grads) -> None:
        """Keeps worker `w`'s gradients (in variable order) in its slot."""
        tables = iter(self._tables)
        flat = []
        for g, index_dtype in zip(grads, self._sparse, strict=True):
            if index_dtype is not None:
                values_of, indices_of = next(tables)
                values = tf.reshape(g.values, [self._rows, *g.values.shape[-1:]])
                indices = tf.cast(tf.reshape(g.indices, [self._rows]), index_dtype)
                values_of.scatter_update(tf.IndexedSlices(values[None], w[None]))
                indices_of.scatter_update(tf.IndexedSlices(indices[None], w[None]))
            else:
                flat.append(tf.reshape(g, [-1]))
        row = tf.concat(flat, 0)
        self._dense.scatter_update(tf.IndexedSlices(row[None], w[None]))

    def take(self, w) -> list:
        """Worker `w`'s gradients, in variable order."""
        # Gathers read one slot: a read of the whole ring would make the
        # next write copy it (copy-on-write of a shared buffer).
        dense = iter(
            tf.reshape(g, shape)
            for g, shape in zip(
                tf.split(tf.gather(self._dense, w), self._sizes),
                self._dense_shapes,
                strict=True,
            )
        )
        tables = iter(self._tables)
        grads = []
        for index_dtype, shape in zip(self._sparse, self._shapes, strict=True):
            if index_dtype is not None:
                values_of, indices_of = next(tables)
                values, indices = tf.gather(values_of, w), tf.gather(indices_of, w)
                grads.append(tf.IndexedSlices(values, indices, shape))
            else:
                grads.append(next(dense))
        return grads
