"""The FTRL-SWAP ops (SPEC section 4) against TensorFlow's FTRL ops, bit for
bit at decay_rate 1, and the SWAP semantics: a discount leaves every weight
unchanged, lazy catch-up equals one discount per period, staleness scales
the step, bad input writes nothing."""

import numpy as np
import pytest
import tensorflow as tf

from tf_swap import ops

LR = 0.1


def variables(w, n, z, rows):
    return (
        tf.Variable(w),
        tf.Variable(n),
        tf.Variable(z),
        tf.Variable(np.zeros(rows, np.int64)),
    )


def state(*vs):
    return [v.numpy().copy() for v in vs]


def ours(var, accum, linear, power, grad, indices=None, step=1, **hyper):
    kwargs = dict(
        decay_rate=hyper.pop("decay_rate", 1.0),
        decay_period=hyper.pop("decay_period", 3),
        accumulator_floor=hyper.pop("accumulator_floor", 0.1),
    )
    kwargs.update(hyper)
    if indices is None:
        return ops.resource_apply_ftrl_swap(
            var, accum, linear, power, grad, LR, step=step, **kwargs
        )
    return ops.resource_sparse_apply_ftrl_swap(
        var, accum, linear, power, grad, indices, LR, step=step, **kwargs
    )


def theirs(
    var,
    accum,
    linear,
    grad,
    indices=None,
    l1=0.0,
    l2=0.0,
    l2_shrinkage=0.0,
    lr_power=-0.5,
):
    dtype = var.dtype
    c = lambda v: tf.constant(v, dtype)  # noqa: E731
    common = dict(
        var=var.handle,
        accum=accum.handle,
        linear=linear.handle,
        grad=grad,
        lr=c(LR),
        l1=c(l1),
        l2=c(l2),
        l2_shrinkage=c(l2_shrinkage),
        lr_power=c(lr_power),
    )
    if indices is None:
        return tf.raw_ops.ResourceApplyFtrlV2(**common)
    return tf.raw_ops.ResourceSparseApplyFtrlV2(indices=indices, **common)


def start(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(0, 0.1, shape).astype(dtype),
        rng.uniform(0.05, 1.0, shape).astype(dtype),
        rng.normal(0, 0.1, shape).astype(dtype),
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(37,), (13, 3), (50, 16), (9, 2, 5)])
@pytest.mark.parametrize("lr_power", [-0.5, -0.7])
@pytest.mark.parametrize("regularized", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
def test_rate_one_is_tensorflows_ftrl_bit_for_bit(
    dtype, shape, lr_power, regularized, sparse
):
    reg = dict(l1=0.05, l2=0.1, l2_shrinkage=0.02) if regularized else {}
    w, n, z = start(shape, dtype)
    mine = variables(w, n, z, shape[:1])
    tf_vars = variables(w, n, z, shape[:1])[:3]
    rng = np.random.default_rng(1)
    for step in range(1, 6):
        if sparse:
            rows = rng.permutation(shape[0])[: max(1, shape[0] // 2)]
            indices = rows.astype(np.int32 if step % 2 else np.int64)
            grad = rng.normal(0, 1, (len(rows), *shape[1:])).astype(dtype)
        else:
            indices, grad = None, rng.normal(0, 1, shape).astype(dtype)
        ours(*mine, grad, indices, step=step, lr_power=lr_power, **reg)
        theirs(*tf_vars, grad, indices, lr_power=lr_power, **reg)
    for got, want in zip(state(*mine[:3]), state(*tf_vars), strict=True):
        np.testing.assert_array_equal(got, want)


def test_duplicates_are_summed_first():
    w, n, z = start((6, 4), np.float32)
    a, b = variables(w, n, z, 6), variables(w, n, z, 6)
    grad = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    ours(*a, grad, np.array([4, 1, 4]), l1=0.01)
    summed = np.stack([grad[0] + grad[2], grad[1]])
    ours(*b, summed, np.array([4, 1]), l1=0.01)
    for got, want in zip(state(*a), state(*b), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("l1", [0.0, 0.03])
def test_a_discount_leaves_every_weight_unchanged(l1):
    w, n, z = start((8, 3), np.float64, seed=4)
    var, accum, linear, power = variables(w, n, z, 8)
    hyper = dict(l1=l1, l2=0.05, decay_rate=0.5, decay_period=10)
    g = np.random.default_rng(5).normal(size=(8, 3))
    ours(var, accum, linear, power, g, step=5, **hyper)
    before = var.numpy().copy()
    # A zero gradient at step 10: the first discount happens, nothing else.
    ours(var, accum, linear, power, np.zeros((8, 3)), step=10, **hyper)
    np.testing.assert_array_equal(power.numpy(), np.ones(8, np.int64))
    np.testing.assert_allclose(var.numpy(), before, rtol=1e-12, atol=1e-15)
    assert (accum.numpy() < n + g * g).all()  # the accumulator was discounted
    # The next step is larger than plain FTRL's, which did not discount.
    plain = variables(w, n, z, 8)
    ours(*plain, g, step=5, **dict(hyper, decay_rate=1.0))
    ours(*plain, np.zeros((8, 3)), step=10, **dict(hyper, decay_rate=1.0))
    g2 = np.full((8, 3), 0.5)
    ours(var, accum, linear, power, g2, step=11, **hyper)
    ours(*plain, g2, step=11, **dict(hyper, decay_rate=1.0))
    moved = np.abs(var.numpy() - before)
    moved_plain = np.abs(plain[0].numpy() - before)
    assert moved.sum() > moved_plain.sum()


def test_lazy_catch_up_equals_one_discount_per_period_and_dense():
    # Row 0 is untouched for 4 periods, then updated (sparse, in one go);
    # the same row discounted at each period with zero gradients (dense,
    # one period at a time) ends within 1e-6.
    w, n, z = start((3, 4), np.float64, seed=6)
    hyper = dict(
        l1=0.01, l2=0.02, decay_rate=0.7, decay_period=5, accumulator_floor=0.01
    )
    lazy, eager = variables(w, n, z, 3), variables(w, n, z, 3)
    g = np.random.default_rng(7).normal(size=(1, 4))
    ours(*lazy, g, np.array([0]), step=23, **hyper)
    for period in range(1, 5):
        ours(*eager, np.zeros((3, 4)), step=5 * period, **hyper)
    ours(*eager, g, np.array([0]), step=23, **hyper)
    for got, want in zip(state(*lazy), state(*eager), strict=True):
        np.testing.assert_allclose(got[0], want[0], rtol=1e-6, atol=1e-9)
    dense = variables(w, n, z, 3)
    full = np.zeros((3, 4))
    full[0] = g[0]
    ours(*dense, full, step=23, **hyper)
    for got, want in zip(state(*lazy), state(*dense), strict=True):
        np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.25])
def test_staleness_scales_the_step_without_regularization(scale):
    w, n, _ = start((5, 2), np.float64, seed=8)
    z = -w * np.sqrt(n) / LR  # a z consistent with w at l1 = l2 = 0
    g = np.random.default_rng(9).normal(size=(5, 2))
    fresh, stale = variables(w, n, z, 5), variables(w, n, z, 5)
    ours(*fresh, g, step=2)
    ours(*stale, g, step=2, staleness_scale=scale)
    np.testing.assert_allclose(
        stale[0].numpy() - w, scale * (fresh[0].numpy() - w), rtol=1e-9
    )
    np.testing.assert_array_equal(stale[1].numpy(), fresh[1].numpy())


BAD_HYPER = [
    (dict(learning_rate=0.0), "learning_rate"),
    (dict(l1=-1.0), "l1"),
    (dict(l2=float("nan")), "l2"),
    (dict(l2_shrinkage=-0.1), "l2_shrinkage"),
    (dict(lr_power=0.5), "lr_power"),
    (dict(beta=-1.0), "beta"),
    (dict(staleness_scale=0.0), "staleness_scale"),
    (dict(staleness_scale=1.5), "staleness_scale"),
    (dict(decay_rate=0.0), "decay_rate"),
    (dict(decay_period=0), "decay_period"),
    (dict(accumulator_floor=-1.0), "accumulator_floor"),
    (dict(step=0), "step"),
]


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("bad, name", BAD_HYPER)
def test_bad_hyper_parameters_write_nothing(bad, name, sparse):
    w, n, z = start((4, 2), np.float32)
    vs = variables(w, n, z, 4)
    before = state(*vs)
    hyper = dict(bad)
    lr = hyper.pop("learning_rate", LR)
    step = hyper.pop("step", 1)
    kwargs = dict(decay_rate=1.0, decay_period=3, accumulator_floor=0.1)
    kwargs.update(hyper)
    with pytest.raises(tf.errors.InvalidArgumentError, match=name):
        if sparse:
            ops.resource_sparse_apply_ftrl_swap(
                *vs,
                np.ones((2, 2), np.float32),
                np.array([0, 3]),
                lr,
                step=step,
                **kwargs,
            )
        else:
            ops.resource_apply_ftrl_swap(
                *vs, np.ones((4, 2), np.float32), lr, step=step, **kwargs
            )
    for got, want in zip(state(*vs), before, strict=True):
        np.testing.assert_array_equal(got, want)


def test_bad_tensors_write_nothing():
    w, n, z = start((4, 2), np.float32)
    var, accum, linear, power = variables(w, n, z, 4)
    before = state(var, accum, linear, power)
    g = np.ones((2, 2), np.float32)
    cases = [
        (lambda: ours(var, accum, linear, power, g, np.array([0, 4])), "not in"),
        (lambda: ours(var, accum, linear, power, g, np.array([0, -1])), "not in"),
        (
            lambda: ours(var, accum, accum, power, np.ones((4, 2), np.float32)),
            "same variable",
        ),
        (
            lambda: ours(
                var,
                accum,
                linear,
                tf.Variable(np.zeros(3, np.int64)),
                np.ones((4, 2), np.float32),
            ),
            "power must have shape",
        ),
        (
            lambda: ours(
                var,
                tf.Variable(np.ones((4, 3), np.float32)),
                linear,
                power,
                np.ones((4, 2), np.float32),
            ),
            "same shape",
        ),
        (
            lambda: ours(
                var,
                tf.Variable(np.ones((4, 2))),
                linear,
                power,
                np.ones((4, 2), np.float32),
            ),
            "dtype",
        ),
        (
            lambda: ours(var, accum, linear, power, np.ones((3, 2), np.float32)),
            "same shape",
        ),
    ]
    for call, match in cases:
        with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=match):
            call()
    for got, want in zip(state(var, accum, linear, power), before, strict=True):
        np.testing.assert_array_equal(got, want)


def test_an_empty_gradient_is_a_no_op():
    w, n, z = start((4, 2), np.float32)
    vs = variables(w, n, z, 4)
    before = state(*vs)
    ours(
        *vs, np.zeros((0, 2), np.float32), np.zeros(0, np.int64), step=9, decay_rate=0.5
    )
    for got, want in zip(state(*vs), before, strict=True):
        np.testing.assert_array_equal(got, want)
