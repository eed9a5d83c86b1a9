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


ALIASES = [("var", "accum"), ("var", "power"), ("accum", "power")]


def aliased(variables, first, second):
    """The three inputs with `second` replaced by `first`'s variable."""
    named = dict(zip(("var", "accum", "power"), variables, strict=True))
    named[second] = named[first]
    return named["var"], named["accum"], named["power"]


@pytest.mark.parametrize("first, second", ALIASES)
@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("graph", [False, True])
def test_one_variable_in_two_inputs_is_rejected_before_any_write(
    first, second, kind, dtype, graph
):
    var = tf.Variable(np.ones((4, 2), dtype))
    accum = tf.Variable(np.full((4, 2), 0.5, dtype))
    power = tf.Variable(np.zeros(4, np.int64))
    before = snapshot((var, accum, power))
    inputs = aliased((var, accum, power), first, second)
    grad = np.ones((4, 2) if kind == "dense" else (2, 2), dtype)

    def apply():
        if kind == "dense":
            ops.resource_apply_adagrad_swap(*inputs, 0.1, grad, 5, **GOOD)
        else:
            ops.resource_sparse_apply_adagrad_swap(
                *inputs, 0.1, grad, np.array([0, 3]), 5, **GOOD
            )

    if graph and "power" in (first, second):
        # Traced, the shape function already refuses a float [4, 2] power
        # (it must be [4]): a ValueError when the graph is built.
        with pytest.raises(ValueError, match="Shapes must be equal rank"):
            tf.function(apply)()
    else:
        with pytest.raises(
            tf.errors.InvalidArgumentError,
            match=f"{first} and {second} are the same",
        ):
            tf.function(apply)() if graph else apply()
    for b, v in zip(before, (var, accum, power), strict=True):
        np.testing.assert_array_equal(b, v.numpy())


@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize(
    "input_name", ["grad", "lr", "epsilon", "decay_rate", "accumulator_floor"]
)
def test_a_tensor_of_another_dtype_is_refused_as_tensorflow_refuses_it(
    kind, input_name
):
    variables = fresh()
    before = snapshot(variables)
    grad = np.ones((4, 3) if kind == "dense" else (2, 3), np.float32)
    args = dict(lr=0.1, grad=tf.constant(grad), epsilon=0.0, decay_rate=0.8,
                accumulator_floor=0.1)
    args[input_name] = tf.cast(args[input_name], tf.float64)

    def apply():
        common = dict(decay_period=10, decay_rate=args["decay_rate"],
                      accumulator_floor=args["accumulator_floor"],
                      epsilon=args["epsilon"])
        if kind == "dense":
            ops.resource_apply_adagrad_swap(
                *variables, args["lr"], args["grad"], 5, **common)
        else:
            ops.resource_sparse_apply_adagrad_swap(
                *variables, args["lr"], args["grad"], np.array([0, 2]), 5,
                **common)

    # As TensorFlow's ResourceApplyAdagradV2: InvalidArgumentError eagerly,
    # TypeError while tracing.
    with pytest.raises(tf.errors.InvalidArgumentError, match="double"):
        apply()
    with pytest.raises(TypeError, match="float64"):
        tf.function(apply)()
    for b, v in zip(before, variables, strict=True):
        np.testing.assert_array_equal(b, v.numpy())


def test_python_numbers_are_still_converted_exactly():
    var = tf.Variable(np.ones(3, np.float64))
    accum = tf.Variable(np.zeros(3, np.float64) + 1e-300)
    power = tf.Variable(np.zeros(3, np.int64))
    ops.resource_apply_adagrad_swap(
        var, accum, power, 0.1, np.ones(3), 1,
        decay_rate=1.0, decay_period=10, accumulator_floor=0.0,
    )
    # lr is the float64 nearest 0.1 (not float32(0.1) widened): the step is
    # 0.1 * 1 / sqrt(1 + 1e-300) = 0.1 exactly.
    np.testing.assert_array_equal(var.numpy(), 1.0 - 0.1)
