"""tf_keras (Keras 2) optimizers, layers, model and serving export, for
`model.fit` under `tf.distribute.ParameterServerStrategy` with sharded
tables (Keras 3 has no parameter-server training with sharded variables).
Needs `tf_keras` (`pip install tf_swap[tf_keras]`, i.e. `tf-keras==2.21.0`).
"""

try:
    import tf_keras  # noqa: F401
except ImportError as error:
    raise ImportError(
        "tf_swap.tf_keras needs tf_keras (Keras 2): pip install tf-keras==2.21.0 "
        "(or tf_swap[tf_keras])"
    ) from error

from tf_swap.tf_keras.adagrad_swap import AdagradSwap  # noqa: E402
from tf_swap.tf_keras.dynamic_embedding import DynamicEmbedding  # noqa: E402
from tf_swap.tf_keras.export import ServingTable, export_for_serving  # noqa: E402
from tf_swap.tf_keras.ftrl_swap import FtrlSwap  # noqa: E402
from tf_swap.tf_keras.local_batch_normalization import (  # noqa: E402
    LocalBatchNormalization,
)
from tf_swap.tf_keras.model import Model, ReadStepMixin, record_read_step  # noqa: E402

__all__ = [
    "AdagradSwap",
    "DynamicEmbedding",
    "FtrlSwap",
    "LocalBatchNormalization",
    "Model",
    "ReadStepMixin",
    "ServingTable",
    "export_for_serving",
    "record_read_step",
]
