"""tf_swap: Adagrad-SWAP, staleness normalization and Local Batch
Normalization for asynchronous parameter-server training in TensorFlow.

- `tf_swap.ops`: the raw ops (Rust kernels behind TensorFlow custom ops).
- `tf_swap.keras`: Keras 3 optimizer and layers.
- `tf_swap.compat.v1`: `tf.compat.v1.train` optimizer.
"""

from tf_swap import _ops

# Fail at import, with the fix in the message, rather than at the first op.
_ops.library()

from tf_swap import compat, keras, ops  # noqa: E402

__version__ = "0.1.0"
__all__ = ["compat", "keras", "ops"]
