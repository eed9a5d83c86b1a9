"""tf_swap.keras.AdagradSwap as a drop-in for keras.optimizers.Adagrad."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_swap
from swap_reference import SwapState
from tf_swap.keras import AdagradSwap

ROWS = 64


def embedding_model():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((1,), dtype="int32")
    x = keras.layers.Embedding(ROWS, 4)(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs)


def unique_batches(batches=8, batch=16, seed=0):
    """Batches whose indices do not repeat: Keras' Adagrad squares each
    duplicate separately, AdagradSwap sums duplicates first (SPEC)."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.permutation(ROWS)[:batch] for _ in range(batches)])
    y = rng.integers(0, 2, (x.size, 1)).astype("float32")
    return x[:, None], y


def fit_weights(optimizer, run_eagerly, epochs=2):
    model = embedding_model()
    model.compile(optimizer, "binary_crossentropy", run_eagerly=run_eagerly)
    x, y = unique_batches()
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, shuffle=False)
    return model, [w.numpy() for w in model.weights]


def test_rate_one_is_keras_adagrad_bit_for_bit():
    _, theirs = fit_weights(keras.optimizers.Adagrad(0.1), run_eagerly=True)
    _, ours = fit_weights(AdagradSwap(0.1, decay_rate=1.0), run_eagerly=True)
    for a, b in zip(theirs, ours, strict=True):
        np.testing.assert_array_equal(a, b)


def test_rate_one_is_keras_adagrad_in_model_fit_graph_mode():
    # In graph mode grappler rewrites Keras' x / sqrt(y) as x * rsqrt(y),
    # which moves Keras' own result by an ulp; ours stays the exact formula.
    _, theirs = fit_weights(keras.optimizers.Adagrad(0.1), run_eagerly=False)
    _, ours = fit_weights(AdagradSwap(0.1, decay_rate=1.0), run_eagerly=False)
    for a, b in zip(theirs, ours, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_dense_variable_follows_the_reference_across_periods():
    rng = np.random.default_rng(5)
    init = rng.normal(size=(6, 3)).astype(np.float32)
    var = keras.Variable(init)
    optimizer = AdagradSwap(0.2, decay_rate=0.5, decay_period=3, epsilon=1e-7)
    state = SwapState(init, 0.1, np.float32)
    for step in range(1, 11):
        grad = rng.normal(size=init.shape).astype(np.float32)
        optimizer.apply([tf.constant(grad)], [var])
        state.apply(
            grad,
            step,
            lr=0.2,
            decay_rate=0.5,
            decay_period=3,
            floor=0.1,
            epsilon=1e-7,
            placement="inside_sqrt",
        )
    np.testing.assert_array_equal(var.numpy(), state.var)
    powers = [v for v in optimizer.variables if v.path.endswith("_power")]
    np.testing.assert_array_equal(powers[0].numpy(), state.power)
    assert state.power.tolist() == [3] * 6  # 10 // 3


def test_sparse_gradients_sum_duplicates():
    init = np.zeros((4, 2), np.float32)
    var = keras.Variable(init)
    optimizer = AdagradSwap(1.0, decay_rate=1.0, epsilon=0.0)
    grad = tf.IndexedSlices(
        tf.constant([[1.0, 1.0], [2.0, 2.0]]), tf.constant([3, 3]), tf.constant([4, 2])
    )
    optimizer.apply([grad], [var])
    # One update with the summed gradient 3: acc = 0.1 + 9.
    expected = -3.0 / np.sqrt(np.float32(0.1) + np.float32(9.0))
    np.testing.assert_allclose(var.numpy()[3], [expected] * 2, rtol=1e-6)
    np.testing.assert_array_equal(var.numpy()[:3], 0.0)


def test_slots_are_named_like_adagrad():
    model = embedding_model()
    optimizer = AdagradSwap()
    optimizer.build(model.trainable_variables)
    paths = [v.path for v in optimizer.variables]
    assert any(p.endswith("embeddings_accumulator") for p in paths)
    power = [v for v in optimizer.variables if v.path.endswith("embeddings_power")][0]
    assert power.shape == (ROWS,) and power.dtype == "int64"
    bias_power = [v for v in optimizer.variables if v.path.endswith("bias_power")][0]
    assert bias_power.shape == (1,)


def test_defaults_match_keras_adagrad():
    ours, theirs = AdagradSwap(), keras.optimizers.Adagrad()
    for key in ("learning_rate", "initial_accumulator_value", "epsilon"):
        assert ours.get_config()[key] == theirs.get_config()[key]
    config = ours.get_config()
    assert config["decay_rate"] == 0.8
    assert config["decay_period"] == 14_000_000
    assert config["accumulator_floor"] is None
    assert config["decay_mode"] == "exact"


def test_config_round_trip():
    optimizer = AdagradSwap(
        0.3,
        decay_rate=0.5,
        decay_period=7,
        accumulator_floor=0.01,
        decay_mode="once_per_update",
        clipnorm=1.0,
    )
    clone = AdagradSwap.from_config(optimizer.get_config())
    assert clone.get_config() == optimizer.get_config()
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, AdagradSwap)
    assert restored.get_config() == optimizer.get_config()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(decay_rate=0.0), "decay_rate"),
        (dict(decay_rate=1.2), "decay_rate"),
        (dict(decay_period=0), "decay_period"),
        (dict(decay_period=2.5), "decay_period"),
        (dict(accumulator_floor=-1.0), "accumulator_floor"),
        (dict(accumulator_floor=float("nan")), "accumulator_floor"),
        (dict(decay_mode="daily"), "decay_mode"),
        (dict(initial_accumulator_value=0.0), "initial_accumulator_value"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdagradSwap(**kwargs)


def test_checkpoint_restore_and_continue_equals_uninterrupted(tmp_path):
    x, y = unique_batches(batches=12, seed=3)

    def train(model, optimizer, start, stop):
        for i in range(start, stop):
            batch = slice(16 * i, 16 * (i + 1))
            model.train_on_batch(x[batch], y[batch])

    def make():
        model = embedding_model()
        optimizer = AdagradSwap(0.1, decay_period=4)
        model.compile(optimizer, "binary_crossentropy")
        return model, optimizer

    model, optimizer = make()
    train(model, optimizer, 0, 12)
    uninterrupted = [w.numpy() for w in model.weights]

    model, optimizer = make()
    train(model, optimizer, 0, 5)
    path = tf.train.Checkpoint(model=model, optimizer=optimizer).save(
        str(tmp_path / "ckpt")
    )
    model, optimizer = make()
    optimizer.build(model.trainable_variables)
    tf.train.Checkpoint(model=model, optimizer=optimizer).restore(
        path
    ).assert_consumed()
    assert int(optimizer.iterations.numpy()) == 5
    train(model, optimizer, 5, 12)
    for a, b in zip(uninterrupted, [w.numpy() for w in model.weights], strict=True):
        np.testing.assert_array_equal(a, b)


def test_model_save_and_load_round_trip(tmp_path):
    model = embedding_model()
    model.compile(AdagradSwap(0.1, decay_period=3), "binary_crossentropy")
    x, y = unique_batches(seed=4)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.optimizer, AdagradSwap)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    np.testing.assert_array_equal(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0)
    )
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # Both continue identically.
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_learns_with_decay_in_model_fit():
    rng = np.random.default_rng(6)
    x = rng.integers(0, ROWS, (2048, 1))
    y = (x[:, :1] % 2).astype("float32")  # odd rows click
    model = embedding_model()
    model.compile(AdagradSwap(0.5, decay_period=10), "binary_crossentropy")
    history = model.fit(x, y, batch_size=64, epochs=3, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


def test_package_exports():
    assert tf_swap.keras.AdagradSwap is AdagradSwap


def test_gradient_is_cast_to_the_variable_dtype_as_keras_adagrad_does():
    # A float64 variable with a float32 gradient: Keras' Adagrad casts the
    # gradient in its update step; so does AdagradSwap (the op refuses).
    ours, theirs = keras.Variable(np.ones([10])), keras.Variable(np.ones([10]))
    assert ours.dtype == "float64"
    grad = keras.ops.full((10,), 0.01)  # float32
    AdagradSwap(0.1, decay_rate=1.0).apply_gradients([(grad, ours)])
    keras.optimizers.Adagrad(0.1).apply_gradients([(grad, theirs)])
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12)
    sparse = tf.IndexedSlices(tf.constant([[0.5]], tf.float32), tf.constant([2]))
    table = keras.Variable(np.zeros((4, 1)))
    AdagradSwap(0.1).apply_gradients([(sparse, table)])
    assert table.numpy()[2, 0] < 0 and (table.numpy()[[0, 1, 3]] == 0).all()


def test_plain_tf_variables_are_accepted_as_by_keras_adagrad():
    ours, theirs = tf.Variable([1.0, 2.0]), tf.Variable([1.0, 2.0])
    grad = tf.constant([0.1, 0.2])
    optimizer = AdagradSwap(0.1, decay_rate=1.0)
    optimizer.apply_gradients([(grad, ours)])
    keras.optimizers.Adagrad(0.1).apply_gradients([(grad, theirs)])
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    powers = [v for v in optimizer.variables if v.path.endswith("_power")]
    assert len(powers) == 1 and tuple(powers[0].shape) == (2,)


def test_swap_step_counts_every_apply_with_one_atomic_increment():
    var = keras.Variable(np.zeros(3, np.float32))
    optimizer = AdagradSwap(0.1, decay_period=2)

    @tf.function
    def step():
        optimizer.apply_gradients([(tf.ones(3), var)])

    for _ in range(3):
        step()
    assert int(optimizer.swap_step.numpy()) == 3
    assert int(optimizer.iterations.numpy()) == 3
    # The increment is one AssignAddVariableOp on the counter itself (a
    # read and a separate write would lose increments between workers).
    graph = step.get_concrete_function().graph
    inner = {
        id(external): internal for external, internal in graph.captures
    }[id(optimizer.swap_step.value.handle)]
    writes = [
        op.type
        for op in graph.get_operations()
        if op.type.endswith("VariableOp") and op.inputs and op.inputs[0] is inner
        and op.type != "ReadVariableOp"
    ]
    assert writes == ["AssignAddVariableOp"]
