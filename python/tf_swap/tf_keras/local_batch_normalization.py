"""tf_keras (Keras 2) Local Batch Normalization layer (SPEC section 3)."""

import tf_keras

from tf_swap.local_batch_norm_layer import (
    LocalBatchNormalizationBase,
    local_variable,
)
from tf_swap.tf_keras.legacy_internals import saving_saved_model


@tf_keras.saving.register_keras_serializable(package="tf_swap")
class LocalBatchNormalization(LocalBatchNormalizationBase, tf_keras.layers.Layer):
    __doc__ = (
        LocalBatchNormalizationBase.__doc__
        + """
    SavedModel (`model.save(path)`): tf_keras also saves training-mode
    traces of every layer's `call`, and a SavedModel loads only where every
    op in it is registered. While tf_keras saves a SavedModel, training
    traces run the stock-op twin of tf_swap's op (float64 statistics, the
    same normalization), which keeps every saved function loadable on stock
    TensorFlow; training otherwise runs tf_swap's op.
    """
    )

    _api = tf_keras

    # Class attributes, so that tf_keras does not track what is assigned to
    # them: a per-worker variable (ParameterServerStrategy) must not be a
    # model weight (tf_keras checks that every weight belongs to the
    # strategy, and a worker's own statistics are no part of a checkpoint);
    # weights made by `add_weight` are tracked by `add_weight` itself.
    local_mean = local_variance = local_steps = None

    def _uses_kernels(self):
        return not saving_saved_model()

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
