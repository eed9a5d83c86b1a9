"""Results do not depend on TensorFlow's intra-op thread count."""

import functools
import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import hashlib, sys
    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(int(sys.argv[1]))
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import tf_swap
    rng = np.random.default_rng(0)
    shape = (100_000, 8)
    var = tf.Variable(rng.normal(size=shape).astype(np.float32))
    accum = tf.Variable(np.full(shape, 0.1, np.float32))
    power = tf.Variable(np.zeros(shape[0], np.int64))
    hyper = dict(decay_rate=0.8, decay_period=3, accumulator_floor=0.1)
    for step in range(1, 8):
        # Zipf indices: many duplicates, summed inside the op.
        indices = np.minimum(rng.zipf(1.05, 200_000) - 1, shape[0] - 1)
        grad = rng.normal(size=(indices.size, 8)).astype(np.float32)
        tf_swap.ops.resource_sparse_apply_adagrad_swap(
            var, accum, power, 0.05, grad, indices, step, **hyper)
        tf_swap.ops.resource_apply_adagrad_swap(
            var, accum, power, 0.01, rng.normal(size=shape).astype(np.float32),
            step * 2, **hyper)
    digest = hashlib.sha256()
    for v in (var, accum, power):
        digest.update(v.numpy().tobytes())
    print(digest.hexdigest())
    """
)


@functools.cache
def run_with_threads(threads):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "python")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(threads)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("threads", [2, 8])
def test_same_bits_as_one_thread(threads):
    one = run_with_threads(1)
    assert len(one) == len(hashlib.sha256().hexdigest())
    assert run_with_threads(threads) == one
