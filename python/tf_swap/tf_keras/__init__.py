"""tf_keras (Keras 2) optimizer and layer, for `model.fit` under
`tf.distribute.ParameterServerStrategy` with sharded tables (Keras 3 has no
parameter-server training with sharded variables). Needs `tf_keras`
(`pip install tf_swap[tf_keras]`, i.e. `tf-keras==2.21.0`)."""

try:
    import tf_keras  # noqa: F401
except ImportError as error:
    raise ImportError(
        "tf_swap.tf_keras needs tf_keras (Keras 2): pip install tf-keras==2.21.0 "
        "(or tf_swap[tf_keras])"
    ) from error

from tf_swap.tf_keras.adagrad_swap import AdagradSwap  # noqa: E402
from tf_swap.tf_keras.local_batch_normalization import (  # noqa: E402
    LocalBatchNormalization,
)
from tf_swap.tf_keras.read_step import record_read_step  # noqa: E402

__all__ = ["AdagradSwap", "LocalBatchNormalization", "record_read_step"]
