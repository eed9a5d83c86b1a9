"""Conversions shared by the op wrappers."""

import numbers

import tensorflow as tf


def resource_handle(variable):
    """The resource handle of a `tf.Variable`, Keras variable or handle."""
    if isinstance(variable, tf.Tensor) and variable.dtype == tf.resource:
        return variable
    handle = getattr(variable, "handle", None)
    if handle is None:
        raise TypeError(f"Expected a resource variable or handle, got {type(variable)}")
    return handle


def scalar(value, dtype, name):
    """`value` as a scalar input of `dtype`.

    Python (and NumPy) numbers convert straight to `dtype` (0.1 stays the
    nearest float64 to 0.1, not a float32 widened). Anything else is passed
    on as it is: a tensor of another dtype is refused by the op, as
    TensorFlow's own ops refuse it (`InvalidArgumentError` eagerly,
    `TypeError` while tracing), never cast silently.
    """
    if isinstance(value, numbers.Number):
        return tf.convert_to_tensor(value, dtype=dtype, name=name)
    return value


def period(value):
    """A decay period as an int64 scalar; `1.4e7` is accepted, `2.5` not."""
    if isinstance(value, numbers.Number):
        if float(value) != int(value):
            raise ValueError(
                f"decay_period must be a whole number of steps, got {value}"
            )
        value = int(value)
    return scalar(value, tf.int64, "decay_period")


def variable_dtype(var, grad):
    """The element dtype of `var` (a variable, or a bare handle, whose
    gradient then carries the dtype)."""
    dtype = getattr(var, "dtype", None)
    if dtype is None or tf.as_dtype(dtype) == tf.resource:
        return tf.convert_to_tensor(grad).dtype
    return tf.as_dtype(dtype).base_dtype
