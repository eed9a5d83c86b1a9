"""Drop-ins for `tf.compat.v1.train`."""

from tf_swap.compat.v1.adagrad_swap import AdagradSwapOptimizer

__all__ = ["AdagradSwapOptimizer"]
