"""Sharded tables on a real local cluster (2 parameter servers, 2 workers):
tf_keras `model.fit` under `ParameterServerStrategy` with a
`variable_partitioner`, checkpoints restored into another number of shards,
and Keras 3's `ShardedEmbedding` and `DynamicEmbedding` placed over both
parameter servers.

Runs in the cluster tests' own pytest process (the Makefile's
CLUSTER_TESTS): connecting to a cluster renames this process's devices."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import tf_swap.ops as tf_swap_ops
import tf_swap.tf_keras as tk
from tf_swap.jobs.cluster import LocalCluster
from tf_swap.keras import AdagradSwap, DynamicEmbedding, ShardedEmbedding
from tf_swap.keras.sharded_embedding import shard_sizes

ROWS, DIM = 41, 4
PS_TASKS = [f"/job:ps/replica:0/task:{i}/device:CPU:0" for i in range(2)]


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(ps=2, workers=2) as local:
        yield local


def strategy_for(cluster, shards=None):
    partitioner = (
        None
        if shards is None
        else tf.distribute.experimental.partitioners.FixedShardsPartitioner(shards)
    )
    return tf.distribute.ParameterServerStrategy(
        cluster.resolver(), variable_partitioner=partitioner
    )


def data(n=4096):
    rng = np.random.default_rng(0)
    x = rng.integers(0, ROWS, (n, 2)).astype(np.int32)
    weight = rng.normal(size=ROWS)
    y = (weight[x].sum(1) > 0).astype(np.float32)[:, None]
    return x, y


OPTIMIZERS = {
    "adagrad": (
        lambda: tk.AdagradSwap(
            0.1, decay_rate=0.5, decay_period=20, staleness_exponent=2
        ),
        ("accumulator", "power"),
    ),
    "ftrl": (
        lambda: tk.FtrlSwap(
            1.0,  # FTRL moves a net's weights from z = 0: a larger rate
            decay_rate=0.5,
            decay_period=20,
            staleness_exponent=2,
        ),
        ("accumulator", "linear", "power"),
    ),
}


def tf_keras_model(strategy, optimizer="adagrad"):
    with strategy.scope():
        tf_keras.utils.set_random_seed(0)
        inputs = tf_keras.Input((2,), dtype="int32")
        x = tf_keras.layers.Embedding(ROWS, DIM, name="table")(inputs)
        x = tf_keras.layers.Dense(8, name="hidden")(tf_keras.layers.Flatten()(x))
        x = tk.LocalBatchNormalization(name="bn")(x)
        outputs = tf_keras.layers.Dense(1, activation="sigmoid", name="click")(x)
        model = tk.Model(inputs, outputs)
        model.compile(OPTIMIZERS[optimizer][0](), "binary_crossentropy")
    return tk.record_read_step(model)


def fit_and_check_it_learns(model, x, y) -> None:
    """80 steps of `model.fit` under the model's PSS (batches of 64 from
    `x`, `y` on every worker); the loss must fall by a fifth."""

    def dataset_fn(context):
        dataset = tf.data.Dataset.from_tensor_slices((x, y))
        return dataset.shuffle(len(x), seed=0).repeat().batch(64)

    history = model.fit(
        tf_keras.utils.experimental.DatasetCreator(dataset_fn),
        epochs=4,
        steps_per_epoch=20,
        verbose=0,
    )
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < 0.8 * losses[0], losses


def table_state(model, slots):
    """The full table and its slots, each concatenated over the shards."""
    table = model.get_layer("table").embeddings
    optimizer = model.optimizer
    state = {"table": tf.concat(table.variables, 0).numpy()}
    for name in slots:
        state[name] = tf.concat(
            [optimizer.get_slot(v, name) for v in table.variables], 0
        ).numpy()
    return state


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_tf_keras_fit_on_sharded_table_and_reshard_on_restore(
    cluster, tmp_path, optimizer
):
    slots = OPTIMIZERS[optimizer][1]
    strategy = strategy_for(cluster, shards=2)
    model = tf_keras_model(strategy, optimizer)
    fit_and_check_it_learns(model, *data())
    table = model.get_layer("table").embeddings
    assert isinstance(table, tf.__internal__.distribute.ShardedVariable)
    assert [v.device for v in table.variables] == PS_TASKS
    for shard in table.variables:
        for name in slots:
            slot = model.optimizer.get_slot(shard, name)
            assert slot.device == shard.device, (name, slot.device)
        assert model.optimizer.get_slot(shard, "power").shape == shard.shape[:1]
    state = table_state(model, slots)
    assert state["power"].max() >= 1  # 80 steps of 20: periods passed
    path = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(
        str(tmp_path / "two_shards")
    )
    # Restored before the new optimizer has slots (the usual order), and
    # into three shards.
    restored = tf_keras_model(strategy_for(cluster, shards=3), optimizer)
    tf.train.Checkpoint(model=restored, optimizer=restored.optimizer).restore(path)
    assert len(restored.get_layer("table").embeddings.variables) == 3
    assert int(restored.optimizer.iterations.numpy()) == 80
    for name, want in state.items():
        got = table_state(restored, slots)[name]
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_keras3_sharded_embedding_puts_a_row_range_on_each_ps(cluster):
    strategy = strategy_for(cluster)
    with strategy.scope():
        layer = ShardedEmbedding(ROWS, DIM)  # num_shards: the PS count
        layer.build()
        optimizer = AdagradSwap(0.5, decay_period=3)
        optimizer.build(layer.trainable_variables)
    assert layer.num_shards == 2
    shards = layer.shards
    assert [tuple(s.shape) for s in shards] == [
        (rows, DIM) for rows in shard_sizes(ROWS, 2)
    ]
    assert sorted(s.value.device for s in shards) == PS_TASKS
    before = [s.numpy() for s in shards]
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    ids = tf.constant([0, 3, 40])  # rows 0, 3 in shard 0; row 40 in shard 1

    @tf.function
    def step():
        def replica():
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(layer(ids))
            grads = tape.gradient(loss, layer.trainable_variables)
            optimizer.apply_gradients(
                zip(grads, layer.trainable_variables, strict=True)
            )

        strategy.run(replica)

    coordinator.schedule(step)
    coordinator.join()
    after = [s.numpy() for s in shards]
    changed = [np.flatnonzero((a != b).any(1)).tolist()
               for a, b in zip(after, before, strict=True)]
    assert changed == [[0, 3], [40 - shard_sizes(ROWS, 2)[0]]]
    powers = [v for v in optimizer.variables if v.path.endswith("_power")]
    for shard, power in zip(shards, powers, strict=True):
        assert power.value.device == shard.value.device
        assert tuple(power.shape) == tuple(shard.shape[:1])


def test_keras3_dynamic_embedding_has_a_table_shard_on_each_ps(cluster):
    strategy = strategy_for(cluster)
    with strategy.scope():
        layer = DynamicEmbedding(DIM, embeddings_initializer="zeros")
        layer.build()
        optimizer = AdagradSwap(0.5, decay_period=3)
        optimizer.build(layer.trainable_variables)
    assert layer.table.num_shards == 2
    assert [h.device for h in layer.table.handles] == PS_TASKS
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    ids = tf.constant([-7, 10**12, 4, 5], tf.int64)  # -7, 5 odd: shard 1

    @tf.function
    def step():
        def replica():
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(layer(ids, training=True))
            grads = tape.gradient(loss, layer.trainable_variables)
            optimizer.apply_gradients(
                zip(grads, layer.trainable_variables, strict=True)
            )

        strategy.run(replica)

    for _ in range(2):
        coordinator.schedule(step)
    coordinator.join()
    per_shard = [
        sorted(tf_swap_ops.dynamic_table_export(h, dim=DIM, slots=1).ids.numpy())
        for h in layer.table.handles
    ]
    assert per_shard == [[4, 10**12], [-7, 5]]
    rows = layer(ids, training=False).numpy()
    # Two Adagrad steps on a gradient of ones from zero rows: negative.
    assert (rows < 0).all()


def test_tf_keras_fit_with_a_dynamic_table_under_pss(cluster):
    # Raw ids of any value: model.fit under ParameterServerStrategy, the
    # table split over both PS, looked up and trained there.
    strategy = strategy_for(cluster)
    rng = np.random.default_rng(1)
    values = rng.integers(-(2**62), 2**62, 50)  # 50 distinct raw ids
    ids = values[rng.integers(0, 50, (2048, 2))]
    weight = dict(zip(values.tolist(), rng.normal(size=50), strict=True))
    y = (np.vectorize(weight.get)(ids).sum(1) > 0).astype(np.float32)[:, None]
    with strategy.scope():
        layer = tk.DynamicEmbedding(DIM, name="table")
        inputs = tf_keras.Input((2,), dtype="int64")
        x = tf_keras.layers.Flatten()(layer(inputs))
        outputs = tf_keras.layers.Dense(1, activation="sigmoid", name="click")(x)
        model = tk.Model(inputs, outputs)
        model.compile(
            tk.AdagradSwap(0.5, decay_rate=0.5, decay_period=20, staleness_exponent=2),
            "binary_crossentropy",
        )
    fit_and_check_it_learns(tk.record_read_step(model), ids, y)
    assert [h.device for h in layer.table.handles] == PS_TASKS
    assert layer.table_size() == 50
    # Each id is stored on its shard (id mod 2) only.
    per_shard = [
        set(tf_swap_ops.dynamic_table_export(h, dim=DIM, slots=1).ids.numpy().tolist())
        for h in layer.table.handles
    ]
    assert per_shard == [
        {v for v in values.tolist() if v % 2 == s} for s in range(2)
    ]
