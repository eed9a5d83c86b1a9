"""`tf_swap.keras.DynamicEmbedding` in Keras 3 `model.fit` (and
`tf_swap.tf_keras.DynamicEmbedding` in tf_keras'): a model with a
dynamic table trains to the same weights as the same model with a
`keras.layers.Embedding` holding the same rows, under `AdagradSwap` and
`FtrlSwap`, across period boundaries and with rows untouched for periods;
admission, eviction and inference lookups through the layer; a stock
optimizer refused with a message naming tf_swap's; the table saved and
restored by `model.save` / `load_model`, weights files and
`tf.train.Checkpoint` (into another shard count); the exported model
served where tf_swap cannot be imported; full export plus deltas equal to
the table."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from serving import serve_in_clean_process, tf_swap_ops

import tf_swap

DIM = 4
PERIOD = 3
RNG = np.random.default_rng(0)
# 40 ids of very different frequency (Zipf), with negative and huge values:
# rare ones go untouched for several periods.
ID_VALUES = np.concatenate([np.arange(-20, 10), [10**12 + k for k in range(10)]])
IDS = ID_VALUES[np.minimum(RNG.zipf(1.3, size=(384, 3)) - 1, len(ID_VALUES) - 1)]
LABELS = (RNG.random((384, 1)) < 0.3).astype(np.float32)


def model_with(embedding, ids_dtype="int64"):
    inputs = keras.Input((3,), dtype=ids_dtype)
    hidden = keras.layers.Flatten()(embedding(inputs))
    dense = keras.layers.Dense(
        1, activation="sigmoid", kernel_initializer=keras.initializers.GlorotUniform(7)
    )
    return keras.Model(inputs, dense(hidden))


def optimizer(rule):
    swap = dict(decay_rate=0.8, decay_period=PERIOD)
    if rule == "adagrad":
        return tf_swap.keras.AdagradSwap(0.2, **swap)
    return tf_swap.keras.FtrlSwap(
        0.2, l1_regularization_strength=0.001, initial_accumulator_value=0.1, **swap
    )


@pytest.mark.parametrize("rule", ["adagrad", "ftrl"])
def test_fit_equals_a_fixed_embedding_with_the_same_rows(rule):
    # The fixed table: one row per distinct id, ids mapped to rows.
    index = {int(v): k for k, v in enumerate(ID_VALUES)}
    rows = np.vectorize(index.get)(IDS)
    fixed = model_with(keras.layers.Embedding(len(ID_VALUES), DIM, "zeros"))
    fixed.compile(optimizer(rule), "binary_crossentropy")
    fixed.fit(rows, LABELS, batch_size=32, epochs=2, shuffle=False, verbose=0)

    layer = tf_swap.keras.DynamicEmbedding(DIM, embeddings_initializer="zeros")
    dynamic = model_with(layer)
    dynamic.compile(optimizer(rule), "binary_crossentropy")
    dynamic.fit(IDS, LABELS, batch_size=32, epochs=2, shuffle=False, verbose=0)

    seen = np.unique(IDS)
    want = fixed.layers[1].embeddings.numpy()[[index[int(i)] for i in seen]]
    np.testing.assert_allclose(layer.table.find(seen).numpy(), want, atol=1e-6)
    np.testing.assert_allclose(
        dynamic.layers[-1].kernel.numpy(), fixed.layers[-1].kernel.numpy(), atol=1e-6
    )
    assert layer.table_size() == len(seen)
    np.testing.assert_allclose(
        dynamic.predict(IDS[:8], verbose=0),
        fixed.predict(rows[:8], verbose=0),
        atol=1e-6,
    )


def test_admission_eviction_and_inference_through_the_layer():
    layer = tf_swap.keras.DynamicEmbedding(DIM, min_count=3, steps_to_live=4, seed=5)
    model = model_with(layer)
    model.compile(optimizer("adagrad"), "binary_crossentropy")
    once = np.array([[1, 2, 3]] * 2, np.int64)
    model.fit(once, LABELS[:2], batch_size=2, verbose=0)
    assert layer.table_size() == 0, "seen once: counted, not stored"
    model.fit(np.array([[1, 1, 2]] * 2, np.int64), LABELS[:2], batch_size=2, verbose=0)
    # 1: 2 + 4 lookups, 2: 2 + 2, 3: 2.
    assert layer.table_size() == 2
    before = layer.table_size()
    out = model.predict(np.array([[1, 99, -5]]), verbose=0)
    assert layer.table_size() == before and out.shape == (1, 1)
    np.testing.assert_array_equal(layer(np.array([[99]]), training=False), 0)
    for _ in range(6):
        model.fit(np.array([[2, 2, 2]], np.int64), LABELS[:1], verbose=0)
    assert layer.evict() == 1  # 1 was last updated 6 steps ago
    assert layer.table_size() == 1


def test_int32_ids_work_and_other_dtypes_are_refused():
    layer = tf_swap.keras.DynamicEmbedding(DIM)
    model = model_with(layer, ids_dtype="int32")
    model.compile(optimizer("adagrad"), "binary_crossentropy")
    model.fit(IDS[:32].astype(np.int32) % 1000, LABELS[:32], verbose=0)
    assert layer.table_size() > 0
    with pytest.raises(ValueError, match="int64 or int32"):
        layer(tf.constant([[1.0]]), training=False)


def test_a_stock_optimizer_is_refused_naming_tf_swaps():
    model = model_with(tf_swap.keras.DynamicEmbedding(DIM))
    model.compile(keras.optimizers.Adagrad(0.1), "binary_crossentropy")
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="tf_swap.keras.AdagradSwap"
    ):
        model.fit(IDS[:32], LABELS[:32], verbose=0)


def trained(num_shards=None):
    layer = tf_swap.keras.DynamicEmbedding(DIM, num_shards=num_shards, name="emb")
    model = model_with(layer)
    model.compile(optimizer("adagrad"), "binary_crossentropy")
    model.fit(IDS, LABELS, batch_size=64, verbose=0)
    return model, layer


def test_model_save_and_weights_files_keep_the_table(tmp_path):
    model, layer = trained()
    seen = np.unique(IDS)
    want = layer.table.find(seen).numpy()
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    emb = loaded.get_layer("emb")
    np.testing.assert_array_equal(emb.table.find(seen).numpy(), want)
    assert emb.table_size() == len(seen)
    weights = str(tmp_path / "w.weights.h5")
    model.save_weights(weights)
    again, again_layer = trained()
    again_layer.table.lookup([123456], step=1, decay_period=PERIOD)
    again.load_weights(weights)
    np.testing.assert_array_equal(again_layer.table.find(seen).numpy(), want)
    assert again_layer.table_size() == len(seen)
    # Training goes on from the loaded table.
    loaded.fit(IDS[:64], LABELS[:64], verbose=0)
    assert not np.array_equal(emb.table.find(seen).numpy(), want)


def test_checkpoint_restores_into_another_shard_count(tmp_path):
    model, layer = trained(num_shards=2)
    seen = np.unique(IDS)
    want = layer.table.find(seen).numpy()
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    other, other_layer = trained(num_shards=3)
    tf.train.Checkpoint(model=other).restore(path)
    np.testing.assert_array_equal(other_layer.table.find(seen).numpy(), want)
    assert [
        int(tf_swap.ops.dynamic_table_size(h).entries) > 0
        for h in other_layer.table.handles
    ] == [True, True, True]


def test_config_round_trip():
    layer = tf_swap.keras.DynamicEmbedding(
        8,
        embeddings_initializer=keras.initializers.RandomNormal(0.0, 0.01),
        num_shards=2,
        min_count=2,
        steps_to_live=100,
        seed=9,
        name="e",
    )
    config = layer.get_config()
    clone = tf_swap.keras.DynamicEmbedding.from_config(config)
    assert clone.get_config() == config
    with pytest.raises(ValueError, match="min_count"):
        tf_swap.keras.DynamicEmbedding(8, min_count=-1)


def test_export_for_serving_runs_the_table_on_stock_tensorflow(tmp_path):
    inputs = keras.Input((3,), dtype="int64", name="ids")
    layer = tf_swap.keras.DynamicEmbedding(DIM, name="emb", num_shards=2)
    hidden = keras.layers.Flatten()(layer(inputs))
    outputs = keras.layers.Dense(1, activation="sigmoid", name="click")(hidden)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer("adagrad"), "binary_crossentropy")
    model.fit(IDS, LABELS, batch_size=64, verbose=0)
    unknown = np.array([[7_777_777, -7_777_777, 3]], np.int64)
    test = np.concatenate([IDS[:16], unknown])
    want = model.predict(test, verbose=0)
    tf_swap.keras.export_for_serving(model, str(tmp_path / "serving"))
    served, ops = serve_in_clean_process(tmp_path / "serving", {"ids": test})
    assert not tf_swap_ops(ops), tf_swap_ops(ops)
    np.testing.assert_allclose(served["click"], want, atol=1e-6)


def test_full_export_plus_deltas_is_the_table(tmp_path):
    layer = tf_swap.keras.DynamicEmbedding(DIM, steps_to_live=3, name="emb")
    model = model_with(layer)
    model.compile(optimizer("adagrad"), "binary_crossentropy")
    full = layer.export_delta(-1)
    serving = {
        int(i): r for i, r in zip(full.ids.numpy(), full.values.numpy(), strict=True)
    }
    since = 0
    for push in range(4):
        part = slice(64 * push, 64 * push + 64)
        model.fit(IDS[part], LABELS[part], batch_size=16, verbose=0)
        layer.evict()
        step = int(layer.next_step.numpy()) - 1
        path = tmp_path / f"delta{push}.npz"
        layer.export_delta(since, path=str(path))
        delta = np.load(path)
        for i, row in zip(delta["ids"], delta["values"], strict=True):
            serving[int(i)] = row
        for i in delta["evicted_ids"]:
            serving.pop(int(i), None)
        since = step
        now = layer.export_delta(-1)
        assert sorted(serving) == sorted(now.ids.numpy().tolist())
        for i, row in zip(now.ids.numpy(), now.values.numpy(), strict=True):
            np.testing.assert_array_equal(serving[int(i)], row)


@pytest.mark.parametrize("rule", ["adagrad", "ftrl"])
def test_tf_keras_fit_equals_a_fixed_embedding(tmp_path, rule):
    import tf_keras

    import tf_swap.tf_keras as tk

    def tf_keras_model(embedding):
        inputs = tf_keras.Input((3,), dtype="int64", name="ids")
        hidden = tf_keras.layers.Flatten()(embedding(inputs))
        dense = tf_keras.layers.Dense(
            1,
            activation="sigmoid",
            kernel_initializer=tf_keras.initializers.GlorotUniform(7),
            name="click",
        )
        return tf_keras.Model(inputs, dense(hidden))

    def tf_keras_optimizer():
        swap = dict(decay_rate=0.8, decay_period=PERIOD)
        if rule == "adagrad":
            return tk.AdagradSwap(0.2, **swap)
        return tk.FtrlSwap(0.2, l1_regularization_strength=0.001, **swap)

    index = {int(v): k for k, v in enumerate(ID_VALUES)}
    rows = np.vectorize(index.get)(IDS)
    fixed = tf_keras_model(tf_keras.layers.Embedding(len(ID_VALUES), DIM, "zeros"))
    fixed.compile(tf_keras_optimizer(), "binary_crossentropy")
    fixed.fit(rows, LABELS, batch_size=32, epochs=2, shuffle=False, verbose=0)
    layer = tk.DynamicEmbedding(DIM, embeddings_initializer="zeros")
    dynamic = tf_keras_model(layer)
    dynamic.compile(tf_keras_optimizer(), "binary_crossentropy")
    dynamic.fit(IDS, LABELS, batch_size=32, epochs=2, shuffle=False, verbose=0)
    seen = np.unique(IDS)
    want = fixed.layers[1].embeddings.numpy()[[index[int(i)] for i in seen]]
    np.testing.assert_allclose(layer.table.find(seen).numpy(), want, atol=1e-6)
    np.testing.assert_allclose(
        dynamic.layers[-1].kernel.numpy(), fixed.layers[-1].kernel.numpy(), atol=1e-6
    )
    # TensorFlow-format weights keep the table.
    saved = layer.table.find(seen).numpy()
    path = str(tmp_path / "weights")
    dynamic.save_weights(path)
    other = tk.DynamicEmbedding(DIM, embeddings_initializer="zeros")
    again = tf_keras_model(other)
    again.compile(tf_keras_optimizer(), "binary_crossentropy")
    again.fit(IDS[:32], LABELS[:32], verbose=0)
    again.load_weights(path)
    np.testing.assert_array_equal(other.table.find(seen).numpy(), saved)
    if rule == "adagrad":
        # The tf_keras export serves on stock TensorFlow, unknown ids too.
        test = np.concatenate([IDS[:16], [[7_777_777, -7_777_777, 3]]])
        want = dynamic.predict(test, verbose=0)
        tk.export_for_serving(dynamic, str(tmp_path / "serving"))
        served, ops = serve_in_clean_process(tmp_path / "serving", {"ids": test})
        assert not tf_swap_ops(ops), tf_swap_ops(ops)
        np.testing.assert_allclose(served["click"], want, atol=1e-6)
