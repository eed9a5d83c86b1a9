"""The stream of each seed of a run, for every engine: a synthetic stream
is drawn per seed, a file is the same for every seed."""

from __future__ import annotations

import numpy as np


class SeededStreams:
    """The streams of a run's seeds, loaded once each.

    Args:
        source: A `Stream`, or a function of the seed returning one.
        seeds: The run's seeds (the first one's stream sizes the models).
    """

    def __init__(self, source, seeds: list[int]):
        self.seeds = list(seeds)
        load = source if callable(source) else (lambda _seed: source)
        self._streams = {seed: load(seed) for seed in self.seeds}

    @property
    def first(self):
        """The first seed's stream."""
        return self._streams[self.seeds[0]]

    def __getitem__(self, seed: int):
        return self._streams[seed]

    def oracle_auc(self, periods, eval_samples: int = 0) -> list[float] | None:
        """The oracle AUC (the stream's true click probabilities) of each
        0-based period in `periods`, averaged over the seeds, on the samples
        evaluated (`eval_samples`, see `Stream.oracle_auc`); `None` for real
        data."""
        oracles = [self._streams[seed].oracle_auc(eval_samples) for seed in self.seeds]
        if oracles[0] is None:
            return None
        per_seed = np.asarray([[o[p] for p in periods] for o in oracles])
        return [float(v) for v in per_seed.mean(axis=0)]
