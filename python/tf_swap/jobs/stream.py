"""A stream's types: its `Period`s, the `Periods` sequence that holds them
and reads them chunk by chunk, and the `Stream`.

A job reads a period three ways: whole (`periods[d]`, a `Period`), as
chunks of at most `CHUNK_SAMPLES` samples (`periods.chunks(d)`, how the
simulator evaluates one) and as shuffled training batches
(`periods.batches(d, ...)`). A stream loaded from a file holds its periods
(`Periods`); the synthetic one draws them as they are read
(`tf_swap.jobs.synthetic.SyntheticPeriods`), so the memory a simulation
needs does not grow with the period's length.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

# The largest block of samples a streamed period is drawn, shuffled and
# evaluated in (about 35 MB of draws): a period up to this long is read as
# a whole, as it was before periods streamed.
CHUNK_SAMPLES = 1 << 18


@dataclasses.dataclass
class Period:
    """One sampling period: features `x[n, F]` (int32 buckets, or int64 raw
    ids), clicks `y[n]` (float32) and, when known, true click probabilities
    `p[n]` and each impression's user `users[n]` (int64, unhashed)."""

    x: np.ndarray
    y: np.ndarray
    p: np.ndarray | None = None
    users: np.ndarray | None = None

    def __getitem__(self, rows) -> Period:
        """The samples `rows` (a slice or an index array) of the period."""
        return Period(
            self.x[rows],
            self.y[rows],
            None if self.p is None else self.p[rows],
            None if self.users is None else self.users[rows],
        )

    def __len__(self) -> int:
        return len(self.y)


def concatenate(parts: list[Period]) -> Period:
    """One period of `parts`' samples in order."""

    def joined(field):
        values = [getattr(p, field) for p in parts]
        return None if values[0] is None else np.concatenate(values)

    return Period(*(joined(f) for f in ("x", "y", "p", "users")))


def shuffled_batches(
    chunks, batch_size: int, seed: int, index: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The full batches `(x[B, F], y[B, 1])` of period `index` given as its
    chunks: each chunk in its own seeded order (the first chunk's order
    depends only on `(seed, index)`, later ones' on `(seed, index, chunk)`,
    so a period of one chunk is shuffled as a whole), the chunks one after
    the other; the period's last `n mod B` samples are dropped."""
    carry: Period | None = None
    for c, chunk in enumerate(chunks):
        key = [seed, index] if c == 0 else [seed, index, c]
        shuffled = chunk[np.random.default_rng(key).permutation(len(chunk))]
        if carry is not None:
            shuffled = concatenate([carry, shuffled])
        full = len(shuffled) - len(shuffled) % batch_size
        for start in range(0, full, batch_size):
            rows = slice(start, start + batch_size)
            yield shuffled.x[rows], shuffled.y[rows, None]
        carry = shuffled[full:]


def evaluation_chunks(periods, d: int, limit: int = 0) -> Iterator[Period]:
    """Period `d`'s samples a job evaluates on, chunk by chunk: all of
    them, or with a `limit` below its size every `ceil(n / limit)`-th (at
    most `limit`, spread evenly over the period), so an evaluation's memory
    is bounded too."""
    n = periods.samples(d)
    stride = -(-n // limit) if 0 < limit < n else 1
    offset = 0
    for chunk in periods.chunks(d):
        # Index arrays copy: a strided view would keep the chunk alive.
        rows = np.arange((-offset) % stride, len(chunk), stride)
        yield chunk[rows] if stride > 1 else chunk
        offset += len(chunk)


class Periods(Sequence):
    """The periods of a stream held in memory (a file's)."""

    def __init__(self, periods: list[Period]):
        self._periods = list(periods)

    def __len__(self) -> int:
        return len(self._periods)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Periods(self._periods[index])
        return self._periods[index]

    def samples(self, d: int) -> int:
        """Period `d`'s number of samples."""
        return len(self._periods[d])

    def chunks(self, d: int) -> Iterator[Period]:
        """Period `d` in consecutive blocks of at most `CHUNK_SAMPLES`."""
        period = self._periods[d]
        for start in range(0, len(period), CHUNK_SAMPLES):
            yield period[start : start + CHUNK_SAMPLES]

    def batches(self, d: int, batch_size: int, seed: int):
        """Period `d`'s shuffled full batches `(x[B, F], y[B, 1])`, in an
        order set by `(seed, d)` alone (a resumed run sees the same ones):
        the whole period shuffled at once, as it is in memory."""
        return shuffled_batches([self._periods[d]], batch_size, seed, d)


@dataclasses.dataclass
class Stream:
    """A time-ordered sequence of periods of one data set; `raw_ids`: `x`
    holds raw ids (`buckets` 0), else hashed buckets. A list of `Period`s
    given as `periods` is held as `Periods`."""

    name: str
    fields: list[str]
    buckets: int
    periods: Sequence
    raw_ids: bool = False

    def __post_init__(self):
        if isinstance(self.periods, list):
            self.periods = Periods(self.periods)

    def oracle_auc(self, eval_samples: int = 0) -> list[float] | None:
        """AUC of the true click probabilities per period, if known, on the
        samples `evaluation_chunks(..., eval_samples)` gives."""
        from sklearn.metrics import roc_auc_score

        aucs = []
        for d in range(len(self.periods)):
            chunks = list(evaluation_chunks(self.periods, d, eval_samples))
            if chunks[0].p is None:
                return None
            y = np.concatenate([c.y for c in chunks])
            p = np.concatenate([c.p for c in chunks])
            aucs.append(float(roc_auc_score(y, p)))
        return aucs

    def in_memory(self) -> Stream:
        """The stream with its periods held in memory (`Periods`): the
        synthetic one's are drawn anew when read, so a change to a read
        `Period` lasts only in a stream that holds them."""
        return dataclasses.replace(self, periods=list(self.periods))

    def batch_count(self, batch_size: int) -> int:
        """The training batches of the stream: periods 0 .. P-2."""
        return sum(
            self.periods.samples(d) // batch_size for d in range(len(self.periods) - 1)
        )
