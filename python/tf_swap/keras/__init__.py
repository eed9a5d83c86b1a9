"""Keras 3 optimizers and layers, and export for serving."""

from tf_swap.keras.adagrad_swap import AdagradSwap
from tf_swap.keras.dynamic_embedding import DynamicEmbedding
from tf_swap.keras.export import export_for_serving
from tf_swap.keras.ftrl_swap import FtrlSwap
from tf_swap.keras.local_batch_normalization import LocalBatchNormalization
from tf_swap.keras.sharded_embedding import ShardedEmbedding

__all__ = [
    "AdagradSwap",
    "DynamicEmbedding",
    "FtrlSwap",
    "LocalBatchNormalization",
    "ShardedEmbedding",
    "export_for_serving",
]
