"""Keras 3 optimizers and layers."""

from tf_swap.keras.adagrad_swap import AdagradSwap
from tf_swap.keras.local_batch_normalization import LocalBatchNormalization

__all__ = ["AdagradSwap", "LocalBatchNormalization"]
