"""Keras 3 Local Batch Normalization layer (SPEC section 3)."""

import keras

from tf_swap.local_batch_norm_layer import (
    LocalBatchNormalizationBase,
    local_variable,
)


@keras.saving.register_keras_serializable(package="tf_swap")
class LocalBatchNormalization(LocalBatchNormalizationBase, keras.layers.Layer):
    __doc__ = LocalBatchNormalizationBase.__doc__

    _api = keras

    def __init__(self, *args, **kwargs):
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError(
                "LocalBatchNormalization needs the tensorflow Keras backend, "
                f"not {keras.backend.backend()!r}"
            )
        super().__init__(*args, **kwargs)

    def _add_float_weight(self, name, shape, initializer, **kwargs):
        return self.add_weight(
            shape=shape, name=name, initializer=initializer, autocast=False, **kwargs
        )

    def _add_local_weight(self, name, shape, initializer, dtype):
        if not self._uses_local_variables():
            return self.add_weight(
                shape=shape,
                name=name,
                initializer=initializer,
                dtype=dtype,
                trainable=False,
                autocast=False,
            )
        variable = local_variable(name, shape, initializer, dtype, self.local_device)
        return keras.Variable(
            variable, dtype=dtype, trainable=False, name=name, autocast=False
        )
