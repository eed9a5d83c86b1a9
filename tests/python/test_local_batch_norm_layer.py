"""tf_swap.keras.LocalBatchNormalization."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_swap.keras import LocalBatchNormalization


def data(n=64, c=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(3.0, 2.0, (n, c)).astype(np.float32)
    y = rng.normal(size=(n, 1)).astype(np.float32)
    return x, y


def model_with(layer, c=6, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((c,))
    hidden = keras.layers.Dense(c, kernel_initializer="glorot_uniform")(inputs)
    outputs = keras.layers.Dense(1)(layer(hidden))
    return keras.Model(inputs, outputs)


class LayerTest(tf.test.TestCase):
    def test_matches_keras_batch_normalization(self):
        # One worker, sync_period=1, sync_rate=1, biased moving variance.
        x, y = data()
        ours = model_with(LocalBatchNormalization(momentum=0.9, name="bn"))
        theirs = model_with(keras.layers.BatchNormalization(
            momentum=0.9, name="bn"))
        for k in (1, 3):  # the Dense layers
            theirs.layers[k].set_weights(ours.layers[k].get_weights())
        for model in (ours, theirs):
            model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
        self.assertAllClose(ours(x, training=True), theirs(x, training=True),
                            rtol=1e-5, atol=1e-5)
        for model in (ours, theirs):
            model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
        bn_ours, bn_theirs = ours.get_layer("bn"), theirs.get_layer("bn")
        for name in ("gamma", "beta", "moving_mean", "moving_variance"):
            self.assertAllClose(getattr(bn_ours, name),
                                getattr(bn_theirs, name), rtol=1e-4,
                                atol=1e-5, msg=name)
        self.assertAllClose(ours.predict(x, verbose=0),
                            theirs.predict(x, verbose=0), rtol=1e-4,
                            atol=1e-4)
        # 12 fit steps plus the training-mode call above.
        self.assertEqual(int(bn_ours.local_steps.numpy()), 13)

    def test_default_arguments_equal_keras_batch_normalization(self):
        # SPEC 3: one worker, default arguments (sync_period=1, sync_rate=1,
        # biased moving variance): Keras' BatchNormalization, inference
        # within 1e-6.
        x, y = data(n=96, seed=3)
        ours = model_with(LocalBatchNormalization(name="bn"), seed=3)
        theirs = model_with(keras.layers.BatchNormalization(name="bn"), seed=3)
        for k in (1, 3):
            theirs.layers[k].set_weights(ours.layers[k].get_weights())
        for model in (ours, theirs):
            model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
            model.fit(x, y, batch_size=32, epochs=4, shuffle=False, verbose=0)
        self.assertAllClose(ours.predict(x, verbose=0),
                            theirs.predict(x, verbose=0), rtol=0, atol=1e-6)
        bn_ours, bn_theirs = ours.get_layer("bn"), theirs.get_layer("bn")
        self.assertAllClose(bn_ours.moving_variance, bn_theirs.moving_variance,
                            rtol=1e-6, atol=0)

    def test_unbiased_variance_and_sync_schedule(self):
        x, _ = data(n=10, c=3)
        layer = LocalBatchNormalization(momentum=0.5, sync_period=3,
                                         sync_rate=0.25,
                                         unbiased_variance=True)
        layer.build(x.shape)
        step = tf.function(lambda t: layer(t, training=True))
        local_mean, local_var = np.zeros(3), np.ones(3)
        moving_mean, moving_var = np.zeros(3), np.ones(3)
        for k in range(1, 7):
            batch = x + k
            step(tf.constant(batch))
            mean, var = batch.mean(0), batch.var(0, ddof=1)
            local_mean = 0.5 * local_mean + 0.5 * mean
            local_var = 0.5 * local_var + 0.5 * var
            if k % 3 == 0:
                moving_mean = 0.75 * moving_mean + 0.25 * local_mean
                moving_var = 0.75 * moving_var + 0.25 * local_var
            self.assertAllClose(layer.local_mean, local_mean, rtol=1e-5)
            self.assertAllClose(layer.local_variance, local_var, rtol=1e-5)
            self.assertAllClose(layer.moving_mean, moving_mean, rtol=1e-5)
            self.assertAllClose(layer.moving_variance, moving_var, rtol=1e-5)

    def test_first_step_from_the_batch(self):
        # "batch": a worker's first step takes its batch's statistics (the
        # initializers never weigh in), later steps average as usual; the
        # publish schedule is unchanged.
        x, _ = data(n=10, c=3)
        layer = LocalBatchNormalization(momentum=0.5, sync_period=2,
                                         first_step_statistics="batch")
        layer.build(x.shape)
        self.assertEqual(layer.get_config()["first_step_statistics"], "batch")
        step = tf.function(lambda t: layer(t, training=True))
        local_mean, local_var = None, None
        for k in range(1, 5):
            batch = x * k + k
            step(tf.constant(batch))
            mean, var = batch.mean(0), batch.var(0)
            if local_mean is None:
                local_mean, local_var = mean, var
            else:
                local_mean = 0.5 * local_mean + 0.5 * mean
                local_var = 0.5 * local_var + 0.5 * var
            self.assertAllClose(layer.local_mean, local_mean, rtol=1e-5)
            self.assertAllClose(layer.local_variance, local_var, rtol=1e-5)
            if k == 1:  # not yet published: the initializers are served
                self.assertAllClose(layer.moving_mean, np.zeros(3))
                self.assertAllClose(layer.moving_variance, np.ones(3))
            if k % 2 == 0:
                self.assertAllClose(layer.moving_mean, local_mean, rtol=1e-5)
                self.assertAllClose(layer.moving_variance, local_var, rtol=1e-5)
        # The default starts from the served statistics (SPEC 3).
        shared = LocalBatchNormalization(momentum=0.5)
        shared.build(x.shape)
        shared(tf.constant(x), training=True)
        self.assertAllClose(shared.local_mean, 0.5 * x.mean(0), rtol=1e-5)

    def test_inference_uses_serving_statistics(self):
        x, _ = data(c=4)
        layer = LocalBatchNormalization(epsilon=1e-2)
        layer.build(x.shape)
        layer.moving_mean.assign([1.0, 2.0, 3.0, 4.0])
        layer.moving_variance.assign([4.0, 1.0, 0.25, 9.0])
        want = (x - [1.0, 2.0, 3.0, 4.0]) / np.sqrt(
            np.array([4.0, 1.0, 0.25, 9.0]) + 1e-2)
        self.assertAllClose(layer(x, training=False), want, rtol=1e-5)
        self.assertAllClose(layer(x), want, rtol=1e-5)

    def test_rank4_inputs_and_custom_loop(self):
        rng = np.random.default_rng(1)
        x = rng.normal(size=(4, 5, 5, 3)).astype(np.float32)
        layer = LocalBatchNormalization()
        layer.build(x.shape)
        optimizer = keras.optimizers.SGD(0.1)

        @tf.function
        def train_step(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(layer(x, training=True) ** 3)
            grads = tape.gradient(loss, layer.trainable_variables)
            optimizer.apply_gradients(
                zip(grads, layer.trainable_variables, strict=True))
            return loss

        train_step(x)
        train_step(x)
        self.assertEqual(int(layer.local_steps.numpy()), 2)
        self.assertNotAllClose(layer.gamma, np.ones(3))
        flat = x.reshape(-1, 3)
        self.assertAllClose(layer.moving_mean, 0.01 * 0.0 + (
            1 - 0.99 ** 2) * flat.mean(0), rtol=1e-4)

    def test_save_load_round_trip(self):
        x, y = data()
        model = model_with(LocalBatchNormalization(sync_period=2,
                                                   sync_rate=0.5,
                                                   momentum=0.8))
        model.compile(optimizer="sgd", loss="mse")
        model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
        self.assertAllEqual(model.predict(x, verbose=0),
                            loaded.predict(x, verbose=0))
        config = loaded.layers[2].get_config()
        self.assertEqual(config["sync_period"], 2)
        self.assertEqual(config["sync_rate"], 0.5)
        self.assertEqual(config["momentum"], 0.8)
        restored = LocalBatchNormalization.from_config(config)
        self.assertEqual(restored.get_config(), config)

    def test_local_device_pins_local_statistics(self):
        layer = LocalBatchNormalization(local_device="/job:localhost/CPU:0")
        layer.build((None, 3))
        self.assertIn("CPU:0", layer.local_mean.value.device)
        self.assertTrue(any(w is layer.local_mean
                            for w in layer.non_trainable_weights))
        self.assertFalse(any(w is layer.local_mean
                             for w in layer.trainable_weights))
        layer(np.ones((2, 3), np.float32), training=True)
        self.assertEqual(int(layer.local_steps.numpy()), 1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(axis=1), "last axis"),
        (dict(sync_period=0), "sync_period"),
        (dict(sync_rate=0.0), "sync_rate"),
        (dict(epsilon=0.0), "epsilon"),
        (dict(first_step_statistics="moving"), "first_step_statistics"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        layer = LocalBatchNormalization(**kwargs)
        layer.build((None, 4, 3))


def test_between_graph_replication_writes_ps_only_when_publishing():
    # tf.compat.v1 between-graph replication: replica_device_setter puts
    # every variable on the PS unless a job is pinned; local_device pins the
    # local statistics to the worker. Inspects placement in the graph (no
    # cluster is started).
    worker = "/job:worker/task:0"
    graph = tf.Graph()
    with graph.as_default():
        setter = tf.compat.v1.train.replica_device_setter(
            ps_tasks=1, worker_device=worker)
        with tf.compat.v1.device(setter):
            layer = LocalBatchNormalization(local_device=worker,
                                            sync_period=4)
            x = tf.compat.v1.placeholder(tf.float32, [None, 3])
            layer(x, training=True)
    devices = {w.name: w.value.device for w in layer.weights}
    for name in ("gamma", "beta", "moving_mean", "moving_variance"):
        assert devices[name].startswith("/job:ps"), devices
    for name in ("local_mean", "local_variance", "local_steps"):
        assert devices[name].startswith(worker), devices
    writes = [op for op in graph.get_operations()
              if op.type in ("AssignVariableOp", "AssignAddVariableOp")
              and not op.name.endswith("/Assign")]  # not initializers
    written = sorted(op.inputs[0].op.name.split("/")[-1] for op in writes)
    # Every step: only the worker's variables.
    assert written == ["local_mean", "local_steps", "local_variance"]
    for op in writes:
        assert op.inputs[0].device.startswith(worker)
    # The publish is the only PS write, inside the every-sync_period branch
    # (the other branch, a worker's first step, only reads the shared
    # statistics).
    conds = [op for op in graph.get_operations()
             if op.type in ("If", "StatelessIf")]
    assert len(conds) == 2
    published = []
    for cond in conds:
        branch = graph._get_function(
            cond.get_attr("then_branch").name).definition
        args = [arg.name for arg in branch.signature.input_arg]
        published += [cond.inputs[1 + args.index(n.input[0].split(":")[0])]
                      for n in branch.node_def if n.op == "AssignVariableOp"]
    assert len(published) == 2
    assert all(t.device.startswith("/job:ps") for t in published), published
