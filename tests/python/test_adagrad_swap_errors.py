"""Every bad input raises an error naming the problem and changes nothing."""

import numpy as np
import pytest
import tensorflow as tf

from tf_swap import ops

GOOD = dict(decay_rate=0.8, decay_period=10, accumulator_floor=0.1)


def fresh():
    var = tf.Variable(np.arange(12, dtype=np.float32).reshape(4, 3))
    accum = tf.Variable(np.full((4, 3), 0.5, np.float32))
    power = tf.Variable(np.array([0, 1, 2, 3], np.int64))
    return var, accum, power


def snapshot(variables):
    return [v.numpy().copy() for v in variables]


def check_rejected(call, match, error=tf.errors.InvalidArgumentError):
    variables = fresh()
    before = snapshot(variables)
    with pytest.raises(error, match=match):
        call(variables)
    for b, v in zip(before, variables, strict=True):
        np.testing.assert_array_equal(b, v.numpy())


def dense(lr=0.1, grad=None, step=5, **kwargs):
    hyper = {**GOOD, **kwargs}
    grad = np.ones((4, 3), np.float32) if grad is None else grad
    return lambda v: ops.resource_apply_adagrad_swap(*v, lr, grad, step, **hyper)


def sparse(indices=(0, 2), grad=None, step=5, **kwargs):
    hyper = {**GOOD, **kwargs}
    grad = np.ones((len(indices), 3), np.float32) if grad is None else grad
    indices = np.asarray(indices, np.int64)
    return lambda v: ops.resource_sparse_apply_adagrad_swap(
        *v, 0.1, grad, indices, step, **hyper
    )


@pytest.mark.parametrize(
    "call, match",
    [
        (sparse(indices=(0, 4)), r"indices\[1\] = 4 is not in \[0, 4\)"),
        (sparse(indices=(-1, 2)), r"indices\[0\] = -1 is not in \[0, 4\)"),
        (sparse(indices=(1, 99, 1)), r"indices\[1\] = 99"),
        (
            dense(grad=np.ones((4, 2), np.float32)),
            "var and grad do not have the same shape",
        ),
        (
            sparse(grad=np.ones((2, 2), np.float32)),
            "var and grad must match in dimension 1",
        ),
        (sparse(grad=np.ones((3, 3), np.float32)), "as many rows as indices"),
        (dense(decay_rate=0.0), r"decay_rate must be in \(0, 1\], got 0"),
        (dense(decay_rate=1.5), r"decay_rate must be in \(0, 1\], got 1.5"),
        (sparse(decay_rate=-0.2), r"decay_rate must be in \(0, 1\]"),
        (dense(decay_period=0), "decay_period must be >= 1, got 0"),
        (dense(step=0), "step must be >= 1, got 0"),
        (sparse(step=-3), "step must be >= 1, got -3"),
        (dense(lr=float("nan")), "learning_rate must be finite and >= 0, got NaN"),
        (dense(lr=-0.1), "learning_rate must be finite and >= 0"),
        (dense(epsilon=float("nan")), "epsilon must be finite and >= 0, got NaN"),
        (dense(decay_rate=float("nan")), "decay_rate must be in .*NaN"),
        (sparse(accumulator_floor=float("nan")), "accumulator_floor must be .*NaN"),
        (dense(accumulator_floor=-1.0), "accumulator_floor must be finite and >= 0"),
        (dense(decay_mode="hourly"), "decay_mode"),
        (sparse(epsilon_placement="under"), "epsilon_placement"),
    ],
)
def test_bad_input_is_rejected_and_writes_nothing(call, match):
    check_rejected(call, match)


def test_fractional_period_is_rejected_before_the_op():
    check_rejected(dense(decay_period=2.5), "whole number", error=ValueError)


def test_power_of_the_wrong_shape_is_rejected():
    var, accum, _ = fresh()
    power = tf.Variable(np.zeros((4, 3), np.int64))
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"power must have shape \[4\]"
    ):
        ops.resource_apply_adagrad_swap(
            var, accum, power, 0.1, np.ones((4, 3), np.float32), 1, **GOOD
        )


def test_accum_of_another_shape_is_rejected():
    var, _, power = fresh()
    accum = tf.Variable(np.ones((4, 2), np.float32))
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="var and accum do not have the same shape"
    ):
        ops.resource_apply_adagrad_swap(
            var, accum, power, 0.1, np.ones((4, 3), np.float32), 1, **GOOD
        )


def test_variable_of_another_dtype_is_rejected():
    var, accum, power = fresh()
    wide = tf.Variable(np.zeros((4, 3), np.float64))
    before = snapshot((var, accum, power))
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match="has dtype double but the op expects float",
    ):
        # Handles carry no dtype: the float32 gradient picks the kernel.
        ops.resource_apply_adagrad_swap(
            wide.handle,
            accum.handle,
            power.handle,
            0.1,
            np.ones((4, 3), np.float32),
            1,
            **GOOD,
        )
    for b, v in zip(before, (var, accum, power), strict=True):
        np.testing.assert_array_equal(b, v.numpy())


def test_empty_tensors_are_no_ops():
    variables = fresh()
    before = snapshot(variables)
    ops.resource_sparse_apply_adagrad_swap(
        *variables, 0.1, np.zeros((0, 3), np.float32), np.zeros(0, np.int64), 5, **GOOD
    )
    for b, v in zip(before, variables, strict=True):
        np.testing.assert_array_equal(b, v.numpy())
    empty = (
        tf.Variable(np.zeros((0, 3), np.float32)),
        tf.Variable(np.zeros((0, 3), np.float32)),
        tf.Variable(np.zeros(0, np.int64)),
    )
    ops.resource_apply_adagrad_swap(
        *empty, 0.1, np.zeros((0, 3), np.float32), 5, **GOOD
    )
    assert empty[0].shape == (0, 3)


def test_sparse_on_a_scalar_variable_is_rejected():
    var = tf.Variable(1.0)
    accum = tf.Variable(0.1)
    power = tf.Variable(np.int64(0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least 1 dimensional"):
        ops.resource_sparse_apply_adagrad_swap(
            var,
            accum,
            power,
            0.1,
            np.ones(1, np.float32),
            np.zeros(1, np.int64),
            1,
            **GOOD,
        )
