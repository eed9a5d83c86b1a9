"""A real local TensorFlow cluster: parameter servers and workers as separate
processes on 127.0.0.1, each a gRPC `tf.distribute.Server`.

```python
with LocalCluster(ps=1, workers=2) as cluster:
    strategy = tf.distribute.ParameterServerStrategy(cluster.resolver())
```

Ports are picked automatically (free ports on 127.0.0.1). Every child runs
in its own process group and ends when the cluster is closed, when the
parent exits (`atexit`, SIGTERM, SIGINT), and, should the parent be killed
outright, by itself: the kernel sends it SIGKILL (`PR_SET_PDEATHSIG`) and it
also polls its parent. `python -m tf_swap.cluster --spec JSON --job ps
--task 0` is the child's entry point.
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref

_LIVE: weakref.WeakSet[LocalCluster] = weakref.WeakSet()
_HANDLERS_INSTALLED = False


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (held open together
    while choosing, so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGKILL when the parent
    dies (Linux), and a new process group."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _close_all() -> None:
    for cluster in list(_LIVE):
        cluster.close()


def _install_handlers() -> None:
    """atexit, and SIGTERM/SIGINT handlers that close every live cluster
    before the default behaviour (main thread only); a handler the
    application installed before runs instead."""
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED:
        return
    _HANDLERS_INSTALLED = True
    atexit.register(_close_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)

        def handler(signum, frame, previous=previous):
            if callable(previous) and previous is not signal.default_int_handler:
                # The application's own handler: it decides when the clusters
                # end (a job may checkpoint first); atexit ends them anyway.
                previous(signum, frame)
                return
            _close_all()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)

        signal.signal(sig, handler)


class LocalCluster:
    """M parameter servers and N workers as child processes on 127.0.0.1.

    Args:
        ps: Number of parameter-server tasks, >= 1.
        workers: Number of worker tasks, >= 1.
        env: Extra environment for the children (they inherit this
            process's environment, with `PYTHONPATH` made to include the
            directory `tf_swap` is imported from).
        start_timeout: Seconds to wait for every task to listen.
        log_dir: If given, each task's stdout and stderr go to
            `log_dir/JOB-TASK.log` instead of this process's.
        jobs: Which jobs to start servers for (default both); e.g.
            `("ps",)` when the workers are between-graph replicas that run
            their own servers (the spec still names their ports).
    """

    def __init__(
        self,
        ps: int = 1,
        workers: int = 2,
        env: dict[str, str] | None = None,
        start_timeout: float = 60.0,
        jobs: tuple[str, ...] = ("ps", "worker"),
        log_dir: str | None = None,
    ):
        if ps < 1 or workers < 1:
            raise ValueError(f"need ps >= 1 and workers >= 1, got {ps}, {workers}")
        self.spec = self._new_spec(ps, workers)
        self._jobs = jobs
        self._env = dict(os.environ)
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        paths = [
            package_root,
            *filter(None, self._env.get("PYTHONPATH", "").split(":")),
        ]
        self._env["PYTHONPATH"] = ":".join(dict.fromkeys(paths))
        self._env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self._env.update(env or {})
        self._start_timeout = start_timeout
        self._log_dir = log_dir
        if log_dir is not None:
            os.makedirs(log_dir, exist_ok=True)
        self.processes: dict[tuple[str, int], subprocess.Popen] = {}
        _install_handlers()
        self._start_all()

    @staticmethod
    def _new_spec(ps: int, workers: int) -> dict[str, list[str]]:
        ports = free_ports(ps + workers)
        return {
            "ps": [f"127.0.0.1:{p}" for p in ports[:ps]],
            "worker": [f"127.0.0.1:{p}" for p in ports[ps:]],
        }

    def _start_all(self) -> None:
        _LIVE.add(self)
        try:
            for job in self._jobs:
                for task in range(len(self.spec[job])):
                    self.start_task(job, task, wait=False)
            for job in self._jobs:
                for task in range(len(self.spec[job])):
                    self._wait_listening(job, task)
        except BaseException:
            self.close()
            raise

    def restart(self) -> None:
        """Ends every task and starts the whole cluster again on new ports
        (`spec` changes). TensorFlow cannot reconnect a coordinator to a
        task restarted alone at its old address: the other tasks keep state
        from before, so a failed task means a new cluster."""
        self.close()
        self.processes = {}
        self.spec = self._new_spec(len(self.spec["ps"]), len(self.spec["worker"]))
        self._start_all()

    def start_task(self, job: str, task: int, wait: bool = True) -> subprocess.Popen:
        """Starts (or restarts, on the same port) one task's server."""
        old = self.processes.get((job, task))
        if old is not None and old.poll() is None:
            raise RuntimeError(f"/job:{job}/task:{task} is still running")
        log = None
        if self._log_dir is not None:
            log = open(os.path.join(self._log_dir, f"{job}-{task}.log"), "ab")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tf_swap.jobs.cluster",
                "--spec",
                json.dumps(self.spec),
                "--job",
                job,
                "--task",
                str(task),
                "--parent",
                str(os.getpid()),
            ],
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT if log is not None else None,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        if log is not None:
            log.close()  # the child holds its own descriptor
        self.processes[(job, task)] = process
        if wait:
            self._wait_listening(job, task)
        return process

    def _wait_listening(self, job: str, task: int) -> None:
        host, port = self.spec[job][task].rsplit(":", 1)
        deadline = time.monotonic() + self._start_timeout
        process = self.processes[(job, task)]
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"/job:{job}/task:{task} exited with {process.returncode}"
                )
            try:
                with socket.create_connection((host, int(port)), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"/job:{job}/task:{task} did not listen on {port}"
                    ) from None
                time.sleep(0.1)

    def kill_task(self, job: str, task: int) -> None:
        """Kills one task's process group at once (SIGKILL), as a crash."""
        process = self.processes[(job, task)]
        self._kill(process, signal.SIGKILL)
        process.wait()

    @staticmethod
    def _kill(process: subprocess.Popen, sig: int) -> None:
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes.values()]

    def resolver(self):
        """A `tf.distribute.cluster_resolver.SimpleClusterResolver` for a
        coordinator (this process, not itself a task)."""
        import tensorflow as tf

        return tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(self.spec), rpc_layer="grpc"
        )

    def close(self, timeout: float = 5.0) -> None:
        """Ends every child: SIGTERM to each process group, then SIGKILL.

        If this process's eager context is connected to the cluster (a
        `ParameterServerStrategy` given `resolver()`), every task is alive
        and no exception is propagating (work may still be in flight then),
        the context is first connected back to this process's own devices
        alone: the functions it traced for the cluster are then released
        here, not sent for removal to ended tasks at exit (one gRPC error
        per function and task). Call it after `ClusterCoordinator.join()`
        (or `fit`): a coordinator with steps in flight waits for its ended
        workers."""
        self._disconnect_this_process()
        for process in self.processes.values():
            self._kill(process, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._kill(process, signal.SIGKILL)
                process.wait()
        _LIVE.discard(self)

    def _disconnect_this_process(self) -> None:
        tf = sys.modules.get("tensorflow")
        if tf is None or not tf.executing_eagerly() or sys.exc_info()[0]:
            return
        if any(process.poll() is not None for process in self.processes.values()):
            # A dead task may be waited on by the context's update; the
            # errors at exit are then the truth.
            return
        devices = {device.name for device in tf.config.list_logical_devices()}
        if all(
            f"/job:{job}/replica:0/task:{task}/device:CPU:0" in devices
            for job in self._jobs
            for task in range(len(self.spec[job]))
        ):
            tf.config.experimental_connect_to_cluster(tf.train.ClusterSpec({}))

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def parse_spec(text: str) -> dict[str, list[str]]:
    """A cluster spec from JSON text or a JSON file: `{"ps": [...],
    "worker": [...]}`, or a `TF_CONFIG` value (`{"cluster": {...}, ...}`).

    Raises:
        ValueError: the text is neither, or the spec lacks PS or workers.
    """
    if os.path.isfile(text):
        with open(text) as f:
            text = f.read()
    elif not text.lstrip().startswith("{"):
        # Not JSON text: a file name, and no such file.
        raise ValueError(f"no such file: {text}")
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"the cluster spec is not JSON (nor a JSON file): {error}"
        ) from None
    if isinstance(spec, dict) and "cluster" in spec:
        spec = spec["cluster"]
    if not isinstance(spec, dict):
        raise ValueError('the cluster spec must be {"ps": [...], "worker": [...]}')
    for job in ("ps", "worker"):
        tasks = spec.get(job)
        if not (
            isinstance(tasks, list)
            and tasks
            and all(isinstance(t, str) and ":" in t for t in tasks)
        ):
            raise ValueError(
                f'the cluster spec needs "{job}": a list of "host:port" addresses'
            )
    return {job: list(spec[job]) for job in ("ps", "worker")}


class ExistingCluster:
    """A cluster whose tasks were started elsewhere (each with `python -m
    tf_swap.cluster --spec SPEC --job JOB --task I` on its machine): the
    job connects to it, and never starts or stops a task."""

    def __init__(self, spec: dict[str, list[str]]):
        self.spec = spec

    def resolver(self):
        """A `SimpleClusterResolver` for the coordinator (this process)."""
        import tensorflow as tf

        return tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(self.spec), rpc_layer="grpc"
        )

    def restart(self) -> None:
        raise RuntimeError(
            "a task of the cluster failed; its tasks run elsewhere: restart "
            "them and run the job again with --resume"
        )

    def close(self) -> None:
        """Nothing to end: the tasks are not this process's."""


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    """Runs one task's server until killed (or its parent goes away)."""
    parser = argparse.ArgumentParser(
        prog="python -m tf_swap.cluster",
        description="Runs one task (a TensorFlow gRPC server) of a cluster.",
    )
    parser.add_argument(
        "--spec",
        required=True,
        help='cluster spec: JSON {"ps": [...], "worker": [...]} or a JSON file',
    )
    parser.add_argument("--job", required=True)
    parser.add_argument("--task", type=int, required=True)
    parser.add_argument("--parent", type=int, default=None)
    args = parser.parse_args(argv)
    if args.parent is not None:
        threading.Thread(target=_watch_parent, args=(args.parent,), daemon=True).start()
    # The kernel's default action ends the task at once, whatever its
    # threads are doing; a Python handler would wait for the main thread to
    # leave TensorFlow's C++ (seconds while a loaded machine starts it).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)

    try:
        spec = parse_spec(args.spec)
    except ValueError as error:
        parser.error(str(error))
    if args.job not in spec or not 0 <= args.task < len(spec[args.job]):
        parser.error(f"/job:{args.job}/task:{args.task} is not in the spec")
    from tf_swap.jobs.quiet_tensorflow import import_tensorflow

    tf = import_tensorflow()
    from tf_swap.ops import load_library

    load_library()  # registers the ops in this process

    # Held by this frame, which never returns: the server lives until exit.
    _server = tf.distribute.Server(
        tf.train.ClusterSpec(spec),
        job_name=args.job,
        task_index=args.task,
        protocol="grpc",
        start=True,
    )
    # The server serves from its own threads; this one only waits.
    while True:
        signal.pause()


if __name__ == "__main__":
    raise SystemExit(main())
