"""Staleness normalization under tf_keras' `model.fit`."""

import tensorflow as tf


def record_read_step(model):
    """Makes `model.fit` record `t_read` before each step's forward pass.

    tf_keras' `train_step` runs the forward pass and then
    `optimizer.minimize`; staleness normalization needs the global step read
    *before* the forward pass reads the parameters. This wraps the model's
    `train_step` (on this instance) so that each step first calls
    `model.optimizer.read_step()` (an optimizer without it, e.g. a stock
    one, is left alone) and runs the original step under a control
    dependency on it. Call it once, after `compile` or before: it reads the
    optimizer at every step, so recompiling with another optimizer is fine.

    ```python
    model.compile(optimizer=tf_swap.tf_keras.AdagradSwap(
        0.05, staleness_exponent=2), loss="binary_crossentropy")
    tf_swap.tf_keras.record_read_step(model)
    model.fit(dataset, epochs=3, steps_per_epoch=100)
    ```

    Args:
        model: A `tf_keras.Model`.

    Returns:
        `model`, for chaining.
    """
    if getattr(model, "_tf_swap_records_read_step", False):
        return model
    step = model.train_step

    def train_step(data):
        read_step = getattr(model.optimizer, "read_step", None)
        if read_step is None:
            return step(data)
        t_read = read_step()
        with tf.control_dependencies([t_read]):
            return step(data)

    model.train_step = train_step
    model._tf_swap_records_read_step = True
    model.train_function = None  # retrace with the wrapped step
    return model
