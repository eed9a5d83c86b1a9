"""tf_swap's TensorFlow ops, with Python wrappers that mirror `tf.raw_ops`."""

from tf_swap.ops.adagrad_swap import (
    resource_apply_adagrad_swap,
    resource_sparse_apply_adagrad_swap,
)

__all__ = [
    "resource_apply_adagrad_swap",
    "resource_sparse_apply_adagrad_swap",
]
