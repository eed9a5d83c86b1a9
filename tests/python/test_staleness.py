"""Staleness normalization (SPEC section 2) in both Adagrad-SWAP optimizers.

Each test feeds a known `t_read` and `t_apply` and checks the update against
the NumPy reference with `lr_eff = lr * max(1, tau) ** (-1/k)`, bit for bit,
and that a dropped update writes nothing.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from swap_reference import SwapState
from tf_swap.compat.v1 import AdagradSwapOptimizer
from tf_swap.keras import AdagradSwap

v1 = tf.compat.v1
LR = 0.2


def lr_eff(lr, tau, k, dtype=np.float32):
    """The learning rate the op must receive: lr (as the optimizer holds it)
    times the scale, in float64, rounded once to the variable's dtype."""
    # Computed as 1 / tau**(1/k) in float64 (see tf_swap.core.settings).
    scale = 1.0 if k is None or math.isinf(k) else 1.0 / max(1, tau) ** (1.0 / k)
    return dtype(np.float64(lr) * scale)


def keras_state(optimizer, var):
    acc = [v for v in optimizer.variables if v.path.endswith("_accumulator")][0]
    power = [v for v in optimizer.variables if v.path.endswith("_power")][0]
    return var.numpy(), acc.numpy(), power.numpy()


# (t_read, t_apply): fresh, stale by 1, 2, 3, 9, and read "after" apply.
PAIRS = [(5, 5), (4, 5), (3, 5), (7, 10), (1, 10), (12, 10)]


@pytest.mark.parametrize("k", [1.0, 2.0, 3.5])
@pytest.mark.parametrize("sparse", [False, True])
def test_keras_scale_is_exact(k, sparse):
    rng = np.random.default_rng(0)
    init = rng.normal(size=(6, 3)).astype(np.float32)
    var = keras.Variable(init)
    optimizer = AdagradSwap(
        LR, decay_rate=0.5, decay_period=4, epsilon=1e-7, staleness_exponent=k
    )
    state = SwapState(init, 0.1, np.float32)
    lr32 = np.float32(LR)  # Keras keeps the learning rate in float32
    for t_read, t_apply in PAIRS:
        grad = rng.normal(size=init.shape).astype(np.float32)
        optimizer.swap_step.assign(t_apply)
        if sparse:
            rows = np.array([4, 1, 4])
            g = tf.IndexedSlices(tf.constant(grad[:3]), tf.constant(rows))
            ref_grad, indices = grad[:3], rows
        else:
            g, ref_grad, indices = tf.constant(grad), grad, None
        tau = optimizer.apply([g], [var], read_step=tf.constant(t_read, tf.int64))
        assert int(tau) == max(0, t_apply - t_read)
        state.apply(
            ref_grad,
            t_apply + 1,
            lr=lr_eff(lr32, t_apply - t_read, k),
            decay_rate=0.5,
            decay_period=4,
            floor=0.1,
            epsilon=1e-7,
            placement="inside_sqrt",
            indices=indices,
        )
        ours = keras_state(optimizer, var)
        np.testing.assert_array_equal(ours[0], state.var)
        np.testing.assert_array_equal(ours[1], state.accum)  # raw g*g
        np.testing.assert_array_equal(ours[2], state.power)
    assert int(optimizer.dropped_updates) == 0


def test_keras_reference_values_of_the_scale():
    # lr / sqrt(tau) at k = 2: tau = 4 halves the step exactly.
    var = keras.Variable(np.zeros((1,), np.float32))
    optimizer = AdagradSwap(1.0, epsilon=0.0, decay_rate=1.0, staleness_exponent=2)
    optimizer.swap_step.assign(4)
    optimizer.apply([tf.constant([1.0])], [var], read_step=tf.constant(0, tf.int64))
    # acc = 0.1 + 1 (raw g*g); step = 0.5 * 1 / sqrt(1.1).
    np.testing.assert_array_equal(
        var.numpy(), [-np.float32(0.5) / np.sqrt(np.float32(1.1))]
    )


@pytest.mark.parametrize("sparse", [False, True])
def test_keras_drop_writes_nothing_and_counts(sparse):
    rng = np.random.default_rng(1)
    init = rng.normal(size=(5, 2)).astype(np.float32)
    var = keras.Variable(init)
    optimizer = AdagradSwap(LR, decay_period=2, staleness_exponent=2, max_staleness=3)

    def grad():
        g = rng.normal(size=init.shape).astype(np.float32)
        if sparse:
            return tf.IndexedSlices(tf.constant(g[:2]), tf.constant([0, 3]))
        return tf.constant(g)

    # A fresh step builds the slots and writes.
    optimizer.apply([grad()], [var], read_step=tf.constant(0, tf.int64))
    before = keras_state(optimizer, var)
    assert int(optimizer.swap_step) == 1
    # tau = 4 > 3: dropped.
    optimizer.swap_step.assign(10)
    optimizer.apply([grad()], [var], read_step=tf.constant(6, tf.int64))
    after = keras_state(optimizer, var)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(optimizer.dropped_updates) == 1
    assert int(optimizer.swap_step) == 11  # the step counter still advances
    # tau = 3 == max_staleness: applied.
    optimizer.apply([grad()], [var], read_step=tf.constant(8, tf.int64))
    assert not np.array_equal(keras_state(optimizer, var)[0], after[0])
    assert int(optimizer.dropped_updates) == 1


def test_keras_read_step_records_t_read_inside_tf_function():
    var = keras.Variable(np.zeros((2,), np.float32))
    optimizer = AdagradSwap(
        1.0, epsilon=0.0, decay_rate=1.0, staleness_exponent=1, max_staleness=5
    )
    optimizer.build([var])

    @tf.function
    def step(others):
        t_read = optimizer.read_step()
        with tf.control_dependencies([t_read]):
            # Other workers apply `others` updates meanwhile.
            optimizer.swap_step.assign_add(others)
        g = tf.constant([1.0, 1.0])
        with tf.control_dependencies([optimizer.swap_step.value]):
            return optimizer.apply_gradients([(g, var)])

    step(tf.constant(4, tf.int64))  # tau 4: lr / 4
    np.testing.assert_array_equal(
        var.numpy(), [-np.float32(0.25) / np.sqrt(np.float32(1.1))] * 2
    )
    step(tf.constant(6, tf.int64))  # tau 6 > 5: dropped
    assert int(optimizer.dropped_updates) == 1
    assert int(optimizer.swap_step) == 12


def test_keras_without_recorded_read_is_fresh():
    rng = np.random.default_rng(2)
    init = rng.normal(size=(4,)).astype(np.float32)
    grads = [rng.normal(size=init.shape).astype(np.float32) for _ in range(3)]
    plain, stale = keras.Variable(init), keras.Variable(init)
    a = AdagradSwap(LR, decay_period=2)
    b = AdagradSwap(LR, decay_period=2, staleness_exponent=1, max_staleness=0)
    for g in grads:
        a.apply([tf.constant(g)], [plain])
        b.apply([tf.constant(g)], [stale])
    np.testing.assert_array_equal(plain.numpy(), stale.numpy())
    assert int(b.dropped_updates) == 0


def test_keras_disabled_ignores_read_step():
    init = np.ones((3,), np.float32)
    x, y = keras.Variable(init), keras.Variable(init)
    a, b = AdagradSwap(LR), AdagradSwap(LR)
    assert not a.uses_staleness
    a.swap_step.assign(9)
    b.swap_step.assign(9)
    a.apply([tf.constant(init)], [x], read_step=tf.constant(0, tf.int64))
    b.apply([tf.constant(init)], [y])
    np.testing.assert_array_equal(x.numpy(), y.numpy())
    assert int(a.dropped_updates) == 0
    assert not any("dropped" in v.path for v in a.variables)


def test_keras_config_round_trip():
    optimizer = AdagradSwap(0.1, staleness_exponent=2, max_staleness=30)
    config = optimizer.get_config()
    assert config["staleness_exponent"] == 2.0
    assert config["max_staleness"] == 30
    clone = AdagradSwap.from_config(config)
    assert clone.get_config() == config
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert restored.get_config() == config
    defaults = AdagradSwap().get_config()
    assert defaults["staleness_exponent"] is None
    assert defaults["max_staleness"] is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(staleness_exponent=0.0), "staleness_exponent"),
        (dict(staleness_exponent=-2.0), "staleness_exponent"),
        (dict(staleness_exponent=float("nan")), "staleness_exponent"),
        (dict(max_staleness=-1), "max_staleness"),
        (dict(max_staleness=2.5), "max_staleness"),
    ],
)
def test_bad_staleness_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdagradSwap(**kwargs)
    with pytest.raises(ValueError, match=match):
        AdagradSwapOptimizer(0.1, **kwargs)


def test_infinite_exponent_does_not_scale():
    var, ref = (
        keras.Variable(np.zeros(2, np.float32)),
        keras.Variable(np.zeros(2, np.float32)),
    )
    a = AdagradSwap(LR, staleness_exponent=float("inf"), max_staleness=100)
    b = AdagradSwap(LR)
    a.swap_step.assign(50)
    b.swap_step.assign(50)
    a.apply([tf.constant([1.0, 2.0])], [var], read_step=tf.constant(0, tf.int64))
    b.apply([tf.constant([1.0, 2.0])], [ref])
    np.testing.assert_array_equal(var.numpy(), ref.numpy())


# --- tf.compat.v1 -----------------------------------------------------------


def v1_session_run(pairs, sparse, k=2.0, max_staleness=None):
    """Runs one v1 step per (t_read, t_apply) in a Session, feeding t_read
    and setting the global step to t_apply; returns per-step states."""
    rng = np.random.default_rng(3)
    init = rng.normal(size=(4, 2)).astype(np.float64)
    grads = [rng.normal(size=init.shape) for _ in pairs]
    graph = tf.Graph()
    with graph.as_default():
        global_step = v1.train.get_or_create_global_step()
        var = v1.get_variable("w", initializer=init, use_resource=True)
        grad = v1.placeholder(tf.float64, init.shape)
        optimizer = AdagradSwapOptimizer(
            LR,
            decay_rate=0.5,
            decay_period=3,
            staleness_exponent=k,
            max_staleness=max_staleness,
        )
        t_read = optimizer.read_step()
        with tf.control_dependencies([t_read]):
            if sparse:
                rows = tf.constant([0, 2, 2])
                loss = tf.reduce_sum(tf.gather(var, rows) * tf.gather(grad, rows))
            else:
                loss = tf.reduce_sum(var * grad)
        train = optimizer.minimize(loss, global_step=global_step)
        slots = (
            optimizer.get_slot(var, "accumulator"),
            optimizer.get_slot(var, "power"),
        )
        dropped = optimizer.dropped_updates
        if dropped is None:
            dropped = tf.constant(0, tf.int64)
        states = []
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            for (read, apply), g in zip(pairs, grads, strict=True):
                global_step.load(apply, session)
                session.run(train, {grad: g, t_read: read})
                states.append(session.run((var, *slots, global_step, dropped)))
    return init, grads, states


@pytest.mark.parametrize("sparse", [False, True])
def test_v1_scale_is_exact_in_a_session(sparse):
    init, grads, states = v1_session_run(PAIRS, sparse)
    state = SwapState(init, 0.1, np.float64)
    for (read, apply), g, ours in zip(PAIRS, grads, states, strict=True):
        if sparse:
            ref, indices = np.stack([g[0], g[2], g[2]]), [0, 2, 2]
        else:
            ref, indices = g, None
        state.apply(
            ref,
            apply + 1,
            lr=lr_eff(LR, apply - read, 2.0, np.float64),
            decay_rate=0.5,
            decay_period=3,
            floor=0.1,
            indices=indices,
        )
        np.testing.assert_array_equal(ours[0], state.var)
        np.testing.assert_array_equal(ours[1], state.accum)
        np.testing.assert_array_equal(ours[2], state.power)
        assert ours[3] == apply + 1


@pytest.mark.parametrize("sparse", [False, True])
def test_v1_drop_writes_nothing_in_a_session(sparse):
    pairs = [(0, 0), (2, 7), (4, 7)]  # fresh, tau 5 > 4 dropped, tau 3 applied
    _, _, states = v1_session_run(pairs, sparse, max_staleness=4)
    for a, b in zip(states[0][:3], states[1][:3], strict=True):
        np.testing.assert_array_equal(a, b)
    assert [s[4] for s in states] == [0, 1, 1]
    assert states[1][3] == 8  # the global step still advances
    assert not np.array_equal(states[2][0], states[1][0])


def test_v1_eager_read_step_and_explicit_global_step():
    step = tf.Variable(3, dtype=tf.int64)
    var = tf.Variable([0.0, 0.0])
    optimizer = AdagradSwapOptimizer(
        1.0, decay_rate=1.0, global_step=step, staleness_exponent=1, max_staleness=5
    )
    optimizer.read_step()
    step.assign_add(4)  # four updates by others: tau = 4
    optimizer.apply_gradients([(tf.constant([1.0, 1.0]), var)])
    # v1 Adagrad: no epsilon, lr / 4 / sqrt(0.1 + 1).
    np.testing.assert_allclose(
        var.numpy(), [-0.25 / np.sqrt(np.float32(1.1))] * 2, rtol=1e-7
    )
    optimizer.read_step()
    step.assign_add(6)  # tau 6 > 5
    optimizer.apply_gradients([(tf.constant([1.0, 1.0]), var)])
    assert int(optimizer.dropped_updates.numpy()) == 1
    np.testing.assert_allclose(
        var.numpy(), [-0.25 / np.sqrt(np.float32(1.1))] * 2, rtol=1e-7
    )


def test_v1_disabled_is_unchanged():
    optimizer = AdagradSwapOptimizer(0.1)
    assert not optimizer.uses_staleness
    assert int(optimizer.dropped_updates.numpy()) == 0  # as in the Keras classes
