"""Time-ordered CTR streams, one block of samples per sampling period.

Every stream is a sequence of `Period`s (`tf_swap.jobs.stream`) of hashed
categorical features (`tf_swap.jobs.features`):
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

- `synthetic` (the default, embedded): a drifting CTR stream drawn as it
  is read, see `tf_swap.jobs.synthetic`; `synthetic:KEY=VALUE,...` sets
  how it drifts (the fields of `Drift`, e.g.
  `synthetic:frequent=0.3,interests=0.1`);
- `movielens:PATH`: a MovieLens `ratings.csv` (userId, movieId, rating,
  timestamp; rating >= 4 is a click), split into periods of equal size in
  time order; genres are used when `movies.csv` sits beside it;
- `criteo:PATH`: Criteo TSV (label, 13 integer, 26 categorical columns),
  split into periods in file (time) order.
"""

from __future__ import annotations

import csv
import math
import os

import numpy as np

from tf_swap.jobs.features import (
    DEFAULT_BUCKETS,
    encode_features,
    hash_column,
    raw_id_column,
)
from tf_swap.jobs.stream import Period, Stream
from tf_swap.jobs.synthetic import Drift, synthetic_stream

# The names the jobs and tests read streams by, wherever they are defined.
__all__ = [
    "DEFAULT_BUCKETS",
    "Drift",
    "Period",
    "Stream",
    "criteo_stream",
    "hash_column",
    "load",
    "load_for_job",
    "movielens_stream",
    "raw_id_column",
    "synthetic_stream",
]


def _split(x, y, periods: int, users=None) -> list[Period]:
    """Equal-size consecutive blocks (the last ones one sample shorter)."""
    bounds = np.linspace(0, len(y), periods + 1).astype(int)
    return [
        Period(x[a:b], y[a:b], users=None if users is None else users[a:b])
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]


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
    x = encode_features(columns, salts, buckets, raw_ids)[order]
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
    x = encode_features(columns, fields, buckets, raw_ids)
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
