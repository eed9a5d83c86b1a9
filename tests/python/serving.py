"""Runs a SavedModel in a Python process that cannot import tf_swap (no
`PYTHONPATH` to the package, no `TF_SWAP_LIBRARY`), as TF Serving or a plain
`tf.saved_model.load` would, and lists the ops the SavedModel names."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

_SERVE = r"""
import json, sys
import numpy as np
import tensorflow as tf
try:
    import tf_swap  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("tf_swap is importable: the process is not clean")
from tensorflow.core.protobuf import saved_model_pb2

path, inputs, outputs = sys.argv[1:4]
proto = saved_model_pb2.SavedModel()
with open(path + "/saved_model.pb", "rb") as f:
    proto.ParseFromString(f.read())
ops = set()
for meta_graph in proto.meta_graphs:
    ops |= {node.op for node in meta_graph.graph_def.node}
    for function in meta_graph.graph_def.library.function:
        ops |= {node.op for node in function.node_def}
loaded = tf.saved_model.load(path)
serve = loaded.signatures["serving_default"]
feed = dict(np.load(inputs))
result = serve(**{k: tf.constant(v) for k, v in feed.items()})
result = {k: v.numpy() for k, v in result.items()}
np.savez(outputs, **result)
print(json.dumps(sorted(ops)))
"""


def clean_environment() -> dict[str, str]:
    """This process's environment without what would let a child find
    tf_swap."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "TF_SWAP_LIBRARY")
    }
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def serve_in_clean_process(path, inputs: dict[str, np.ndarray]):
    """Loads the SavedModel at `path` where tf_swap is not importable and
    runs its `serving_default` signature on `inputs`.

    Returns:
        `(outputs, ops)`: the signature's outputs by name, and every op type
        the SavedModel's graph and function library name.
    """
    with tempfile.TemporaryDirectory() as tmp:
        feed, out = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(feed, **inputs)
        result = subprocess.run(
            [sys.executable, "-c", _SERVE, str(path), str(feed), str(out)],
            env=clean_environment(),
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        ops = json.loads(result.stdout.strip().splitlines()[-1])
        outputs = dict(np.load(out))
    return outputs, ops


def tf_swap_ops(ops) -> list[str]:
    """The tf_swap op types among `ops`."""
    return [op for op in ops if op.startswith("TfSwap")]
