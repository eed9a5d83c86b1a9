"""`import tf_swap` fails with a clear ImportError when the op library is
missing or has no ops (e.g. built without TensorFlow)."""

import _ctypes
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def import_with_library(path):
    env = dict(os.environ, TF_SWAP_LIBRARY=str(path), PYTHONPATH=str(ROOT / "python"))
    return subprocess.run(
        [sys.executable, "-c", "import tf_swap"],
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
