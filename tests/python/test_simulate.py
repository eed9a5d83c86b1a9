"""The asynchronous parameter-server simulator (`tf_swap.simulate`).

The engine runs a precomputed schedule inside `tf.while_loop`s with a ring
of in-flight gradients; it is checked against plain eager references: one
worker is sequential training bit for bit, and any schedule equals an
event-by-event replay in Python (each worker's gradient taken on the
parameters at its read, its Local BN statistics its own). The schedule is a
pure function whose staleness follows the worker speeds.
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from event_files import summaries

from tf_swap.jobs import data, simulate
from tf_swap.jobs.experiment import make_model, make_optimizer, stream_batches
from tf_swap.jobs.schedule import make_schedule
from tf_swap.jobs.simulation import SimConfig, Simulation
from tf_swap.keras import LocalBatchNormalization

BATCH = 32


@pytest.fixture(scope="module")
def stream():
    return data.synthetic_stream(periods=3, samples=512, buckets=1 << 10, seed=1)


@pytest.fixture(scope="module")
def batches(stream):
    return stream_batches(stream, BATCH, 0)


def _config(**kwargs):
    return SimConfig(batch_size=BATCH, hidden=(16, 8), **kwargs)


def _steps_per_period(stream):
    return len(stream.periods[0].y) // BATCH


def _simulated(variant, stream, schedule, config):
    workers = len(schedule.first)
    sim = Simulation(variant, stream, workers, _steps_per_period(stream), config)
    result = sim.run(stream, schedule.replay())
    return sim, result


def _start(variant, stream, config):
    model = make_model(variant, stream, config)
    optimizer = make_optimizer(variant, config, _steps_per_period(stream), model)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def _gradient_fn(model):
    loss_fn = keras.losses.BinaryCrossentropy()

    @tf.function
    def gradients(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return tape.gradient(loss, model.trainable_variables)

    return gradients


def _replay(
    variant, stream, batches, schedule, config, at_apply=False, shared_bn=False
):
    """The schedule replayed event by event in Python: worker `w`'s gradient
    is taken when it reads (or, `at_apply`, when it applies: the wrong
    semantics, to show the comparison can fail), with its own Local BN
    statistics swapped into the layers (unless `shared_bn`)."""
    model, optimizer = _start(variant, stream, config)
    gradients = _gradient_fn(model)
    layers = [ly for ly in model.layers if isinstance(ly, LocalBatchNormalization)]
    local = [
        v for ly in layers for v in (ly.local_mean, ly.local_variance, ly.local_steps)
    ]
    initial = [v.numpy() for v in local]
    state = {}
    pending = {}
    xs, ys, _ = batches

    def read(w, b):
        if at_apply:
            pending[w] = b
            return
        if not shared_bn:
            for v, value in zip(local, state.get(w, initial), strict=True):
                v.assign(value)
        pending[w] = gradients(tf.constant(xs[b]), tf.constant(ys[b]))
        state[w] = [v.numpy() for v in local]

    for w, b in enumerate(schedule.first):
        read(w, int(b))
    for k, w in enumerate(schedule.worker):
        grads = pending.pop(int(w))
        if at_apply:
            grads = gradients(tf.constant(xs[grads]), tf.constant(ys[grads]))
        pairs = zip(grads, model.trainable_variables, strict=True)
        optimizer.apply_gradients(pairs, read_step=int(schedule.t_read[k]))
        if schedule.next[k] >= 0:
            read(int(w), int(schedule.next[k]))
    return model


def _max_difference(a, b):
    return max(
        float(np.max(np.abs(x.numpy() - y.numpy())))
        for x, y in zip(a.weights, b.weights, strict=True)
    )


@pytest.mark.parametrize("variant", ["adagrad", "swap+stale+lbn", "ftrl-swap"])
def test_one_worker_is_sequential_training(stream, batches, variant):
    config = _config()
    schedule = make_schedule(len(batches[0]), 1)
    sim, result = _simulated(variant, stream, schedule, config)
    assert result["staleness"].tolist() == [len(batches[0])]

    model, optimizer = _start(variant, stream, config)
    gradients = _gradient_fn(model)
    for x, y in zip(batches[0], batches[1], strict=True):
        grads = gradients(tf.constant(x), tf.constant(y))
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    assert int(optimizer.iterations.numpy()) == len(batches[0])
    assert [w.path for w in model.weights] == [w.path for w in sim.model.weights]
    for ref, got in zip(model.weights, sim.model.weights, strict=True):
        np.testing.assert_array_equal(got.numpy(), ref.numpy(), err_msg=ref.path)


@pytest.mark.parametrize("variant", ["swap+stale", "swap+stale+lbn", "ftrl-swap+stale"])
def test_engine_equals_the_event_replay(stream, batches, variant):
    config = _config(speed_sigma=0.5, jitter_sigma=0.3)
    schedule = make_schedule(len(batches[0]), 5, 0.5, 0.3, seed=3)
    assert len(set(schedule.staleness.tolist())) > 2
    sim, result = _simulated(variant, stream, schedule, config)
    assert result["updates"] == len(batches[0])
    reference = _replay(variant, stream, batches, schedule, config)
    for ref, got in zip(reference.weights, sim.model.weights, strict=True):
        np.testing.assert_allclose(
            got.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6, err_msg=ref.path
        )
    # The comparison tells the semantics apart: gradients taken at apply
    # time, or Local BN statistics shared by the workers, end elsewhere.
    wrong = _replay(variant, stream, batches, schedule, config, at_apply=True)
    assert _max_difference(wrong, sim.model) > 1e-4
    if variant.endswith("+lbn"):
        shared = _replay(variant, stream, batches, schedule, config, shared_bn=True)
        assert _max_difference(shared, sim.model) > 1e-4


@pytest.mark.parametrize("workers", [2, 5])
def test_equal_speeds_give_staleness_workers_minus_one(workers):
    n = 40
    schedule = make_schedule(n, workers, speed_sigma=0.0, jitter_sigma=0.0)
    taus = schedule.staleness.tolist()
    # Warm-up: every worker read at step 0; then a round robin.
    assert taus[:workers] == list(range(workers))
    assert taus[workers:] == [workers - 1] * (n - workers)
    assert schedule.worker.tolist() == [i % workers for i in range(n)]
    assert schedule.batch.tolist() == list(range(n))
    assert schedule.next.tolist() == [*range(workers, n), *[-1] * workers]


def test_schedule_is_a_pure_function():
    a = make_schedule(500, 7, 0.5, 0.2, seed=4)
    b = make_schedule(500, 7, 0.5, 0.2, seed=4)
    c = make_schedule(500, 7, 0.5, 0.2, seed=5)
    for name in ("first", "worker", "batch", "t_read", "next", "seconds_per_batch"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.worker, c.worker)
    # Every batch is applied once, after it was read.
    assert sorted(a.batch.tolist()) == list(range(500))
    assert np.all(a.staleness >= 0)


def test_staleness_follows_the_worker_speeds():
    """A worker of mean batch time `m_i` applies `1 / m_i` updates per unit
    of time; during one of its batches the others apply `m_i * sum_j 1 /
    m_j - 1` updates: its mean staleness. Over all updates the mean is
    `W - 1` (Little's law), whatever the speeds."""
    workers, n = 8, 40_000
    schedule = make_schedule(n, workers, speed_sigma=0.6, jitter_sigma=0.2, seed=2)
    m = schedule.seconds_per_batch
    assert m.max() / m.min() > 2
    taus = schedule.staleness[workers:]
    who = schedule.worker[workers:]
    assert abs(taus.mean() - (workers - 1)) < 0.05 * workers
    expected = m * np.sum(1.0 / m) - 1
    measured = np.array([taus[who == w].mean() for w in range(workers)])
    np.testing.assert_allclose(measured, expected, rtol=0.05)
    counts = np.bincount(who, minlength=workers)
    np.testing.assert_allclose(
        counts / counts.sum(), (1 / m) / np.sum(1 / m), rtol=0.05
    )


def test_tiny_run_writes_files(tmp_path, capsys):
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
            "adagrad,swap+stale+lbn@1,ftrl-swap",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["workers"] == [1, 3]
    assert metrics["updates_per_run"] == 2 * (256 // 32)
    assert metrics["seconds_per_update"] > 0
    for name in ("adagrad", "swap+stale+lbn@1"):
        run = metrics["runs"][name]
        assert run["workers"] == [1, 3]
        assert len(run["auc"]) == 2 and all(0 <= a <= 1 for a in run["auc"])
        assert [len(p) for p in run["period_auc"]] == [2, 2]
        assert run["staleness"][0] == {"mean": 0.0, "p50": 0.0, "p99": 0.0, "max": 0}
        assert run["staleness"][1]["max"] >= 2
    # GAUC beside AUC (the synthetic stream has users), per W.
    run = metrics["runs"]["adagrad"]
    assert [len(p) for p in run["period_gauc"]] == [2, 2]
    np.testing.assert_allclose(
        run["mean_gauc"], np.mean(run["seed_mean_gauc"], axis=1)
    )
    # Each reported run's periods in TensorBoard: the AUCs of metrics.json.
    events = summaries(out / "tensorboard" / "adagrad" / "W=3" / "seed_0")
    assert list(events["auc"]) == [2, 3]
    np.testing.assert_allclose(
        list(events["auc"].values()), run["seed_period_auc"][1][0], rtol=1e-6
    )
    np.testing.assert_allclose(
        list(events["gauc"].values()), run["seed_period_gauc"][1][0], rtol=1e-6
    )
    # 8 updates a period; the first evaluation comes after those of period 1.
    counts = [h[:, 2].sum() for h in events["staleness"].values()]
    assert sum(counts) == metrics["updates_per_run"]
    # FTRL-SWAP on the wide part: L1 makes some of its weights exactly 0.
    assert metrics["runs"]["adagrad"]["wide_zero_fraction"] == [0.0, 0.0]
    assert all(f > 0 for f in metrics["runs"]["ftrl-swap"]["wide_zero_fraction"])
    assert os.path.getsize(out / "auc_vs_workers.png") > 1000
    assert "Mean GAUC" in capsys.readouterr().out


def test_dynamic_tables_count_what_they_store_admit_and_evict(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--workers", "1,3", "--periods", "4", "--samples-per-period", "256",
            "--batch-size", "32", "--optimizers", "swap+stale+lbn,ftrl-swap",
            "--embedding", "dynamic", "--min-count", "2", "--steps-to-live", "6",
            "--out", str(out), "--no-progress"]
    assert simulate.main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["embedding"] == "dynamic"
    for run in metrics["runs"].values():
        for tables in run["tables"]:  # per W
            entries = np.asarray(tables["entries"])
            change = np.cumsum(np.subtract(tables["admitted"], tables["evicted"]))
            np.testing.assert_array_equal(entries, change)
            # 8 steps a period, 6 to live: ids of an earlier period go.
            assert all(e > 0 for e in tables["evicted"][1:])
            assert len(entries) == 3 and entries[-1] > 0
    assert "stored / admitted / evicted" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["--optimizers", "sgd"],
        ["--optimizers", "swap@2"],
        ["--workers", "0"],
        ["--workers", "a"],
        ["--speed-sigma", "-1"],
        ["--embedding", "sparse"],
        ["--min-count", "2"],  # needs --embedding dynamic
        ["--embedding", "dynamic", "--min-count", "0"],
        ["--embedding", "dynamic", "--steps-to-live", "-1"],
    ],
)
def test_bad_flags(argv, tmp_path):
    assert simulate.main([*argv, "--out", str(tmp_path), "--no-progress"]) == 2
