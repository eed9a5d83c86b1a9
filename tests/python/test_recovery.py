"""`tf_swap.train` when things go wrong: a parameter server dies mid-run, a
run is stopped and resumed, a cluster was started elsewhere, the output is
read by a user. Runs in the cluster tests' own pytest process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tf_swap.jobs import data, train
from tf_swap.jobs.cluster import LocalCluster
from tf_swap.jobs.cluster_run import run_on_cluster
from tf_swap.jobs.cluster_training import Checkpointing, TrainingFailed
from tf_swap.jobs.experiment import Config

ROOT = Path(__file__).resolve().parents[2]
BATCH = 256


def small_stream(periods=4):
    return data.load_for_job("synthetic", periods, 0, 2048)


def config(**kwargs):
    # Local BN publishing every step: a worker's statistics restart exactly
    # from the shared ones (README, "Checkpoints and recovery").
    kwargs.setdefault("sync_period", 1)
    return Config(batch_size=BATCH, progress=False, **kwargs)


def checkpoint_values(directory):
    """Every variable of the latest checkpoint in `directory`, by key."""
    path = tf.train.latest_checkpoint(directory)
    reader = tf.train.load_checkpoint(path)
    return {
        key: reader.get_tensor(key)
        for key in reader.get_variable_to_shape_map()
        if "OBJECT_GRAPH" not in key
    }


def test_a_killed_parameter_server_is_recovered_from_the_checkpoint(tmp_path):
    stream = small_stream()
    every = 3
    killed = []
    with LocalCluster(ps=1, workers=2, log_dir=str(tmp_path / "logs")) as cluster:

        def kill_ps(variant, step):
            if step == 10 and not killed:
                killed.append(step)
                cluster.kill_task("ps", 0)

        metrics = run_on_cluster(
            stream,
            ["swap+stale+lbn"],
            cluster=cluster,
            config=config(),
            on_step=kill_ps,
            checkpointing=Checkpointing(
                directory=str(tmp_path / "ckpt"), every=every
            ),
        )
    run = metrics["runs"]["swap+stale+lbn"]
    assert killed == [10]
    assert run["restarts"] == 1
    assert 0 < run["redone_steps"] <= every
    assert len(run["auc"]) == 3  # every period trained and evaluated
    assert run["steps"] == 3 * (2048 // BATCH)
    assert run["applied_steps"] == run["steps"]  # restored count + the rest
    assert min(run["auc"]) > 0.5


def test_without_checkpoints_a_dead_ps_fails_in_one_line(tmp_path):
    stream = small_stream(3)
    with LocalCluster(ps=1, workers=1) as cluster:

        def kill_ps(variant, step):
            if step == 3:
                cluster.kill_task("ps", 0)

        with pytest.raises(TrainingFailed, match="--checkpoint-dir"):
            run_on_cluster(
                stream, ["swap"], cluster=cluster, config=config(), on_step=kill_ps
            )


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def one_worker_cluster():
    """One cluster for the stop-and-resume runs and the `--cluster-spec` job:
    a run's state lives in its checkpoint and its own variables, not in the
    tasks."""
    with LocalCluster(ps=1, workers=1) as cluster:
        yield cluster


@pytest.mark.parametrize("variant", ["adagrad", "swap+stale+lbn"])
def test_stopped_and_resumed_equals_uninterrupted_bit_for_bit(
    tmp_path, variant, one_worker_cluster
):
    stream = small_stream()
    every = 4

    def run(directory, on_step=None, resume=False):
        return run_on_cluster(
            stream,
            [variant],
            cluster=one_worker_cluster,
            config=config(),
            on_step=on_step,
            checkpointing=Checkpointing(
                directory=str(directory), every=every, resume=resume
            ),
        )

    whole = run(tmp_path / "whole")

    def stop(_, step):
        if step == 13:  # after the checkpoint of step 12, before that of 16
            raise Stop

    with pytest.raises(Stop):
        run(tmp_path / "stopped", on_step=stop)
    resumed = run(tmp_path / "stopped", resume=True)
    assert resumed["runs"][variant]["auc"] == whole["runs"][variant]["auc"]
    want = checkpoint_values(tmp_path / "whole" / variant)
    got = checkpoint_values(tmp_path / "stopped" / variant)
    assert set(got) == set(want)
    # The optimizer's state is there: iterations, accumulators (and, for
    # SWAP, the int64 powers), not only the model.
    optimizer = [k for k in want if k.startswith("optimizer/")]
    assert len(optimizer) > 3, sorted(want)
    if variant != "adagrad":
        assert any(want[k].dtype == np.int64 and want[k].ndim == 1
                   for k in optimizer)
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_cluster_spec_trains_on_a_cluster_started_elsewhere(
    tmp_path, one_worker_cluster
):
    cluster = one_worker_cluster  # started by this process, not by the job
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(cluster.spec))
    code = train.main([
        "--cluster-spec", str(spec), "--periods", "3",
        "--samples-per-period", "1024", "--optimizers", "swap", "--seeds", "1",
        "--out", str(tmp_path / "out"), "--no-progress",
    ])
    assert code == 0
    # The job never ends the tasks it did not start.
    assert all(p.poll() is None for p in cluster.processes.values())
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["workers"] == 1 and len(metrics["runs"]["swap"]["auc"]) == 2


def run_job(*flags, env=None, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "tf_swap.train", *flags],
        env=dict(os.environ, PYTHONPATH=str(ROOT / "python"), **(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


NOISE = ("E0000", "W0000", "I0000", "Error", "error", "Traceback", "WARNING",
         "oneDNN", "cuda", "GRPC")


def test_a_successful_run_prints_no_error_lines_and_no_banners(tmp_path):
    out = tmp_path / "out"
    result = run_job("--periods", "3", "--samples-per-period", "2048",
                     "--seeds", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    for stream_text in (result.stdout, result.stderr):
        for line in stream_text.replace("\r", "\n").splitlines():
            assert not any(word in line for word in NOISE), line
    assert "| period |" in result.stdout and "wrote" in result.stdout
    # The tasks' and this process's logs are kept, out of the way.
    logs = sorted(p.name for p in (out / "logs").iterdir())
    assert logs == ["ps-0.log", "train.log", "worker-0.log", "worker-1.log"]
