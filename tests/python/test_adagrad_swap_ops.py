"""tf_swap's Adagrad-SWAP ops against the NumPy reference and TF's Adagrad."""

import numpy as np
import pytest
import tensorflow as tf

import tf_swap
from swap_reference import SwapState
from tf_swap import ops

DTYPES = [np.float32, np.float64]


def make_variables(state):
    return (
        tf.Variable(state.var),
        tf.Variable(state.accum),
        tf.Variable(state.power),
    )


def random_steps(rng, count, period):
    """Step numbers with small gaps, gaps of several periods and late
    (smaller) steps, as asynchronous workers produce."""
    steps, t = [], 1
    for _ in range(count):
        kind = rng.integers(0, 4)
        if kind == 0:
            t += int(rng.integers(period, 4 * period))  # skip periods
        elif kind == 1:
            t = max(1, t - int(rng.integers(1, 2 * period)))  # a late worker
        else:
            t += int(rng.integers(0, 3))
        steps.append(t)
    return steps


def assert_state(variables, state):
    var, accum, power = variables
    np.testing.assert_array_equal(var.numpy(), state.var)
    np.testing.assert_array_equal(accum.numpy(), state.accum)
    np.testing.assert_array_equal(power.numpy(), state.power)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["exact", "once_per_update"])
@pytest.mark.parametrize("placement", ["after_sqrt", "inside_sqrt"])
@pytest.mark.parametrize("shape", [(7, 5), (13,), ()])
def test_dense_matches_reference_bit_for_bit(dtype, mode, placement, shape):
    rng = np.random.default_rng(abs(hash((mode, placement, shape))) % 2**32)
    period = 3
    hyper = dict(
        lr=0.3,
        decay_rate=0.7,
        decay_period=period,
        floor=0.05,
        epsilon=1e-3,
        mode=mode,
        placement=placement,
    )
    state = SwapState(rng.normal(size=shape), 0.1, dtype)
    wide = SwapState(state.var, 0.1, np.float64)
    variables = make_variables(state)
    for step in random_steps(rng, 40, period):
        grad = rng.normal(size=shape).astype(dtype)
        ops.resource_apply_adagrad_swap(
            *variables,
            hyper["lr"],
            grad,
            step,
            decay_rate=hyper["decay_rate"],
            decay_period=period,
            accumulator_floor=hyper["floor"],
            epsilon=hyper["epsilon"],
            decay_mode=mode,
            epsilon_placement=placement,
        )
        state.apply(grad, step, **hyper)
        wide.apply(grad, step, **hyper)
    assert_state(variables, state)
    # And within float32 rounding of a float64 computation.
    np.testing.assert_allclose(variables[0].numpy(), wide.var, rtol=1e-5, atol=1e-6)
    assert state.power.max(initial=0) > 1, "the steps crossed several periods"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("mode", ["exact", "once_per_update"])
def test_sparse_matches_reference_with_duplicates(dtype, index_dtype, mode):
    rng = np.random.default_rng(7)
    period, rows, inner = 4, 20, 3
    hyper = dict(
        lr=0.2, decay_rate=0.6, decay_period=period, floor=0.02, epsilon=0.0, mode=mode
    )
    state = SwapState(rng.normal(size=(rows, inner)), 0.1, dtype)
    variables = make_variables(state)
    saw_duplicates = False
    for step in random_steps(rng, 60, period):
        n = int(rng.integers(0, 12))
        indices = rng.integers(0, rows, size=n).astype(index_dtype)
        saw_duplicates |= len(set(indices.tolist())) < n
        grad = rng.normal(size=(n, inner)).astype(dtype)
        ops.resource_sparse_apply_adagrad_swap(
            *variables,
            hyper["lr"],
            grad,
            indices,
            step,
            decay_rate=hyper["decay_rate"],
            decay_period=period,
            accumulator_floor=hyper["floor"],
            decay_mode=mode,
        )
        state.apply(grad, step, indices=indices, **hyper)
    assert saw_duplicates
    assert_state(variables, state)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rate_one_is_tf_apply_adagrad_v2_bit_for_bit(dtype):
    rng = np.random.default_rng(1)
    init = rng.normal(size=(64, 9)).astype(dtype)
    ours = [
        tf.Variable(init),
        tf.Variable(np.full_like(init, 0.1)),
        tf.Variable(np.zeros(64, np.int64)),
    ]
    theirs = [tf.Variable(init), tf.Variable(np.full_like(init, 0.1))]
    lr, eps = tf.constant(0.05, dtype), tf.constant(1e-6, dtype)
    for step in range(1, 12):
        grad = tf.constant(rng.normal(size=init.shape).astype(dtype))
        ops.resource_apply_adagrad_swap(
            *ours,
            lr,
            grad,
            step,
            decay_rate=1.0,
            decay_period=2,
            accumulator_floor=0.1,
            epsilon=eps,
        )
        tf.raw_ops.ResourceApplyAdagradV2(
            var=theirs[0].handle,
            accum=theirs[1].handle,
            lr=lr,
            epsilon=eps,
            grad=grad,
        )
    np.testing.assert_array_equal(ours[0].numpy(), theirs[0].numpy())
    np.testing.assert_array_equal(ours[1].numpy(), theirs[1].numpy())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_rate_one_is_tf_sparse_apply_adagrad_v2_bit_for_bit(dtype, index_dtype):
    rng = np.random.default_rng(2)
    init = rng.normal(size=(100, 4)).astype(dtype)
    ours = [
        tf.Variable(init),
        tf.Variable(np.full_like(init, 0.1)),
        tf.Variable(np.zeros(100, np.int64)),
    ]
    theirs = [tf.Variable(init), tf.Variable(np.full_like(init, 0.1))]
    lr, eps = tf.constant(0.05, dtype), tf.constant(1e-6, dtype)
    for step in range(1, 12):
        indices = tf.constant(rng.permutation(100)[:30].astype(index_dtype))
        grad = tf.constant(rng.normal(size=(30, 4)).astype(dtype))
        ops.resource_sparse_apply_adagrad_swap(
            *ours,
            lr,
            grad,
            indices,
            step,
            decay_rate=1.0,
            decay_period=1,
            accumulator_floor=0.1,
            epsilon=eps,
        )
        tf.raw_ops.ResourceSparseApplyAdagradV2(
            var=theirs[0].handle,
            accum=theirs[1].handle,
            lr=lr,
            epsilon=eps,
            grad=grad,
            indices=indices,
        )
    np.testing.assert_array_equal(ours[0].numpy(), theirs[0].numpy())
    np.testing.assert_array_equal(ours[1].numpy(), theirs[1].numpy())


def test_tf_function_equals_eager():
    rng = np.random.default_rng(3)
    init = rng.normal(size=(50, 8)).astype(np.float32)
    grads = [rng.normal(size=(10, 8)).astype(np.float32) for _ in range(5)]
    indices = [rng.integers(0, 50, 10) for _ in range(5)]
    results = []
    for wrap in (lambda f: f, tf.function):
        variables = [
            tf.Variable(init),
            tf.Variable(np.full_like(init, 0.1)),
            tf.Variable(np.zeros(50, np.int64)),
        ]

        @wrap
        def step_fn(g, i, t, variables=variables):
            ops.resource_sparse_apply_adagrad_swap(
                *variables,
                0.1,
                g,
                i,
                t,
                decay_rate=0.5,
                decay_period=2,
                accumulator_floor=0.1,
            )
            ops.resource_apply_adagrad_swap(
                *variables,
                0.01,
                tf.ones_like(variables[0]),
                t,
                decay_rate=0.5,
                decay_period=2,
                accumulator_floor=0.1,
            )

        for t, (g, i) in enumerate(zip(grads, indices, strict=True), start=1):
            step_fn(tf.constant(g), tf.constant(i), tf.constant(t, tf.int64))
        results.append([v.numpy() for v in variables])
    for eager, graph in zip(*results, strict=True):
        np.testing.assert_array_equal(eager, graph)


def test_large_inputs_take_the_threaded_path_and_match_reference():
    # 2**19 elements: above the one-thread threshold, so the op is split
    # across the intra-op pool.
    rng = np.random.default_rng(4)
    shape = (2**15, 16)
    state = SwapState(rng.normal(size=shape), 0.1, np.float32)
    variables = make_variables(state)
    hyper = dict(lr=0.1, decay_rate=0.8, decay_period=2, floor=0.1)
    for step in (1, 2, 7):
        grad = rng.normal(size=shape).astype(np.float32)
        ops.resource_apply_adagrad_swap(
            *variables,
            0.1,
            grad,
            step,
            decay_rate=0.8,
            decay_period=2,
            accumulator_floor=0.1,
        )
        state.apply(grad, step, **hyper)
        indices = rng.integers(0, shape[0], 40_000)
        sparse = rng.normal(size=(40_000, 16)).astype(np.float32)
        ops.resource_sparse_apply_adagrad_swap(
            *variables,
            0.1,
            sparse,
            indices,
            step,
            decay_rate=0.8,
            decay_period=2,
            accumulator_floor=0.1,
        )
        state.apply(sparse, step, indices=indices, **hyper)
    assert_state(variables, state)


def test_python_numbers_convert_exactly_to_float64():
    var = tf.Variable(np.zeros(1))
    accum = tf.Variable(np.ones(1))
    power = tf.Variable(np.zeros(1, np.int64))
    ops.resource_apply_adagrad_swap(
        var,
        accum,
        power,
        0.1,
        np.ones(1),
        1,
        decay_rate=1.0,
        decay_period=1,
        accumulator_floor=0.0,
    )
    # acc = 2, var = -0.1 / sqrt(2) with 0.1 the float64 nearest to 0.1.
    assert var.numpy()[0] == -0.1 / np.sqrt(2.0)


def test_accepts_resource_handles():
    var = tf.Variable(np.ones((2, 2), np.float32))
    accum = tf.Variable(np.ones((2, 2), np.float32))
    power = tf.Variable(np.zeros(2, np.int64))
    ops.resource_apply_adagrad_swap(
        var.handle,
        accum.handle,
        power.handle,
        0.5,
        tf.ones((2, 2)),
        1,
        decay_rate=1.0,
        decay_period=1,
        accumulator_floor=0.1,
    )
    np.testing.assert_allclose(var.numpy(), 1 - 0.5 / np.sqrt(2), rtol=1e-6)


def test_library_registers_its_ops():
    module = tf_swap._ops.library()
    for op in tf_swap._ops.EXPECTED_OPS:
        assert hasattr(module, tf_swap._ops._wrapper(op))
