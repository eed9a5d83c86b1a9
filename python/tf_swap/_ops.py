"""Loads tf_swap's op library (the Rust kernels and their TensorFlow ops),
on first use: `library()` is called by each op wrapper.

A custom-op library only works with the TensorFlow it was compiled against;
loaded into another one it may fail to resolve symbols or crash. Every build
that knows its TensorFlow (`make build`, `pip install .`, bazel) records that
TensorFlow's version next to the library (`_tf_swap_ops.so` ->
`_tf_swap_ops.tf_version`), and the library is refused with an `ImportError`
naming both versions before it is loaded if the running TensorFlow differs.
A library without that file (e.g. from a bare `cargo build`) is not checked.
"""

import functools
import os
import re
from pathlib import Path

import tensorflow as tf

# Every op the library must register; a library built without TensorFlow
# loads fine but registers none of them.
EXPECTED_OPS = (
    "TfSwapResourceApplyAdagradSwap",
    "TfSwapResourceSparseApplyAdagradSwap",
    "TfSwapResourceApplyFtrlSwap",
    "TfSwapResourceSparseApplyFtrlSwap",
    "TfSwapLocalBatchNorm",
    "TfSwapLocalBatchNormGrad",
    "TfSwapDynamicTable",
    "TfSwapDynamicTableLookup",
    "TfSwapDynamicTableApplyAdagradSwap",
    "TfSwapDynamicTableApplyFtrlSwap",
)

_LIBRARY_ENV = "TF_SWAP_LIBRARY"


def _candidates():
    override = os.environ.get(_LIBRARY_ENV)
    if override:
        return [Path(override)]
    package = Path(__file__).resolve().parent
    return [
        package / "_tf_swap_ops.so",  # installed wheel
        package.parents[1] / "target" / "release" / "libtf_swap.so",  # cargo
    ]


def _check_tensorflow_version(path):
    try:
        built_for = path.with_suffix(".tf_version").read_text().strip()
    except FileNotFoundError:
        return
    if built_for != tf.__version__:
        raise ImportError(
            f"{path} was built for TensorFlow {built_for}, but TensorFlow "
            f"{tf.__version__} is installed; a TensorFlow op library only loads "
            "into the TensorFlow it was built against. Install TensorFlow "
            f"{built_for}, or rebuild tf_swap against TensorFlow {tf.__version__} "
            "(`make build`, `pip install --no-build-isolation .` or bazel)."
        )


def _wrapper(op_name):
    """The name of the Python wrapper TensorFlow generates for an op."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", op_name).lower()


@functools.cache
def library():
    """Returns the loaded op module; raises `ImportError` if unusable."""
    candidates = _candidates()
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise ImportError(
            "tf_swap's op library was not found (looked for "
            + ", ".join(str(p) for p in candidates)
            + "). Build it with `make build` (TF_SWAP_OPS=1 cargo build "
            f"--release) or point {_LIBRARY_ENV} at it."
        )
    _check_tensorflow_version(path)
    try:
        module = tf.load_op_library(str(path))
    except tf.errors.NotFoundError as error:
        raise ImportError(f"cannot load {path}: {error}") from error
    missing = [op for op in EXPECTED_OPS if not hasattr(module, _wrapper(op))]
    if missing:
        raise ImportError(
            f"{path} does not register the tf_swap ops {missing}: it was "
            "built without TensorFlow. Rebuild with `make build` "
            "(TF_SWAP_OPS=1 cargo build --release)."
        )
    return module
