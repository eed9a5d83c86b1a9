"""`python -m tf_swap.train` as a user runs it, when a worker task dies
mid-run (SIGKILL) on the cluster the job starts and on one started
elsewhere, and when the job itself is given SIGTERM: it never hangs, and
its exit code, outputs and report say what happened."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tf_swap.jobs.cluster import LocalCluster

ROOT = Path(__file__).resolve().parents[2]
VARIANT = "swap+stale+lbn"
# 6 periods of 16 steps; a checkpoint every 4 steps.
FLAGS = ["--periods", "7", "--samples-per-period", "4096", "--seeds", "1",
         "--optimizers", VARIANT, "--no-progress"]


def start_job(*flags):
    return subprocess.Popen(
        [sys.executable, "-m", "tf_swap.train", *FLAGS, *flags],
        env=dict(os.environ, PYTHONPATH=str(ROOT / "python")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, job, seconds=240):
    """Waits until the job has written `path` (it is training by then)."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert job.poll() is None, job.communicate()
        assert time.monotonic() < deadline, f"no {path}"
        time.sleep(0.1)


def worker_pids(job_pid: int, task: int) -> list[int]:
    """The processes of worker task `task` that `job_pid` started."""
    pids = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().decode().split("\0")
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if parent == job_pid and "tf_swap.jobs.cluster" in argv and argv[
            argv.index("--job") + 1 : argv.index("--task") + 2
        ] == ["worker", "--task", str(task)]:
            pids.append(int(entry))
    return pids


def finish(job, seconds=240):
    """The job's (exit code, stdout, stderr, seconds it took to exit)."""
    started = time.monotonic()
    try:
        out, err = job.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        job.kill()
        out, err = job.communicate()
        pytest.fail(f"the job did not exit within {seconds} s: {out[-2000:]}")
    return job.returncode, out, err, time.monotonic() - started


def test_a_killed_worker_of_the_local_cluster_is_started_again(tmp_path):
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    job = start_job("--out", str(out), "--checkpoint-dir", str(ckpt))
    wait_for(ckpt / VARIANT / "progress.json", job)
    (pid,) = worker_pids(job.pid, 1)
    os.kill(pid, signal.SIGKILL)
    code, stdout, stderr, _ = finish(job)
    assert code == 0, stderr[-2000:]
    # Started again alone at its address (when the coordinator lets the
    # other workers go on), or with the cluster, from the checkpoint (when
    # the coordinator raises the loss as a failed step).
    assert "worker 1 was lost" in stdout, stdout
    run = json.loads((out / "metrics.json").read_text())["runs"][VARIANT]
    assert [(lost["worker"], lost["restarted"]) for lost in run["lost_workers"]] == [
        (1, True)]
    assert run["restarts"] == 1 and run["workers_down"] == 0
    assert len(run["auc"]) == 6 and run["steps"] == 6 * 16
    # Every step applied once, or twice if TensorFlow ran it again.
    assert run["applied_steps"] == run["steps"] + run["retried_steps"]
    assert (out / "saved_model" / VARIANT / "saved_model.pb").exists()


def test_a_killed_worker_of_an_existing_cluster_leaves_the_others_training(
    tmp_path,
):
    out = tmp_path / "out"
    with LocalCluster(ps=1, workers=2, log_dir=str(tmp_path / "tasks")) as cluster:
        job = start_job("--out", str(out), "--cluster-spec",
                        json.dumps(cluster.spec), "--checkpoint-dir",
                        str(tmp_path / "ckpt"))
        wait_for(tmp_path / "ckpt" / VARIANT / "progress.json", job)
        cluster.kill_task("worker", 1)
        killed = time.monotonic()
        code, stdout, stderr, _ = finish(job)
        exited_after = time.monotonic() - killed
        # The job ends none of the tasks it did not start.
        assert cluster.processes[("ps", 0)].poll() is None
        assert cluster.processes[("worker", 0)].poll() is None
    assert code == 0, stderr[-2000:]
    assert "worker 1 was lost" in stdout and "other workers" in stdout
    run = json.loads((out / "metrics.json").read_text())["runs"][VARIANT]
    assert [(lost["worker"], lost["restarted"]) for lost in run["lost_workers"]] == [
        (1, False)]
    assert run["workers_down"] == 1 and len(run["auc"]) == 6
    # Its coordinator would wait for the lost worker at exit: it does not.
    assert exited_after < run["seconds"] + 60


def test_sigterm_checkpoints_ends_the_tasks_and_exits_non_zero(tmp_path):
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    job = start_job("--out", str(out), "--checkpoint-dir", str(ckpt))
    progress = ckpt / VARIANT / "progress.json"
    wait_for(progress, job)
    tasks = worker_pids(job.pid, 0) + worker_pids(job.pid, 1)
    first = json.loads(progress.read_text())["steps"]
    job.send_signal(signal.SIGTERM)
    code, stdout, stderr, seconds = finish(job, seconds=60)
    assert code == 128 + signal.SIGTERM, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "terminated" in lines[0], stderr
    assert "checkpointed" in lines[0] and str(ckpt) in lines[0]
    # The checkpoint holds the steps scheduled when the signal came.
    saved = json.loads(progress.read_text())["steps"]
    assert saved >= first and f"at step {saved} " in lines[0], (saved, lines)
    assert (ckpt / VARIANT / f"ckpt-{saved}.index").exists()
    assert not (out / "metrics.json").exists()
    assert not any(running(pid) for pid in tasks)  # the job ended its tasks


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
