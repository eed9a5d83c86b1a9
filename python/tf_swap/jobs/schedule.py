"""The event schedule of simulated asynchronous workers: which worker applies
which batch at which global step, and when each of its reads happens.

It does not depend on the model, so the simulator computes it ahead of
the model, a block of events at a time (`ScheduleStream`), and runs it
(`tf_swap.jobs.simulation`). Workers start at time 0, in turn
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
class Events:
    """Consecutive events of a schedule, from global step `start` on.

    Attributes:
        start: The global step of the first one.
        worker: The worker whose gradient each update applies.
        batch: The batch that gradient was computed on.
        t_read: The global step at which that batch was read.
        next: The batch the worker reads right after the update (at the
            following step), or -1 when the stream is used up.
    """

    start: int
    worker: np.ndarray
    batch: np.ndarray
    t_read: np.ndarray
    next: np.ndarray

    def __len__(self) -> int:
        return len(self.worker)

    @property
    def staleness(self) -> np.ndarray:
        """`tau` of each update: its global step minus `t_read`."""
        return self.start + np.arange(len(self.worker)) - self.t_read

    def __getitem__(self, rows: slice) -> Events:
        begin = rows.indices(len(self))[0]
        return Events(
            self.start + begin,
            self.worker[rows],
            self.batch[rows],
            self.t_read[rows],
            self.next[rows],
        )


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The events of one run over `n` batches with `W` workers, in memory.

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

    def replay(self) -> ScheduleReplay:
        """Its events, taken in order as a `ScheduleStream`'s are."""
        return ScheduleReplay(self)


class ScheduleReplay:
    """A `Schedule`'s events taken in order (`first`, `take`), as a
    simulation takes a `ScheduleStream`'s."""

    def __init__(self, schedule: Schedule):
        self._schedule, self._next = schedule, 0
        self.first = schedule.first
        self.batches = len(schedule.worker)

    def take(self, count: int) -> Events:
        """The next `count` events (fewer at the end)."""
        s, k = self._schedule, self._next
        rows = slice(k, min(k + count, self.batches))
        self._next = rows.stop
        return Events(k, s.worker[rows], s.batch[rows], s.t_read[rows], s.next[rows])


class ScheduleStream:
    """The schedule of `batches` batches on `workers` workers, computed as
    its events are taken (a pure function of its arguments: taken in any
    slices, the events are those of `make_schedule`). Its state is one
    heap entry per worker, whatever the number of batches.

    Attributes:
        first: `[min(W, n)]` the batch worker `w` reads at step 0.
        batches: `n`, the number of events.
        seconds_per_batch: `[W]` each worker's mean time per batch.
    """

    def __init__(
        self,
        batches: int,
        workers: int,
        speed_sigma: float = 0.5,
        jitter_sigma: float = 0.2,
        seed: int = 0,
    ):
        self._rng = np.random.default_rng([seed, workers])
        self._mean = (
            self._rng.lognormal(0.0, speed_sigma, workers)
            if speed_sigma > 0
            else np.ones(workers)
        )
        self._jitter = jitter_sigma
        self.batches = batches
        started = min(workers, batches)
        self.first = np.arange(started, dtype=np.int32)
        # (finish time, start order, worker, batch, step of the read)
        self._heap = [(self._duration(w), w, w, w, 0) for w in range(started)]
        heapq.heapify(self._heap)
        self._order = started
        self._upcoming = started
        self._k = 0
        # The mean of the log-normal jitter is exp(sigma^2 / 2).
        self.seconds_per_batch = self._mean * np.exp(jitter_sigma**2 / 2)

    def _duration(self, w: int) -> float:
        if self._jitter > 0:
            return float(self._mean[w] * self._rng.lognormal(0.0, self._jitter))
        return float(self._mean[w])

    def take(self, count: int) -> Events:
        """The next `count` events (fewer at the end)."""
        count = max(0, min(count, self.batches - self._k))
        worker = np.empty(count, np.int32)
        batch = np.empty(count, np.int32)
        t_read = np.empty(count, np.int64)
        following = np.full(count, -1, np.int32)
        heap, start = self._heap, self._k
        for j in range(count):
            now, _, w, b, read = heapq.heappop(heap)
            worker[j], batch[j], t_read[j] = w, b, read
            if self._upcoming < self.batches:
                following[j] = self._upcoming
                entry = (now + self._duration(w), self._order, w, self._upcoming)
                heapq.heappush(heap, (*entry, start + j + 1))
                self._order += 1
                self._upcoming += 1
        self._k += count
        return Events(start, worker, batch, t_read, following)


def make_schedule(
    batches: int,
    workers: int,
    speed_sigma: float = 0.5,
    jitter_sigma: float = 0.2,
    seed: int = 0,
) -> Schedule:
    """The schedule of `batches` batches on `workers` workers (a pure
    function of its arguments), all in memory."""
    stream = ScheduleStream(batches, workers, speed_sigma, jitter_sigma, seed)
    events = stream.take(batches)
    return Schedule(
        stream.first,
        events.worker,
        events.batch,
        events.t_read,
        events.next,
        stream.seconds_per_batch,
    )
