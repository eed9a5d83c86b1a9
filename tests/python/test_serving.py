"""Models trained with tf_swap serve on stock TensorFlow: Keras 3
`model.export` (and `tf_swap.keras.export_for_serving`), a tf_keras
SavedModel, a tf.compat.v1 `SavedModelBuilder` export, each loaded and run in
a process where tf_swap cannot be imported (the main job's models: in
test_train.py)."""

import keras
import numpy as np
import tensorflow as tf
import tf_keras
from serving import serve_in_clean_process, tf_swap_ops

import tf_swap.tf_keras as tk
from tf_swap.compat.v1 import AdagradSwapOptimizer
from tf_swap.keras import (
    AdagradSwap,
    LocalBatchNormalization,
    ShardedEmbedding,
    export_for_serving,
)

v1 = tf.compat.v1
ROWS, FIELDS = 60, 3


def clicks(n=512, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, ROWS, (n, FIELDS)).astype(np.int32)
    weight = rng.normal(size=ROWS)
    y = (weight[x].sum(1) + rng.normal(0, 0.5, n) > 0).astype(np.float32)
    return x, y[:, None]


def keras3_model(num_shards=1):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((FIELDS,), dtype="int32", name="features")
    x = ShardedEmbedding(ROWS, 4, num_shards=num_shards)(inputs)
    x = keras.layers.Dense(8)(keras.layers.Flatten()(x))
    x = LocalBatchNormalization(sync_period=2, sync_rate=0.5)(x)
    x = keras.layers.ReLU()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="click")(x)
    model = keras.Model(inputs, outputs)
    model.compile(AdagradSwap(0.05, decay_period=8, staleness_exponent=2),
                  "binary_crossentropy")
    return model


def test_keras3_export_serves_without_tf_swap(tmp_path):
    x, y = clicks()
    model = keras3_model(num_shards=3)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    want = model.predict(x, verbose=0)
    # Keras' own export, as a user writes it.
    model.export(tmp_path / "export")
    outputs, ops = serve_in_clean_process(tmp_path / "export", {"features": x})
    assert not tf_swap_ops(ops), tf_swap_ops(ops)
    np.testing.assert_allclose(next(iter(outputs.values())), want, atol=1e-6)
    # tf_swap's export (what the main job writes): named input and output.
    export_for_serving(model, str(tmp_path / "named"))
    outputs, ops = serve_in_clean_process(tmp_path / "named", {"features": x})
    assert not tf_swap_ops(ops)
    np.testing.assert_allclose(outputs["click"], want, atol=1e-6)


def test_tf_keras_saved_model_serves_without_tf_swap(tmp_path):
    x, y = clicks()
    tf_keras.utils.set_random_seed(0)
    inputs = tf_keras.Input((FIELDS,), dtype="int32", name="features")
    h = tf_keras.layers.Embedding(ROWS, 4)(inputs)
    h = tf_keras.layers.Dense(8)(tf_keras.layers.Flatten()(h))
    h = tk.LocalBatchNormalization(sync_period=2)(h)
    outputs = tf_keras.layers.Dense(1, activation="sigmoid", name="click")(h)
    model = tk.Model(inputs, outputs)  # t_read before each forward pass
    model.compile(tk.AdagradSwap(0.05, staleness_exponent=2),
                  "binary_crossentropy")
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    want = model.predict(x, verbose=0)
    model.save(tmp_path / "saved_model")  # SavedModel format, optimizer included
    served, ops = serve_in_clean_process(tmp_path / "saved_model", {"features": x})
    assert not tf_swap_ops(ops), tf_swap_ops(ops)
    np.testing.assert_allclose(served["click"], want, atol=1e-6)
    # Training still runs our op in process; only the saved traces do not.
    loaded = tf_keras.models.load_model(tmp_path / "saved_model")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), want, atol=1e-6)


def v1_ctr_graph(training):
    """A v1 CTR model: a table partitioned in 2, a hidden layer with Local
    BN, a sigmoid; returns (features placeholder, click probability)."""
    features = v1.placeholder(tf.int32, [None, FIELDS], name="features")
    table = v1.get_variable(
        "table", [ROWS, 4], partitioner=v1.fixed_size_partitioner(2),
        initializer=v1.random_normal_initializer(stddev=0.1, seed=1),
        use_resource=True,
    )
    h = tf.reshape(tf.nn.embedding_lookup(table, features), [-1, FIELDS * 4])
    kernel = v1.get_variable("kernel", [FIELDS * 4, 8], use_resource=True,
                             initializer=v1.glorot_uniform_initializer(seed=2))
    h = LocalBatchNormalization(name="bn", sync_period=2)(
        tf.matmul(h, kernel), training=training)
    out = v1.get_variable("out", [8, 1], use_resource=True,
                          initializer=v1.glorot_uniform_initializer(seed=3))
    return features, tf.sigmoid(tf.matmul(tf.nn.relu(h), out), name="click")


def test_v1_saved_model_builder_serves_without_tf_swap(tmp_path):
    x, y = clicks()
    checkpoint = str(tmp_path / "train" / "model")
    train_graph = tf.Graph()
    with train_graph.as_default():
        features, click = v1_ctr_graph(training=True)
        labels = v1.placeholder(tf.float32, [None, 1])
        loss = tf.reduce_mean(v1.keras.losses.binary_crossentropy(labels, click))
        step = v1.train.get_or_create_global_step()
        train = AdagradSwapOptimizer(0.1, decay_period=8).minimize(
            loss, global_step=step)
        saver = v1.train.Saver()
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            for i in range(0, len(x), 32):
                session.run(train, {features: x[i:i + 32], labels: y[i:i + 32]})
            saver.save(session, checkpoint)
    # As v1 serving exports are made: an inference graph of the same
    # variables, restored from the training checkpoint.
    export = str(tmp_path / "saved_model")
    serve_graph = tf.Graph()
    with serve_graph.as_default():
        features, click = v1_ctr_graph(training=False)
        with v1.Session() as session:
            v1.train.Saver().restore(session, checkpoint)
            want = session.run(click, {features: x})
            builder = v1.saved_model.Builder(export)
            signature = v1.saved_model.predict_signature_def(
                {"features": features}, {"click": click})
            builder.add_meta_graph_and_variables(
                session, [v1.saved_model.SERVING],
                signature_def_map={"serving_default": signature})
            builder.save()
    served, ops = serve_in_clean_process(export, {"features": x})
    assert not tf_swap_ops(ops), tf_swap_ops(ops)
    np.testing.assert_allclose(served["click"], want, atol=1e-6)


def test_ill_conditioned_channel_at_inference_within_1e3_of_float64(tmp_path):
    # float32 channel with mean 1e4 and std 1e-2: (x - mean) first keeps
    # it; folding into x * scale + shift would not.
    rng = np.random.default_rng(7)
    x = np.stack([rng.normal(1e4, 1e-2, 4096), rng.normal(0, 1, 4096)], 1)
    x = x.astype(np.float32)
    inputs = keras.Input((2,), name="features")
    layer = LocalBatchNormalization(epsilon=1e-3, name="bn")
    model = keras.Model(inputs, layer(inputs))
    mean = x.mean(0, dtype=np.float64).astype(np.float32)
    var = x.var(0, dtype=np.float64).astype(np.float32)
    layer.moving_mean.assign(mean)
    layer.moving_variance.assign(var)
    model.export(tmp_path / "bn")
    served, ops = serve_in_clean_process(tmp_path / "bn", {"features": x})
    assert not tf_swap_ops(ops)
    y = next(iter(served.values()))
    x64 = x.astype(np.float64)
    want = (x64 - mean.astype(np.float64)) / np.sqrt(
        var.astype(np.float64) + np.float64(np.float32(1e-3)))
    assert np.abs(y - want).max() < 1e-3
    # The folded form really is off on this channel (so the test can fail).
    scale = (1.0 / np.sqrt(var + np.float32(1e-3))).astype(np.float32)
    folded = x * scale + (-mean * scale)
    assert np.abs(folded - want).max() > 1e-3
