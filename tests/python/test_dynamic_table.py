"""`tf_swap.DynamicTable` and its ops (SPEC section 5) in real TensorFlow:
entries train exactly as rows of a fixed table under Adagrad-SWAP and
FTRL-SWAP, across period boundaries and with rows untouched for periods;
per-id initialisation whatever the shard count or order; admission,
eviction, inference lookups; checkpoints (tf.train.Checkpoint,
CheckpointManager, tf.compat.v1.train.Saver) restored into another shard
count; full export plus deltas equal to the table; bad input refused with
nothing written."""

import numpy as np
import pytest
import tensorflow as tf

import tf_swap
from tf_swap import ops

DIM = 3
PERIOD = 4
SWAP = dict(decay_rate=0.8, decay_period=PERIOD, accumulator_floor=0.01)
ADAGRAD = dict(epsilon=1e-7, **SWAP)
FTRL = dict(l1=0.01, l2=0.001, lr_power=-0.5, **SWAP)


def table(**kwargs):
    kwargs.setdefault("seed", 3)
    return tf_swap.DynamicTable(DIM, **kwargs)


def export_arrays(t):
    return {k: v.numpy() for k, v in t.export()._asdict().items()}


def sorted_entries(t):
    """{id: (row, slots, power, count, last_step)} of every shard."""
    e = export_arrays(t)
    return {
        int(i): (
            e["values"][k].tolist(),
            e["slots"][:, k].tolist(),
            int(e["power"][k]),
            int(e["count"][k]),
            int(e["last_step"][k]),
        )
        for k, i in enumerate(e["ids"])
    }


@pytest.mark.parametrize("rule", ["adagrad", "ftrl"])
@pytest.mark.parametrize("shards", [1, 3])
def test_entries_train_as_rows_of_a_fixed_table(rule, shards):
    """A fixed [rows, dim] variable holding the table's initial rows, and
    the table, given the same gradients: equal bit for bit at every step,
    with steps crossing periods and ids left alone for several periods."""
    ftrl = rule == "ftrl"
    slot_init = (0.1, 0.0) if ftrl else (0.1,)
    t = table(slot_init=slot_init, num_shards=shards)
    ids = np.array([-5, 0, 2, 7, 11, 1 << 40], np.int64)
    first = t.lookup(ids, step=1, decay_period=PERIOD).numpy()
    var = tf.Variable(first)
    accum = tf.Variable(np.full_like(first, 0.1))
    linear = tf.Variable(np.zeros_like(first))
    power = tf.Variable(np.zeros(len(ids), np.int64))
    rng = np.random.default_rng(0)
    for step in [1, 2, 3, 6, 7, 15, 16, 30]:
        rows = rng.choice(len(ids), size=4)  # repeats: summed first
        grad = rng.normal(size=(4, DIM)).astype(np.float32)
        if ftrl:
            ops.resource_sparse_apply_ftrl_swap(
                var, accum, linear, power, grad, rows, 0.5, step=step, **FTRL
            )
            t.apply(
                ops.dynamic_table_apply_ftrl_swap,
                grad,
                ids[rows],
                lr=0.5,
                step=step,
                **FTRL,
            )
        else:
            ops.resource_sparse_apply_adagrad_swap(
                var, accum, power, 0.5, grad, rows, step=step, **ADAGRAD
            )
            t.apply(
                ops.dynamic_table_apply_adagrad_swap,
                grad,
                ids[rows],
                lr=0.5,
                step=step,
                **ADAGRAD,
            )
        np.testing.assert_array_equal(t.find(ids).numpy(), var.numpy())
    entries = sorted_entries(t)
    for k, i in enumerate(ids):
        row, slots, p, _, _ = entries[int(i)]
        assert slots[0] == accum.numpy()[k].tolist()
        if ftrl:
            assert slots[1] == linear.numpy()[k].tolist()
        assert p == power.numpy()[k]


def test_new_rows_depend_on_seed_and_id_only():
    ids = np.array([9, -4, 123456789, 0, 77], np.int64)
    one = table(num_shards=1).lookup(ids, step=1, decay_period=PERIOD).numpy()
    three = table(num_shards=3).lookup(ids[::-1], step=5, decay_period=PERIOD).numpy()
    np.testing.assert_array_equal(one, three[::-1])
    assert np.all(np.abs(one) < 0.05) and len(np.unique(one[:, 0])) == len(ids)
    other = table(seed=4).lookup(ids, step=1, decay_period=PERIOD).numpy()
    assert not np.array_equal(one, other)
    zeros = table(initializer="zeros").lookup(ids, step=1, decay_period=PERIOD)
    np.testing.assert_array_equal(zeros.numpy(), 0)
    normal = tf_swap.DynamicTable(
        64, initializer=tf.keras.initializers.RandomNormal(1.0, 0.5)
    ).lookup(np.arange(300), step=1, decay_period=PERIOD)
    assert abs(float(tf.reduce_mean(normal)) - 1.0) < 0.01
    assert abs(float(tf.math.reduce_std(normal)) - 0.5) < 0.01


def test_admission_after_min_count_lookups():
    t = table(min_count=3)
    grad = np.ones((1, DIM), np.float32)
    for lookup in (1, 2):
        rows = t.lookup([42], step=lookup, decay_period=PERIOD)
        np.testing.assert_array_equal(rows.numpy(), 0)
        t.apply(
            ops.dynamic_table_apply_adagrad_swap,
            grad,
            [42],
            lr=0.5,
            step=lookup,
            **ADAGRAD,
        )
        assert int(t.size()) == 0, "no entry before the third lookup"
    third = t.lookup([42], step=3, decay_period=PERIOD).numpy()
    assert int(t.size()) == 1 and np.all(third != 0)
    entry = sorted_entries(t)[42]
    assert entry[1][0] == [np.float32(0.1)] * DIM, "the dropped gradients left no trace"
    assert entry[2:] == (0, 3, 3)  # power 3 // 4, three lookups, made at 3


def test_eviction_by_steps_to_live():
    t = table(steps_to_live=5, num_shards=2)
    t.lookup([1, 2, 3], step=1, decay_period=PERIOD)
    t.apply(
        ops.dynamic_table_apply_adagrad_swap,
        np.ones((1, DIM)),
        [2],
        lr=0.1,
        step=4,
        **ADAGRAD,
    )
    assert int(t.evict(6)) == 0  # ids 1 and 3 made at 1: 6 - 1 = 5 is not > 5
    assert int(t.evict(7)) == 2  # ids 1 and 3
    assert sorted(sorted_entries(t)) == [2]
    back = t.lookup([1], step=8, decay_period=PERIOD).numpy()
    assert sorted(sorted_entries(t)) == [1, 2] and sorted_entries(t)[1][2] == 2
    np.testing.assert_array_equal(
        back, table().lookup([1], step=1, decay_period=PERIOD)
    )


def test_inference_lookups_insert_nothing():
    t = table(num_shards=2)
    t.lookup([5], step=1, decay_period=PERIOD)
    before = export_arrays(t)
    rows = t.find([[5, 6], [7, 5]]).numpy()
    assert rows.shape == (2, 2, DIM)
    np.testing.assert_array_equal(rows[0, 1], 0)
    np.testing.assert_array_equal(rows[0, 0], rows[1, 1])
    after = export_arrays(t)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])
    assert int(t.size()) == 1


def test_int32_ids_are_widened_and_others_refused():
    t = table()
    a = t.lookup(tf.constant([3, -1], tf.int32), step=1, decay_period=PERIOD)
    np.testing.assert_array_equal(a, t.find(tf.constant([3, -1], tf.int64)))
    for bad in (tf.constant([1.0]), tf.constant(["a"])):
        with pytest.raises(ValueError, match="int64 or int32"):
            t.lookup(bad, step=1, decay_period=PERIOD)


def trained(shards, ftrl=False):
    t = table(num_shards=shards, slot_init=(0.1, 0.0) if ftrl else (0.1,), min_count=2)
    ids = np.array([4, -9, 13, 4, 22, -9, 8], np.int64)
    t.lookup(ids, step=1, decay_period=PERIOD)
    rule, hyper = (
        (ops.dynamic_table_apply_ftrl_swap, FTRL)
        if ftrl
        else (ops.dynamic_table_apply_adagrad_swap, ADAGRAD)
    )
    t.apply(
        rule, np.full((3, DIM), 0.5, np.float32), [4, -9, 13], lr=0.2, step=5, **hyper
    )
    return t


@pytest.mark.parametrize("ftrl", [False, True])
def test_checkpoint_restores_into_another_shard_count(tmp_path, ftrl):
    source = trained(2, ftrl)
    want = sorted_entries(source)
    pending = sum(int(ops.dynamic_table_size(h).pending) for h in source.handles)
    assert sorted(want) == [-9, 4] and pending == 3  # 13, 22, 8 seen once
    path = tf.train.Checkpoint(table=source).save(str(tmp_path / "ckpt"))
    for shards in (1, 3):
        target = table(num_shards=shards, slot_init=source.slot_init, min_count=2)
        target.lookup([99, 99, 100], step=1, decay_period=PERIOD)  # replaced
        tf.train.Checkpoint(table=target).restore(path).assert_consumed()
        assert sorted_entries(target) == want
        for k, handle in enumerate(target.handles):
            ids = ops.dynamic_table_export(handle, dim=DIM, slots=target.slots).ids
            assert all(int(i) % shards == k for i in ids.numpy())
        # Counts of ids not admitted are restored too: 22's second lookup
        # admits it.
        target.lookup([22], step=6, decay_period=PERIOD)
        assert 22 in sorted_entries(target), "22's first lookup was restored"


def test_checkpoint_manager_and_v1_saver(tmp_path):
    source = trained(2)
    want = sorted_entries(source)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(table=source), str(tmp_path / "m"), 2
    )
    manager.save()
    target = table(num_shards=3, min_count=2)
    tf.train.Checkpoint(table=target).restore(manager.latest_checkpoint)
    assert sorted_entries(target) == want

    graph_path = str(tmp_path / "v1" / "model")
    with tf.Graph().as_default():
        v1 = table(num_shards=2, min_count=1)
        lookup = v1.lookup(tf.constant([5, -6], tf.int64), step=1, decay_period=PERIOD)
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as session:
            saved_rows = session.run(lookup)
            saver.save(session, graph_path)
    with tf.Graph().as_default():
        v1 = table(num_shards=3, min_count=1)
        find = v1.find(tf.constant([5, -6, 7], tf.int64))
        size = v1.size()
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as session:
            saver.restore(session, graph_path)
            rows, entries = session.run([find, size])
    np.testing.assert_array_equal(rows[:2], saved_rows)
    np.testing.assert_array_equal(rows[2], 0)
    assert entries == 2


def apply_delta(base, delta):
    """A serving copy's update: entries replaced or added, evictions removed."""
    state = dict(base)
    for k, i in enumerate(delta["ids"]):
        state[int(i)] = delta["values"][k].tolist()
    for i in delta["evicted_ids"]:
        state.pop(int(i), None)
    return state


def test_full_export_plus_deltas_is_the_table():
    t = table(num_shards=2, steps_to_live=6)
    full = export_arrays(t)
    serving = {int(i): full["values"][k].tolist() for k, i in enumerate(full["ids"])}
    since = 0
    rng = np.random.default_rng(1)
    for step in range(1, 20):
        ids = rng.integers(-10, 10, size=5)
        t.lookup(ids, step=step, decay_period=PERIOD)
        grad = rng.normal(size=(5, DIM)).astype(np.float32)
        t.apply(
            ops.dynamic_table_apply_adagrad_swap,
            grad,
            ids,
            lr=0.1,
            step=step,
            **ADAGRAD,
        )
        if step % 3 == 0:
            t.evict(step)
        if step % 4 == 0:
            delta = {k: v.numpy() for k, v in t.export(since)._asdict().items()}
            serving = apply_delta(serving, delta)
            since = step
            now = {i: e[0] for i, e in sorted_entries(t).items()}
            assert serving == now


def test_bad_input_is_refused_and_writes_nothing():
    t = trained(2)
    before = export_arrays(t)
    full = t.export()
    bad_rows = full._replace(values=tf.zeros([full.ids.shape[0], DIM + 1]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="values must have shape"):
        ops.dynamic_table_import(t.handles[0], bad_rows)
    short = full._replace(power=full.power[:-1])
    with pytest.raises(tf.errors.InvalidArgumentError, match="power must have shape"):
        ops.dynamic_table_import(t.handles[0], short)
    twice = full._replace(
        pending_ids=tf.concat([full.pending_ids[:-1], full.ids[:1]], 0)
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="appears more than once"):
        ops.dynamic_table_import(t.handles[0], twice)
    with pytest.raises(tf.errors.InvalidArgumentError, match="decay_rate"):
        t.apply(
            ops.dynamic_table_apply_adagrad_swap,
            np.ones((1, DIM)),
            [4],
            lr=0.1,
            step=9,
            **{**ADAGRAD, "decay_rate": 1.5},
        )
    with pytest.raises(tf.errors.InvalidArgumentError, match="grad must be"):
        ops.dynamic_table_apply_adagrad_swap(
            t.handles[0],
            tf.ones([2, DIM]),
            tf.constant([4], tf.int64),
            0.1,
            step=9,
            **ADAGRAD,
        )
    with pytest.raises(tf.errors.InvalidArgumentError, match="slot"):
        ops.dynamic_table_apply_ftrl_swap(
            t.handles[0],
            tf.ones([1, DIM]),
            tf.constant([4], tf.int64),
            0.1,
            step=9,
            **FTRL,
        )
    with pytest.raises(tf.errors.InvalidArgumentError, match="step"):
        t.lookup([4], step=0, decay_period=PERIOD)
    after = export_arrays(t)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(min_count=-1), "min_count"),
        (dict(min_count=0), "min_count"),
        (dict(steps_to_live=-2), "steps_to_live"),
        (dict(slot_init=()), "slot_init"),
        (dict(num_shards=0), "num_shards"),
        (dict(initializer="glorot_uniform"), "initializer"),
        (dict(seed=1.5), "seed"),
        (dict(devices=["/cpu:0"], num_shards=2), "devices"),
    ],
)
def test_bad_table_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tf_swap.DynamicTable(DIM, **kwargs)


def test_a_name_taken_with_other_settings_is_refused():
    ops.dynamic_table(DIM, slot_init=(0.1,), seed=1, shared_name="taken")
    with pytest.raises(tf.errors.InvalidArgumentError, match="other settings"):
        ops.dynamic_table(DIM, slot_init=(0.1,), seed=2, shared_name="taken")
    with pytest.raises(tf.errors.InvalidArgumentError, match="init_high"):
        ops.dynamic_table(
            DIM, slot_init=(0.1,), init_a=1.0, init_b=0.0, shared_name="bad"
        )
