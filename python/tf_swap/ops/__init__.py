"""tf_swap's TensorFlow ops, with Python wrappers that mirror `tf.raw_ops`."""

from tf_swap.ops.adagrad_swap import (
    resource_apply_adagrad_swap,
    resource_sparse_apply_adagrad_swap,
)
from tf_swap.ops.local_batch_norm import (
    local_batch_norm,
    local_batch_norm_inference,
)

__all__ = [
    "local_batch_norm",
    "local_batch_norm_inference",
    "resource_apply_adagrad_swap",
    "resource_sparse_apply_adagrad_swap",
]
