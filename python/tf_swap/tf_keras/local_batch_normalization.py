"""tf_keras (Keras 2) Local Batch Normalization layer (SPEC section 3)."""

import threading

import tf_keras

from tf_swap.local_batch_norm_layer import (
    LocalBatchNormalizationBase,
    local_variable,
)


@tf_keras.saving.register_keras_serializable(package="tf_swap")
class LocalBatchNormalization(LocalBatchNormalizationBase, tf_keras.layers.Layer):
    __doc__ = LocalBatchNormalizationBase.__doc__ + """
    SavedModel (`model.save(path)`): tf_keras also saves training-mode
    traces of every layer's `call`, and a SavedModel loads only where every
    op in it is registered. tf_keras traces those by calling `call`
    directly, while models call layers through `__call__`; so training runs
    tf_swap's ops when the layer is called as a layer and their stock-op
    twin (float64 statistics, the same normalization) when `call` is
    invoked directly, which keeps every saved function loadable on stock
    TensorFlow.
    """

    _api = tf_keras

    # Class attributes, so that tf_keras does not track what is assigned to
    # them: a per-worker variable (ParameterServerStrategy) must not be a
    # model weight (tf_keras checks that every weight belongs to the
    # strategy, and a worker's own statistics are no part of a checkpoint);
    # weights made by `add_weight` are tracked by `add_weight` itself.
    local_mean = local_variance = local_steps = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._calls = threading.local()

    def __call__(self, *args, **kwargs):
        # While tf_keras saves, `self.call` is its traced stand-in: the
        # `call` that runs then is being traced for the SavedModel.
        if getattr(self.call, "__func__", None) is not type(self).call:
            return super().__call__(*args, **kwargs)
        depth = getattr(self._calls, "depth", 0)
        self._calls.depth = depth + 1
        try:
            return super().__call__(*args, **kwargs)
        finally:
            self._calls.depth = depth

    def _uses_kernels(self):
        return getattr(self._calls, "depth", 0) > 0

    def _add_float_weight(self, name, shape, initializer, **kwargs):
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=initializer,
            experimental_autocast=False,
            **kwargs,
        )

    def _add_local_weight(self, name, shape, initializer, dtype):
        if not self._uses_local_variables():
            return self.add_weight(
                name=name,
                shape=shape,
                initializer=initializer,
                dtype=dtype,
                trainable=False,
                experimental_autocast=False,
            )
        return local_variable(name, shape, initializer, dtype, self.local_device)
