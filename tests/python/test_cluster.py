"""tf_swap.cluster.LocalCluster: real processes on 127.0.0.1, every child
ends (close, parent SIGTERM, parent SIGKILL), and the coordinator's recovery
when a worker process is killed mid-training."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tf_swap.jobs import data
from tf_swap.jobs.cluster import LocalCluster, free_ports
from tf_swap.jobs.cluster_run import run_on_cluster
from tf_swap.jobs.experiment import Config

ROOT = Path(__file__).resolve().parents[2]


def alive(pid):
    """True if `pid` runs and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_dead(pids, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.2)
    return [p for p in pids if alive(p)]


def test_free_ports_are_distinct():
    ports = free_ports(8)
    assert len(set(ports)) == 8 and all(p > 0 for p in ports)


def test_parent_killed_takes_its_children(tmp_path):
    """A coordinator killed by SIGTERM closes its cluster; one killed by
    SIGKILL has its children killed by the kernel (PR_SET_PDEATHSIG)."""
    script = textwrap.dedent(
        """
        import json, sys, time
        from tf_swap.jobs.cluster import LocalCluster
        cluster = LocalCluster(ps=1, workers=1)
        print(json.dumps(cluster.pids()), flush=True)
        time.sleep(600)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        parent = subprocess.Popen(
            [sys.executable, "-c", script],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            pids = json.loads(parent.stdout.readline())
            assert len(pids) == 2 and all(alive(p) for p in pids)
            parent.send_signal(sig)
            parent.wait(timeout=120)
            assert wait_dead(pids) == [], f"children left after {sig!r}"
        finally:
            if parent.poll() is None:
                os.killpg(parent.pid, signal.SIGKILL)
                parent.wait()


def test_a_task_exits_within_10_s_of_sigterm_or_sigint():
    with LocalCluster(ps=1, workers=1) as cluster:
        for (job, _), sig in zip(cluster.processes, (signal.SIGTERM, signal.SIGINT),
                                 strict=True):
            process = cluster.processes[(job, 0)]
            process.send_signal(sig)
            process.wait(timeout=10)


def test_killing_a_worker_neither_stops_training_nor_loses_updates():
    stream = data.synthetic_stream(periods=4, samples=4096, seed=2)
    config = Config(progress=False)
    killed = []
    with LocalCluster(ps=1, workers=2) as cluster:
        pids = cluster.pids()

        def on_step(variant, step):
            if step == 12 and not killed:
                cluster.kill_task("worker", 1)
                killed.append(step)

        metrics = run_on_cluster(
            stream, ["swap+stale+lbn"], config=config, on_step=on_step, cluster=cluster
        )
        assert killed == [12]
        run = metrics["runs"]["swap+stale+lbn"]
        # Every scheduled step ran (the coordinator re-ran the dead worker's
        # steps on the other one) and no applied update was lost: the
        # global step counts at least every step.
        assert run["steps"] == 3 * 16
        assert run["applied_steps"] >= run["steps"]
        assert min(run["auc"]) > 0.5 and run["auc"][-1] > 0.55
    assert wait_dead(pids) == []


def test_a_script_that_closes_its_cluster_exits_without_grpc_errors():
    """A user's script: tf_keras `fit` under `ParameterServerStrategy` on a
    `LocalCluster`, its model and functions alive until the interpreter
    exits, after `close()`. Nothing is sent to the ended tasks."""
    script = textwrap.dedent(
        """
        import numpy as np
        import tensorflow as tf
        import tf_keras
        from tf_swap.jobs.cluster import LocalCluster
        import tf_swap.tf_keras as tk

        with LocalCluster(ps=1, workers=2) as cluster:
            strategy = tf.distribute.ParameterServerStrategy(cluster.resolver())
            with strategy.scope():
                model = tf_keras.Sequential(
                    [tf_keras.Input((4,)), tf_keras.layers.Dense(1)]
                )
                model.compile(tk.AdagradSwap(0.1), "mse")
            x = np.ones((256, 4), np.float32)
            dataset = tf.data.Dataset.from_tensor_slices((x, x[:, :1])).batch(32)
            model.fit(dataset.repeat(), epochs=2, steps_per_epoch=4, verbose=0)
        print([d.name for d in tf.config.list_logical_devices()])
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"), TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Failed to remove function remotely" not in done.stderr
    assert done.stdout.split() == ["['/device:CPU:0']"]
