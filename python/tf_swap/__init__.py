"""tf_swap: Adagrad-SWAP, FTRL-SWAP, staleness normalization and Local Batch
Normalization for asynchronous parameter-server training in TensorFlow.

- `tf_swap.keras`: Keras 3 optimizers, layers and export for serving.
- `tf_swap.tf_keras`: tf_keras (Keras 2) optimizers, layer and model.
- `tf_swap.compat.v1`: `tf.compat.v1.train` optimizers.
- `tf_swap.ops`: the raw ops (Rust kernels behind TensorFlow custom ops).
- `tf_swap.DynamicTable`: a dynamic embedding table sharded over devices.

Importing tf_swap imports nothing else: each of these is imported when it
is first used, and the op library is loaded (and checked against the
running TensorFlow) when the first op is built.
"""

import importlib

__version__ = "0.1.0"
__all__ = ["DynamicTable", "compat", "keras", "ops", "tf_keras"]

_SUBMODULES = frozenset(["compat", "core", "keras", "ops", "tf_keras"])
# Classes, imported from their module on first use.
_CLASSES = {"DynamicTable": "tf_swap.dynamic_table"}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"tf_swap.{name}")
    if name in _CLASSES:
        return getattr(importlib.import_module(_CLASSES[name]), name)
    raise AttributeError(f"module 'tf_swap' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_SUBMODULES, *_CLASSES])
