"""GAUC (`tf_swap.jobs.ranking`): a hand-computed case, one user == AUC,
ties, the per-user definition on random data, bad input."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tf_swap.jobs import data, reporting
from tf_swap.jobs.ranking import auc, gauc, score_period


def test_hand_computed_case():
    # User 7: the click above the non-click, AUC 1 over 2 impressions.
    # User 3: the click (0.2) below one non-click (0.5), above the other
    # (0.1): AUC 1/2 over 3 impressions. User 9 only clicked: left out.
    y = [1, 0, 1, 0, 0, 1]
    p = [0.9, 0.1, 0.2, 0.5, 0.1, 0.3]
    users = [7, 7, 3, 3, 3, 9]
    assert gauc(y, p, users) == pytest.approx((2 * 1.0 + 3 * 0.5) / 5, abs=1e-15)


def test_ties_count_one_half():
    # One click and two non-clicks at the same score: AUC 1/2.
    assert gauc([1, 0, 0, 1, 0], [0.4, 0.4, 0.4, 0.8, 0.1], [1, 1, 1, 2, 2]) == (
        pytest.approx((3 * 0.5 + 2 * 1.0) / 5, abs=1e-15)
    )


def test_one_user_is_auc():
    rng = np.random.default_rng(1)
    y = rng.random(5000) < 0.3
    p = np.round(rng.random(5000), 2)  # ties
    assert gauc(y, p, np.full(5000, 42)) == pytest.approx(auc(y, p), abs=1e-12)


def test_matches_the_per_user_definition():
    rng = np.random.default_rng(2)
    n = 20000
    users = rng.integers(-50, 250, n)  # any integers
    y = rng.random(n) < 0.25
    p = np.round(rng.random(n) + 0.2 * y, 3)
    values, weights = [], []
    for u in np.unique(users):
        mine = users == u
        if 0 < y[mine].sum() < mine.sum():
            values.append(roc_auc_score(y[mine], p[mine]))
            weights.append(mine.sum())
    want = np.average(values, weights=weights)
    assert gauc(y, p, users) == pytest.approx(want, abs=1e-12)
    # The order of the impressions does not matter.
    order = rng.permutation(n)
    assert gauc(y[order], p[order], users[order]) == pytest.approx(want, abs=1e-12)


def test_no_user_with_both_labels_is_nan():
    assert np.isnan(gauc([1, 0], [0.3, 0.6], [1, 2]))


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="one label, score and user"):
        gauc([1, 0, 1], [0.1, 0.2], [1, 1, 1])


def test_streams_with_users_get_a_gauc():
    stream = data.load("synthetic", periods=2, samples=2048)
    period = stream.periods[1]
    assert period.users is not None and len(period.users) == len(period.y)
    score = score_period(period, period.p)
    assert score.auc == pytest.approx(auc(period.y, period.p))
    assert score.gauc == pytest.approx(gauc(period.y, period.p, period.users))
    # Without users (Criteo) there is no GAUC.
    no_users = data.Period(period.x, period.y)
    assert score_period(no_users, period.p).gauc is None


def test_tables_leave_gauc_out_without_users():
    def run(gaucs):
        return {"auc": [0.61, 0.62], "auc_ci": [None, None], "mean_auc": 0.615,
                "gauc": gaucs, "seed_auc": [[0.61, 0.62]]}

    metrics = {"evaluated_periods": [2, 3], "seeds": [0], "oracle_auc": None,
               "runs": {"adagrad": run([None, None])}}
    assert "GAUC" not in reporting.period_auc_table(metrics)
    metrics["runs"]["adagrad"] = dict(run([0.55, 0.56]), mean_gauc=0.555)
    table = reporting.period_auc_table(metrics)
    assert "adagrad GAUC" in table and "0.5550" in table
