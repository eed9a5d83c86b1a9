"""The worker-local Local BN statistics of a simulation's workers: every
worker owns its own, as on a real cluster, kept in `[W, ...]` variables and
swapped into the (single) layers around each worker's forward pass."""

from __future__ import annotations

import tensorflow as tf


class WorkerStatistics:
    """Every worker's Local BN state: the layers' local means and variances
    in one `[W, 2 * sum(C)]` row, their step counts in `[W, layers]`.

    Args:
        layers: The model's `LocalBatchNormalization` layers.
        workers: `W`.
    """

    def __init__(self, layers, workers: int):
        self._layers = list(layers)
        self._floats = [
            t for ly in self._layers for t in (ly.local_mean, ly.local_variance)
        ]
        self._widths = [int(t.shape[0]) for t in self._floats]
        init = (
            tf.concat([tf.convert_to_tensor(t) for t in self._floats], 0)
            if self._floats
            else tf.zeros([0])
        )
        self._rows = tf.Variable(tf.repeat(init[None], workers, 0))
        self._steps = tf.Variable(tf.zeros((workers, len(self._layers)), tf.int64))

    def __bool__(self) -> bool:
        return bool(self._layers)

    def load(self, w) -> None:
        """Puts worker `w`'s statistics into the layers."""
        values = tf.split(tf.gather(self._rows, w), self._widths)
        for local, value in zip(self._floats, values, strict=True):
            local.assign(value)
        steps = tf.gather(self._steps, w)
        for i, layer in enumerate(self._layers):
            layer.local_steps.assign(steps[i])

    def store(self, w) -> None:
        """Keeps the layers' statistics as worker `w`'s."""
        row = tf.concat([tf.convert_to_tensor(t) for t in self._floats], 0)
        self._rows.scatter_update(tf.IndexedSlices(row[None], w[None]))
        steps = tf.stack([tf.convert_to_tensor(ly.local_steps) for ly in self._layers])
        self._steps.scatter_update(tf.IndexedSlices(steps[None], w[None]))
