"""FTRL-SWAP's front ends as drop-ins: Keras 3 `FtrlSwap` for
`keras.optimizers.Ftrl` (Keras' own Ftrl test cases, `model.fit`), tf_keras
`FtrlSwap` for `tf_keras.optimizers.legacy.Ftrl`, v1 `FtrlSwapOptimizer`
for `tf.compat.v1.train.FtrlOptimizer` (graph mode, partitioned variables,
`global_step`), each equal to the replaced class at decay rate 1 (the
parameter-server cases are in test_sharded_cluster.py and
test_cluster_v1.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import tf_swap.tf_keras as tk
from tf_swap.compat.v1 import FtrlSwapOptimizer
from tf_swap.keras import FtrlSwap

v1 = tf.compat.v1
ROWS, FIELDS = 40, 3
HYPER = dict(
    learning_rate=0.05,
    learning_rate_power=-0.2,
    initial_accumulator_value=0.4,
    l1_regularization_strength=0.05,
    l2_regularization_strength=0.15,
    l2_shrinkage_regularization_strength=0.01,
    beta=0.3,
)


def data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, ROWS, (n, FIELDS)).astype(np.int32)
    weight = rng.normal(size=ROWS)
    y = (weight[x].sum(1) + rng.normal(0, 0.5, n) > 0).astype(np.float32)
    return x, y[:, None]


# --- Keras 3: Keras' own Ftrl tests, on FtrlSwap at decay_rate=1 -------------


def test_keras_config_round_trip():
    optimizer = FtrlSwap(**HYPER, decay_rate=0.9, staleness_exponent=2)
    config = optimizer.get_config()
    for key, value in HYPER.items():
        assert config[key] == pytest.approx(value, rel=1e-7), key
    assert config["decay_rate"] == 0.9 and config["staleness_exponent"] == 2.0
    assert FtrlSwap.from_config(config).get_config() == config
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert restored.get_config() == config


def test_keras_single_step():
    optimizer = FtrlSwap(learning_rate=0.5, decay_rate=1.0)
    grads = np.array([1.0, 6.0, 7.0, 2.0])
    variables = keras.Variable([1.0, 2.0, 3.0, 4.0])
    optimizer.apply_gradients(zip([grads], [variables], strict=True))
    np.testing.assert_allclose(
        variables.numpy(), [0.2218, 1.3954, 2.3651, 2.8814], rtol=1e-4, atol=1e-4
    )


def test_keras_correctness_with_golden():
    optimizer = FtrlSwap(**HYPER, decay_rate=1.0)
    x = keras.Variable(np.ones([10]))  # float64
    grads = np.arange(0.1, 1.1, 0.1)
    first_grads = keras.ops.full((10,), 0.01)  # float32: cast, as Keras does
    golden = np.array(
        [
            [0.0] * 10,
            [
                -0.0034,
                -0.0077,
                -0.0118,
                -0.0157,
                -0.0194,
                -0.023,
                -0.0263,
                -0.0294,
                -0.0325,
                -0.0354,
            ],
            [
                -0.0078,
                -0.0162,
                -0.0242,
                -0.0317,
                -0.0387,
                -0.0454,
                -0.0516,
                -0.0575,
                -0.0631,
                -0.0685,
            ],
            [
                -0.0121,
                -0.0246,
                -0.0363,
                -0.0472,
                -0.0573,
                -0.0668,
                -0.0757,
                -0.0842,
                -0.0922,
                -0.0999,
            ],
            [
                -0.0164,
                -0.0328,
                -0.0481,
                -0.0623,
                -0.0753,
                -0.0875,
                -0.099,
                -0.1098,
                -0.1201,
                -0.1299,
            ],
        ]
    )
    optimizer.apply_gradients(zip([first_grads], [x], strict=True))
    for i in range(5):
        np.testing.assert_allclose(x.numpy(), golden[i], rtol=5e-4, atol=5e-4)
        optimizer.apply_gradients(zip([grads], [x], strict=True))


def test_keras_clipping_is_the_base_classs():
    optimizer = FtrlSwap(clipnorm=1)
    var = keras.Variable([0.0, 0.0])
    ref = keras.optimizers.Ftrl(clipnorm=1)
    ref_var = keras.Variable([0.0, 0.0])
    grad = np.array([100.0, 100.0])
    optimizer.apply_gradients([(grad, var)])
    ref.apply_gradients([(grad, ref_var)])
    np.testing.assert_allclose(var.numpy(), ref_var.numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    "name, value",
    [
        ("initial_accumulator_value", -0.1),
        ("learning_rate_power", 0.1),
        ("l1_regularization_strength", -0.1),
        ("l2_regularization_strength", -0.1),
        ("l2_shrinkage_regularization_strength", -0.1),
    ],
)
def test_keras_invalid_arguments_as_keras(name, value):
    message = f"^`{name}` needs to be .* or zero. Received: {name}={value}.$"
    with pytest.raises(ValueError, match=message):
        keras.optimizers.Ftrl(**{name: value})
    with pytest.raises(ValueError, match=message):
        FtrlSwap(**{name: value})


def keras_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((FIELDS,), dtype="int32")
    # Zeros: keras.optimizers.Ftrl writes every row of a sparse gradient's
    # table (untouched rows included), TensorFlow's sparse FTRL only the
    # rows named; from consistent zeros both leave untouched rows at 0.
    deep = keras.layers.Embedding(ROWS, 4, embeddings_initializer="zeros")(inputs)
    x = keras.layers.Dense(8, activation="relu")(keras.layers.Flatten()(deep))
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs)


def test_keras_fit_equals_keras_ftrl_dense_and_sparse():
    x, y = data()
    ours, theirs = keras_model(), keras_model()
    theirs.set_weights(ours.get_weights())
    ours.compile(FtrlSwap(**HYPER, decay_rate=1.0), "binary_crossentropy")
    theirs.compile(keras.optimizers.Ftrl(**HYPER), "binary_crossentropy")
    for model in (ours, theirs):
        model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
    changed = False
    for a, b, start in zip(
        ours.get_weights(),
        theirs.get_weights(),
        keras_model().get_weights(),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        changed |= not np.array_equal(a, start)
    assert changed


def test_keras_discount_uses_its_own_step_counter():
    var = keras.Variable(np.full((3,), 0.5))
    optimizer = FtrlSwap(0.1, decay_rate=0.5, decay_period=2)
    optimizer.apply_gradients([(np.ones(3), var)])
    optimizer.apply_gradients([(np.ones(3), var)])  # step 2: one period
    power = [v for v in optimizer.variables if v.path.endswith("_power")][0]
    assert int(optimizer.swap_step.numpy()) == 2
    assert power.numpy().tolist() == [1, 1, 1]  # one per row


# --- tf_keras ----------------------------------------------------------------


def tf_keras_model(seed=0):
    tf_keras.utils.set_random_seed(seed)
    inputs = tf_keras.Input((FIELDS,), dtype="int32")
    x = tf_keras.layers.Embedding(ROWS, 4, name="table")(inputs)
    x = tf_keras.layers.Dense(8, name="hidden")(tf_keras.layers.Flatten()(x))
    outputs = tf_keras.layers.Dense(1, activation="sigmoid", name="click")(x)
    return tk.Model(inputs, outputs)


@pytest.mark.parametrize("shrinkage", [0.0, 0.01])
def test_tf_keras_fit_equals_legacy_ftrl(shrinkage):
    x, y = data()
    hyper = dict(HYPER, l2_shrinkage_regularization_strength=shrinkage)
    ours, theirs = tf_keras_model(), tf_keras_model()
    theirs.set_weights(ours.get_weights())
    ours.compile(tk.FtrlSwap(**hyper, decay_rate=1.0), "binary_crossentropy")
    theirs.compile(tf_keras.optimizers.legacy.Ftrl(**hyper), "binary_crossentropy")
    for model in (ours, theirs):
        model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    table = ours.get_layer("table").embeddings
    for slot in ("accumulator", "linear"):
        np.testing.assert_allclose(
            ours.optimizer.get_slot(table, slot).numpy(),
            theirs.optimizer.get_slot(theirs.get_layer("table").embeddings, slot),
            rtol=0,
            atol=1e-6,
        )
    assert ours.optimizer.get_slot(table, "power").dtype == tf.int64


def test_tf_keras_config_checkpoint_and_save(tmp_path):
    x, y = data(n=64)
    model = tf_keras_model()
    model.compile(tk.FtrlSwap(**HYPER, decay_period=2), "binary_crossentropy")
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    config = model.optimizer.get_config()
    assert config["name"] == "Ftrl" and config["decay_period"] == 2
    assert tk.FtrlSwap.from_config(config).get_config() == config
    path = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(
        str(tmp_path / "ckpt")
    )
    other = tf_keras_model(seed=1)
    other.compile(tk.FtrlSwap(**HYPER, decay_period=2), "binary_crossentropy")
    tf.train.Checkpoint(model=other, optimizer=other.optimizer).restore(path)
    table = model.get_layer("table").embeddings
    for slot in ("accumulator", "linear", "power"):
        np.testing.assert_array_equal(
            model.optimizer.get_slot(table, slot).numpy(),
            other.optimizer.get_slot(other.get_layer("table").embeddings, slot),
        )
    model.save(str(tmp_path / "m.keras"))
    loaded = tf_keras.models.load_model(str(tmp_path / "m.keras"))
    np.testing.assert_array_equal(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0)
    )
    assert isinstance(loaded.optimizer, tk.FtrlSwap)


# --- tf.compat.v1 --------------------------------------------------------------


def v1_train(optimizer_class, partitions, steps=6, **kwargs):
    rng = np.random.default_rng(3)
    x = rng.integers(0, ROWS, (steps, 8)).astype(np.int32)
    graph = tf.Graph()
    with graph.as_default():
        step = v1.train.get_or_create_global_step()
        ids = v1.placeholder(tf.int32, [8])
        partitioner = v1.fixed_size_partitioner(partitions) if partitions > 1 else None
        table = v1.get_variable(
            "table",
            [ROWS, 4],
            partitioner=partitioner,
            use_resource=True,
            initializer=v1.random_normal_initializer(stddev=0.1, seed=1),
        )
        loss = tf.reduce_sum(tf.square(tf.nn.embedding_lookup(table, ids) - 1.0))
        optimizer = optimizer_class(0.1, **kwargs)
        train = optimizer.minimize(loss, global_step=step)
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            for row in x:
                session.run(train, {ids: row})
            full = session.run(tf.concat(list(table), 0) if partitions > 1 else table)
            return full, session.run(step)


@pytest.mark.parametrize("partitions", [1, 4])
def test_v1_equals_ftrl_optimizer(partitions):
    hyper = dict(
        l1_regularization_strength=0.01,
        l2_regularization_strength=0.02,
        l2_shrinkage_regularization_strength=0.01,
    )
    got, steps = v1_train(FtrlSwapOptimizer, partitions, decay_rate=1.0, **hyper)
    want, _ = v1_train(v1.train.FtrlOptimizer, partitions, **hyper)
    assert steps == 6
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_v1_slots_and_errors_as_ftrl_optimizer():
    with pytest.raises(ValueError, match="l1_regularization_strength -1.000000 needs"):
        FtrlSwapOptimizer(0.1, l1_regularization_strength=-1.0)
    with pytest.raises(ValueError, match="learning_rate_power 0.500000 needs"):
        FtrlSwapOptimizer(0.1, learning_rate_power=0.5)
    graph = tf.Graph()
    with graph.as_default():
        var = v1.get_variable("w", [5, 2], use_resource=True)
        optimizer = FtrlSwapOptimizer(0.1, decay_period=2)
        optimizer.minimize(
            tf.reduce_sum(var), global_step=v1.train.get_or_create_global_step()
        )
        assert sorted(optimizer.get_slot_names()) == ["accum", "linear", "power"]
        assert optimizer.get_slot(var, "power").shape == (5,)
