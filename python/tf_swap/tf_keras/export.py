"""Exporting a tf_keras model trained with tf_swap for serving."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras

from tf_swap.serving_rows import ServingRows
from tf_swap.tf_keras.dynamic_embedding import DynamicEmbedding


class ServingTable(ServingRows, tf_keras.layers.Layer):
    """A `DynamicEmbedding`'s rows in stock ops (`ServingRows`), as
    `tf_swap.keras.ServingTable`.

    Args:
        ids: The stored ids, int64 `[entries]`.
        rows: Their rows, float32 `[entries, dim]`.
    """

    def __init__(self, ids: np.ndarray, rows: np.ndarray, **kwargs):
        super().__init__(**kwargs)
        self._freeze(ids, rows)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape).concatenate([self.dim])


def _serving_layer(layer):
    if isinstance(layer, DynamicEmbedding):
        data = layer.table.export()
        return ServingTable(data.ids.numpy(), data.values.numpy(), name=layer.name)
    return layer.__class__.from_config(layer.get_config())


def export_for_serving(model: tf_keras.Model, path: str) -> None:
    """Writes `model` as a SavedModel that serves on stock TensorFlow:
    a copy in which each `DynamicEmbedding` is a `ServingTable` of its
    entries (every other layer as it is, with its weights), saved by
    `model.save` without the optimizer, so its `serving_default` signature
    loads where tf_swap is not installed. A model without dynamic tables
    can also be saved directly (`model.save`).

    Args:
        model: A built tf_keras functional or sequential model.
        path: Output directory.
    """
    if tf.distribute.has_strategy():
        raise ValueError(
            "export_for_serving copies the model outside any distribution "
            "strategy: call it outside `strategy.scope()`"
        )
    copy = tf_keras.models.clone_model(model, clone_function=_serving_layer)
    for source, target in zip(model.layers, copy.layers, strict=True):
        if not isinstance(source, DynamicEmbedding) and source.weights:
            target.set_weights(source.get_weights())
    copy.save(path, include_optimizer=False, save_format="tf")
