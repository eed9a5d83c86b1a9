"""Time-ordered CTR streams, one block of samples per sampling period.

Every stream is a list of `Period`s of hashed categorical features:
`x[n, F]` holds, for each of the `F` fields, a bucket in `[0, buckets)`
(the model adds a per-field offset, so fields never collide), `y[n]` the
clicks, and for the synthetic stream `p[n]` the true click probabilities,
so the best possible AUC (the oracle's) is known; `users[n]` names each
impression's user where the data has users (synthetic, MovieLens), for
GAUC (`tf_swap.jobs.ranking`). Loaded with
`raw_ids=True` (the jobs' `--embedding dynamic`), `x[n, F]` holds int64 raw
ids instead (`raw_id_column`: no buckets, no collisions), for dynamic
tables.

`load(spec)` understands:

- `synthetic` (the default, embedded): a drifting CTR stream, see
  `synthetic_stream`; `synthetic:KEY=VALUE,...` sets how it drifts (the
  fields of `Drift`, e.g. `synthetic:frequent=0.3,interests=0.1`);
- `movielens:PATH`: a MovieLens `ratings.csv` (userId, movieId, rating,
  timestamp; rating >= 4 is a click), split into periods of equal size in
  time order; genres are used when `movies.csv` sits beside it;
- `criteo:PATH`: Criteo TSV (label, 13 integer, 26 categorical columns),
  split into periods in file (time) order.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import math
import os
import zlib

import numpy as np

DEFAULT_BUCKETS = 1 << 14


@dataclasses.dataclass
class Period:
    """One sampling period: features `x[n, F]` (int32 buckets), clicks
    `y[n]` (float32) and, when known, true click probabilities `p[n]` and
    each impression's user `users[n]` (int64, unhashed)."""

    x: np.ndarray
    y: np.ndarray
    p: np.ndarray | None = None
    users: np.ndarray | None = None


@dataclasses.dataclass
class Stream:
    """A time-ordered list of periods of one data set; `raw_ids`: `x`
    holds raw ids (`buckets` 0), else hashed buckets."""

    name: str
    fields: list[str]
    buckets: int
    periods: list[Period]
    raw_ids: bool = False

    def oracle_auc(self) -> list[float] | None:
        """AUC of the true click probabilities per period, if known."""
        from sklearn.metrics import roc_auc_score

        if any(p.p is None for p in self.periods):
            return None
        return [float(roc_auc_score(p.y, p.p)) for p in self.periods]


def hash_column(values, buckets: int, salt: str) -> np.ndarray:
    """Stable hash of each value (any type, via its string) into
    `[0, buckets)`; CRC32 of `salt:value`, computed once per distinct
    value."""
    values = np.asarray(values).astype(str)
    distinct, inverse = np.unique(values, return_inverse=True)
    codes = np.array(
        [zlib.crc32(f"{salt}:{v}".encode()) % buckets for v in distinct],
        dtype=np.int64,
    )
    return codes[inverse.reshape(-1)].astype(np.int32)


# Integer values below this are their own id (times the field count);
# larger ones, and other values, are fingerprinted.
_LARGEST_RAW = 2**52


def _fingerprint(text: str) -> int:
    """A 63-bit BLAKE2b fingerprint of `text`, >= `_LARGEST_RAW`."""
    digest = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest())
    return _LARGEST_RAW + digest % (2**63 - _LARGEST_RAW)


def raw_id_column(values, field: int, fields: int) -> np.ndarray:
    """Raw int64 ids of field `field` of `fields`, distinct across fields
    and values: an integer value `v` (or its decimal string, `|v| <
    2**52`) is `v * fields + field`; any other value a 63-bit BLAKE2b
    fingerprint of `field:value` (no buckets: two distinct values share an
    id with probability about `n**2 / 2**64`). Computed once per distinct
    value."""
    values = np.asarray(values)
    distinct, inverse = np.unique(values.astype(str), return_inverse=True)
    codes = []
    for v in distinct:
        try:
            number = int(v)
        except ValueError:
            number = None
        if number is not None and abs(number) < _LARGEST_RAW:
            codes.append(number * fields + field)
        else:
            codes.append(_fingerprint(f"{field}:{v}"))
    return np.asarray(codes, np.int64)[inverse.reshape(-1)]


def _features(columns: list, salts: list[str], buckets: int, raw_ids: bool):
    """`x[n, F]`: each column hashed into `buckets` (with its salt), or
    its raw ids."""
    if raw_ids:
        return np.stack(
            [raw_id_column(c, f, len(columns)) for f, c in enumerate(columns)], axis=1
        )
    return np.stack(
        [hash_column(c, buckets, salt) for c, salt in zip(columns, salts, strict=True)],
        axis=1,
    )


def _split(x, y, periods: int, users=None) -> list[Period]:
    """Equal-size consecutive blocks (the last ones one sample shorter)."""
    bounds = np.linspace(0, len(y), periods + 1).astype(int)
    return [
        Period(x[a:b], y[a:b], users=None if users is None else users[a:b])
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]


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
    with 4-dimensional user and item vectors.
    """
    drift = drift or Drift()
    drift.check()
    rng = np.random.default_rng(seed)
    new_items = drift.new_items
    total_items = items + new_items * periods
    user_bias = rng.normal(0.0, 0.6, users)
    item_bias = rng.normal(0.0, 0.8, total_items)
    category = rng.integers(0, categories, total_items)
    category_bias = rng.normal(0.0, 0.5, categories)
    hour_bias = 0.4 * np.sin(np.arange(24) / 24 * 2 * np.pi)
    user_vec = rng.normal(0.0, 0.5, (users, 4))
    item_vec = rng.normal(0.0, 0.5, (total_items, 4))
    user_p = 1.0 / np.arange(1, users + 1) ** 0.9
    user_p /= user_p.sum()
    # Popularity rank score: larger is more popular.
    score = rng.normal(0.0, 1.0, total_items)
    score[items:] = -np.inf  # not yet released
    out = []
    for d in range(periods):
        released = items + new_items * d
        frequent = drift.frequent_rate(d) if d > 0 else 0.0
        if d > 0:
            fresh = slice(released - new_items, released)
            score[fresh] = rng.normal(1.0, 0.5, new_items)  # new and hot
            old = slice(0, released - new_items)
            score[old] = _renew(rng, score[old], drift.items, 1.0)
            item_bias[:released] = _renew(rng, item_bias[:released], drift.items, 0.8)
            hour_bias = _renew(rng, hour_bias, frequent, 0.4)
            category_bias = _renew(rng, category_bias, frequent, 0.5)
            user_vec = _renew(rng, user_vec, drift.interests, 0.5)
        order = np.argsort(-score[:released])
        if frequent > 0 and drift.popular_items > 0:
            top = order[: drift.popular_items]
            item_bias[top] = _renew(rng, item_bias[top], frequent, 0.8)
        item_p = np.zeros(released)
        item_p[order] = 1.0 / np.arange(1, released + 1) ** 1.1
        item_p /= item_p.sum()
        u = rng.choice(users, samples, p=user_p)
        i = rng.choice(released, samples, p=item_p)
        h = rng.integers(0, 24, samples)
        logit = (
            -1.5
            + user_bias[u]
            + item_bias[i]
            + category_bias[category[i]]
            + hour_bias[h]
            + np.sum(user_vec[u] * item_vec[i], axis=1)
        )
        p = 1.0 / (1.0 + np.exp(-logit))
        y = (rng.random(samples) < p).astype(np.float32)
        fields = ["user", "item", "category", "hour"]
        x = _features([u, i, category[i], h], fields, buckets, raw_ids)
        out.append(Period(x, y, p.astype(np.float32), users=u.astype(np.int64)))
    return Stream(
        "synthetic", fields, 0 if raw_ids else buckets, out, raw_ids=raw_ids
    )


def _read_csv(path: str, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of a CSV file with a header naming at least `columns`.

    Raises:
        OSError: the file cannot be read.
        ValueError: it is empty or its header lacks a column.
    """
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        if not header:
            raise ValueError(f"{path} is empty")
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(
                f"{path} lacks the column(s) {', '.join(missing)} (its header: "
                f"{', '.join(header)})"
            )
        return list(reader)


def _numbers(rows, column: str, kind, path: str) -> np.ndarray:
    """Column `column` of `rows` as numbers of `kind`, or a ValueError
    naming the first value that is not one (line numbers count the header)."""
    values = []
    for line, row in enumerate(rows, start=2):
        text = row[column]
        try:
            values.append(kind(text))
        except (TypeError, ValueError):
            raise ValueError(
                f"{path} line {line}: {column} {text!r} is not a number"
            ) from None
    return np.asarray(values)


def _check_enough(path: str, count: int, periods: int) -> None:
    if count < periods:
        raise ValueError(
            f"{path} has {count} rows, fewer than the {periods} periods asked for"
        )


def movielens_stream(
    path: str, periods: int = 10, buckets: int = DEFAULT_BUCKETS, raw_ids=False
) -> Stream:
    """MovieLens ratings as clicks (rating >= 4), periods of equal size in
    time order. Fields: user, movie and, when `movies.csv` is next to
    `ratings.csv`, the movie's first three genres.

    Raises:
        OSError: a file cannot be read.
        ValueError: a file is empty, lacks a column, holds a value that is
            not a number, or has fewer rows than `periods`.
    """
    rows = _read_csv(path, ("userId", "movieId", "rating", "timestamp"))
    if not rows:
        raise ValueError(f"{path} has no ratings")
    users = np.array([r["userId"] for r in rows])
    movies = np.array([r["movieId"] for r in rows])
    rating = _numbers(rows, "rating", float, path)
    time = _numbers(rows, "timestamp", int, path)
    _check_enough(path, len(rows), periods)
    columns, salts = [users, movies], ["user", "movie"]
    fields = ["user", "movie"]
    movies_csv = os.path.join(os.path.dirname(path), "movies.csv")
    if os.path.exists(movies_csv):
        genres = {
            r["movieId"]: (r["genres"].split("|") + ["-", "-", "-"])[:3]
            for r in _read_csv(movies_csv, ("movieId", "genres"))
        }
        for g in range(3):
            names = np.array([genres.get(m, ["-"] * 3)[g] for m in movies])
            columns.append(names)
            salts.append("genre")
            fields.append(f"genre{g + 1}")
    order = np.argsort(time, kind="stable")
    x = _features(columns, salts, buckets, raw_ids)[order]
    y = (rating >= 4.0).astype(np.float32)[order]
    user_index = np.unique(users, return_inverse=True)[1].astype(np.int64)[order]
    return Stream(
        "movielens",
        fields,
        0 if raw_ids else buckets,
        _split(x, y, periods, user_index),
        raw_ids=raw_ids,
    )


def _criteo_integer(value: str) -> str:
    """Criteo's integer features, bucketed as categories: floor(log(v)^2)
    for v > 2 (the Kaggle winners' transform), the value itself below."""
    if value == "":
        return "missing"
    v = int(value)
    return str(int(math.log(v) ** 2)) if v > 2 else f"v{v}"


def criteo_stream(
    path: str, periods: int = 10, buckets: int = DEFAULT_BUCKETS, raw_ids=False
) -> Stream:
    """Criteo TSV (label, I1..I13, C1..C26) in file order. Every column is
    hashed as a categorical field (integers bucketed first). Lines without
    40 tab-separated columns are skipped.

    Raises:
        OSError: the file cannot be read.
        ValueError: no line has 40 columns, a label or integer feature is
            not a number, or there are fewer rows than `periods`.
    """
    labels, columns = [], [[] for _ in range(39)]
    with open(path, newline="") as f:
        for number, line in enumerate(f, start=1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 40:
                continue
            try:
                labels.append(float(parts[0]))
                integers = [_criteo_integer(parts[1 + j]) for j in range(13)]
            except ValueError:
                raise ValueError(
                    f"{path} line {number}: the label and I1..I13 must be numbers"
                ) from None
            for j in range(13):
                columns[j].append(integers[j])
            for j in range(26):
                columns[13 + j].append(parts[14 + j] or "missing")
    if not labels:
        raise ValueError(f"{path} has no rows with 40 tab-separated columns")
    _check_enough(path, len(labels), periods)
    fields = [f"I{j + 1}" for j in range(13)] + [f"C{j + 1}" for j in range(26)]
    x = _features(columns, fields, buckets, raw_ids)
    y = np.asarray(labels, np.float32)
    return Stream(
        "criteo",
        fields,
        0 if raw_ids else buckets,
        _split(x, y, periods),
        raw_ids=raw_ids,
    )


def load(spec: str, periods: int | None = None, seed: int = 0, **kwargs) -> Stream:
    """A stream from its command-line spec: `synthetic[:KEY=VALUE,...]`
    (`Drift`'s fields), `movielens:PATH` or `criteo:PATH`. `periods`
    defaults to 12 (synthetic) or 10."""
    kind, _, path = spec.partition(":")
    if kind == "synthetic":
        return synthetic_stream(
            periods=periods or 12, drift=Drift.parse(path), seed=seed, **kwargs
        )
    if kind in ("movielens", "criteo"):
        if not path:
            raise ValueError(f"--data {kind}:PATH needs a path")
        if os.path.isdir(path):
            path = os.path.join(
                path, "ratings.csv" if kind == "movielens" else "train.csv"
            )
        loader = movielens_stream if kind == "movielens" else criteo_stream
        return loader(path, periods=periods or 10, **kwargs)
    raise ValueError(
        f"unknown data kind {kind!r}: use synthetic, movielens:PATH or criteo:PATH"
    )


def load_for_job(
    spec: str,
    periods: int | None,
    seed: int,
    samples_per_period: int,
    raw_ids: bool = False,
) -> Stream:
    """The stream a job (`tf_swap.train`, `tf_swap.simulate`) trains on:
    `load`, with `samples_per_period` for the synthetic stream, and at least
    two periods (train on one, evaluate on the next); raw ids for dynamic
    tables if `raw_ids`.

    Raises:
        OSError: the data file cannot be read.
        ValueError: the spec is unknown or gives fewer than two periods.
    """
    extra = {"raw_ids": raw_ids}
    if spec.partition(":")[0] == "synthetic":
        extra["samples"] = samples_per_period
    stream = load(spec, periods=periods, seed=seed, **extra)
    if len(stream.periods) < 2:
        raise ValueError("need at least 2 periods")
    return stream
