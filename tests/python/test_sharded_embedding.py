"""tf_swap.keras.ShardedEmbedding in one process (placement on parameter
servers: test_sharded_cluster.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_swap.keras import AdagradSwap, ShardedEmbedding
from tf_swap.keras.sharded_embedding import shard_sizes

ROWS = 53


def data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, ROWS, (n, 3)).astype(np.int32)
    y = rng.integers(0, 2, (n, 1)).astype(np.float32)
    return x, y


def model_with(embedding, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((3,), dtype="int32")
    x = keras.layers.Flatten()(embedding(inputs))
    outputs = keras.layers.Dense(1, activation="sigmoid", name="click")(x)
    return keras.Model(inputs, outputs)


def split(table, num_shards):
    cuts = np.cumsum([0, *shard_sizes(len(table), num_shards)])
    return [table[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def test_shard_sizes_follow_tensorflows_partitioners():
    assert shard_sizes(10, 3) == [4, 3, 3]
    assert shard_sizes(9, 3) == [3, 3, 3]
    for rows, parts in ((10, 3), (53, 4), (7, 7)):
        with tf.Graph().as_default():
            table = tf.compat.v1.get_variable(
                "t", [rows, 2],
                partitioner=tf.compat.v1.fixed_size_partitioner(parts))
            assert [int(p.shape[0]) for p in table] == shard_sizes(rows, parts)


def test_one_shard_is_keras_embedding_in_fit_bit_for_bit():
    x, y = data()
    ours = model_with(ShardedEmbedding(ROWS, 4, num_shards=1))
    theirs = model_with(keras.layers.Embedding(ROWS, 4))
    theirs.set_weights(ours.get_weights())
    for model in (ours, theirs):
        model.compile(keras.optimizers.Adagrad(0.1), "binary_crossentropy")
        model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("num_shards", [2, 3, 5])
def test_sharded_equals_unsharded_predictions_and_updates(num_shards):
    x, y = data()
    unsharded = model_with(ShardedEmbedding(ROWS, 4, num_shards=1))
    sharded = model_with(ShardedEmbedding(ROWS, 4, num_shards=num_shards))
    table, *dense = unsharded.get_weights()
    sharded.set_weights([*split(table, num_shards), *dense])
    assert [w.shape[0] for w in sharded.get_weights()[:num_shards]] == shard_sizes(
        ROWS, num_shards
    )
    np.testing.assert_allclose(
        sharded.predict(x, verbose=0), unsharded.predict(x, verbose=0), atol=1e-6
    )
    for model in (unsharded, sharded):
        model.compile(AdagradSwap(0.1, decay_rate=0.5, decay_period=5),
                      "binary_crossentropy")
        model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
    got = sharded.get_weights()
    np.testing.assert_allclose(np.concatenate(got[:num_shards]),
                               unsharded.get_weights()[0], atol=1e-6)
    np.testing.assert_allclose(got[num_shards], unsharded.get_weights()[1],
                               atol=1e-6)
    layer = sharded.layers[1]
    np.testing.assert_array_equal(
        layer.embeddings.numpy(), np.concatenate(got[:num_shards])
    )


def test_each_shard_gets_a_sparse_gradient_of_its_rows():
    layer = ShardedEmbedding(10, 2, num_shards=3)
    ids = tf.constant([[0, 9], [4, 4]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(ids))
    grads = tape.gradient(loss, layer.trainable_variables)
    assert all(isinstance(g, tf.IndexedSlices) for g in grads)
    # Rows 0..3 | 4..6 | 7..9: local rows [0], [0, 0], [2].
    assert [sorted(g.indices.numpy().tolist()) for g in grads] == [[0], [0, 0], [2]]


def test_save_load_and_config(tmp_path):
    x, y = data()
    model = model_with(ShardedEmbedding(ROWS, 4, num_shards=3, name="table"))
    model.compile(AdagradSwap(0.1), "binary_crossentropy")
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0),
                                  model.predict(x, verbose=0))
    config = loaded.get_layer("table").get_config()
    assert config["num_shards"] == 3
    assert ShardedEmbedding.from_config(config).get_config() == config


def test_default_is_one_shard_without_a_parameter_server_strategy():
    assert ShardedEmbedding(8, 2).num_shards == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_shards=0), "num_shards"),
        (dict(num_shards=1.5), "num_shards"),
        (dict(num_shards=9), "must not exceed"),
        (dict(num_shards=2, lora_rank=2), "num_shards=1"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ShardedEmbedding(8, 2, **kwargs)


@pytest.mark.parametrize("num_shards", [1, 3])
def test_lookups_read_rows_not_the_whole_table(num_shards):
    """Each shard is read with a sparse gather: a whole-table read would copy
    the table on every step once a sparse update has put it in
    copy-on-read mode. Negative ids count from the end, as in
    `keras.layers.Embedding`."""
    layer = ShardedEmbedding(10, 2, num_shards=num_shards)
    layer.build()

    @tf.function
    def lookup(ids):
        return layer(ids)

    graph = lookup.get_concrete_function(tf.TensorSpec([None], tf.int32)).graph
    ops = [op.type for op in graph.get_operations()]
    assert ops.count("ResourceGather") == num_shards
    assert "ReadVariableOp" not in ops
    table = np.concatenate([shard.numpy() for shard in layer.shards])
    got = lookup(tf.constant([0, 9, -1, -10])).numpy()
    np.testing.assert_array_equal(got, table[[0, 9, 9, 0]])
