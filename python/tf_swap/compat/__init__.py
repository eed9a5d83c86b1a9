"""Drop-ins for `tf.compat.v1`."""

from tf_swap.compat import v1

__all__ = ["v1"]
