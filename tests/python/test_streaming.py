"""Streamed periods: the synthetic stream is drawn chunk by chunk as it is
read, the schedule a block of events at a time, and a simulation's peak
memory does not grow with `--samples-per-period`."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tf_swap.jobs import data, synthetic
from tf_swap.jobs.reporting import staleness_counts_summary, staleness_summary
from tf_swap.jobs.schedule import ScheduleStream, make_schedule
from tf_swap.jobs.stream import CHUNK_SAMPLES, Periods, evaluation_chunks

ARRAYS = ("x", "y", "p", "users")


def _assert_same(a, b):
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), name)


def test_a_long_period_is_drawn_in_chunks_the_same_on_every_read():
    samples = 2 * CHUNK_SAMPLES + 1000
    drift = data.Drift(frequent=0.2, interests=0.1)
    stream = data.synthetic_stream(periods=4, samples=samples, drift=drift, seed=3)
    periods = stream.periods
    sizes = [len(c) for c in periods.chunks(2)]
    assert sizes == [CHUNK_SAMPLES, CHUNK_SAMPLES, 1000]
    assert periods.samples(2) == samples
    whole = periods[2]
    assert len(whole) == samples and whole.x.shape == (samples, 4)
    # Read again, out of order, through a prefix or a fresh stream: the
    # same samples, and the periods differ from each other.
    again = data.synthetic_stream(periods=4, samples=samples, drift=drift, seed=3)
    _ = again.periods[3]
    _assert_same(again.periods[2], whole)
    _assert_same(periods[:3][2], whole)
    _assert_same(list(periods.chunks(2))[1], whole[CHUNK_SAMPLES : 2 * CHUNK_SAMPLES])
    assert not np.array_equal(periods[1].y, whole.y)
    assert periods[-1].x.shape == (samples, 4)
    with pytest.raises(IndexError):
        periods[4]


def test_chunks_draw_what_a_whole_period_draws(monkeypatch):
    """Each of a period's four runs of draws (users, items, hours, clicks)
    has its own generator placed where the run starts: drawn in chunks of
    700 or whole, the same samples, and the periods after them too."""
    kwargs = dict(periods=4, samples=5003, drift=data.Drift(frequent=0.3), seed=8)
    whole = data.synthetic_stream(**kwargs)
    monkeypatch.setattr(synthetic, "CHUNK_SAMPLES", 700)
    chunked = data.synthetic_stream(**kwargs)
    assert [len(c) for c in chunked.periods.chunks(1)] == [700] * 7 + [103]
    for d in range(4):
        _assert_same(chunked.periods[d], whole.periods[d])


def test_reading_the_stream_again_draws_each_period_forward_once(monkeypatch):
    """A job reads the periods in order several times (train, evaluate,
    count the ids trained on); each pass from the start draws each
    period's state once, not again from period 0."""
    stream = data.synthetic_stream(periods=40, samples=64, seed=1)
    drawn = []
    step = synthetic._next
    monkeypatch.setattr(
        synthetic, "_next", lambda world, state: drawn.append(1) or step(world, state)
    )
    for _ in range(3):
        for d in range(40):
            list(stream.periods.chunks(d))
            list(stream.periods.chunks(min(d + 1, 39)))
    assert len(drawn) <= 3 * 39


def test_batches_cross_chunks_and_keep_every_full_batch():
    samples, batch = CHUNK_SAMPLES + 100, 48
    stream = data.synthetic_stream(periods=2, samples=samples, seed=1)
    batches = list(stream.periods.batches(0, batch, seed=5))
    assert len(batches) == samples // batch == stream.batch_count(batch)
    assert all(x.shape == (batch, 4) and y.shape == (batch, 1) for x, y in batches)
    # Every sample of the period but the last n mod B, each once.
    period = stream.periods[0]
    seen = np.concatenate([x for x, _ in batches])
    rows = {tuple(r) for r in period.x.tolist()}
    assert {tuple(r) for r in seen.tolist()} <= rows
    assert len(seen) == samples - samples % batch
    assert batches[0][0].tolist() != period.x[:batch].tolist()  # shuffled
    again = list(stream.periods.batches(0, batch, seed=5))
    for (x, y), (x2, y2) in zip(batches, again, strict=True):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)


def test_a_period_of_one_chunk_batches_as_one_in_memory():
    stream = data.synthetic_stream(periods=2, samples=5000, seed=2)
    held = stream.in_memory()
    assert isinstance(held.periods, Periods)
    streamed = list(stream.periods.batches(0, 64, seed=7))
    in_memory = list(held.periods.batches(0, 64, seed=7))
    assert len(streamed) == len(in_memory) == 5000 // 64
    for (x, y), (x2, y2) in zip(streamed, in_memory, strict=True):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)


def test_evaluation_chunks_spread_a_limit_evenly():
    samples = 2 * CHUNK_SAMPLES + 10
    stream = data.synthetic_stream(periods=2, samples=samples, seed=4)
    every = list(evaluation_chunks(stream.periods, 1))
    assert sum(len(c) for c in every) == samples
    limit = 1000
    picked = list(evaluation_chunks(stream.periods, 1, limit))
    stride = -(-samples // limit)
    whole = stream.periods[1]
    got = np.concatenate([c.y for c in picked])
    np.testing.assert_array_equal(got, whole.y[::stride])
    assert len(got) <= limit
    np.testing.assert_array_equal(
        np.concatenate([c.users for c in picked]), whole.users[::stride]
    )


def test_schedule_taken_in_blocks_is_the_whole_schedule():
    whole = make_schedule(3000, 37, 0.5, 0.2, seed=6)
    stream = ScheduleStream(3000, 37, 0.5, 0.2, seed=6)
    np.testing.assert_array_equal(stream.first, whole.first)
    blocks = []
    for size in (1, 500, 2, 1200, 10_000):
        blocks.append(stream.take(size))
    assert [len(b) for b in blocks] == [1, 500, 2, 1200, 1297]
    assert len(stream.take(5)) == 0
    for name in ("worker", "batch", "t_read", "next"):
        got = np.concatenate([getattr(b, name) for b in blocks])
        np.testing.assert_array_equal(got, getattr(whole, name), name)
    taus = np.concatenate([b.staleness for b in blocks])
    np.testing.assert_array_equal(taus, whole.staleness)


@pytest.mark.parametrize("seed", range(4))
def test_staleness_from_counts_equals_the_summary_of_the_taus(seed):
    rng = np.random.default_rng(seed)
    taus = rng.geometric(0.01 * (seed + 1), size=rng.integers(1, 5000)) - 1
    assert staleness_counts_summary(np.bincount(taus)) == staleness_summary(taus)
    assert staleness_counts_summary(np.zeros(3, np.int64)) == staleness_summary([])


_MEASURE = """
import json, resource, sys
from tf_swap.jobs import simulate
rc = simulate.main(sys.argv[1:])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rc": rc, "peak_mb": peak}))
"""


def _peak_rss_mb(tmp_path, samples: int) -> float:
    out = tmp_path / f"spp_{samples}"
    args = [
        "--periods", "3", "--samples-per-period", str(samples),
        "--batch-size", "1024", "--workers", "4", "--optimizers", "adagrad",
        "--no-progress", "--out", str(out),
    ]  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rc"] == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["samples_per_period"] == [samples] * 3
    assert metrics["updates_per_run"] == 2 * (samples // 1024)
    return result["peak_mb"]


def test_peak_memory_does_not_grow_with_the_period(tmp_path):
    """Periods of 2^18 and 2^21 samples (8 and 64 MB of draws each; one
    chunk and eight): held in memory (as before streaming) the longer run
    peaked 690 MB higher (812 and 1,503 MB); streamed, 809 and 831 MB (the
    evaluation is bounded by `--eval-samples`, 2^18). The bound leaves room
    for the 70 MB by which one run's peak varies from another's."""
    short = _peak_rss_mb(tmp_path, 1 << 18)
    long = _peak_rss_mb(tmp_path, 1 << 21)
    assert long - short < 150, (short, long)
