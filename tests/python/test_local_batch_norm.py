"""TfSwapLocalBatchNorm{,Grad} and the stock-op inference against float64
NumPy and TF."""


import numpy as np
import pytest
import tensorflow as tf

import tf_swap
from tf_swap.ops import local_batch_norm, local_batch_norm_inference

EPS = 1e-3


def reference(x, dy, gamma, beta, eps=EPS):
    """SPEC section 3 in float64 on [N, C] (x flattened, channels last)."""
    c = x.shape[-1]
    x = x.reshape(-1, c).astype(np.float64)
    dy = dy.reshape(-1, c).astype(np.float64)
    gamma, beta = gamma.astype(np.float64), beta.astype(np.float64)
    n = x.shape[0]
    mean = x.mean(0)
    var = ((x - mean) ** 2).mean(0)
    inv = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean) * inv
    y = gamma * xhat + beta
    dbeta = dy.sum(0)
    dgamma = (dy * xhat).sum(0)
    dx = gamma * inv / n * (n * dy - dbeta - xhat * dgamma)
    return y, mean, inv, var, dx, dgamma, dbeta


def random_inputs(shape, dtype, seed=0, loc=2.0, scale=3.0):
    rng = np.random.default_rng(seed)
    c = shape[-1]
    x = rng.normal(loc, scale, shape).astype(dtype)
    dy = rng.normal(size=shape).astype(dtype)
    gamma = rng.normal(1.0, 0.5, c).astype(dtype)
    beta = rng.normal(size=c).astype(dtype)
    return x, dy, gamma, beta


def run_ours(x, dy, gamma, beta, eps=EPS, function=False):
    def step(x, gamma, beta):
        with tf.GradientTape() as tape:
            tape.watch([x, gamma, beta])
            y, mean, inv = local_batch_norm(x, gamma, beta, eps)
        grads = tape.gradient(y, [x, gamma, beta], output_gradients=dy)
        return y, mean, inv, grads

    if function:
        step = tf.function(step)
    y, mean, inv, (dx, dgamma, dbeta) = step(
        tf.constant(x), tf.constant(gamma), tf.constant(beta)
    )
    return [t.numpy() for t in (y, mean, inv, dx, dgamma, dbeta)]


def tolerance(dtype):
    return dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(
        rtol=1e-10, atol=1e-10
    )


class LocalBatchNormTest(tf.test.TestCase):
    def check_reference(self, shape, dtype, function=False, **kw):
        x, dy, gamma, beta = random_inputs(shape, dtype, **kw)
        y, mean, inv, dx, dgamma, dbeta = run_ours(
            x, dy, gamma, beta, function=function
        )
        eps = float(np.asarray(EPS, dtype))
        ry, rmean, rinv, _, rdx, rdgamma, rdbeta = reference(
            x, dy, gamma, beta, eps
        )
        tol = tolerance(dtype)
        n = int(np.prod(shape[:-1]))
        for got, want in ((y, ry.reshape(shape)), (mean, rmean), (inv, rinv),
                          (dx, rdx.reshape(shape))):
            self.assertEqual(got.dtype, dtype)
            self.assertAllClose(got, want, **tol)
        # Sums over N rows: absolute tolerance grows with N.
        sum_tol = dict(rtol=tol["rtol"], atol=tol["atol"] * max(n, 1) ** 0.5)
        self.assertAllClose(dgamma, rdgamma, **sum_tol)
        self.assertAllClose(dbeta, rdbeta, **sum_tol)

    def test_float64_reference_eager_and_function(self):
        for dtype in (np.float32, np.float64):
            for function in (False, True):
                with self.subTest(dtype=dtype, function=function):
                    self.check_reference((257, 19), dtype, function)

    def test_rank3_and_rank4(self):
        for shape in ((6, 7, 5), (3, 4, 5, 8)):
            for dtype in (np.float32, np.float64):
                with self.subTest(shape=shape, dtype=dtype):
                    self.check_reference(shape, dtype, function=True)

    def test_large_channel_count(self):
        self.check_reference((64, 4096), np.float32)

    def test_many_rows_use_threads(self):
        # 2^20 elements: above the single-thread threshold, so sharded.
        self.check_reference((4096, 256), np.float32, function=True)

    def test_single_row(self):
        x, dy, gamma, beta = random_inputs((1, 6), np.float32)
        y, mean, inv, dx, dgamma, dbeta = run_ours(x, dy, gamma, beta)
        self.assertAllEqual(y, np.broadcast_to(beta, (1, 6)))
        self.assertAllEqual(mean, x[0])
        self.assertAllClose(inv, np.full(6, 1 / np.sqrt(np.float32(EPS))))
        self.assertAllEqual(dx, np.zeros_like(x))
        self.assertAllEqual(dgamma, np.zeros(6, np.float32))
        self.assertAllEqual(dbeta, dy[0])

    def test_matches_tf_nn_batch_normalization(self):
        x, dy, gamma, beta = random_inputs((128, 16), np.float32, seed=3)
        xt, gt, bt = map(tf.constant, (x, gamma, beta))
        with tf.GradientTape() as tape:
            tape.watch([xt, gt, bt])
            mean, var = tf.nn.moments(xt, [0])
            want = tf.nn.batch_normalization(xt, mean, var, bt, gt, EPS)
        want_grads = tape.gradient(want, [xt, gt, bt], output_gradients=dy)
        y, _, _, dx, dgamma, dbeta = run_ours(x, dy, gamma, beta)
        self.assertAllClose(y, want, rtol=1e-4, atol=1e-4)
        for got, w in zip((dx, dgamma, dbeta), want_grads, strict=True):
            self.assertAllClose(got, w, rtol=1e-4, atol=1e-4)

    def test_numeric_gradient_float64(self):
        x, _, gamma, beta = random_inputs((9, 4), np.float64, seed=5)
        # A loss that is not linear in y, so every gradient term matters.
        weights = tf.constant(np.random.default_rng(1).normal(size=(9, 4)))

        def loss(x, gamma, beta):
            y, _, _ = local_batch_norm(x, gamma, beta, EPS)
            return tf.reduce_sum(weights * y + 0.1 * y * y, keepdims=True)

        theoretical, numerical = tf.test.compute_gradient(
            loss, [tf.constant(x), tf.constant(gamma), tf.constant(beta)]
        )
        for t, n in zip(theoretical, numerical, strict=True):
            self.assertAllClose(t, n, rtol=1e-6, atol=1e-6)

    def test_ill_conditioned_float32_channel(self):
        # mean 1e4, std 1e-2, epsilon 1e-3: TF's batch norms are off by ~2e-2.
        rng = np.random.default_rng(7)
        x = (1e4 + 1e-2 * rng.standard_normal((4096, 1))).astype(np.float32)
        dy = rng.standard_normal((4096, 1)).astype(np.float32)
        one, zero = np.ones(1, np.float32), np.zeros(1, np.float32)
        y, mean, inv, dx, dgamma, _ = run_ours(x, dy, one, zero)
        ry, rmean, _, _, rdx, rdgamma, _ = reference(
            x, dy, one, zero, float(np.float32(EPS))
        )
        self.assertLess(np.abs(y - ry).max(), 1e-3)
        self.assertLess(np.abs(dx - rdx).max(), 1e-3 * np.abs(rdx).max())
        self.assertAllClose(dgamma, rdgamma, rtol=1e-3)
        # The case is hard: TF's own result is visibly off, so the test can
        # tell a float32 shortcut from the float64 path.
        m, v = tf.nn.moments(tf.constant(x), [0])
        tf_y = tf.nn.batch_normalization(x, m, v, zero, one, EPS).numpy()
        self.assertGreater(np.abs(tf_y - ry).max(), 2e-3)

    def test_inference_matches_reference(self):
        for dtype in (np.float32, np.float64):
            x, _, gamma, beta = random_inputs((33, 3, 7), dtype, seed=2)
            rng = np.random.default_rng(4)
            mean = rng.normal(size=7).astype(dtype)
            var = rng.uniform(0.5, 2.0, 7).astype(dtype)
            y = local_batch_norm_inference(x, gamma, beta, mean, var, EPS)
            want = gamma.astype(np.float64) * (
                x.astype(np.float64) - mean
            ) / np.sqrt(var.astype(np.float64) + float(np.asarray(EPS, dtype)))
            want += beta
            self.assertEqual(y.dtype, dtype)
            self.assertAllClose(y, want, **tolerance(dtype))



@pytest.mark.parametrize(
    "shapes, match",
    [
        (((8,), (8,), (8,)), "rank"),
        (((4, 3), (4,), (3,)), "gamma must have shape"),
        (((4, 3), (3,), (3, 1)), "beta must have shape"),
        (((0, 3), (3,), (3,)), "N == 0"),
    ],
)
def test_bad_shapes_raise_naming_the_problem(shapes, match):
    x, gamma, beta = (np.ones(s, np.float32) for s in shapes)
    with pytest.raises(
        (tf.errors.InvalidArgumentError, ValueError), match=match
    ):
        local_batch_norm(x, gamma, beta)


@pytest.mark.parametrize("epsilon", [0.0, -1.0, float("nan")])
def test_bad_epsilon_raises(epsilon):
    ones = np.ones((4, 3), np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="epsilon"):
        local_batch_norm(ones, ones[0], ones[0], epsilon)
    with pytest.raises(tf.errors.InvalidArgumentError, match="epsilon"):
        local_batch_norm_inference(
            ones, ones[0], ones[0], ones[0], ones[0], epsilon
        )


def test_bad_shape_raises_in_graph_mode_too():
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)])
    def f(x):
        return local_batch_norm(x, tf.ones([3]), tf.zeros([3]))[0]

    with pytest.raises(tf.errors.InvalidArgumentError, match="gamma"):
        f(tf.ones([4, 5]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="N == 0"):
        f(tf.ones([0, 3]))


def test_static_shapes():
    @tf.function(input_signature=[tf.TensorSpec([None, 5, 3], tf.float32)])
    def f(x):
        y, mean, inv = local_batch_norm(x, tf.ones([3]), tf.zeros([3]))
        assert y.shape.as_list() == [None, 5, 3]
        assert mean.shape.as_list() == [3] and inv.shape.as_list() == [3]
        return y

    f(tf.ones([2, 5, 3]))


def test_ops_registered():
    for op in ("TfSwapLocalBatchNorm", "TfSwapLocalBatchNormGrad"):
        assert op in tf_swap._ops.EXPECTED_OPS
    # Inference is stock TensorFlow ops (exported models serve without us).
    assert not hasattr(tf_swap._ops.library(),
                       "tf_swap_local_batch_norm_inference")
