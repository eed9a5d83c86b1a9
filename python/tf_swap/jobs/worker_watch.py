"""Watching a cluster's worker tasks while a variant trains: a dead worker
is started again at its address when the job owns it (a `LocalCluster`),
and counted when it does not (an `ExistingCluster`); with no worker left
the training is interrupted.

Why a dead worker must come back: TensorFlow's `ClusterCoordinator` moves
the steps of a dead worker to the others, and its preemption handler waits
for the worker to return at the address in the cluster spec, holding a lock
that the coordinator's shutdown takes: without the worker, training finishes
and the process never exits. Started again at its port, the handler
reconnects it (and rebuilds its per-worker resources), and the job goes on
with every worker.
"""

from __future__ import annotations

import _thread
import socket
import threading

POLL_SECONDS = 0.5


def _listening(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False


class WorkerWatch:
    """A thread that checks every worker of `cluster` twice a second.

    Args:
        cluster: A `LocalCluster` (dead workers are started again, while
            `restarts_left()` is positive) or an `ExistingCluster` (dead
            workers are only counted; their tasks are not this job's).
        restarts_left: How many more task restarts the variant may make.
        on_restart: Called with the worker's index after each restart.
        report: Receives one line per lost worker.
        step: Returns the number of steps scheduled so far (for reports).
        known_dead: Workers an earlier watch of the job already lost (not
            reported again).
    """

    def __init__(self, cluster, restarts_left, on_restart, report, step,
                 known_dead=()):
        self._cluster = cluster
        self._restarts_left = restarts_left
        self._on_restart = on_restart
        self._report = report
        self._step = step
        self._owned = hasattr(cluster, "start_task")
        self._workers = len(cluster.spec["worker"])
        self._dead: set[int] = set(known_dead)
        self.lost: list[dict] = []  # one entry per worker death
        self.no_worker_left = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="tf_swap-worker-watch", daemon=True
        )

    def __enter__(self) -> WorkerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def owned(self) -> bool:
        """Whether the job started the cluster's tasks (and may restart them)."""
        return self._owned

    @property
    def dead_workers(self) -> set[int]:
        """The workers lost and not started again."""
        return set(self._dead)

    @property
    def workers_down(self) -> int:
        """Workers dead now and not started again."""
        return len(self._dead)

    def _alive(self, task: int, job: str = "worker") -> bool:
        if self._owned:
            return self._cluster.processes[(job, task)].poll() is None
        return _listening(self._cluster.spec[job][task])

    def dead_tasks(self) -> list[tuple[str, int]]:
        """Every task of the cluster that is down now, `(job, task)`."""
        return [
            (job, task)
            for job in ("ps", "worker")
            for task in range(len(self._cluster.spec[job]))
            if not self._alive(task, job)
        ]

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            for task in range(self._workers):
                if task in self._dead and not self._alive(task):
                    continue
                if task in self._dead:  # back (started by its owner)
                    self._dead.discard(task)
                    continue
                if self._alive(task):
                    continue
                self._lose(task)
            if len(self._dead) == self._workers and not self.no_worker_left:
                self.no_worker_left = True
                _thread.interrupt_main()  # the coordinator would wait forever

    def _lose(self, task: int) -> None:
        step = self._step()
        restart = self._owned and self._restarts_left() > 0
        if restart:
            # The address the coordinator waits at (see the module
            # docstring); its state (worker-local statistics) is rebuilt.
            self._cluster.start_task("worker", task)
            self._on_restart(task)
            outcome = "started it again at its address"
        else:
            self._dead.add(task)
            outcome = "continuing with the other workers"
        self.lost.append({"worker": task, "step": step, "restarted": restart})
        self._report(
            f"worker {task} was lost near step {step}; {outcome}"
        )

