"""Adagrad-SWAP ops vs TensorFlow's Adagrad kernels, side by side.

Usage: python benchmarks/bench_adagrad_swap.py  (or `make bench`)

Each case runs K applies inside one tf.function (a tf.while_loop), so the
~200 us cost of a tf.function call is amortized, and reports the median
time per apply. Both ops use TensorFlow's intra-op pool (all cores).
Ours runs with decay_rate=0.8 (the row-period check included); the
accumulator decays once at the first call. Prints a markdown table, then
the sparse [1e6, 16] apply with int64 and int32 indices against its roof:
`sparse_roof.c` (gather, update, scatter of the same rows in C with no
check), compiled here with gcc and run on as many threads as TF's pool.
"""

import argparse
import ctypes
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

import tf_swap
from common import median_seconds, streaming_bandwidth_gbs

HYPER = dict(decay_rate=0.8, decay_period=14_000_000, accumulator_floor=0.1)


def slots(shape, rng):
    var = tf.Variable(rng.normal(size=shape).astype(np.float32))
    accum = tf.Variable(np.full(shape, 0.1, np.float32))
    power = tf.Variable(np.zeros(shape[:1], np.int64))
    return var, accum, power


def timed_loop(body, applies):
    @tf.function
    def loop():
        for _ in tf.range(applies):
            body()

    return median_seconds(loop) / applies


def dense_case(shape, applies, rng, copies=1):
    """Times one dense apply. With `copies` > 1 each call updates that many
    distinct variables in turn, so that (for copies x size beyond the L3
    cache) every apply finds its data in memory, not cache: the situation
    of a model whose other layers run between two updates of a variable."""
    sets = [
        slots(shape, rng) + (tf.constant(rng.normal(size=shape).astype(np.float32)),)
        for _ in range(copies)
    ]
    lr, eps = tf.constant(0.01), tf.constant(1e-7)
    step = tf.constant(20_000_000, tf.int64)

    def ours():
        for var, accum, power, grad in sets:
            tf_swap.ops.resource_apply_adagrad_swap(
                var, accum, power, lr, grad, step, epsilon=eps, **HYPER
            )

    def theirs():
        for var, accum, _, grad in sets:
            tf.raw_ops.ResourceApplyAdagradV2(
                var=var.handle, accum=accum.handle, lr=lr, epsilon=eps, grad=grad
            )

    elements = int(np.prod(shape))
    return (
        timed_loop(theirs, applies) / copies,
        timed_loop(ours, applies) / copies,
        elements,
    )


def sparse_case(shape, indices, applies, rng):
    var, accum, power = slots(shape, rng)
    grad = tf.constant(rng.normal(size=(indices.size,) + shape[1:]).astype(np.float32))
    indices = tf.constant(indices)
    lr, eps = tf.constant(0.01), tf.constant(1e-7)
    step = tf.constant(20_000_000, tf.int64)

    def ours():
        tf_swap.ops.resource_sparse_apply_adagrad_swap(
            var, accum, power, lr, grad, indices, step, epsilon=eps, **HYPER
        )

    def theirs():
        tf.raw_ops.ResourceSparseApplyAdagradV2(
            var=var.handle,
            accum=accum.handle,
            lr=lr,
            epsilon=eps,
            grad=grad,
            indices=indices,
        )

    elements = int(grad.shape.num_elements())
    return timed_loop(theirs, applies), timed_loop(ours, applies), elements


def compiled_roof(directory):
    """`sparse_roof.c` built with gcc into `directory`, loaded by ctypes."""
    library = Path(directory) / "sparse_roof.so"
    subprocess.run(
        ["gcc", "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-o",
         str(library), str(Path(__file__).with_name("sparse_roof.c")), "-lm"],
        check=True,
    )
    return ctypes.CDLL(str(library))


def roof_case(roof, shape, indices, applies, rng):
    """Time per apply of the C roof on NumPy arrays shaped like the ops'."""
    var = rng.normal(size=shape).astype(np.float32)
    accum = np.full(shape, 0.1, np.float32)
    grad = rng.normal(size=(indices.size,) + shape[1:]).astype(np.float32)
    apply = getattr(roof, f"roof_sparse_adagrad_i{indices.dtype.itemsize * 8}")
    pointer = ctypes.c_void_p
    args = (
        pointer(var.ctypes.data),
        pointer(accum.ctypes.data),
        pointer(grad.ctypes.data),
        pointer(indices.ctypes.data),
        ctypes.c_int64(indices.size),
        ctypes.c_int64(shape[1]),
        ctypes.c_float(0.01),
        ctypes.c_float(1e-7),
        ctypes.c_int(os.cpu_count()),
    )

    def loop():
        for _ in range(applies):
            apply(*args)

    return median_seconds(loop) / applies


def print_roof_table(applies, unique, rng):
    print(
        "\n| sparse [1e6, 16], 65,536 unique | TF (ms) | tf_swap (ms) | roof (ms) "
        "| TF / tf_swap | tf_swap / roof |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as directory:
        roof = compiled_roof(directory)
        for dtype in (np.int64, np.int32):
            indices = unique.astype(dtype)
            theirs, ours, _ = sparse_case((1_000_000, 16), indices, applies, rng)
            bare = roof_case(roof, (1_000_000, 16), indices, applies, rng)
            print(
                f"| {np.dtype(dtype).name} indices | {theirs * 1e3:.3f} | "
                f"{ours * 1e3:.3f} | {bare * 1e3:.3f} | {theirs / ours:.2f}x | "
                f"{ours / bare:.2f}x |",
                flush=True,
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--applies", type=int, default=20, help="applies per call")
    parser.add_argument(
        "--roof-only", action="store_true", help="only the sparse apply's roof table"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows, batch = 1_000_000, 65_536
    unique = rng.permutation(rows)[:batch].astype(np.int64)
    if args.roof_only:
        return print_roof_table(args.applies, unique, rng)
    zipf = ((rng.zipf(1.05, batch) - 1) % rows).astype(np.int64)
    cases = [
        # The fixed cost of one call, and a small dense variable.
        (
            "dense [16] (per-call cost)",
            lambda: dense_case((16,), args.applies * 20, rng),
        ),
        ("dense [3e4]", lambda: dense_case((30_000,), args.applies * 10, rng)),
        ("dense [1e5]", lambda: dense_case((100_000,), args.applies * 5, rng)),
        (
            "dense [1e5], cold cache (40 variables in turn)",
            lambda: dense_case((100_000,), 2, rng, copies=40),
        ),
        ("dense [1e6]", lambda: dense_case((rows,), args.applies, rng)),
        (
            "dense [1e6], cold cache (4 variables in turn)",
            lambda: dense_case((rows,), args.applies // 4, rng, copies=4),
        ),
        (
            "dense [1e6, 16]",
            lambda: dense_case((rows, 16), args.applies // 4 or 1, rng),
        ),
    ]
    for inner in (16, 64):
        cases += [
            (
                f"sparse [1e6, {inner}], 65,536 unique",
                lambda inner=inner: sparse_case(
                    (rows, inner), unique, args.applies, rng
                ),
            ),
            (
                f"sparse [1e6, {inner}], 65,536 Zipf(1.05)",
                lambda inner=inner: sparse_case((rows, inner), zipf, args.applies, rng),
            ),
        ]
    print(f"Zipf batch: {np.unique(zipf).size} distinct rows of {batch}")
    print(
        f"Streaming bandwidth (NumPy copy, read+write): "
        f"{streaming_bandwidth_gbs():.1f} GB/s"
    )
    print(
        f"Intra-op threads: {tf.config.threading.get_intra_op_parallelism_threads()}"
        " (0 = all cores)\n"
    )
    print("| case | TF Adagrad V2 (ms) | tf_swap (ms) | speed-up | tf_swap GB/s |")
    print("|---|---:|---:|---:|---:|")
    for name, run in cases:
        theirs, ours, elements = run()
        # The least traffic any Adagrad needs: read var, accum, grad; write
        # var, accum (4 bytes each).
        gbs = 5 * 4 * elements / ours / 1e9
        print(
            f"| {name} | {theirs * 1e3:.3f} | {ours * 1e3:.3f} | "
            f"{theirs / ours:.2f}x | {gbs:.1f} |",
            flush=True,
        )
    print_roof_table(args.applies, unique, rng)


if __name__ == "__main__":
    main()
