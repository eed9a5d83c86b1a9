"""Drop-ins for `tf.compat.v1.train`."""

from tf_swap.compat.v1.adagrad_swap import AdagradSwapOptimizer
from tf_swap.compat.v1.ftrl_swap import FtrlSwapOptimizer

__all__ = ["AdagradSwapOptimizer", "FtrlSwapOptimizer"]
