"""What the Keras `DynamicEmbedding` layers share: how the gradient of a
dynamic table's rows reaches the optimizer, and how a tf_swap optimizer
finds the table behind a variable it is given.

A dynamic table is not a variable, so Keras would compute no gradient for
it. Each layer owns one small trainable variable, its *gradient slot*
(`[1, dim]` zeros, never changed): the rows a training lookup returns are
wired to it by a custom gradient whose value is a `tf.IndexedSlices` of the
rows' gradients indexed by the *ids* (not rows of the slot). The model's
optimizer receives it with the slot; a tf_swap optimizer recognizes the
slot (`table_layer_of`) and applies the rule to the table's entries. Under
any other optimizer the first training step fails with `untrained`'s
message.
"""

from __future__ import annotations

import weakref

import tensorflow as tf

# id(gradient slot variable) -> the layer owning it.
_LAYERS: dict[int, weakref.ReferenceType] = {}

TF_SWAP_OPTIMIZERS = (
    "tf_swap.keras.AdagradSwap / FtrlSwap (Keras 3) or tf_swap.tf_keras."
    "AdagradSwap / FtrlSwap (tf_keras)"
)


def _forms(variable) -> tuple:
    """A Keras variable and the `tf.Variable` it wraps (Keras' TensorFlow
    optimizers pass either)."""
    inner = getattr(variable, "value", None)
    return (variable, inner) if isinstance(inner, tf.Variable) else (variable,)


def register(slot_variable, layer) -> None:
    """Marks `slot_variable` as the gradient slot of `layer`."""
    for form in _forms(slot_variable):
        _LAYERS[id(form)] = weakref.ref(layer)


def table_layer_of(variable):
    """The `DynamicEmbedding` whose gradient slot `variable` is, or None."""
    ref = _LAYERS.get(id(variable))
    layer = ref() if ref is not None else None
    if layer is None or not any(f is variable for f in _forms(layer.gradient_slot)):
        return None
    return layer


def untrained(layer) -> str:
    """The error of a training step of `layer` without a tf_swap optimizer."""
    return (
        f"DynamicEmbedding {layer.name!r} is trained by {TF_SWAP_OPTIMIZERS}, "
        "built with the model's variables before the first step (model.fit "
        "builds the compiled one; in a custom loop call "
        "optimizer.build(model.trainable_variables)); other optimizers cannot "
        "update a dynamic table."
    )


def route_gradient(rows: tf.Tensor, slot_value: tf.Tensor, ids: tf.Tensor, dim: int):
    """`rows`, whose gradient goes to `slot_value` as a `tf.IndexedSlices`
    of one row per id (`ids` flattened, int64)."""
    flat_ids = tf.reshape(ids, [-1])

    @tf.custom_gradient
    def wired(slot):
        def gradient(upstream):
            values = tf.reshape(upstream, [-1, dim])
            return tf.IndexedSlices(
                values, flat_ids, dense_shape=tf.shape(slot, out_type=tf.int64)
            )

        return tf.identity(rows), gradient

    return wired(slot_value)
