"""Exporting a Keras 3 model trained with tf_swap for serving."""

import keras
import numpy as np
import tensorflow as tf

from tf_swap.keras.dynamic_embedding import DynamicEmbedding
from tf_swap.keras.serving_table import ServingTable
from tf_swap.local_batch_norm_layer import LOCAL_WEIGHTS, LocalBatchNormalizationBase


def serving_weights(layer) -> list[np.ndarray]:
    """`layer`'s weights as a copy of it made outside any distribution
    strategy expects them. Local BN's worker-local statistics (one copy per
    worker under a `ParameterServerStrategy`, unreadable from the
    coordinator, and unused at inference) are given the shared ones'
    values."""
    if not isinstance(layer, LocalBatchNormalizationBase):
        return [np.asarray(w) for w in layer.get_weights()]
    local = {
        "local_mean": layer.moving_mean,
        "local_variance": layer.moving_variance,
        "local_steps": np.zeros((), np.int64),
    }
    return [
        np.asarray(local[w.name] if w.name in LOCAL_WEIGHTS else w)
        for w in layer.weights
    ]


def _serving_layer(layer):
    """`layer` rebuilt for the serving copy: a `DynamicEmbedding` as a
    `ServingTable` of its entries, others from their config."""
    if isinstance(layer, DynamicEmbedding):
        data = layer.table.export()
        return ServingTable(data.ids.numpy(), data.values.numpy(), name=layer.name)
    return layer.__class__.from_config(layer.get_config())


def export_for_serving(model: keras.Model, path: str, verbose: bool = False) -> None:
    """Writes `model` as a SavedModel that serves on stock TensorFlow.

    Exports a copy of `model` made outside any distribution
    strategy (so a model trained under `ParameterServerStrategy` exports
    from the coordinator; call it outside the strategy's scope), with the
    trained weights: the serving signature
    `serving_default` maps the model's inputs (by their names) to its
    outputs (by the names of the layers that make them) with inference
    in stock TensorFlow ops (Local BN normalizes with the shared
    statistics; a `DynamicEmbedding` is a stock `tf.lookup` hash table from
    id to row and a gather, zeros for unknown ids), so TF Serving or
    `tf.saved_model.load` runs it where tf_swap is not installed.

    Args:
        model: A built Keras 3 model.
        path: Output directory.
        verbose: Passed to `model.export`.
    """
    if tf.distribute.has_strategy():
        raise ValueError(
            "export_for_serving copies the model outside any distribution "
            "strategy: call it outside `strategy.scope()`"
        )
    copy = keras.models.clone_model(model, clone_function=_serving_layer)
    for source, target in zip(model.layers, copy.layers, strict=True):
        if isinstance(source, DynamicEmbedding):
            continue  # its rows are the ServingTable's
        weights = serving_weights(source)
        if weights:
            target.set_weights(weights)
    names = [t.name for t in copy.inputs]
    specs = [
        tf.TensorSpec(t.shape, t.dtype, name=name)
        for t, name in zip(copy.inputs, names, strict=True)
    ]
    outputs = getattr(copy, "output_names", None) or [
        f"output_{i}" for i in range(len(copy.outputs))
    ]

    def serve(*inputs):
        predictions = copy(list(inputs) if len(inputs) > 1 else inputs[0],
                           training=False)
        predictions = tf.nest.flatten(predictions)
        return dict(zip(outputs, predictions, strict=True))

    archive = keras.export.ExportArchive()
    archive.track(copy)
    archive.add_endpoint("serve", serve, input_signature=specs)
    archive.write_out(path, verbose=verbose)
