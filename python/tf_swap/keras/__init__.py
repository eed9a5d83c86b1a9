"""Keras 3 optimizers and layers."""

from tf_swap.keras.adagrad_swap import AdagradSwap

__all__ = ["AdagradSwap"]
