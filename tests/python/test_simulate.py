"""The asynchronous parameter-server simulator (`tf_swap.simulate`).

One worker must reproduce plain sequential training bit for bit; a
deterministic schedule must give the staleness `W - 1`; a worker's gradient
must come from the parameters it read, not from the ones it applies to; and
a tiny run must write its files.
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_swap import data, simulate, train
from tf_swap.models import build_ctr_model

BATCH = 32


@pytest.fixture(scope="module")
def stream():
    return data.synthetic_stream(periods=3, samples=512, buckets=1 << 10, seed=1)


def _config(**kwargs):
    return simulate.SimConfig(batch_size=BATCH, hidden=(16, 8), **kwargs)


def _steps_per_period(stream):
    return len(stream.periods[0].y) // BATCH


def _reference(variant, stream, config):
    """The model and optimizer a simulator of `variant` starts from."""
    base, k = simulate.parse_variant(variant)
    tconfig = train.Config(
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        decay_rate=config.decay_rate,
        staleness_exponent=k if k is not None else config.staleness_exponent,
        embedding_dim=config.embedding_dim,
        hidden=config.hidden,
        seed=config.seed,
    )
    model = build_ctr_model(
        len(stream.fields),
        stream.buckets,
        embedding_dim=config.embedding_dim,
        hidden=config.hidden,
        batch_norm=train.VARIANTS[base][2],
        seed=config.seed,
    )
    optimizer = train.make_optimizer(base, tconfig, _steps_per_period(stream))
    optimizer.build(model.trainable_variables)
    return model, optimizer


def _gradients(model, x, y):
    loss_fn = keras.losses.BinaryCrossentropy()
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    return tape.gradient(loss, model.trainable_variables)


@pytest.mark.parametrize("variant", ["adagrad", "swap+stale+lbn"])
def test_one_worker_is_sequential_training(stream, variant):
    config = _config()
    batches = simulate.stream_batches(stream, BATCH, config.seed)
    sim = simulate.Simulator(
        variant,
        len(stream.fields),
        stream.buckets,
        1,
        _steps_per_period(stream),
        config,
    )
    taus = []
    sim.run(stream, batches, on_apply=lambda w, tau: taus.append(tau))
    assert taus == [0] * len(batches[0])

    model, optimizer = _reference(variant, stream, config)

    @tf.function
    def step(x, y):
        grads = _gradients(model, x, y)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))

    for x, y in zip(batches[0], batches[1], strict=True):
        step(tf.constant(x), tf.constant(y))
    assert int(optimizer.iterations.numpy()) == len(batches[0])
    names = [w.path for w in model.weights]
    assert names == [w.path for w in sim.model.weights]
    for ref, got in zip(model.weights, sim.model.weights, strict=True):
        np.testing.assert_array_equal(got.numpy(), ref.numpy(), err_msg=ref.path)


@pytest.mark.parametrize("workers", [2, 5])
def test_equal_speeds_give_staleness_workers_minus_one(stream, workers):
    config = _config(speed_sigma=0.0, jitter_sigma=0.0)
    batches = simulate.stream_batches(stream, BATCH, config.seed)
    sim = simulate.Simulator(
        "swap+stale", len(stream.fields), stream.buckets, workers, 16, config
    )
    seen = []
    result = sim.run(stream, batches, on_apply=lambda w, tau: seen.append((w, tau)))
    taus = [tau for _, tau in seen]
    n = len(batches[0])
    assert len(taus) == n == result["updates"]
    # Warm-up: every worker read at step 0; then a round robin.
    assert taus[:workers] == list(range(workers))
    assert taus[workers:] == [workers - 1] * (n - workers)
    assert [w for w, _ in seen] == [i % workers for i in range(n)]
    assert list(result["taus"]) == taus
    assert int(sim.optimizer.iterations.numpy()) == n


def test_varying_speeds_give_varying_staleness(stream):
    config = _config(speed_sigma=0.5, jitter_sigma=0.3)
    batches = simulate.stream_batches(stream, BATCH, config.seed)
    sim = simulate.Simulator(
        "adagrad", len(stream.fields), stream.buckets, 4, 16, config
    )
    taus = sim.run(stream, batches)["taus"]
    steady = taus[4:]
    assert len(set(steady.tolist())) > 1
    summary = simulate.staleness_summary(taus)
    assert summary["max"] == taus.max() and summary["p50"] <= summary["p99"]


def test_gradient_uses_the_parameters_read(stream):
    """A worker reads, another update changes the rows it read and a dense
    weight, then it applies: its gradient must be the one of the old
    values."""
    config = _config()
    x = tf.constant(stream.periods[0].x[:BATCH])
    y = tf.constant(stream.periods[0].y[:BATCH, None])
    sim = simulate.Simulator("swap", len(stream.fields), stream.buckets, 2, 16, config)
    rows = stream.periods[0].x[:BATCH] + np.arange(len(stream.fields)) * stream.buckets
    rows = np.unique(rows.ravel())

    def change(model):
        emb = model.get_layer("embeddings").embeddings
        emb.assign(
            tf.tensor_scatter_nd_add(emb, rows[:, None], tf.ones([len(rows), 8]))
        )
        dense = model.get_layer("dense_0").kernel
        dense.assign(dense * 2.0)

    inflight = sim.read(0, x, y)
    change(sim.model)  # what the workers ahead of this one did
    assert sim.apply(inflight) == 0  # nothing else was applied in between

    # Reference: the gradient of the old parameters, applied to the new ones.
    old, old_opt = _reference("swap", stream, config)
    grads = _gradients(old, x, y)
    change(old)
    old_opt.apply_gradients(zip(grads, old.trainable_variables, strict=True))
    # What a read at apply time would give instead.
    new, new_opt = _reference("swap", stream, config)
    change(new)
    grads = _gradients(new, x, y)
    new_opt.apply_gradients(zip(grads, new.trainable_variables, strict=True))

    pairs = zip(old.trainable_variables, sim.model.trainable_variables, strict=True)
    for ref, got in pairs:
        np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-6, atol=1e-7)
    emb = sim.model.get_layer("embeddings").embeddings.numpy()[rows]
    emb_new = new.get_layer("embeddings").embeddings.numpy()[rows]
    assert np.abs(emb - emb_new).max() > 1e-4


def test_local_bn_statistics_are_per_worker(stream):
    config = _config(speed_sigma=0.0, jitter_sigma=0.0)
    sim = simulate.Simulator(
        "swap+lbn", len(stream.fields), stream.buckets, 3, 16, config
    )
    x = stream.periods[0].x[: 2 * BATCH]
    y = stream.periods[0].y[: 2 * BATCH, None]
    sim.read(1, tf.constant(x[:BATCH]), tf.constant(y[:BATCH]))
    sim.read(1, tf.constant(x[BATCH:]), tf.constant(y[BATCH:]))
    assert sim.bn_steps.tolist() == [[0, 0], [2, 2], [0, 0]]
    assert np.all(sim.bn_stats[0] == sim.bn_stats[2])
    assert not np.allclose(sim.bn_stats[1], sim.bn_stats[0])
    # sync_period=1: worker 1 published its own statistics.
    bn = sim.model.get_layer("bn_0")
    np.testing.assert_array_equal(bn.moving_mean.numpy(), sim.bn_stats[1][:16])


def test_tiny_run_writes_files(tmp_path):
    out = tmp_path / "out"
    rc = simulate.main(
        [
            "--workers",
            "1,3",
            "--periods",
            "3",
            "--samples-per-period",
            "256",
            "--batch-size",
            "32",
            "--optimizers",
            "adagrad,swap+stale+lbn@1",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["workers"] == [1, 3]
    assert metrics["updates_per_run"] == 2 * (256 // 32)
    for name in ("adagrad", "swap+stale+lbn@1"):
        run = metrics["runs"][name]
        assert run["workers"] == [1, 3]
        assert len(run["auc"]) == 2 and all(0 <= a <= 1 for a in run["auc"])
        assert [len(p) for p in run["period_auc"]] == [2, 2]
        assert run["staleness"][0] == {"mean": 0.0, "p50": 0.0, "p99": 0.0, "max": 0}
        assert run["staleness"][1]["max"] >= 2
    assert os.path.getsize(out / "auc_vs_workers.png") > 1000


@pytest.mark.parametrize(
    "argv",
    [
        ["--optimizers", "sgd"],
        ["--optimizers", "swap@2"],
        ["--workers", "0"],
        ["--workers", "a"],
    ],
)
def test_bad_flags(argv, tmp_path):
    assert simulate.main([*argv, "--out", str(tmp_path), "--no-progress"]) == 2
