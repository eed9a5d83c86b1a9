"""The comparison protocol: confidence intervals over seeds, the dev/test
split, the learning-rate choice of `--protocol tuned`, and the synthetic
stream's drift settings."""

import dataclasses
import json

import numpy as np
import pytest

from tf_swap.jobs import data, protocol, reporting, simulate, simulation_sweep
from tf_swap.jobs.experiment import InputError
from tf_swap.jobs.simulation import SimConfig, head, one_run


def test_confidence_interval_of_a_constructed_case():
    # mean 3, sample sd sqrt(2.5), t(4, 0.975) = 2.7764451
    mean, half = protocol.mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert mean == 3.0
    assert half == pytest.approx(2.7764451 * np.sqrt(2.5) / np.sqrt(5), rel=1e-6)
    assert protocol.mean_ci([0.7]) == (0.7, None)
    assert protocol.format_ci(0.71234, 0.00456) == "0.7123 ± 0.0046"
    assert protocol.format_ci(0.71234, None) == "0.7123"


def test_confidence_interval_covers_the_mean_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    trials = 4000
    covered = 0
    for _ in range(trials):
        mean, half = protocol.mean_ci(rng.normal(1.0, 2.0, 3))
        covered += abs(mean - 1.0) <= half
    # Binomial(4000, 0.95): sd 0.0034.
    assert abs(covered / trials - 0.95) < 0.012


def test_dev_split_and_grid():
    assert protocol.dev_periods(8) == 2
    assert protocol.dev_periods(50) == 12
    assert protocol.dev_periods(3) == 2
    with pytest.raises(InputError, match="at least 3 periods"):
        protocol.dev_periods(2)
    assert protocol.LEARNING_RATE_GRID == (0.0125, 0.025, 0.05, 0.1, 0.2, 0.4)
    assert protocol.parse_grid("0.1, 0.2") == [0.1, 0.2]
    # Best mean over seeds; the smaller rate on a tie.
    assert (
        protocol.best_learning_rate(
            [0.1, 0.2, 0.4], [[0.6, 0.7], [0.7, 0.8], [0.8, 0.6]]
        )
        == 0.2
    )
    assert protocol.best_learning_rate([0.1, 0.2], [[0.7], [0.7]]) == 0.1
    assert protocol.seeds(5, 3) == [5, 6, 7]


def test_tuned_run_picks_the_best_dev_rate_and_reports_test_periods(tmp_path):
    periods, samples, grid = 8, 512, [0.01, 0.3]
    out = tmp_path / "out"
    rc = simulate.main(
        [
            "--protocol", "tuned",
            "--lr-grid", ",".join(map(str, grid)),
            "--seeds", "2",
            "--seed", "3",
            "--workers", "1,3",
            "--periods", str(periods),
            "--samples-per-period", str(samples),
            "--optimizers", "adagrad,swap",
            "--out", str(out),
            "--no-progress",
        ]
    )  # fmt: skip
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    dev = protocol.dev_periods(periods)
    assert metrics["protocol"] == "tuned" and metrics["seeds"] == [3, 4]
    assert metrics["tuning"]["grid"] == grid
    assert metrics["tuning"]["dev_periods"] == list(range(2, dev + 1))
    # Only the test periods are reported.
    assert metrics["evaluated_periods"] == list(range(dev + 1, periods + 1))
    config = SimConfig(
        **{k: tuple(v) if k == "hidden" else v for k, v in metrics["config"].items()}
    )
    for name in ("adagrad", "swap"):
        dev_auc = np.asarray(metrics["tuning"]["dev_mean_auc"][name])
        assert dev_auc.shape == (len(grid), 2)
        assert abs(dev_auc[0].mean() - dev_auc[1].mean()) > 1e-3  # a real choice
        chosen = grid[int(np.argmax(dev_auc.mean(axis=1)))]
        assert metrics["learning_rates"][name] == chosen
        run = metrics["runs"][name]
        assert run["learning_rate"] == chosen
        assert [len(p) for p in run["period_auc"]] == [periods - dev] * 2
        # The reported AUCs are those of a run at the chosen rate, on the
        # test periods only; the dev AUCs those of a run on the dev periods.
        for i, seed in enumerate(metrics["seeds"]):
            stream = data.load_for_job("synthetic", periods, seed, samples)
            cfg = SimConfig(
                **{**vars(config), "learning_rate": chosen, "seed": seed}
            )
            full = one_run(name, stream, 1, cfg)["auc"]
            np.testing.assert_allclose(
                run["seed_period_auc"][0][i], full[dev - 1 :], atol=1e-12
            )
            short = head(stream, dev)
            dev_run = one_run(name, short, 1, cfg)["auc"]
            assert dev_auc[grid.index(chosen)][i] == pytest.approx(
                np.mean(dev_run), abs=1e-12
            )
        means = [np.mean(v) for v in run["seed_mean_auc"]]
        assert run["mean_auc"] == pytest.approx(means)
        assert all(h is not None and h > 0 for h in run["mean_auc_ci"])
    for plot in ("auc_vs_workers.png", "gain_vs_workers.png", "gain_vs_budget.png"):
        assert (out / plot).stat().st_size > 1000


def test_tuned_per_workers_picks_at_each_w_on_the_dev_split_only(tmp_path):
    periods, samples, grid, workers = 6, 256, [0.01, 0.3], [1, 4]
    dev = protocol.dev_periods(periods)
    config = SimConfig(batch_size=32)

    def stream(seed, flip_test=False):
        s = data.load_for_job("synthetic", periods, seed, samples)
        if flip_test:  # what the test periods hold must not matter
            s = s.in_memory()  # drawn periods are drawn anew when read
            for p in s.periods[dev:]:
                p.y = 1.0 - p.y
        return s

    def sweep(flip_test):
        return simulation_sweep.simulate(
            lambda seed: stream(seed, flip_test),
            ["swap+stale"],
            workers,
            config,
            protocol="tuned-per-workers",
            seeds=[0, 1],
            grid=grid,
            progress=False,
        )

    metrics = sweep(False)
    assert metrics["tuning"]["workers"] == workers
    rates = metrics["learning_rates"]["swap+stale"]
    run = metrics["runs"]["swap+stale"]
    assert run["learning_rate"] is None and run["learning_rates"] == rates
    dev_auc = np.asarray(metrics["tuning"]["dev_mean_auc"]["swap+stale"])
    assert dev_auc.shape == (len(workers), len(grid), 2)
    for i in range(len(workers)):
        assert rates[i] == grid[int(np.argmax(dev_auc[i].mean(axis=1)))]
    # The dev AUCs at W = 4 are those of runs with 4 workers on the dev
    # periods alone (at W = 1, those of `tuned`, tested above).
    for j, lr in enumerate(grid):
        for k, seed in enumerate([0, 1]):
            cfg = dataclasses.replace(config, learning_rate=lr, seed=seed)
            short = head(stream(seed), dev)
            want = np.mean(one_run("swap+stale", short, 4, cfg)["auc"])
            assert dev_auc[1, j, k] == pytest.approx(want, abs=1e-12)
    # Test periods whose clicks are flipped change the reported AUCs, never
    # the choice.
    flipped = sweep(True)
    assert flipped["learning_rates"] == metrics["learning_rates"]
    assert flipped["tuning"]["dev_mean_auc"] == metrics["tuning"]["dev_mean_auc"]
    reported = flipped["runs"]["swap+stale"]["mean_auc"]
    gaps = np.abs(np.subtract(reported, run["mean_auc"]))
    assert gaps.min() > 0.01, gaps
    report = reporting.simulation_report(metrics)
    assert "--protocol tuned-per-workers): dev AUC, 4 worker(s)" in report


def test_drift_settings():
    assert data.Drift.parse("") == data.Drift()
    assert data.Drift.parse("frequent=0.3, new_items=0") == data.Drift(
        frequent=0.3, new_items=0
    )
    for bad in ("frequent", "speed=1", "items=-0.1", "popular_items=2.5"):
        with pytest.raises(ValueError):
            data.Drift.parse(bad)

    def probability_of(stream):
        """Each distinct feature row's true click probability, per period."""
        return [dict(zip(map(tuple, p.x), p.p, strict=True)) for p in stream.periods]

    def moved(drift):
        # Buckets enough that no two users or items share one.
        stream = data.synthetic_stream(
            periods=4, samples=4000, drift=drift, seed=2, buckets=1 << 30
        )
        first, last = probability_of(stream)[0], probability_of(stream)[-1]
        common = set(first) & set(last)
        assert len(common) > 50
        return max(abs(first[k] - last[k]) for k in common)

    still = data.Drift(items=0.0, new_items=0)
    assert moved(still) < 1e-6
    assert moved(data.Drift(items=0.0, new_items=0, frequent=0.5)) > 0.05
    assert moved(data.Drift(items=0.0, new_items=0, interests=0.5)) > 0.05
    assert moved(data.Drift(items=0.5, new_items=0)) > 0.05
    # Stationary: after many periods the effects keep their spread (the
    # oracle stays informative rather than saturating).
    long = data.synthetic_stream(
        periods=60, samples=2000, drift=data.Drift(frequent=0.5), seed=0
    )
    oracle = long.oracle_auc()
    assert abs(np.mean(oracle[-10:]) - np.mean(oracle[:10])) < 0.05


def test_frequent_drift_starts_and_grows_on_its_schedule():
    drift = data.Drift.parse(
        "items=0,new_items=0,frequent=0.1,frequent_start=6,frequent_growth=0.5"
    )
    assert (drift.frequent_start, drift.frequent_growth) == (6, 0.5)
    rates = [drift.frequent_rate(d) for d in range(1, 12)]
    assert rates == pytest.approx([0] * 5 + [0.1, 0.15, 0.2, 0.25, 0.3, 0.35])
    assert data.Drift(frequent=0.5, frequent_growth=1.0).frequent_rate(3) == 1.0
    for bad in ("frequent_start=-1", "frequent_start=1.5", "frequent_growth=-1"):
        with pytest.raises(ValueError):
            data.Drift.parse(bad)
    # The default schedule (start 0, no growth) is the old constant rate.
    assert [data.Drift(frequent=0.3).frequent_rate(d) for d in (1, 50)] == [0.3] * 2

    # Measured on the stream: the hour and category effects move only from
    # period 6 on, by the documented fraction. With the items still (and
    # no popular items moved), a row's logit changes by its hour's and
    # category's change: rows seen in consecutive periods measure it.
    drift = dataclasses.replace(drift, popular_items=0)

    def logits(period):
        logit = np.log(period.p / (1 - period.p)).astype(np.float64)
        return dict(zip(map(tuple, period.x), logit, strict=True))

    def mean_square_shifts(seed):
        stream = data.synthetic_stream(
            periods=12, samples=20000, drift=drift, seed=seed, buckets=1 << 30
        )
        per_period = [logits(p) for p in stream.periods]
        shifts = []
        for before, after in zip(per_period[:-1], per_period[1:], strict=True):
            common = before.keys() & after.keys()
            assert len(common) > 200
            shifts.append(np.mean([(after[k] - before[k]) ** 2 for k in common]))
        return shifts

    # Few effects (24 hours, 40 categories) move per period: 6 seeds.
    shift = np.sqrt(np.mean([mean_square_shifts(seed) for seed in range(6)], axis=0))
    assert shift[:5].max() < 1e-5  # still before period 6
    # A renewal by d moves an effect of spread sigma by sigma * sqrt(2 - 2
    # sqrt(1 - d^2)) in RMS; a row sees an hour's (0.4) and a category's
    # (0.5) effect. Measured within 12% per period, the trend within 5%.
    d = np.asarray(rates[5:])
    want = np.sqrt((0.4**2 + 0.5**2) * (2 - 2 * np.sqrt(1 - d**2)))
    np.testing.assert_allclose(shift[5:], want, rtol=0.25)
    slope = np.polyfit(d, shift[5:], 1)[0]
    assert slope == pytest.approx(np.polyfit(d, want, 1)[0], rel=0.15)


def test_each_seed_of_a_variant_checkpoints_apart():
    from tf_swap.jobs.cluster_training import Checkpointing

    ckpt = Checkpointing(directory="ckpt")
    assert ckpt.for_variant("swap+stale@2") == "ckpt/swap+stale_at_2"
    assert ckpt.for_variant("swap+stale@2", 3) == "ckpt/swap+stale_at_2/seed_3"
    assert Checkpointing().for_variant("swap", 0) is None
