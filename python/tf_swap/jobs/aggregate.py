"""One variant's AUCs over its seeds, as both engines report them: means
and 95% confidence intervals per period, over the periods, and of the last
period (paired differences are in `reporting`)."""

from __future__ import annotations

import dataclasses

import numpy as np

from tf_swap.jobs.protocol import mean_ci


@dataclasses.dataclass
class SeedSummary:
    """AUCs of one cell (a variant, and a worker count in the simulator).

    Attributes:
        seed_auc: `[seed][period]`, as measured.
        period_auc, period_ci: Mean and 95% CI half-width per period
            (`None` half-widths with one seed).
        seed_mean_auc: Each seed's mean over the periods.
        mean_auc, mean_auc_ci: The mean over the periods, over the seeds.
        final_auc, final_auc_ci: The last period's AUC, over the seeds.
    """

    seed_auc: list[list[float]]
    period_auc: list[float]
    period_ci: list[float | None]
    seed_mean_auc: list[float]
    mean_auc: float
    mean_auc_ci: float | None
    final_auc: float
    final_auc_ci: float | None


def summarize(seed_auc) -> SeedSummary:
    """The `SeedSummary` of a `[seed][period]` array of AUCs."""
    aucs = np.asarray(seed_auc, dtype=np.float64)
    per_period = [mean_ci(aucs[:, j]) for j in range(aucs.shape[1])]
    means = aucs.mean(axis=1)
    mean, mean_half = mean_ci(means)
    final, final_half = mean_ci(aucs[:, -1])
    return SeedSummary(
        seed_auc=aucs.tolist(),
        period_auc=[m for m, _ in per_period],
        period_ci=[h for _, h in per_period],
        seed_mean_auc=[float(v) for v in means],
        mean_auc=mean,
        mean_auc_ci=mean_half,
        final_auc=final,
        final_auc_ci=final_half,
    )
