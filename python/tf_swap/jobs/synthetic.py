"""The synthetic CTR stream: drifting effects with known click
probabilities, drawn as it is read.

Its periods (`SyntheticPeriods`) are drawn in time order, each in chunks of
at most `CHUNK_SAMPLES` samples from the state the stream is in at that
period, so reading a period, even one far larger than memory, holds one
chunk at a time: what `--samples-per-period` costs is time, not memory. A
period is drawn again (bit for bit) each time it is read, from the state
kept for it; a period of one chunk is the same whether read whole or in
chunks.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

from tf_swap.jobs.features import DEFAULT_BUCKETS, feature_codes
from tf_swap.jobs.stream import (
    CHUNK_SAMPLES,
    Period,
    Periods,
    Stream,
    concatenate,
    shuffled_batches,
)

FIELDS = ["user", "item", "category", "hour"]


@dataclasses.dataclass(frozen=True)
class Drift:
    """How fast each effect of the synthetic stream changes, per period.

    Each drifting effect `e` (of stationary spread `sigma`) is renewed by a
    fraction `d` of itself between periods, `e <- sqrt(1 - d^2) * e + d *
    sigma * noise`: 0 keeps it fixed, 1 draws it anew; its marginal spread
    stays `sigma` however long the stream (a plain random walk would grow
    without bound over hundreds of periods). Per period it moves by about
    `d * sigma`.

    Attributes:
        items: Every released item's popularity (sigma 1) and click bias
            (sigma 0.8): the long tail turns over.
        frequent: The frequent features: the 24 hours' and the categories'
            click biases (sigma 0.4 and 0.5) and the click bias of the
            period's `popular_items` most popular items. The features every
            batch holds, whose Adagrad accumulators grow fastest.
        interests: The users' 4-dimensional interest vectors (sigma 0.5).
        new_items: Items released every period, entering near the top of
            the popularity ranking.
        popular_items: How many of the most popular items `frequent`
            moves.
        frequent_start: The first period the frequent features move into
            (they hold still before it): a drift that starts after the dev
            split, which a learning rate tuned there has not seen.
        frequent_growth: How fast their rate grows from then on: the
            transition into period `d >= frequent_start` renews a fraction
            `min(1, frequent * (1 + frequent_growth * (d -
            frequent_start)))` (`frequent_rate`): a drift that outgrows a
            step tuned on early data, the case SWAP is for.
    """

    items: float = 0.5
    frequent: float = 0.0
    interests: float = 0.0
    new_items: int = 100
    popular_items: int = 20
    frequent_start: int = 0
    frequent_growth: float = 0.0

    def frequent_rate(self, period: int) -> float:
        """The fraction of the frequent features renewed on the transition
        from period `period - 1` into `period` (0-based, >= 1)."""
        if period < self.frequent_start:
            return 0.0
        growth = 1.0 + self.frequent_growth * (period - self.frequent_start)
        return min(1.0, self.frequent * growth)

    def check(self) -> None:
        """Raises `ValueError` for a value out of its domain."""
        for name in ("items", "frequent", "interests"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"drift {name} must be in [0, 1], got {value}")
        for name in ("new_items", "popular_items", "frequent_start"):
            value = getattr(self, name)
            if int(value) != value or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0, got {value}")
        if self.frequent_growth < 0:
            raise ValueError(
                f"frequent_growth must be >= 0, got {self.frequent_growth}"
            )

    @classmethod
    def parse(cls, text: str) -> Drift:
        """`"frequent=0.3,interests=0.1"` (the fields, comma-separated; the
        others keep their defaults)."""
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        values: dict = {}
        for item in filter(None, (t.strip() for t in text.split(","))):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or key not in fields:
                raise ValueError(
                    f"synthetic stream parameter {item!r}: use KEY=VALUE with KEY "
                    f"in {', '.join(fields)}"
                )
            try:
                number = float(value)
            except ValueError:
                raise ValueError(f"{key}={value!r} is not a number") from None
            if fields[key] in (int, "int"):
                if not number.is_integer():
                    raise ValueError(f"{key} must be a whole number >= 0, got {value}")
                number = int(number)
            values[key] = number
        drift = cls(**values)
        drift.check()
        return drift


def _renew(rng, effect: np.ndarray, fraction: float, sigma: float) -> np.ndarray:
    """`effect` renewed by `fraction` around spread `sigma` (see `Drift`)."""
    if fraction == 0.0:
        return effect
    noise = rng.normal(0.0, sigma, effect.shape)
    return np.sqrt(1.0 - fraction**2) * effect + fraction * noise



@dataclasses.dataclass(frozen=True)
class _World:
    """What does not drift: the stream's sizes and the fixed effects."""

    samples: int
    users: int
    items: int
    drift: Drift
    user_bias: np.ndarray
    category: np.ndarray
    item_vec: np.ndarray
    user_p: np.ndarray
    # Per field, each value's bucket or raw id (`feature_codes`).
    codes: list


@dataclasses.dataclass
class _State:
    """The drifting effects at period `period`, and where the generator
    stands: `draws` before the period's samples are drawn, `clicks` before
    their clicks (`_clicks_start`)."""

    period: int
    draws: dict  # a PCG64 state
    score: np.ndarray  # popularity rank score: larger is more popular
    item_bias: np.ndarray
    category_bias: np.ndarray
    hour_bias: np.ndarray
    user_vec: np.ndarray
    item_p: np.ndarray
    clicks: dict | None = None

    @property
    def released(self) -> int:
        return len(self.item_p)


def _generator(state: dict, skip: int = 0) -> np.random.Generator:
    """A generator at PCG64 state `state`, `skip` 64-bit outputs further
    on (keeping the state's pending 32-bit half, which `advance` drops)."""
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = state
    if skip:
        rng.bit_generator.advance(skip)
        moved = rng.bit_generator.state
        moved["has_uint32"], moved["uinteger"] = state["has_uint32"], state["uinteger"]
        rng.bit_generator.state = moved
    return rng


# A period's samples are drawn as a whole period's would be, in this order:
# its `n` users (one 64-bit output each), its `n` items (one each), its `n`
# hours (32-bit halves, a varying count) and its `n` clicks (one each). Each
# of the four runs from its own generator placed where its run starts, chunk
# by chunk: the same numbers, one chunk in memory at a time.


def _clicks_start(world: _World, state: _State) -> dict:
    """Where the clicks' run starts: after the period's hours, which are
    drawn (and dropped) to find it."""
    hours = _generator(state.draws, 2 * world.samples)
    for size in _chunk_sizes(world.samples):
        hours.integers(0, 24, size)
    return hours.bit_generator.state


def _with_clicks(world: _World, state: _State) -> _State:
    state.clicks = _clicks_start(world, state)
    return state


def _start(world: _World, rng: np.random.Generator, effects: dict) -> _State:
    """Period 0's state (`effects`: the initial ones, drawn by `rng`)."""
    order = np.argsort(-effects["score"][: world.items])
    state = _State(0, rng.bit_generator.state, item_p=_popularity(order), **effects)
    return _with_clicks(world, state)


def _popularity(order: np.ndarray) -> np.ndarray:
    """Item probabilities: power law over the popularity ranking `order`."""
    item_p = np.zeros(len(order))
    item_p[order] = 1.0 / np.arange(1, len(order) + 1) ** 1.1
    return item_p / item_p.sum()


def _next(world: _World, state: _State) -> _State:
    """The state of the period after `state`'s: past its samples, the
    effects renewed."""
    rng = _generator(state.clicks, world.samples)
    drift, d = world.drift, state.period + 1
    released = world.items + drift.new_items * d
    frequent = drift.frequent_rate(d)
    # Renewed in place below: the kept state must not change.
    score, item_bias = state.score.copy(), state.item_bias.copy()
    fresh = slice(released - drift.new_items, released)
    score[fresh] = rng.normal(1.0, 0.5, drift.new_items)  # new and hot
    old = slice(0, released - drift.new_items)
    score[old] = _renew(rng, score[old], drift.items, 1.0)
    item_bias[:released] = _renew(rng, item_bias[:released], drift.items, 0.8)
    hour_bias = _renew(rng, state.hour_bias, frequent, 0.4)
    category_bias = _renew(rng, state.category_bias, frequent, 0.5)
    user_vec = _renew(rng, state.user_vec, drift.interests, 0.5)
    order = np.argsort(-score[:released])
    if frequent > 0 and drift.popular_items > 0:
        top = order[: drift.popular_items]
        item_bias[top] = _renew(rng, item_bias[top], frequent, 0.8)
    state = _State(
        d,
        rng.bit_generator.state,
        score,
        item_bias,
        category_bias,
        hour_bias,
        user_vec,
        _popularity(order),
    )
    return _with_clicks(world, state)


def _chunk_sizes(samples: int) -> list[int]:
    full, rest = divmod(samples, CHUNK_SAMPLES)
    return [CHUNK_SAMPLES] * full + ([rest] if rest else [])


def _draw(world: _World, state: _State) -> Iterator[Period]:
    """Period `state.period`'s samples, chunk by chunk."""
    n = world.samples
    users, items, hours = (_generator(state.draws, k * n) for k in range(3))
    clicks = _generator(state.clicks)
    for size in _chunk_sizes(n):
        u = users.choice(world.users, size, p=world.user_p)
        i = items.choice(state.released, size, p=state.item_p)
        h = hours.integers(0, 24, size)
        logit = (
            -1.5
            + world.user_bias[u]
            + state.item_bias[i]
            + state.category_bias[world.category[i]]
            + state.hour_bias[h]
            + np.sum(state.user_vec[u] * world.item_vec[i], axis=1)
        )
        p = 1.0 / (1.0 + np.exp(-logit))
        y = (clicks.random(size) < p).astype(np.float32)
        columns = [u, i, world.category[i], h]
        x = np.stack([c[v] for c, v in zip(world.codes, columns, strict=True)], 1)
        yield Period(x, y, p.astype(np.float32), users=u.astype(np.int64))


class _States:
    """The states of the last periods read (and period 0's), shared by a
    stream and its prefixes; another one is found again by drawing forward
    from the nearest kept state before it."""

    KEPT = 4

    def __init__(self, world: _World, first: _State):
        self.world = world
        self._first = first
        # Least recently read first.
        self._recent: collections.OrderedDict[int, _State] = collections.OrderedDict()

    def __getitem__(self, d: int) -> _State:
        if d == 0:
            return self._first
        if d in self._recent:
            self._recent.move_to_end(d)
            return self._recent[d]
        start = max((k for k in self._recent if k < d), default=0)
        state = self[start]
        while state.period < d:
            state = _next(self.world, state)
        self._recent[d] = state
        if len(self._recent) > self.KEPT:
            self._recent.popitem(last=False)
        return state


class SyntheticPeriods(Sequence):
    """The periods of a synthetic stream, drawn when read (see the module
    docstring); `periods[:k]` is the stream's first `k` periods, sharing
    the kept states."""

    def __init__(self, states: _States, count: int):
        self._states, self._count = states, count
        self._last: tuple[int, Period] | None = None

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(self._count)
            if start == 0 and step == 1:
                return SyntheticPeriods(self._states, stop)
            return Periods([self[d] for d in range(start, stop, step)])
        d = self._index(index)
        if self._last is None or self._last[0] != d:
            self._last = (d, concatenate(list(self.chunks(d))))
        return self._last[1]

    def _index(self, index: int) -> int:
        d = index + self._count if index < 0 else index
        if not 0 <= d < self._count:
            raise IndexError(f"period {index} of {self._count}")
        return d

    def samples(self, d: int) -> int:
        """Period `d`'s number of samples."""
        self._index(d)
        return self._states.world.samples

    def chunks(self, d: int) -> Iterator[Period]:
        """Period `d` in consecutive chunks of at most `CHUNK_SAMPLES`."""
        return _draw(self._states.world, self._states[self._index(d)])

    def batches(self, d: int, batch_size: int, seed: int):
        """Period `d`'s full batches `(x[B, F], y[B, 1])`, each chunk
        shuffled in an order set by `(seed, d, chunk)`
        (`tf_swap.jobs.stream.shuffled_batches`)."""
        return shuffled_batches(self.chunks(d), batch_size, seed, d)


def synthetic_stream(
    periods: int = 12,
    samples: int = 8192,
    users: int = 2000,
    items: int = 1000,
    categories: int = 40,
    drift: Drift | None = None,
    seed: int = 0,
    buckets: int = DEFAULT_BUCKETS,
    raw_ids: bool = False,
) -> Stream:
    """A drifting CTR stream with known click probabilities.

    Fields: user, item, item category, hour of day. Users and items are
    drawn with power-law frequencies; `drift.new_items` items appear every
    period and enter near the top of the popularity ranking; between
    periods the effects `drift` names change (default: the items'
    popularity and click bias, `Drift()`). The click logit is
    `bias + user_bias + item_bias + category_bias + hour_bias + <u, v>`
    with 4-dimensional user and item vectors. Its periods are drawn as
    they are read (`SyntheticPeriods`).
    """
    drift = drift or Drift()
    drift.check()
    rng = np.random.default_rng(seed)
    total_items = items + drift.new_items * periods
    # The initial effects, in the order they are drawn.
    user_bias = rng.normal(0.0, 0.6, users)
    item_bias = rng.normal(0.0, 0.8, total_items)
    category = rng.integers(0, categories, total_items)
    category_bias = rng.normal(0.0, 0.5, categories)
    hour_bias = 0.4 * np.sin(np.arange(24) / 24 * 2 * np.pi)
    user_vec = rng.normal(0.0, 0.5, (users, 4))
    item_vec = rng.normal(0.0, 0.5, (total_items, 4))
    user_p = 1.0 / np.arange(1, users + 1) ** 0.9
    user_p /= user_p.sum()
    score = rng.normal(0.0, 1.0, total_items)
    score[items:] = -np.inf  # not yet released
    domains = [users, total_items, categories, 24]
    world = _World(
        samples, users, items, drift, user_bias, category, item_vec, user_p,
        feature_codes(domains, FIELDS, buckets, raw_ids),
    )  # fmt: skip
    first = _start(
        world,
        rng,
        dict(
            score=score,
            item_bias=item_bias,
            category_bias=category_bias,
            hour_bias=hour_bias,
            user_vec=user_vec,
        ),
    )
    return Stream(
        "synthetic",
        list(FIELDS),
        0 if raw_ids else buckets,
        SyntheticPeriods(_States(world, first), periods),
        raw_ids=raw_ids,
    )
