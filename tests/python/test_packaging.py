"""Packaging (issue 5): the TensorFlow version check, the bazel-built library
and the wheel.

The version check runs with the other Python tests, on the library they use.
The bazel and wheel tests need what `make bazel-test` and `make wheel-test`
build, passed in TF_SWAP_BAZEL_LIBRARY and TF_SWAP_WHEEL_PYTHON; without them
they are skipped.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from tf_swap import _ops

ROOT = Path(__file__).resolve().parents[2]
# The op library is loaded (and checked) when the first op is built.
FIRST_USE = (
    "import tensorflow as tf, tf_swap.ops as ops; "
    "ops.local_batch_norm(tf.ones([2, 2]), tf.ones([2]), tf.zeros([2]))"
)


def library_in_use():
    """The library `import tf_swap` loads here (TF_SWAP_LIBRARY or a build)."""
    path = next((p for p in _ops._candidates() if p.is_file()), None)
    if path is None:
        pytest.skip("no op library built")
    return path


def run(python, script, *args, env=None, cwd=None):
    return subprocess.run(
        [python, "-c", script, *map(str, args)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def import_with_library(path):
    env = dict(os.environ, TF_SWAP_LIBRARY=str(path), PYTHONPATH=str(ROOT / "python"))
    return run(sys.executable, FIRST_USE, env=env)


def with_recorded_version(tmp_path, library, version):
    """`library` as `tmp_path/_tf_swap_ops.so`, recorded as built for `version`."""
    copy = tmp_path / "_tf_swap_ops.so"
    copy.symlink_to(library)
    (tmp_path / "_tf_swap_ops.tf_version").write_text(version + "\n")
    return copy


def test_other_tensorflow_version_is_refused_naming_both(tmp_path):
    library = with_recorded_version(tmp_path, library_in_use(), "2.0.0")
    result = import_with_library(library)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "built for TensorFlow 2.0.0" in result.stderr
    assert f"TensorFlow {tf.__version__} is installed" in result.stderr


def test_version_is_checked_before_the_library_is_loaded(tmp_path):
    # Not a library at all: had it been loaded, the error would say so.
    not_a_library = tmp_path / "garbage.so"
    not_a_library.write_bytes(b"\x7fELF garbage")
    library = with_recorded_version(tmp_path, not_a_library, "1.15.5")
    result = import_with_library(library)
    assert result.returncode != 0
    assert "built for TensorFlow 1.15.5" in result.stderr
    assert "cannot load" not in result.stderr


def test_recorded_running_version_loads(tmp_path):
    library = with_recorded_version(tmp_path, library_in_use(), tf.__version__)
    result = import_with_library(library)
    assert result.returncode == 0, result.stderr


OP_NAMES = """
import re
import sys

import tensorflow as tf
from tensorflow.python.framework import op_def_registry

module = tf.load_op_library(sys.argv[1])
for name in sorted(dir(module)):
    wrapper = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    if op_def_registry.get(name) is not None and hasattr(module, wrapper):
        print(name)
"""


def op_names(library):
    # One process per library: both register the same ops.
    result = run(sys.executable, OP_NAMES, library)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.mark.skipif(
    "TF_SWAP_BAZEL_LIBRARY" not in os.environ, reason="needs `make bazel-test`"
)
def test_bazel_library_registers_the_ops_of_the_cargo_build():
    bazel = Path(os.environ["TF_SWAP_BAZEL_LIBRARY"])
    cargo = library_in_use()  # `make build`'s
    assert bazel.name == "_tf_swap_ops.so"
    assert cargo.resolve() != bazel.resolve()
    names = op_names(bazel)
    assert names == op_names(cargo)
    assert set(_ops.EXPECTED_OPS) <= set(names)
    recorded = bazel.with_suffix(".tf_version").read_text().strip()
    assert recorded == tf.__version__


WHEEL_CHECK = """
import json
from importlib.metadata import metadata
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_swap
from tf_swap import _ops

package = Path(tf_swap.__file__).parent
var = tf.Variable([[1.0, 2.0], [3.0, 4.0]])
accum = tf.Variable(tf.fill([2, 2], 0.1))
power = tf.Variable([0, 0], dtype=tf.int64)
grad = tf.constant([[1.0, 0.5], [-1.0, 2.0]])
tf_swap.ops.resource_apply_adagrad_swap(
    var, accum, power, 0.1, grad, 1,
    decay_rate=0.5, decay_period=10, accumulator_floor=0.0)
g = grad.numpy()
start = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
expected = start - 0.1 * g / np.sqrt(0.1 + g**2)
print(json.dumps({
    "package": str(package),
    "library": str(next(p for p in _ops._candidates() if p.is_file())),
    "recorded": (package / "_tf_swap_ops.tf_version").read_text().strip(),
    "tensorflow": tf.__version__,
    "max_error": float(np.max(np.abs(var.numpy() - expected))),
    "description": metadata("tf_swap").get_payload() or "",
}))
"""


@pytest.mark.skipif(
    "TF_SWAP_WHEEL_PYTHON" not in os.environ, reason="needs `make wheel-test`"
)
def test_wheel_in_a_fresh_environment_loads_its_library_and_runs_an_op(tmp_path):
    # Outside the source tree, with nothing pointing back into it.
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "TF_SWAP_LIBRARY")
    }
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    result = run(os.environ["TF_SWAP_WHEEL_PYTHON"], WHEEL_CHECK, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    package = Path(report["package"])
    assert "site-packages" in package.parts
    assert Path(report["library"]) == package / "_tf_swap_ops.so"
    assert report["recorded"] == report["tensorflow"] == tf.__version__
    assert report["max_error"] < 1e-6
    # The wheel describes itself whole: the README and the algorithm
    # definitions, no path into a repository the user does not have.
    assert "# What tf_swap computes" in report["description"]
    assert "## 4. FTRL-SWAP" in report["description"]
    assert "../shared" not in report["description"]
