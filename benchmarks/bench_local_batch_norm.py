"""Benchmark: tf_swap's Local Batch Normalization ops against TensorFlow's two
best CPU paths, side by side in one process.

- ours:  TfSwapLocalBatchNorm / TfSwapLocalBatchNormGrad on [N, C];
- fused: FusedBatchNormV3 / FusedBatchNormGradV3 (oneDNN) on [N, 1, 1, C];
- plain: tf.nn.moments + tf.nn.batch_normalization, with the analytic
  gradient through tf.custom_gradient.

Each path is a tf.function, warmed up, timed as the median of many calls;
every output is returned (fwd+bwd: y, dx, dgamma, dbeta), so graph pruning
drops no work from any path.
"Bytes" are the bytes minimally touched (forward: read x, write y; backward:
read dy and x, write dx; both: the sum), so GB/s compares with the machine's
streaming bandwidth, measured first. Run:

    TF_SWAP_LIBRARY=target/release/libtf_swap.so PYTHONPATH=python \\
        .venv/bin/python benchmarks/bench_local_batch_norm.py

This is a command, not a test: it asserts nothing.
"""

import argparse
import statistics
import time

import numpy as np
import tensorflow as tf

import tf_swap

EPSILON = 1e-3
SIZES = ((512, 64), (4096, 256), (16384, 1024))


def median_seconds(fn, min_runs, min_seconds=1.0):
    for _ in range(5):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def streaming_bandwidth():
    """GB/s of c = a + b on 64 MiB float32 arrays (NumPy: 1 thread; TF:
    the intra-op pool), counting 3 arrays of traffic."""
    n = 16 << 20
    a = np.random.default_rng(0).random(n, dtype=np.float32)
    b = a.copy()
    c = np.empty_like(a)
    numpy_s = median_seconds(lambda: np.add(a, b, out=c), 20)
    ta, tb = tf.constant(a), tf.constant(b)
    add = tf.function(lambda: tf.add(ta, tb))
    tf_s = median_seconds(add, 20)
    return 3 * 4 * n / numpy_s / 1e9, 3 * 4 * n / tf_s / 1e9


def make_paths(x, gamma, beta, dy):
    n, c = x.shape
    x4, dy4 = tf.reshape(x, [n, 1, 1, c]), tf.reshape(dy, [n, 1, 1, c])
    empty = tf.constant([], tf.float32)
    lib = tf_swap.ops.load_library()

    @tf.function
    def ours_fwd():
        return tf_swap.ops.local_batch_norm(x, gamma, beta, EPSILON)

    y, saved_mean, saved_inv = ours_fwd()

    @tf.function
    def ours_bwd():
        return lib.tf_swap_local_batch_norm_grad(
            dy=dy, x=x, gamma=gamma, batch_mean=saved_mean,
            batch_inv_std=saved_inv)

    # Each fwd+bwd returns y, dx, dgamma and dbeta, so that graph pruning
    # can drop no work from any path.
    @tf.function
    def ours_both():
        y_, m, inv = tf_swap.ops.local_batch_norm(x, gamma, beta, EPSILON)
        grads = lib.tf_swap_local_batch_norm_grad(
            dy=dy, x=x, gamma=gamma, batch_mean=m, batch_inv_std=inv)
        return (y_, *grads)

    def fused_forward():
        return tf.raw_ops.FusedBatchNormV3(
            x=x4, scale=gamma, offset=beta, mean=empty, variance=empty,
            epsilon=EPSILON, data_format="NHWC", is_training=True)

    saved = fused_forward()

    @tf.function
    def fused_fwd():
        return fused_forward()

    @tf.function
    def fused_bwd():
        return tf.raw_ops.FusedBatchNormGradV3(
            y_backprop=dy4, x=x4, scale=gamma, reserve_space_1=saved[3],
            reserve_space_2=saved[4], reserve_space_3=saved[5],
            epsilon=EPSILON, data_format="NHWC", is_training=True)

    @tf.function
    def fused_both():
        out = fused_forward()
        grads = tf.raw_ops.FusedBatchNormGradV3(
            y_backprop=dy4, x=x4, scale=gamma, reserve_space_1=out[3],
            reserve_space_2=out[4], reserve_space_3=out[5],
            epsilon=EPSILON, data_format="NHWC", is_training=True)
        return (out[0], *grads[:3])

    def plain_grad(dy_, x_, gamma_, mean, inv):
        xhat = (x_ - mean) * inv
        dbeta = tf.reduce_sum(dy_, 0)
        dgamma = tf.reduce_sum(dy_ * xhat, 0)
        dx = (gamma_ * inv / n) * (n * dy_ - dbeta - xhat * dgamma)
        return dx, dgamma, dbeta

    @tf.custom_gradient
    def plain_bn(x_, gamma_, beta_):
        mean, var = tf.nn.moments(x_, [0])
        inv = tf.math.rsqrt(var + EPSILON)
        y_ = tf.nn.batch_normalization(x_, mean, var, beta_, gamma_, EPSILON)

        def grad(dy_):
            return plain_grad(dy_, x_, gamma_, mean, inv)

        return y_, grad

    @tf.function
    def plain_fwd():
        return plain_bn(x, gamma, beta)

    mean, var = tf.nn.moments(x, [0])
    inv = tf.math.rsqrt(var + EPSILON)

    @tf.function
    def plain_bwd():
        return plain_grad(dy, x, gamma, mean, inv)

    @tf.function
    def plain_both():
        with tf.GradientTape() as tape:
            tape.watch([x, gamma, beta])
            y_ = plain_bn(x, gamma, beta)
        return (y_, *tape.gradient(y_, [x, gamma, beta], output_gradients=dy))

    return {
        "ours": (ours_fwd, ours_bwd, ours_both),
        "fused": (fused_fwd, fused_bwd, fused_both),
        "plain": (plain_fwd, plain_bwd, plain_both),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50,
                        help="minimum timed calls per measurement")
    args = parser.parse_args()
    numpy_bw, tf_bw = streaming_bandwidth()
    threads = tf.config.threading.get_intra_op_parallelism_threads() or "auto"
    print(f"Streaming bandwidth (c = a + b, 64 MiB float32): "
          f"{numpy_bw:.1f} GB/s NumPy 1 thread, {tf_bw:.1f} GB/s tf.add "
          f"(intra-op threads: {threads})\n")
    print("| N x C | pass | ours ms | fused ms | plain ms | speedup vs "
          "faster TF | ours GB/s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for n, c in SIZES:
        x = tf.constant(rng.normal(2.0, 3.0, (n, c)).astype(np.float32))
        dy = tf.constant(rng.normal(size=(n, c)).astype(np.float32))
        gamma = tf.constant(rng.normal(size=c).astype(np.float32))
        beta = tf.constant(rng.normal(size=c).astype(np.float32))
        paths = make_paths(x, gamma, beta, dy)
        for k, (label, arrays) in enumerate(
                (("forward", 2), ("backward", 3), ("fwd+bwd", 5))):
            ms = {name: 1e3 * median_seconds(fns[k], args.runs)
                  for name, fns in paths.items()}
            best_tf = min(ms["fused"], ms["plain"])
            gbs = arrays * 4 * n * c / (ms["ours"] * 1e-3) / 1e9
            print(f"| {n} x {c} | {label} | {ms['ours']:.3f} | "
                  f"{ms['fused']:.3f} | {ms['plain']:.3f} | "
                  f"{best_tf / ms['ours']:.2f}x | {gbs:.1f} |", flush=True)


if __name__ == "__main__":
    main()
