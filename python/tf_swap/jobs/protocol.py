"""How a comparison is made fair and read honestly: the seeds of a cell,
the dev/test split of the periods, the learning-rate grid, and confidence
intervals over seeds.

`tuned` (the reported protocol): each variant's learning rate is the grid
point with the best mean AUC over the dev periods (the first quarter) at one
worker, averaged over the seeds; it is then held fixed for every worker
count, and only the test periods (the rest) are reported.
`tuned-per-workers`: the same choice made again at every worker count `W`,
on the dev periods simulated with `W` workers (the fair comparison at `W`:
each variant at its own best rate there); the test periods are reported.
`fixed`: one learning rate for every variant, every period reported.
"""

from __future__ import annotations

import math

import numpy as np

from tf_swap.jobs.experiment import InputError

PROTOCOLS = ("fixed", "tuned", "tuned-per-workers")
LEARNING_RATE_GRID = (0.0125, 0.025, 0.05, 0.1, 0.2, 0.4)


def seeds(first: int, count: int) -> list[int]:
    """The seeds of a cell: `first, first + 1, ...` (`count` of them). A
    seed sets the stream (synthetic), the batch order, the model's
    initialisation and the worker schedule."""
    if count < 1:
        raise InputError(f"--seeds must be >= 1, got {count}")
    return list(range(first, first + count))


def dev_periods(periods: int, protocol: str = "tuned") -> int:
    """How many leading periods form the dev split: the first quarter, at
    least 2 (train on one, evaluate the next), leaving at least one test
    period."""
    dev = max(2, periods // 4)
    if dev >= periods:
        raise InputError(
            f"--protocol {protocol} needs at least {dev + 1} periods (a dev "
            f"quarter and test periods after it), got {periods}"
        )
    return dev


def parse_grid(text: str) -> list[float]:
    """Comma-separated learning rates, each > 0."""
    try:
        grid = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--lr-grid must be numbers, got {text!r}") from None
    if not grid or min(grid) <= 0:
        raise InputError(f"--lr-grid must be learning rates > 0, got {text!r}")
    return grid


def best_learning_rate(grid: list[float], dev_auc: list[list[float]]) -> float:
    """The grid point whose dev AUC, averaged over seeds, is highest (the
    smaller one on a tie). `dev_auc[i]` holds one value per seed for
    `grid[i]`."""
    means = [float(np.mean(values)) for values in dev_auc]
    return grid[int(np.argmax(means))]


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float | None]:
    """Mean of per-seed values and the half-width of its two-sided
    Student-t confidence interval (`None` with a single seed)."""
    from scipy import stats

    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if values.size < 2:
        return mean, None
    sem = float(values.std(ddof=1)) / math.sqrt(values.size)
    t = float(stats.t.ppf(0.5 + confidence / 2, values.size - 1))
    return mean, t * sem


def format_ci(mean: float, half: float | None) -> str:
    """`0.7312 ± 0.0021` (or the mean alone with one seed)."""
    if half is None:
        return f"{mean:.4f}"
    return f"{mean:.4f} ± {half:.4f}"
