"""Sparse Adagrad-SWAP applies from 8 threads at once on one variable."""

import threading

import numpy as np
import tensorflow as tf

from tf_swap import ops

THREADS, UPDATES, ROWS, DIM = 8, 40, 64, 2048
HYPER = dict(decay_rate=1.0, decay_period=1_000_000, accumulator_floor=0.1)


def state(init_accum=0.1):
    var = tf.Variable(np.zeros((ROWS, DIM), np.float32))
    accum = tf.Variable(np.full((ROWS, DIM), init_accum, np.float32))
    power = tf.Variable(np.zeros(ROWS, np.int64))
    return var, accum, power


def run_threads(work):
    """Runs `work(i)` on THREADS threads started together."""
    barrier = threading.Barrier(THREADS)
    errors = []

    def body(i):
        try:
            barrier.wait()
            work(i)
        except Exception as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_locked_overlapping_applies_count_every_update_exactly():
    variables = state()
    # Every thread updates rows 0..31 with g = 0.5 (g * g = 0.25, exact), in
    # its own order and with duplicates: each row's accumulator must be
    # 0.1 + count * 0.25, with no lost update.
    rng = np.random.default_rng(0)
    batches = [[rng.integers(0, 32, 48) for _ in range(UPDATES)]
               for _ in range(THREADS)]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)])
    def apply(indices):
        # Duplicates are summed first: a row's gradient is 0.5 * its count
        # in the batch, so use unique rows per call to keep g = 0.5.
        rows, _ = tf.unique(indices)
        ops.resource_sparse_apply_adagrad_swap(
            *variables, 0.01, tf.fill([tf.size(rows), DIM], 0.5), rows, 1,
            use_locking=True, **HYPER)

    run_threads(lambda i: [apply(tf.constant(b)) for b in batches[i]])
    counts = np.zeros(ROWS)
    for thread in batches:
        for batch in thread:
            counts[np.unique(batch)] += 1
    want = np.float32(0.1) + (counts * 0.25).astype(np.float32)
    got = variables[1].numpy()
    np.testing.assert_array_equal(got, np.repeat(want[:, None], DIM, 1))
    # The rows really overlap: each was updated by many threads' calls.
    assert counts[:32].min() > UPDATES and not counts[32:].any()


def test_disjoint_rows_equal_the_sequential_result():
    rng = np.random.default_rng(1)
    # Thread i owns rows i, i + 8, ...; its updates (with duplicates) touch
    # only those, so any interleaving equals applying them in sequence.
    plans = []
    for i in range(THREADS):
        own = np.arange(i, ROWS, THREADS)
        plans.append([
            (rng.choice(own, 12), rng.normal(size=(12, DIM)).astype(np.float32))
            for _ in range(UPDATES)
        ])

    def apply_plan(variables, plan, lock):
        for step, (rows, grad) in enumerate(plan, start=1):
            ops.resource_sparse_apply_adagrad_swap(
                *variables, 0.05, grad, rows, step, use_locking=lock,
                decay_rate=0.5, decay_period=7, accumulator_floor=0.1)

    sequential = state()
    for plan in plans:
        apply_plan(sequential, plan, lock=False)
    for lock in (False, True):
        concurrent = state()
        run_threads(lambda i, c=concurrent, k=lock: apply_plan(c, plans[i], k))
        for a, b in zip(concurrent, sequential, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
