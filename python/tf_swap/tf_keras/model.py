"""Staleness normalization under tf_keras' `model.fit`: a model whose
training step records `t_read` before its forward pass."""

import tensorflow as tf
import tf_keras


class ReadStepMixin:
    """Makes a `tf_keras.Model` subclass record `t_read` in `train_step`.

    Staleness normalization needs the global step read *before* the
    forward pass reads the parameters; tf_keras' `train_step` runs the
    forward pass and then `optimizer.minimize`. With this mixin each
    training step first calls `optimizer.read_step()` (an optimizer without
    it, e.g. a stock one, is left alone) and runs the framework's step
    under a control dependency on it. Mix it in before `tf_keras.Model`:
    `class MyModel(ReadStepMixin, tf_keras.Model)`.
    """

    def train_step(self, data):
        read_step = getattr(self.optimizer, "read_step", None)
        if read_step is None:
            return super().train_step(data)
        t_read = read_step()
        with tf.control_dependencies([t_read]):
            return super().train_step(data)


@tf_keras.saving.register_keras_serializable(package="tf_swap")
class Model(ReadStepMixin, tf_keras.Model):
    """A `tf_keras.Model` whose `model.fit` records `t_read` for the
    optimizer before each step's forward pass (see `ReadStepMixin`); built
    like `tf_keras.Model`, functionally or by subclassing:

    ```python
    inputs = tf_keras.Input((fields,), dtype="int32")
    outputs = ...
    model = tf_swap.tf_keras.Model(inputs, outputs)
    model.compile(optimizer=tf_swap.tf_keras.AdagradSwap(
        0.05, staleness_exponent=2), loss="binary_crossentropy")
    model.fit(dataset, epochs=3, steps_per_epoch=100)
    ```
    """


def record_read_step(model):
    """Returns `model` if its `model.fit` records `t_read` (a
    `tf_swap.tf_keras.Model`, or a model mixing in `ReadStepMixin`).

    Kept for scripts written against earlier tf_swap, which wrapped a
    model's `train_step` in place; a model of another class now raises,
    since its step cannot be changed without replacing its methods.

    Raises:
        TypeError: `model` does not record `t_read`.
    """
    if isinstance(model, ReadStepMixin):
        return model
    raise TypeError(
        f"{type(model).__name__} does not record t_read before its forward "
        "pass: build it as tf_swap.tf_keras.Model(inputs, outputs), or mix "
        "tf_swap.tf_keras.ReadStepMixin into its class (before tf_keras.Model)"
    )
