"""How a period's predictions are scored: AUC over all impressions, and
GAUC, the impression-weighted mean of per-user AUCs (Zhou et al., Deep
Interest Network, KDD'18), which e-commerce CTR is judged by: a model is
rated on how it ranks each user's own impressions, not on separating
heavy from light clickers.

GAUC here: `sum_u n_u AUC_u / sum_u n_u` over the users whose impressions
hold both a click and a non-click (`AUC_u` is undefined otherwise, and DIN
leaves them out), `n_u` the user's impressions; ties count one half, as in
`sklearn.metrics.roc_auc_score`. With a single user it is that user's AUC.
"""

from __future__ import annotations

import dataclasses

import numpy as np


def auc(y, scores) -> float:
    """ROC AUC of `scores` against the labels `y` (0/1)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, scores))


def gauc(y, scores, users) -> float:
    """Impression-weighted mean of the per-user AUCs (see the module
    docstring); NaN when no user has both a click and a non-click.

    Args:
        y: Labels, 0 or 1, shape `[n]`.
        scores: Predictions, shape `[n]`.
        users: Each impression's user id (any integers), shape `[n]`.
    """
    y = np.asarray(y, np.float64).ravel()
    scores = np.asarray(scores, np.float64).ravel()
    users = np.asarray(users).ravel()
    if not y.size == scores.size == users.size:
        raise ValueError(
            f"gauc needs one label, score and user per impression, got "
            f"{y.size}, {scores.size} and {users.size}"
        )
    _, user = np.unique(users, return_inverse=True)
    order = np.lexsort((scores, user))
    user, s, y = user[order], scores[order], y[order]
    n = y.size
    position = np.arange(n, dtype=np.float64)
    # Runs of equal (user, score) share their mean position: the
    # Mann-Whitney statistic with ties counted one half.
    new_run = np.concatenate(([True], (user[1:] != user[:-1]) | (s[1:] != s[:-1])))
    starts = np.flatnonzero(new_run)
    run = np.cumsum(new_run) - 1
    mean_position = (np.add.reduceat(position, starts) / np.diff([*starts, n]))[run]
    counts = np.bincount(user)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = mean_position - first[user] + 1.0  # 1-based within the user
    positives = np.bincount(user, weights=y, minlength=counts.size)
    negatives = counts - positives
    rank_sum = np.bincount(user, weights=rank * y, minlength=counts.size)
    defined = (positives > 0) & (negatives > 0)
    if not defined.any():
        return float("nan")
    p, q = positives[defined], negatives[defined]
    per_user = (rank_sum[defined] - p * (p + 1) / 2) / (p * q)
    weights = counts[defined]
    return float(np.sum(weights * per_user) / np.sum(weights))


@dataclasses.dataclass(frozen=True)
class PeriodScore:
    """A period's AUC and, when its impressions name users, its GAUC."""

    auc: float
    gauc: float | None


def score(y, scores, users=None) -> PeriodScore:
    """`PeriodScore` of the predictions `scores` for clicks `y` (GAUC with
    `users`, the user of each impression)."""
    return PeriodScore(
        auc=auc(y, scores),
        gauc=None if users is None else gauc(y, scores, users),
    )


def score_period(period, scores) -> PeriodScore:
    """`PeriodScore` of the predictions `scores` for `period`'s impressions
    (a `tf_swap.jobs.stream.Period`: GAUC needs its `users`)."""
    return score(period.y, scores, period.users)
