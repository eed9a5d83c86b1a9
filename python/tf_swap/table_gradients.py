"""How the gradient of a dynamic table's rows reaches a tf_swap optimizer.

A dynamic table is not a variable, so TensorFlow computes no gradient for
it. Its owner (a Keras `DynamicEmbedding`, or a shard of a
`tf_swap.compat.v1.DynamicTable`) holds a small trainable variable, its
*gradient slot* (`[1, dim]` zeros, never changed): the rows a training
lookup returns are wired to it by a custom gradient whose value is a
`tf.IndexedSlices` of the rows' gradients indexed by the *ids* (not rows of
the slot). The optimizer receives it with the slot; a tf_swap optimizer
finds the slot's owner (`gradient_slot_owner`) and applies its rule to the
owner's `table`. Any other optimizer never sets the owner's period, and the
training lookup fails with the owner's message before any update.
"""

from __future__ import annotations

import weakref

import tensorflow as tf

# No trainer yet: a period so long that new entries are stamped period 0.
NO_PERIOD = 2**62

# id(gradient slot variable) -> its owner.
_OWNERS: dict[int, weakref.ReferenceType] = {}


def _forms(variable) -> tuple:
    """A Keras variable and the `tf.Variable` it wraps (Keras' TensorFlow
    optimizers pass either)."""
    inner = getattr(variable, "value", None)
    return (variable, inner) if isinstance(inner, tf.Variable) else (variable,)


def register(slot_variable, owner) -> None:
    """Marks `slot_variable` as the gradient slot of `owner`, which has
    `gradient_slot`, `table` (what the rule applies to), `attach(core)` and
    `trained(step)`."""
    for form in _forms(slot_variable):
        _OWNERS[id(form)] = weakref.ref(owner)


def gradient_slot_owner(variable):
    """The owner whose gradient slot `variable` is, or None."""
    ref = _OWNERS.get(id(variable))
    owner = ref() if ref is not None else None
    if owner is None or not any(f is variable for f in _forms(owner.gradient_slot)):
        return None
    return owner


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


def require_trainer(decay_period, message: str) -> tf.Operation:
    """The check a training lookup runs first: a tf_swap optimizer has set
    `decay_period` (when it was built, before any step)."""
    period = tf.convert_to_tensor(decay_period)
    return tf.debugging.assert_less(
        period, tf.constant(NO_PERIOD, tf.int64), message=message
    )
