"""Dynamic embedding tables vs fixed tables, side by side.

Usage: python benchmarks/bench_dynamic_embedding.py  (or `make bench`)

One training step of an embedding: look up 65,536 unique ids, then an
Adagrad-SWAP apply of their gradient rows (dim 16), on
- a dynamic table holding 1e6 entries (`tf_swap.DynamicTable`, one shard:
  training lookup, then the table's apply);
- a fixed [1e6, 16] variable with our sparse op (`ResourceGather`, then
  `TfSwapResourceSparseApplyAdagradSwap`);
- the same variable with TensorFlow's (`ResourceGather`, then
  `ResourceSparseApplyAdagradV2`).
Each inside one tf.function, K steps per call, the median per step, on
TensorFlow's two-thread intra-op pool. Also: the insert rate of new ids, the
table's bytes per entry against its payload, and the scaling of two
concurrent applies to one table (two threads each calling the apply with
its own ids) against one, in a child process whose ops run on one
intra-op thread each (so the two threads are the only parallelism). Prints
markdown tables.
"""

import argparse
import subprocess
import sys
import threading
import time

import numpy as np
import tensorflow as tf

import tf_swap
from common import median_seconds

ROWS, DIM, BATCH = 1_000_000, 16, 65_536
HYPER = dict(decay_rate=0.8, decay_period=14_000_000, accumulator_floor=0.1)
STEP = 20_000_000


def timed_loop(body, steps):
    @tf.function
    def loop():
        for _ in tf.range(steps):
            body()

    return median_seconds(loop, repeats=9) / steps


def filled_table(rng, shards=1):
    table = tf_swap.DynamicTable(DIM, slot_init=(0.1,), num_shards=shards)
    ids = rng.permutation(ROWS).astype(np.int64) * 7 - 3_000_000
    for chunk in np.array_split(ids, 16):
        table.lookup(chunk, step=STEP, decay_period=HYPER["decay_period"])
    return table, ids


def step_cases(steps, rng):
    table, table_ids = filled_table(rng)
    batch_ids = tf.constant(rng.choice(table_ids, BATCH, replace=False))
    grad = tf.constant(rng.normal(size=(BATCH, DIM)).astype(np.float32))
    lr, eps = tf.constant(0.05), tf.constant(1e-7)
    step = tf.constant(STEP, tf.int64)

    def dynamic():
        rows = table.lookup(batch_ids, step=step, decay_period=HYPER["decay_period"])
        with tf.control_dependencies([rows]):
            table.apply(
                tf_swap.ops.dynamic_table_apply_adagrad_swap,
                grad,
                batch_ids,
                lr=lr,
                epsilon=eps,
                step=step,
                **HYPER,
            )

    var = tf.Variable(rng.normal(size=(ROWS, DIM)).astype(np.float32))
    accum = tf.Variable(np.full((ROWS, DIM), 0.1, np.float32))
    power = tf.Variable(np.zeros(ROWS, np.int64))
    rows = tf.constant(rng.permutation(ROWS)[:BATCH].astype(np.int64))

    def fixed_ours():
        looked_up = tf.gather(var, rows)
        with tf.control_dependencies([looked_up]):
            tf_swap.ops.resource_sparse_apply_adagrad_swap(
                var, accum, power, lr, grad, rows, step, epsilon=eps, **HYPER
            )

    def fixed_tf():
        looked_up = tf.gather(var, rows)
        with tf.control_dependencies([looked_up]):
            tf.raw_ops.ResourceSparseApplyAdagradV2(
                var=var.handle,
                accum=accum.handle,
                lr=lr,
                epsilon=eps,
                grad=grad,
                indices=rows,
            )

    return {
        "dynamic": timed_loop(dynamic, steps),
        "fixed_ours": timed_loop(fixed_ours, steps),
        "fixed_tf": timed_loop(fixed_tf, steps),
    }, table


def insert_rate(rng):
    table = tf_swap.DynamicTable(DIM, slot_init=(0.1,))
    new_ids = rng.permutation(4 * ROWS)[:ROWS].astype(np.int64)
    chunks = [tf.constant(c) for c in np.array_split(new_ids, 16)]
    start = time.perf_counter()
    for chunk in chunks:
        table.lookup(chunk, step=1, decay_period=HYPER["decay_period"])
    return len(new_ids) / (time.perf_counter() - start)


def concurrent_scaling(rng, table, seconds=3.0):
    """Applies per second from one thread, then from two at once (each on
    its own ids of the same table)."""
    grad = tf.constant(rng.normal(size=(BATCH, DIM)).astype(np.float32))
    exported = table.export().ids.numpy()
    id_sets = [
        tf.constant(rng.choice(exported, BATCH, replace=False)) for _ in range(2)
    ]

    @tf.function
    def apply(ids):
        table.apply(
            tf_swap.ops.dynamic_table_apply_adagrad_swap,
            grad,
            ids,
            lr=0.05,
            epsilon=1e-7,
            step=STEP,
            **HYPER,
        )

    for ids in id_sets:
        apply(ids)

    def rate(threads):
        counts = [0] * threads
        stop = time.perf_counter() + seconds

        def run(k):
            while time.perf_counter() < stop:
                apply(id_sets[k])
                counts[k] += 1

        workers = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return sum(counts) / seconds

    return rate(1), rate(2)


def scaling_child():
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    rng = np.random.default_rng(1)
    table, _ = filled_table(rng)
    one, two = concurrent_scaling(rng, table)
    print(f"{one} {two}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="steps per call")
    parser.add_argument("--scaling-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scaling_child:
        return scaling_child()
    rng = np.random.default_rng(0)
    times, table = step_cases(args.steps, rng)
    print(
        f"Intra-op threads: {tf.config.threading.get_intra_op_parallelism_threads()} "
        "(0 = all cores)\n"
    )
    print(
        "| lookup + Adagrad-SWAP apply, 65,536 unique ids, dim 16 | ms | "
        "dynamic's time / this |"
    )
    print("|---|---:|---:|")
    dyn = times["dynamic"]
    print(f"| dynamic table, 1e6 entries | {dyn * 1e3:.3f} | 1.00x |")
    for key, name in (
        ("fixed_ours", "fixed [1e6, 16], tf_swap's sparse op"),
        ("fixed_tf", "fixed [1e6, 16], TF's ResourceSparseApplyAdagradV2"),
    ):
        print(f"| {name} | {times[key] * 1e3:.3f} | {dyn / times[key]:.2f}x |")
    stats = tf_swap.ops.dynamic_table_size(table.handles[0])
    entries, table_bytes = int(stats.entries), int(stats.bytes)
    payload = DIM * 4 * 2 + 4 * 8
    print(
        f"\nBytes per entry: {table_bytes / entries:.1f} (payload {payload}: row "
        f"and accumulator in float32, id, power, count, last_step: "
        f"{table_bytes / entries / payload:.2f}x)"
    )
    print(
        f"Insert rate of new ids (training lookups, batches of 62,500): "
        f"{insert_rate(rng) / 1e6:.2f} M ids/s"
    )
    child = subprocess.run(
        [sys.executable, __file__, "--scaling-child"],
        capture_output=True,
        text=True,
        check=True,
    )
    one, two = map(float, child.stdout.split()[-2:])
    print(
        f"Concurrent applies to one table (one intra-op thread per op): "
        f"{one:.1f}/s from one thread, {two:.1f}/s from two: {two / one:.2f}x"
    )


if __name__ == "__main__":
    main()
