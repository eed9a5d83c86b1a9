"""tf_swap's TensorFlow ops, with Python wrappers that mirror `tf.raw_ops`.

The op library is loaded when the first op is built; `load_library()`
loads it explicitly (a parameter server that only runs other processes'
ops needs them registered).
"""

from tf_swap._ops import library as load_library
from tf_swap.ops.adagrad_swap import (
    resource_apply_adagrad_swap,
    resource_sparse_apply_adagrad_swap,
)
from tf_swap.ops.dynamic_tables import (
    TableExport,
    dynamic_table,
    dynamic_table_apply_adagrad_swap,
    dynamic_table_apply_ftrl_swap,
    dynamic_table_evict,
    dynamic_table_export,
    dynamic_table_find,
    dynamic_table_import,
    dynamic_table_lookup,
    dynamic_table_set_slot_init,
    dynamic_table_size,
)
from tf_swap.ops.ftrl_swap import (
    resource_apply_ftrl_swap,
    resource_sparse_apply_ftrl_swap,
)
from tf_swap.ops.local_batch_norm import (
    local_batch_norm,
    local_batch_norm_inference,
)

__all__ = [
    "TableExport",
    "dynamic_table",
    "dynamic_table_apply_adagrad_swap",
    "dynamic_table_apply_ftrl_swap",
    "dynamic_table_evict",
    "dynamic_table_export",
    "dynamic_table_find",
    "dynamic_table_import",
    "dynamic_table_lookup",
    "dynamic_table_set_slot_init",
    "dynamic_table_size",
    "load_library",
    "local_batch_norm",
    "local_batch_norm_inference",
    "resource_apply_adagrad_swap",
    "resource_apply_ftrl_swap",
    "resource_sparse_apply_adagrad_swap",
    "resource_sparse_apply_ftrl_swap",
]
