"""The event schedule of simulated asynchronous workers: which worker applies
which batch at which global step, and when each of its reads happens.

It does not depend on the model, so the simulator computes it first and
then runs it (`tf_swap.jobs.simulation`). Workers start at time 0, in turn
(worker 0 first), each reading the next batch of the stream; a batch takes
worker `i` a time `m_i * j`, `m_i` drawn once per worker from a log-normal
of sigma `speed_sigma`, `j` per batch from a log-normal of sigma
`jitter_sigma` (both 0: every batch takes 1, a round robin). The gradient
that arrives first (ties: the earlier start) is applied next, moving the
global step from `k` to `k + 1`; its worker reads its next batch at once,
at step `k + 1`. With equal speeds the staleness settles at `W - 1`.
"""

from __future__ import annotations

import dataclasses
import heapq

import numpy as np


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The events of one run over `n` batches with `W` workers.

    Attributes:
        first: `[min(W, n)]` the batch worker `w` reads at step 0.
        worker: `[n]` the worker whose gradient update `k` applies.
        batch: `[n]` the batch that gradient was computed on.
        t_read: `[n]` the global step at which that batch was read.
        next: `[n]` the batch the worker reads right after update `k`
            (at step `k + 1`), or -1 when the stream is used up.
        seconds_per_batch: `[W]` each worker's mean time per batch (the
            unit: a batch at speed 1).
    """

    first: np.ndarray
    worker: np.ndarray
    batch: np.ndarray
    t_read: np.ndarray
    next: np.ndarray
    seconds_per_batch: np.ndarray

    @property
    def staleness(self) -> np.ndarray:
        """`tau` of each update: `k - t_read[k]`."""
        return np.arange(len(self.worker)) - self.t_read


def make_schedule(
    batches: int,
    workers: int,
    speed_sigma: float = 0.5,
    jitter_sigma: float = 0.2,
    seed: int = 0,
) -> Schedule:
    """The schedule of `batches` batches on `workers` workers (a pure
    function of its arguments)."""
    rng = np.random.default_rng([seed, workers])
    mean = (
        rng.lognormal(0.0, speed_sigma, workers)
        if speed_sigma > 0
        else np.ones(workers)
    )

    def duration(w: int) -> float:
        if jitter_sigma > 0:
            return float(mean[w] * rng.lognormal(0.0, jitter_sigma))
        return float(mean[w])

    started = min(workers, batches)
    first = np.arange(started, dtype=np.int32)
    # (finish time, start order, worker, batch, step of the read)
    heap = [(duration(w), w, w, w, 0) for w in range(started)]
    heapq.heapify(heap)
    order = started
    worker = np.empty(batches, np.int32)
    batch = np.empty(batches, np.int32)
    t_read = np.empty(batches, np.int64)
    following = np.full(batches, -1, np.int32)
    upcoming = started
    for k in range(batches):
        now, _, w, b, read = heapq.heappop(heap)
        worker[k], batch[k], t_read[k] = w, b, read
        if upcoming < batches:
            following[k] = upcoming
            heapq.heappush(heap, (now + duration(w), order, w, upcoming, k + 1))
            order += 1
            upcoming += 1
    # The mean of the log-normal jitter is exp(sigma^2 / 2).
    seconds = mean * np.exp(jitter_sigma**2 / 2)
    return Schedule(first, worker, batch, t_read, following, seconds)
