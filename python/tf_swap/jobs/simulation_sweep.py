"""The simulator's sweep: every (variant, workers, seed) cell under a
protocol, and the metrics of the run.

Seeds and protocol (`tf_swap.jobs.protocol`): every (variant, `W`) cell
runs once per seed (stream, batch order, initialisation and schedule);
`--protocol tuned` first picks each variant's learning rate on the dev
periods at one worker and reports the test periods only;
`tuned-per-workers` picks it at each `W` on the dev periods run with `W`
workers.

Outputs, in `--out`:

- `metrics.json`:
  `{"data", "periods", "samples_per_period", "protocol", "seeds",
  "learning_rates": {VARIANT: lr, or [lr per W] with tuned-per-workers},
  "tuning": null | {"grid", "dev_periods", "workers": [the W each choice
  was made at: [1] with tuned], "dev_mean_auc": {VARIANT: [[per seed] per
  lr]} with tuned, {VARIANT: [[[per seed] per lr] per W]} with
  tuned-per-workers},
  "evaluated_periods" (the reported ones, 1-based), "oracle_auc", "workers",
  "config", "seconds", "updates_per_run", "seconds_per_update",
  "runs": {VARIANT: {"workers": [W...], "learning_rate" (null with
  tuned-per-workers), "learning_rates": [the rate of each W],
  "auc" / "auc_ci": [last reported period's AUC, mean over seeds / 95% CI
  half-width (null with one seed), per W],
  "mean_auc" / "mean_auc_ci": [the same for the mean over the reported
  periods], "seed_auc", "seed_mean_auc": [[per seed] per W],
  "period_auc": [[per reported period, mean over seeds] per W],
  "seed_period_auc": [[[per period] per seed] per W],
  "gauc", "gauc_ci", "mean_gauc", "mean_gauc_ci", "seed_mean_gauc",
  "period_gauc", "seed_period_gauc": the same for GAUC
  (`tf_swap.jobs.ranking`; `null` per W for data without users),
  "staleness": [{"mean", "p50", "p99", "max"} per W, over all seeds],
  "updates": [...], "dropped_updates": [...], "wide_zero_fraction": [the
  fraction of exactly-zero wide weights of the ids trained on, mean over
  seeds, per W], "tables": [{"entries", "admitted", "evicted": [the
  dynamic tables' counts after the period trained before each evaluated
  period (every one, 1 .. P-1), mean over seeds]} per W; empty lists with
  hashed tables], "seconds": [...]}}}`.
  `seconds_per_update` is the simulation's wall time (evaluation
  included) over the updates simulated.
- `tensorboard/VARIANT/W=W/seed_S/`: TensorBoard summaries of each
  reported run, period by period (`tf_swap.jobs.summaries`).
- `auc_vs_workers.png`: mean AUC (and GAUC) against workers (log x axis), one line
  per variant, error bars the 95% CI over seeds.
- `gain_vs_budget.png` (two variants or more): per period, each variant's
  AUC minus the first's at the first worker count, paired by seed, against
  the step-budget ratio `sqrt(n * (1 - decay_rate))`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import numpy as np

from tf_swap.jobs.aggregate import summarize
from tf_swap.jobs.experiment import InputError, training_batches
from tf_swap.jobs.protocol import (
    LEARNING_RATE_GRID,
    PROTOCOLS,
    best_learning_rate,
    dev_periods,
)
from tf_swap.jobs.reporting import merge_counts, staleness_counts_summary
from tf_swap.jobs.simulation import SimConfig, head, one_run
from tf_swap.jobs.streams import SeededStreams

# GAUC's per-W lists (as AUC's; `None` entries for data without users).
_GAUC_KEYS = (
    "gauc",
    "gauc_ci",
    "mean_gauc",
    "mean_gauc_ci",
    "seed_mean_gauc",
    "period_gauc",
    "seed_period_gauc",
)
# The per-W lists of a run in metrics.json, in order.
_CELL_KEYS = (
    "auc",
    "auc_ci",
    "mean_auc",
    "mean_auc_ci",
    "seed_auc",
    "seed_mean_auc",
    "period_auc",
    "seed_period_auc",
    *_GAUC_KEYS,
    "staleness",
    "updates",
    "dropped_updates",
    "wide_zero_fraction",
    "tables",
    "seconds",
)


class _Cells:
    """Runs cells on a shared progress bar, counting updates and time."""

    def __init__(self, config: SimConfig, bar, summary_dir: str | None = None):
        self.config, self.bar, self.summary_dir = config, bar, summary_dir
        self.updates, self.seconds = 0, 0.0

    def run(self, variant, stream, workers, lr, seed, summarize=False) -> dict:
        """One cell's run; with `summarize` (and a `summary_dir`) it writes
        TensorBoard summaries to `VARIANT/W=W/seed_S` there."""
        from tf_swap.jobs.summaries import PeriodSummaries

        cfg = dataclasses.replace(self.config, learning_rate=lr, seed=seed)
        directory = None
        if summarize and self.summary_dir is not None:
            directory = os.path.join(
                self.summary_dir, variant, f"W={workers}", f"seed_{seed}"
            )
        summaries = PeriodSummaries(directory)
        try:
            result = one_run(
                variant, stream, workers, cfg, progress=self.bar, summaries=summaries
            )
        finally:
            summaries.close()
        self.updates += result["updates"]
        self.seconds += result["seconds"]
        return result


def _cell_metrics(results: list[dict], reported: list[int]) -> dict:
    """One (variant, W) cell's entries of the run's per-W lists."""
    # `auc` lists periods 1 .. P-1; keep the reported ones.
    summary = summarize([[r["auc"][p - 1] for p in reported] for r in results])
    staleness = merge_counts(*(r["staleness"] for r in results))
    return {
        **_gauc_metrics(results, reported),
        "auc": summary.final_auc,
        "auc_ci": summary.final_auc_ci,
        "mean_auc": summary.mean_auc,
        "mean_auc_ci": summary.mean_auc_ci,
        "seed_auc": [row[-1] for row in summary.seed_auc],
        "seed_mean_auc": summary.seed_mean_auc,
        "period_auc": summary.period_auc,
        "seed_period_auc": summary.seed_auc,
        "staleness": staleness_counts_summary(staleness),
        "updates": results[0]["updates"],
        "dropped_updates": sum(r["dropped_updates"] for r in results),
        "wide_zero_fraction": float(
            np.mean([r["wide_zero_fraction"] for r in results])
        ),
        # Every evaluated period's counts (not only the reported ones).
        "tables": {
            key: np.mean([r["tables"][key] for r in results], axis=0).tolist()
            for key in results[0]["tables"]
        },
        "seconds": round(sum(r["seconds"] for r in results), 2),
    }


def _gauc_metrics(results: list[dict], reported: list[int]) -> dict:
    """The cell's GAUC entries, as its AUC ones (`None` without users)."""
    if results[0]["gauc"][0] is None:
        return dict.fromkeys(_GAUC_KEYS)
    summary = summarize([[r["gauc"][p - 1] for p in reported] for r in results])
    return {
        "gauc": summary.final_auc,
        "gauc_ci": summary.final_auc_ci,
        "mean_gauc": summary.mean_auc,
        "mean_gauc_ci": summary.mean_auc_ci,
        "seed_mean_gauc": summary.seed_mean_auc,
        "period_gauc": summary.period_auc,
        "seed_period_gauc": summary.seed_auc,
    }


def _tune(
    cells: _Cells, variant, streams, dev: int, grid, workers: int = 1
) -> tuple[float, list]:
    """The learning rate of `variant` with the best dev AUC with `workers`
    workers (averaged over the seeds), and every grid point's per-seed dev
    AUCs. Only the first `dev` periods are simulated."""
    def dev_mean_auc(lr, seed) -> float:
        result = cells.run(variant, head(streams[seed], dev), workers, lr, seed)
        return float(np.mean(result["auc"]))

    dev_auc = [[dev_mean_auc(lr, s) for s in streams.seeds] for lr in grid]
    return best_learning_rate(list(grid), dev_auc), dev_auc


def simulate(
    stream,
    variants: list[str],
    workers: list[int],
    config: SimConfig | None = None,
    protocol: str = "fixed",
    seeds: list[int] | None = None,
    grid: list[float] | tuple[float, ...] = LEARNING_RATE_GRID,
    progress: bool = True,
    console=None,
    summary_dir: str | None = None,
) -> dict:
    """Runs every (variant, workers, seed) cell under `protocol` (see
    `tf_swap.jobs.protocol`); returns the metrics dictionary (what
    `metrics.json` holds, see the module docstring).

    Args:
        stream: A `Stream`, or a function of the seed returning one (each
            seed then has its own stream).
        variants: Variant names (`name@K` allowed).
        workers: Worker counts.
        config: The `SimConfig`; its `learning_rate` is the one of
            `protocol="fixed"`.
        protocol: `"fixed"`, `"tuned"` or `"tuned-per-workers"`.
        seeds: The seeds of every cell (`tf_swap.jobs.protocol.seeds`);
            default `[config.seed]`.
        grid: The learning rates the tuned protocols choose from.
        summary_dir: Where the reported runs write TensorBoard summaries
            (`tf_swap.jobs.summaries`), if given.
    """
    from tqdm import tqdm

    config = config or SimConfig()
    if protocol not in PROTOCOLS:
        raise InputError(f"--protocol must be one of {', '.join(PROTOCOLS)}")
    started = time.monotonic()
    streams = SeededStreams(stream, seeds or [config.seed])
    first = streams.first
    periods = len(first.periods)
    dev = dev_periods(periods, protocol) if protocol != "fixed" else 0
    # The worker counts each variant's rate is chosen at.
    tuned_at = list(workers) if protocol == "tuned-per-workers" else [1]
    n = training_batches(first, config.batch_size)
    dev_n = training_batches(head(first, dev), config.batch_size) if dev else 0
    # Evaluated periods are 1 .. P-1 (0-based); tuned reports dev .. P-1.
    reported = list(range(max(1, dev), periods))
    tuning_updates = len(grid) * dev_n * len(tuned_at)
    total = len(variants) * len(streams.seeds) * (tuning_updates + n * len(workers))
    tuning: dict = {}
    learning_rates: dict = {}
    runs: dict = {}
    with tqdm(
        total=total,
        unit="update",
        disable=not progress,
        file=console or sys.stderr,
        dynamic_ncols=True,
        mininterval=1.0,
    ) as bar:
        cells = _Cells(config, bar, summary_dir)
        for variant in variants:
            if dev:
                choices = [
                    _tune(cells, variant, streams, dev, grid, w) for w in tuned_at
                ]
                rates = [lr for lr, _ in choices]
                if protocol == "tuned":
                    learning_rates[variant] = rates[0]
                    tuning[variant] = choices[0][1]
                    rates = rates * len(workers)
                else:
                    learning_rates[variant] = rates
                    tuning[variant] = [dev_auc for _, dev_auc in choices]
            else:
                learning_rates[variant] = config.learning_rate
                rates = [config.learning_rate] * len(workers)
            run = runs[variant] = {
                "workers": [],
                "learning_rate": (
                    None if protocol == "tuned-per-workers" else learning_rates[variant]
                ),
                "learning_rates": rates,
            }
            run.update({key: [] for key in _CELL_KEYS})
            for w, lr in zip(workers, rates, strict=True):
                results = [
                    cells.run(variant, streams[s], w, lr, s, summarize=True)
                    for s in streams.seeds
                ]
                run["workers"].append(w)
                for key, value in _cell_metrics(results, reported).items():
                    run[key].append(value)
    return {
        "data": first.name,
        "periods": periods,
        "samples_per_period": [
            first.periods.samples(d) for d in range(periods)
        ],
        "protocol": protocol,
        "seeds": streams.seeds,
        "learning_rates": learning_rates,
        "tuning": (
            {
                "grid": list(grid),
                "dev_periods": list(range(2, dev + 1)),
                "workers": tuned_at,
                "dev_mean_auc": tuning,
            }
            if dev
            else None
        ),
        "evaluated_periods": [p + 1 for p in reported],
        "oracle_auc": streams.oracle_auc(reported, config.eval_samples),
        "workers": list(workers),
        "config": config.as_dict(),
        "updates_per_run": n,
        "seconds_per_update": round(cells.seconds / max(1, cells.updates), 6),
        "runs": runs,
        "seconds": round(time.monotonic() - started, 1),
    }
