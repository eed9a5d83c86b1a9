"""The first op fails with a clear ImportError when the op library is
missing or has no ops (e.g. built without TensorFlow); `import tf_swap`
itself loads nothing and leaves the process alone."""

import _ctypes
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The op library is loaded (and checked) when the first op is built.
FIRST_USE = (
    "import tensorflow as tf, tf_swap.ops as ops; "
    "ops.local_batch_norm(tf.ones([2, 2]), tf.ones([2]), tf.zeros([2]))"
)


def import_with_library(path):
    env = dict(os.environ, TF_SWAP_LIBRARY=str(path), PYTHONPATH=str(ROOT / "python"))
    return subprocess.run(
        [sys.executable, "-c", FIRST_USE],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_missing_library_names_the_path_and_the_fix():
    result = import_with_library("/nonexistent/libtf_swap.so")
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "/nonexistent/libtf_swap.so" in result.stderr
    assert "make build" in result.stderr


def test_library_without_ops_is_refused():
    # The Rust-only build (TF_SWAP_OPS=0, made by `make rust-test`) loads but
    # registers no ops; any shared library without ops behaves the same.
    rust_only = ROOT / "target" / "rust-only" / "release" / "libtf_swap.so"
    path = rust_only if rust_only.is_file() else _ctypes.__file__
    result = import_with_library(path)
    assert result.returncode != 0
    assert "does not register the tf_swap ops" in result.stderr
    assert "TfSwapResourceApplyAdagradSwap" in result.stderr


def test_import_alone_loads_nothing_and_keeps_stderr():
    # With a library that cannot load, `import tf_swap` still succeeds: it
    # imports neither TensorFlow nor the library, and writes nothing to
    # file descriptor 2 (no redirection of the process's stderr).
    script = (
        "import os, sys; fd = os.fstat(2); import tf_swap; "
        "assert os.fstat(2) == fd; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; "
        "import tf_swap.keras, tf_swap.compat.v1; print('ok')"
    )
    env = dict(
        os.environ,
        TF_SWAP_LIBRARY="/nonexistent/libtf_swap.so",
        PYTHONPATH=str(ROOT / "python"),
        TF_CPP_MIN_LOG_LEVEL="0",
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    # TensorFlow's own start-up notices reach stderr untouched.
    assert "oneDNN" in result.stderr or "absl" in result.stderr
