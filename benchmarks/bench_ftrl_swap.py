"""FTRL-SWAP ops vs TensorFlow's FTRL kernels, side by side.

Usage: python benchmarks/bench_ftrl_swap.py  (or `make bench`)

As bench_adagrad_swap.py: K applies inside one tf.function, the median
time per apply, both ops on TensorFlow's intra-op pool. Ours runs with
decay_rate=0.8 (the period check included, one discount at the first
call) and l1, l2, l2_shrinkage set; TensorFlow's with the same l1, l2,
l2_shrinkage (`ResourceApplyFtrlV2` / `ResourceSparseApplyFtrlV2`,
`multiply_linear_by_lr=False`). lr_power -0.5 takes both kernels' `sqrt`
path; -0.7 their `pow` path (ours reproduces Eigen's vectorized `pow` lane
by lane, bit for bit, in a loop the compiler vectorizes). Prints a markdown
table with the ratios.
"""

import argparse

import numpy as np
import tensorflow as tf

import tf_swap
from common import median_seconds, streaming_bandwidth_gbs

REG = dict(l1=0.001, l2=0.01, l2_shrinkage=0.001)


def state(shape, rng):
    return (
        tf.Variable(rng.normal(0, 0.1, shape).astype(np.float32)),
        tf.Variable(np.full(shape, 0.1, np.float32)),
        tf.Variable(np.zeros(shape, np.float32)),
        tf.Variable(np.zeros(shape[:1], np.int64)),
    )


def timed_loop(body, applies):
    @tf.function
    def loop():
        for _ in tf.range(applies):
            body()

    return median_seconds(loop, repeats=9) / applies


def case(shape, lr_power, applies, rng, indices=None):
    var, accum, linear, power = state(shape, rng)
    rows = shape if indices is None else (indices.size, *shape[1:])
    grad = tf.constant(rng.normal(size=rows).astype(np.float32))
    lr = tf.constant(0.05)
    step = tf.constant(20_000_000, tf.int64)
    c = {k: tf.constant(v, tf.float32) for k, v in REG.items()}
    p = tf.constant(lr_power, tf.float32)
    swap = dict(decay_rate=0.8, decay_period=14_000_000, accumulator_floor=0.1)
    if indices is not None:
        indices = tf.constant(indices)

    def ours():
        if indices is None:
            tf_swap.ops.resource_apply_ftrl_swap(
                var, accum, linear, power, grad, lr, step=step, lr_power=p, **c, **swap
            )
        else:
            tf_swap.ops.resource_sparse_apply_ftrl_swap(
                var, accum, linear, power, grad, indices, lr, step=step,
                lr_power=p, **c, **swap,
            )

    def theirs():
        common = dict(
            var=var.handle, accum=accum.handle, linear=linear.handle, grad=grad,
            lr=lr, lr_power=p, **c,
        )
        if indices is None:
            tf.raw_ops.ResourceApplyFtrlV2(**common)
        else:
            tf.raw_ops.ResourceSparseApplyFtrlV2(indices=indices, **common)

    return timed_loop(theirs, applies), timed_loop(ours, applies), int(np.prod(rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--applies", type=int, default=10, help="applies per call")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows, batch = 1_000_000, 65_536
    unique = rng.permutation(rows)[:batch].astype(np.int64)
    cases = []
    for lr_power in (-0.5, -0.7):
        cases += [
            (f"dense [1e6, 16], lr_power {lr_power}",
             lambda p=lr_power: case((rows, 16), p, max(1, args.applies // 4), rng)),
            (f"sparse [1e6, 16], 65,536 unique, lr_power {lr_power}",
             lambda p=lr_power: case((rows, 16), p, args.applies, rng, unique)),
            (f"sparse [1e6], 65,536 unique (one weight per row), lr_power {lr_power}",
             lambda p=lr_power: case((rows,), p, args.applies, rng, unique)),
        ]
    print(
        f"Streaming bandwidth (NumPy copy, read+write): "
        f"{streaming_bandwidth_gbs():.1f} GB/s"
    )
    print(
        f"Intra-op threads: {tf.config.threading.get_intra_op_parallelism_threads()}"
        " (0 = all cores)\n"
    )
    print("| case | TF FTRL V2 (ms) | tf_swap (ms) | speed-up | tf_swap GB/s |")
    print("|---|---:|---:|---:|---:|")
    for name, run in cases:
        theirs, ours, elements = run()
        # The least traffic any FTRL needs: read var, accum, linear, grad;
        # write var, accum, linear (4 bytes each).
        gbs = 7 * 4 * elements / ours / 1e9
        print(
            f"| {name} | {theirs * 1e3:.3f} | {ours * 1e3:.3f} | "
            f"{theirs / ours:.2f}x | {gbs:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
