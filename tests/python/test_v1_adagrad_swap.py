"""tf_swap.compat.v1.AdagradSwapOptimizer as a drop-in for
tf.compat.v1.train.AdagradOptimizer, in a Session and eagerly."""

import numpy as np
import pytest
import tensorflow as tf

from swap_reference import SwapState
from tf_swap.compat.v1 import AdagradSwapOptimizer

v1 = tf.compat.v1


def run_graph(make_optimizer, steps, init, grads, sparse=False):
    """Trains one variable in a v1 Session; returns its values per step."""
    graph = tf.Graph()
    with graph.as_default():
        global_step = v1.train.get_or_create_global_step()
        var = v1.get_variable("w", initializer=init, use_resource=True)
        grad = v1.placeholder(init.dtype, init.shape)
        if sparse:
            # tf.gather makes IndexedSlices gradients with repeated rows.
            rows = tf.constant([0, 2, 2, 1])
            loss = tf.reduce_sum(tf.gather(var, rows) * tf.gather(grad, rows))
        else:
            loss = tf.reduce_sum(var * grad)
        optimizer = make_optimizer()
        train = optimizer.minimize(loss, global_step=global_step)
        values = []
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            for i in range(steps):
                session.run(train, {grad: grads[i]})
                values.append(session.run(var))
        slot_names = optimizer.get_slot_names()
    return values, slot_names


@pytest.mark.parametrize("sparse", [False, True])
def test_rate_one_matches_tf_adagrad_in_a_session(sparse):
    rng = np.random.default_rng(0)
    init = rng.normal(size=(3, 4)).astype(np.float32)
    grads = [rng.normal(size=init.shape).astype(np.float32) for _ in range(6)]
    theirs, _ = run_graph(
        lambda: v1.train.AdagradOptimizer(0.1), 6, init, grads, sparse
    )
    ours, slots = run_graph(
        lambda: AdagradSwapOptimizer(0.1, decay_rate=1.0), 6, init, grads, sparse
    )
    # TF's ApplyAdagrad multiplies by rsqrt(acc); ours divides by sqrt(acc).
    for a, b in zip(theirs, ours, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert sorted(slots) == ["accumulator", "power"]


def test_decay_follows_global_step_in_a_session():
    rng = np.random.default_rng(1)
    init = rng.normal(size=(5, 2)).astype(np.float64)
    grads = [rng.normal(size=init.shape) for _ in range(9)]
    ours, _ = run_graph(
        lambda: AdagradSwapOptimizer(0.3, decay_rate=0.5, decay_period=2),
        9,
        init,
        grads,
    )
    state = SwapState(init, 0.1, np.float64)
    for step, grad in enumerate(grads, start=1):
        # Epsilon 0, placement after sqrt, update number = global_step + 1.
        state.apply(grad, step, lr=0.3, decay_rate=0.5, decay_period=2, floor=0.1)
        np.testing.assert_array_equal(ours[step - 1], state.var)


def test_eager_without_global_step_keeps_its_own_counter():
    rng = np.random.default_rng(2)
    init = rng.normal(size=(4,)).astype(np.float32)
    var = tf.Variable(init)
    optimizer = AdagradSwapOptimizer(0.2, decay_rate=0.5, decay_period=2)
    state = SwapState(init, 0.1, np.float32)
    for step in range(1, 6):
        grad = rng.normal(size=init.shape).astype(np.float32)
        optimizer.apply_gradients([(tf.constant(grad), var)])
        state.apply(grad, step, lr=0.2, decay_rate=0.5, decay_period=2, floor=0.1)
    np.testing.assert_array_equal(var.numpy(), state.var)
    np.testing.assert_array_equal(optimizer.get_slot(var, "power").numpy(), state.power)


def test_explicit_global_step_variable_is_read():
    step = tf.Variable(41, dtype=tf.int64)
    var = tf.Variable([1.0, 2.0])
    optimizer = AdagradSwapOptimizer(0.1, decay_period=10, global_step=step)
    optimizer.apply_gradients([(tf.constant([1.0, 1.0]), var)])
    # Update number 42: four periods done.
    np.testing.assert_array_equal(optimizer.get_slot(var, "power").numpy(), [4, 4])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(initial_accumulator_value=0.0), "initial_accumulator_value"),
        (dict(decay_rate=2.0), "decay_rate"),
        (dict(decay_period=0), "decay_period"),
        (dict(decay_mode="x"), "decay_mode"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdagradSwapOptimizer(0.1, **kwargs)


def test_saver_restore_and_continue_equals_uninterrupted(tmp_path):
    rng = np.random.default_rng(3)
    init = rng.normal(size=(6, 2)).astype(np.float32)
    grads = [rng.normal(size=init.shape).astype(np.float32) for _ in range(8)]

    def session_run(first, last, restore_from=None, save_to=None):
        graph = tf.Graph()
        with graph.as_default():
            global_step = v1.train.get_or_create_global_step()
            var = v1.get_variable("w", initializer=init, use_resource=True)
            grad = v1.placeholder(tf.float32, init.shape)
            rows = tf.constant([0, 3, 3, 5])
            loss = tf.reduce_sum(var * grad) + tf.reduce_sum(tf.gather(var, rows))
            optimizer = AdagradSwapOptimizer(0.1, decay_rate=0.5, decay_period=3)
            train = optimizer.minimize(loss, global_step=global_step)
            saver = v1.train.Saver()
            with v1.Session(graph=graph) as session:
                session.run(v1.global_variables_initializer())
                if restore_from:
                    saver.restore(session, restore_from)
                for i in range(first, last):
                    session.run(train, {grad: grads[i]})
                path = saver.save(session, str(save_to)) if save_to else None
                return session.run(var), path

    uninterrupted, _ = session_run(0, 8)
    _, path = session_run(0, 4, save_to=tmp_path / "ckpt")
    resumed, _ = session_run(4, 8, restore_from=path)
    np.testing.assert_array_equal(uninterrupted, resumed)


def test_explicit_global_step_in_a_session():
    # The variable's truth value is unknown while the graph is built: the
    # optimizer must not ask for it.
    graph = tf.Graph()
    with graph.as_default():
        step = v1.Variable(40, dtype=tf.int64, trainable=False, name="my_step")
        var = v1.get_variable("w", initializer=np.ones(2, np.float32),
                              use_resource=True)
        optimizer = AdagradSwapOptimizer(
            0.1, decay_period=10, global_step=step, staleness_exponent=2
        )
        train = optimizer.minimize(tf.reduce_sum(var), global_step=step)
        power = optimizer.get_slot(var, "power")
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            session.run(train)  # update 41: four periods
            assert session.run(step) == 41
            np.testing.assert_array_equal(session.run(power), [4, 4])
            for _ in range(9):
                session.run(train)  # update 50: five
            np.testing.assert_array_equal(session.run(power), [5, 5])


def partitioned_run(make_optimizer, parts=4, steps=25):
    """A table split in `parts` by `fixed_size_partitioner`, trained in a
    Session on embedding lookups; returns the full table and the optimizer's
    per-part slots' shapes and devices."""
    graph = tf.Graph()
    with graph.as_default():
        global_step = v1.train.get_or_create_global_step()
        table = v1.get_variable(
            "table", [50, 3],
            initializer=v1.random_normal_initializer(seed=1),
            partitioner=v1.fixed_size_partitioner(parts), use_resource=True,
        )
        ids = v1.placeholder(tf.int32, [None])
        loss = tf.reduce_sum(tf.square(tf.nn.embedding_lookup(table, ids) - 1.0))
        optimizer = make_optimizer()
        train = optimizer.minimize(loss, global_step=global_step)
        parts_list = list(table)
        slots = {
            name: [optimizer.get_slot(p, name) for p in parts_list]
            for name in optimizer.get_slot_names()
        }
        rng = np.random.default_rng(0)
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            for _ in range(steps):
                session.run(train, {ids: rng.integers(0, 50, 16)})
            full = session.run(tf.concat(parts_list, 0))
            values = {k: session.run(v) for k, v in slots.items()}
    return full, values, [p.shape.as_list() for p in parts_list]


def test_partitioned_table_matches_tf_adagrad_with_slots_per_part():
    ours, slots, shapes = partitioned_run(
        lambda: AdagradSwapOptimizer(0.1, decay_rate=1.0))
    theirs, their_slots, _ = partitioned_run(
        lambda: v1.train.AdagradOptimizer(0.1))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
    for ours_acc, their_acc in zip(slots["accumulator"],
                                   their_slots["accumulator"], strict=True):
        np.testing.assert_allclose(ours_acc, their_acc, rtol=1e-6)
    assert [list(p.shape) for p in slots["power"]] == [s[:1] for s in shapes]
    # With decay, each part's rows are decayed by its own powers.
    decayed, slots, _ = partitioned_run(
        lambda: AdagradSwapOptimizer(0.1, decay_rate=0.5, decay_period=10))
    assert not np.allclose(decayed, ours)
    assert max(int(p.max()) for p in slots["power"]) == 2
