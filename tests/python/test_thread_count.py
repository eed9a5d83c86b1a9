"""Results do not depend on TensorFlow's intra-op thread count: every op, on
inputs large enough to be sharded over the intra-op pool, gives the same
bits with 1, 2 and 8 threads. Each count runs in a child process whose
thread count is set before TensorFlow starts (so no side depends on this
process's pool); one child per count runs every op."""

import functools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import hashlib, json, sys
    import numpy as np
    import tensorflow as tf
    threads = int(sys.argv[1])
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    assert tf.config.threading.get_intra_op_parallelism_threads() == threads
    import tf_swap
    import tf_swap.ops as ops

    def digest(*tensors):
        h = hashlib.sha256()
        for t in tensors:
            h.update(np.asarray(t).tobytes())
        return h.hexdigest()

    rng = np.random.default_rng(0)
    shape = (100_000, 8)
    hyper = dict(decay_rate=0.8, decay_period=3, accumulator_floor=0.1)

    def zipf_rows(n):
        # Many duplicates, summed inside the op.
        return np.minimum(rng.zipf(1.05, n) - 1, shape[0] - 1)

    def normal(*size):
        return rng.normal(size=size).astype(np.float32)

    digests = {}
    var = tf.Variable(normal(*shape))
    accum = tf.Variable(np.full(shape, 0.1, np.float32))
    power = tf.Variable(np.zeros(shape[0], np.int64))
    for step in range(1, 8):
        indices = zipf_rows(200_000)
        ops.resource_sparse_apply_adagrad_swap(
            var, accum, power, 0.05, normal(indices.size, 8), indices, step,
            **hyper)
        ops.resource_apply_adagrad_swap(
            var, accum, power, 0.01, normal(*shape), step * 2, **hyper)
    digests["adagrad_swap"] = digest(var, accum, power)

    var = tf.Variable(normal(*shape))
    accum = tf.Variable(np.full(shape, 0.1, np.float32))
    linear = tf.Variable(np.zeros(shape, np.float32))
    power = tf.Variable(np.zeros(shape[0], np.int64))
    ftrl = dict(hyper, l1=0.01, l2=0.001, l2_shrinkage=0.001, lr_power=-0.6,
                beta=0.1)
    for step in range(1, 8):
        indices = zipf_rows(200_000)
        ops.resource_sparse_apply_ftrl_swap(
            var, accum, linear, power, normal(indices.size, 8), indices, 0.05,
            step=step, **ftrl)
        ops.resource_apply_ftrl_swap(
            var, accum, linear, power, normal(*shape), 0.01, step=step * 2,
            **ftrl)
    digests["ftrl_swap"] = digest(var, accum, linear, power)

    # A dynamic table of 3 shards: Zipf ids (duplicates counted and summed
    # in the ops), lookups and applies of both rules.
    for rule, slot_init, apply, rule_hyper in (
        ("adagrad", (0.1,), ops.dynamic_table_apply_adagrad_swap,
         dict(hyper, epsilon=1e-7)),
        ("ftrl", (0.1, 0.0), ops.dynamic_table_apply_ftrl_swap, ftrl),
    ):
        table = tf_swap.DynamicTable(8, slot_init=slot_init, num_shards=3,
                                     min_count=2)
        rows = []
        for step in range(1, 6):
            ids = zipf_rows(100_000) * 7919 - 50_000
            rows.append(table.lookup(ids, step=step, decay_period=3))
            table.apply(apply, normal(ids.size, 8), ids, lr=0.05, step=step,
                        **rule_hyper)
        digests[f"dynamic_table_{rule}"] = digest(*rows, *table.export())

    # 2^20 elements, forward and backward.
    x = tf.constant(3.0 + 2.0 * normal(4096, 256))
    gamma, beta = tf.constant(1.0 + normal(256)), tf.constant(normal(256))
    dy = tf.constant(normal(4096, 256))

    @tf.function
    def batch_norm_step(x, gamma, beta):
        with tf.GradientTape() as tape:
            tape.watch([x, gamma, beta])
            y, mean, inv = ops.local_batch_norm(x, gamma, beta, 1e-3)
        return (y, mean, inv,
                *tape.gradient(y, [x, gamma, beta], output_gradients=dy))

    digests["local_batch_norm"] = digest(*batch_norm_step(x, gamma, beta))
    print(json.dumps(digests))
    """
)
OPS = [
    "adagrad_swap",
    "ftrl_swap",
    "dynamic_table_adagrad",
    "dynamic_table_ftrl",
    "local_batch_norm",
]


@functools.cache
def digests_with_threads(threads: int) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "python")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(threads)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("threads", [2, 8])
@pytest.mark.parametrize("op", OPS)
def test_same_bits_as_one_thread(op, threads):
    one = digests_with_threads(1)
    assert sorted(one) == sorted(OPS)
    assert digests_with_threads(threads)[op] == one[op]
