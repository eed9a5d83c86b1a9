"""tf_swap.compat.v1.DynamicTable in graphs: trained by the v1 tf_swap
optimizers through `dynamic_embedding_lookup` to the weights a fixed
variable gets, saved by `tf.compat.v1.train.Saver` (restored into another
shard count, or as a stock `ServingTable` in a SavedModel served where
tf_swap is not), placed by `replica_device_setter`, refused to other
optimizers. (Its training on a real 2-PS cluster: test_cluster_v1.py.)"""

import numpy as np
import pytest
import tensorflow as tf
from serving import serve_in_clean_process, tf_swap_ops

from tf_swap.compat.v1 import (
    AdagradSwapOptimizer,
    DynamicTable,
    FtrlSwapOptimizer,
    ServingTable,
    dynamic_embedding_lookup,
)

v1 = tf.compat.v1
ROWS, DIM = 12, 3
# Raw ids of any value: row r of the fixed table is id RAW[r].
RAW = np.array([-(2**40), -9, -1, 0, 5, 17, 2**33, 2**62, 123, 7, 8, -100], np.int64)
SWAP = dict(decay_rate=0.5, decay_period=4)


def batches(steps=14, seed=0):
    """Row batches with repeats; rows 10 and 11 are absent for steps 3-9
    (several periods untouched)."""
    rng = np.random.default_rng(seed)
    for step in range(steps):
        rows = rng.integers(0, ROWS if not 3 <= step < 10 else 10, 8)
        yield rows, rng.normal(size=(8, DIM)).astype(np.float32)


def train(make_optimizer, dynamic, num_shards=2, path=None):
    """Trains the fixed or the dynamic table on `batches`; returns the
    table's rows in row order (and saves to `path` if given)."""
    graph = tf.Graph()
    with graph.as_default():
        rows = v1.placeholder(tf.int64, [None])
        target = v1.placeholder(tf.float32, [None, DIM])
        if dynamic:
            table = DynamicTable(DIM, num_shards=num_shards, initializer="zeros",
                                 name="users")
            got = dynamic_embedding_lookup(table, tf.gather(RAW, rows))
            final = dynamic_embedding_lookup(table, RAW, training=False)
        else:
            table = tf.Variable(tf.zeros([ROWS, DIM]), name="users")
            got = tf.gather(table, rows)
            final = tf.convert_to_tensor(table)
        loss = tf.reduce_sum(tf.square(got - target))
        step = v1.train.get_or_create_global_step()
        train_op = make_optimizer().minimize(loss, global_step=step)
        saver = v1.train.Saver()
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            session.run(v1.tables_initializer())
            for batch, want in batches():
                session.run(train_op, {rows: batch, target: want})
            if path is not None:
                saver.save(session, path)
            return session.run(final)


@pytest.mark.parametrize("rule", ["adagrad", "ftrl"])
def test_dynamic_table_trains_as_a_fixed_variable(rule):
    if rule == "adagrad":
        def make():
            return AdagradSwapOptimizer(0.3, **SWAP)
    else:
        def make():
            return FtrlSwapOptimizer(0.3, l1_regularization_strength=0.01, **SWAP)
    want = train(make, dynamic=False)
    for shards in (1, 3):
        np.testing.assert_allclose(
            train(make, dynamic=True, num_shards=shards), want, atol=1e-6
        )


def test_saver_round_trip_restores_into_another_shard_count(tmp_path):
    path = str(tmp_path / "model")
    want = train(lambda: AdagradSwapOptimizer(0.3, **SWAP), True, 2, path)
    graph = tf.Graph()
    with graph.as_default():
        table = DynamicTable(DIM, num_shards=3, initializer="zeros", name="users")
        rows = dynamic_embedding_lookup(table, RAW, training=False)
        with v1.Session() as session:
            v1.train.Saver().restore(session, path)
            np.testing.assert_array_equal(session.run(rows), want)
            assert session.run(table.size()) == ROWS


def test_serving_table_serves_in_a_saved_model_without_tf_swap(tmp_path):
    path = str(tmp_path / "model")
    want = train(lambda: AdagradSwapOptimizer(0.3, **SWAP), True, 2, path)
    export = str(tmp_path / "saved_model")
    queries = np.concatenate([RAW, [4, 2**50]])  # two ids never seen
    graph = tf.Graph()
    with graph.as_default():
        ids = v1.placeholder(tf.int64, [None], name="ids")
        table = ServingTable(DIM, name="users")
        rows = dynamic_embedding_lookup(table, ids)
        with v1.Session() as session:
            v1.train.Saver().restore(session, path)
            in_process = session.run(rows, {ids: queries})
            builder = v1.saved_model.Builder(export)
            builder.add_meta_graph_and_variables(
                session,
                [v1.saved_model.SERVING],
                signature_def_map={
                    "serving_default": v1.saved_model.predict_signature_def(
                        {"ids": ids}, {"rows": rows}
                    )
                },
            )
            builder.save()
    np.testing.assert_array_equal(in_process[:ROWS], want)
    np.testing.assert_array_equal(in_process[ROWS:], 0.0)
    served, ops = serve_in_clean_process(export, {"ids": queries})
    assert not tf_swap_ops(ops), tf_swap_ops(ops)
    np.testing.assert_allclose(served["rows"], in_process, atol=1e-6)


def test_replica_device_setter_puts_each_shard_and_its_apply_on_a_ps():
    graph = tf.Graph()
    with graph.as_default(), v1.device(v1.train.replica_device_setter(ps_tasks=2)):
        table = DynamicTable(DIM, num_shards=2, name="users")
        rows = dynamic_embedding_lookup(table, tf.constant([1, 2, 3], tf.int64))
        AdagradSwapOptimizer(0.1).minimize(
            tf.reduce_sum(rows), global_step=v1.train.get_or_create_global_step()
        )
    devices = {
        op.type: sorted(
            o.device for o in graph.get_operations() if o.type == op.type
        )
        for op in graph.get_operations()
        if op.type.startswith("TfSwapDynamicTable")
    }
    both = ["/job:ps/task:0", "/job:ps/task:1"]
    assert sorted(h.device for h in table.handles) == both
    for op in ("TfSwapDynamicTable", "TfSwapDynamicTableLookup",
               "TfSwapDynamicTableApplyAdagradSwap"):
        assert devices[op] == both, devices


def test_other_optimizers_are_refused_before_any_update():
    graph = tf.Graph()
    with graph.as_default():
        table = DynamicTable(DIM, name="users")
        rows = dynamic_embedding_lookup(table, tf.constant([1, 2], tf.int64))
        train_op = v1.train.AdagradOptimizer(0.1).minimize(tf.reduce_sum(rows))
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            session.run(v1.local_variables_initializer())
            session.run(v1.tables_initializer())
            with pytest.raises(tf.errors.InvalidArgumentError,
                               match="tf_swap.compat.v1.AdagradSwapOptimizer"):
                session.run(train_op)
            assert session.run(table.size()) == 0


def test_inference_lookups_insert_nothing_and_ids_must_be_integers():
    graph = tf.Graph()
    with graph.as_default():
        table = DynamicTable(DIM, name="users")
        rows = dynamic_embedding_lookup(table, tf.constant([3, 4]), training=False)
        with pytest.raises(ValueError, match="int64 or int32"):
            dynamic_embedding_lookup(table, tf.constant([1.0]))
        with pytest.raises(ValueError, match="min_count"):
            DynamicTable(DIM, min_count=-1)
        with v1.Session() as session:
            np.testing.assert_array_equal(session.run(rows), 0.0)
            assert session.run(table.size()) == 0
