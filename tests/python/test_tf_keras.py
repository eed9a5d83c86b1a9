"""tf_swap.tf_keras: the legacy-optimizer AdagradSwap, the Local BN layer and
`tf_swap.tf_keras.Model` (t_read before the forward pass), in one process
(the parameter-server cases are in test_sharded_cluster.py)."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import tf_swap.tf_keras as tk
from swap_reference import SwapState

ROWS, FIELDS = 40, 3


def data(n=512, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, ROWS, (n, FIELDS)).astype(np.int32)
    weight = rng.normal(size=ROWS)
    y = (weight[x].sum(1) + rng.normal(0, 0.5, n) > 0).astype(np.float32)
    return x, y[:, None]


def ctr_model(seed=0, model_class=tf_keras.Model):
    tf_keras.utils.set_random_seed(seed)
    inputs = tf_keras.Input((FIELDS,), dtype="int32", name="features")
    x = tf_keras.layers.Embedding(ROWS, 4, name="table")(inputs)
    x = tf_keras.layers.Flatten()(x)
    x = tf_keras.layers.Dense(8, name="hidden")(x)
    outputs = tf_keras.layers.Dense(1, activation="sigmoid", name="click")(x)
    return model_class(inputs, outputs)


def bn_model(layer, seed=0):
    tf_keras.utils.set_random_seed(seed)
    inputs = tf_keras.Input((FIELDS,), dtype="int32", name="features")
    x = tf_keras.layers.Embedding(ROWS, 4, name="table")(inputs)
    x = tf_keras.layers.Flatten()(x)
    x = tf_keras.layers.Dense(8, name="hidden")(x)
    x = layer(x)
    outputs = tf_keras.layers.Dense(1, activation="sigmoid", name="click")(x)
    return tf_keras.Model(inputs, outputs)


def test_rate_one_equals_legacy_adagrad_in_fit():
    x, y = data()
    ours, theirs = ctr_model(), ctr_model()
    theirs.set_weights(ours.get_weights())
    ours.compile(tk.AdagradSwap(0.1, decay_rate=1.0), "binary_crossentropy")
    theirs.compile(tf_keras.optimizers.legacy.Adagrad(0.1), "binary_crossentropy")
    for model in (ours, theirs):
        model.fit(x, y, batch_size=32, epochs=4, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    acc = ours.optimizer.get_slot(ours.get_layer("table").embeddings, "accumulator")
    ref = theirs.optimizer.get_slot(
        theirs.get_layer("table").embeddings, "accumulator"
    )
    np.testing.assert_allclose(acc.numpy(), ref.numpy(), rtol=1e-6)


def test_decay_follows_the_reference_sparse_and_dense():
    rng = np.random.default_rng(3)
    init = rng.normal(size=(6, 2)).astype(np.float32)
    table = tf.Variable(init)
    optimizer = tk.AdagradSwap(0.2, decay_rate=0.5, decay_period=3)
    state = SwapState(init, 0.1, np.float32)
    lr = np.float32(0.2)  # legacy optimizers keep the learning rate in float32
    for step in range(1, 9):
        grad = rng.normal(size=(3, 2)).astype(np.float32)
        rows = np.array([5, 0, 5]) if step % 2 else np.array([1, 2, 3])
        optimizer.apply_gradients(
            [(tf.IndexedSlices(tf.constant(grad), tf.constant(rows)), table)]
        )
        state.apply(
            grad, step, lr=lr, decay_rate=0.5, decay_period=3, floor=0.1,
            epsilon=np.float32(1e-7), placement="after_sqrt", indices=rows,
        )
        np.testing.assert_array_equal(table.numpy(), state.var)
        np.testing.assert_array_equal(
            optimizer.get_slot(table, "power").numpy(), state.power
        )
    dense = tf.Variable(init)
    optimizer.apply_gradients([(tf.ones_like(init), dense)])
    assert optimizer.get_slot(dense, "power").shape == (6,)
    assert optimizer.get_slot(dense, "power").dtype == tf.int64


def test_defaults_and_slots_mirror_legacy_adagrad():
    ours, theirs = tk.AdagradSwap(), tf_keras.optimizers.legacy.Adagrad()
    assert ours._name == theirs._name == "Adagrad"
    for key in ("learning_rate", "initial_accumulator_value", "epsilon", "decay"):
        assert ours.get_config()[key] == theirs.get_config()[key], key
    var = tf.Variable(np.zeros((3, 2), np.float32))
    ours.apply_gradients([(tf.ones((3, 2)), var)])
    assert ours.get_slot_names() == ["accumulator", "power"]


def test_config_round_trip():
    optimizer = tk.AdagradSwap(
        0.3, decay_rate=0.7, decay_period=11, accumulator_floor=0.05,
        decay_mode="once_per_update", staleness_exponent=2, max_staleness=9,
        clipnorm=1.0,
    )
    config = optimizer.get_config()
    again = tk.AdagradSwap.from_config(config)
    assert again.get_config() == config
    assert config["decay_period"] == 11 and config["max_staleness"] == 9
    restored = tf_keras.optimizers.deserialize(
        tf_keras.optimizers.serialize(optimizer), use_legacy_optimizer=True
    )
    assert isinstance(restored, tk.AdagradSwap)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(decay_rate=0.0), "decay_rate"),
        (dict(decay_period=2.5), "decay_period"),
        (dict(initial_accumulator_value=0.0), "initial_accumulator_value"),
        (dict(staleness_exponent=-1), "staleness_exponent"),
        (dict(max_staleness=-2), "max_staleness"),
        (dict(decay_mode="daily"), "decay_mode"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tk.AdagradSwap(**kwargs)


def test_model_save_and_load_model_round_trip(tmp_path):
    x, y = data()
    model = ctr_model()
    model.compile(tk.AdagradSwap(0.1, decay_period=7), "binary_crossentropy")
    model.fit(x, y, batch_size=64, epochs=2, verbose=0)
    for path in (tmp_path / "model.keras", tmp_path / "saved_model"):
        model.save(path)
        loaded = tf_keras.models.load_model(path)
        np.testing.assert_array_equal(
            loaded.predict(x, verbose=0), model.predict(x, verbose=0)
        )
        assert isinstance(loaded.optimizer, tk.AdagradSwap)
        assert loaded.optimizer.get_config()["decay_period"] == 7
        loaded.fit(x, y, batch_size=64, epochs=1, verbose=0)  # still trains


def test_checkpoint_and_save_weights_round_trip(tmp_path):
    x, y = data()

    def trained():
        model = ctr_model()
        model.compile(tk.AdagradSwap(0.1, decay_period=5), "binary_crossentropy")
        model.fit(x, y, batch_size=64, epochs=1, verbose=0)
        return model

    def state(model):
        table = model.get_layer("table").embeddings
        opt = model.optimizer
        return [
            table.numpy(),
            opt.get_slot(table, "accumulator").numpy(),
            opt.get_slot(table, "power").numpy(),
            opt.iterations.numpy(),
        ]

    source = trained()
    path = tf.train.Checkpoint(model=source, optimizer=source.optimizer).save(
        str(tmp_path / "ckpt")
    )
    source.save_weights(str(tmp_path / "weights"))
    for restore in ("checkpoint", "save_weights"):
        target = trained()  # other values, same structure
        if restore == "checkpoint":
            tf.train.Checkpoint(model=target, optimizer=target.optimizer).restore(
                path
            ).assert_consumed()
        else:
            target.load_weights(str(tmp_path / "weights"))
        for got, want in zip(state(target), state(source), strict=True):
            np.testing.assert_array_equal(got, want)


def test_model_gives_apply_the_read_of_each_step():
    x, y = data(n=128)
    seen = []

    class Probe(tk.AdagradSwap):
        def apply_gradients(self, grads_and_vars, *args, **kwargs):
            seen.append(self._core.has_read_step)
            return super().apply_gradients(grads_and_vars, *args, **kwargs)

    plain = ctr_model()
    plain.compile(Probe(0.1, staleness_exponent=2), "binary_crossentropy")
    plain.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert seen and not any(seen)  # plain fit: no t_read, tau = 0
    with pytest.raises(TypeError, match="tf_swap.tf_keras.Model"):
        tk.record_read_step(plain)
    seen.clear()
    model = ctr_model(model_class=tk.Model)
    model.compile(Probe(0.1, staleness_exponent=2), "binary_crossentropy")
    assert tk.record_read_step(model) is model
    tk.record_read_step(model)  # idempotent
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    assert seen and all(seen)
    assert np.isfinite(history.history["loss"]).all()
    assert int(model.optimizer.iterations.numpy()) == 8
    # The forward pass runs after the read: the embedding lookup has a
    # control dependency (on the read of `iterations`) it lacks without it.
    assert _lookup_control_inputs(model, x, y)
    assert not _lookup_control_inputs(plain, x, y)


def _lookup_control_inputs(model, x, y):
    graph = model.train_function.get_concrete_function(
        iter(tf.data.Dataset.from_tensor_slices((x, y)).batch(32))
    ).graph
    gathers = [n for n in graph.as_graph_def().node if n.op == "ResourceGather"]
    assert gathers
    return [i for n in gathers for i in n.input if i.startswith("^")]


def test_model_leaves_a_stock_optimizer_alone():
    x, y = data(n=64)
    model = ctr_model(model_class=tk.Model)
    reference = ctr_model()
    model.compile(tf_keras.optimizers.legacy.Adagrad(0.1), "binary_crossentropy")
    reference.compile(tf_keras.optimizers.legacy.Adagrad(0.1), "binary_crossentropy")
    for m in (model, reference):
        m.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    # A stock optimizer has no read_step: the step is tf_keras' own, and
    # trains exactly as in a plain tf_keras.Model.
    assert not _lookup_control_inputs(model, x, y)
    for a, b in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(model.optimizer.iterations.numpy()) == 4


def test_staleness_scale_and_drop_with_explicit_read_step():
    var = tf.Variable(np.ones((4, 2), np.float32))
    optimizer = tk.AdagradSwap(
        0.5, decay_rate=1.0, staleness_exponent=1, max_staleness=3
    )
    optimizer.apply_gradients([(tf.zeros((4, 2)), var)])  # iterations -> 1
    optimizer.iterations.assign(10)
    before = var.numpy()
    optimizer.apply_gradients(
        [(tf.ones((4, 2)), var)], read_step=tf.constant(2, tf.int64)
    )  # tau = 8 > 3: dropped
    np.testing.assert_array_equal(var.numpy(), before)
    assert int(optimizer.dropped_updates.numpy()) == 1
    assert int(optimizer.iterations.numpy()) == 11
    accum = optimizer.get_slot(var, "accumulator").numpy().copy()
    optimizer.apply_gradients(
        [(tf.ones((4, 2)), var)], read_step=tf.constant(9, tf.int64)
    )  # tau = 2: lr / 2
    lr = np.float32(np.float64(np.float32(0.5)) / 2)
    new_accum = accum + 1
    want = before - lr * 1 / (np.sqrt(new_accum) + np.float32(1e-7))
    np.testing.assert_array_equal(var.numpy(), want.astype(np.float32))
    assert int(optimizer.dropped_updates.numpy()) == 1


def test_local_batch_norm_defaults_equal_tf_keras_batch_normalization():
    x, y = data(n=256, seed=5)
    ours = bn_model(tk.LocalBatchNormalization(name="bn"))
    theirs = bn_model(tf_keras.layers.BatchNormalization(name="bn"))
    for name in ("table", "hidden", "click"):
        theirs.get_layer(name).set_weights(ours.get_layer(name).get_weights())
    for model in (ours, theirs):
        model.compile(tf_keras.optimizers.legacy.SGD(0.05), "binary_crossentropy")
        model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
    np.testing.assert_allclose(
        ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=0, atol=1e-6
    )
    ours_bn, theirs_bn = ours.get_layer("bn"), theirs.get_layer("bn")
    np.testing.assert_allclose(
        ours_bn.moving_variance.numpy(), theirs_bn.moving_variance.numpy(), rtol=1e-5
    )
    config = ours_bn.get_config()
    assert config["unbiased_variance"] is False and config["sync_period"] == 1
    assert tk.LocalBatchNormalization.from_config(config).get_config() == config


def test_local_batch_norm_layer_trains_with_our_op_and_saves(tmp_path):
    x, y = data(n=128)
    layer = tk.LocalBatchNormalization(sync_period=2, sync_rate=0.5, name="bn")
    model = bn_model(layer)
    model.compile(tk.AdagradSwap(0.1), "binary_crossentropy")
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    graph = model.train_function.get_concrete_function(
        iter(tf.data.Dataset.from_tensor_slices((x, y)).batch(32))
    ).graph
    ops = {op.type for op in graph.get_operations()}
    for function in graph.as_graph_def().library.function:
        ops |= {node.op for node in function.node_def}
    assert "TfSwapLocalBatchNorm" in ops
    assert int(layer.local_steps.numpy()) == 4
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = tf_keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0),
                                  model.predict(x, verbose=0))
    assert loaded.get_layer("bn").sync_period == 2


def test_legacy_internals_were_checked_against_this_tf_keras():
    # tf_swap/tf_keras/legacy_internals.py is the one place that uses
    # tf_keras internals; another tf_keras needs it read again.
    from tf_swap.tf_keras import legacy_internals

    assert tf_keras.__version__ == legacy_internals.CHECKED_VERSION
    assert callable(legacy_internals.saving_saved_model)
    assert legacy_internals.saving_saved_model() is False
