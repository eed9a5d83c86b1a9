"""Drop-ins for `tf.compat.v1.train`, and dynamic tables for v1 graphs."""

from tf_swap.compat.v1.adagrad_swap import AdagradSwapOptimizer
from tf_swap.compat.v1.dynamic_table import (
    DynamicTable,
    ServingTable,
    dynamic_embedding_lookup,
)
from tf_swap.compat.v1.ftrl_swap import FtrlSwapOptimizer

__all__ = [
    "AdagradSwapOptimizer",
    "DynamicTable",
    "FtrlSwapOptimizer",
    "ServingTable",
    "dynamic_embedding_lookup",
]
