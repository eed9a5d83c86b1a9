"""What the jobs print and draw: markdown tables, AUC plots, staleness
summaries."""

from __future__ import annotations

import numpy as np


def markdown(head: list[str], rows: list[list[str]]) -> str:
    """A right-aligned markdown table."""
    widths = [max(len(r[j]) for r in [head, *rows]) for j in range(len(head))]

    def line(cells):
        return (
            "| "
            + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))
            + " |"
        )

    sep = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(r) for r in rows)])


def staleness_summary(taus) -> dict:
    """Mean, median, 99th percentile and max of observed staleness."""
    taus = np.asarray(taus)
    if taus.size == 0:
        return {"mean": 0.0, "p50": 0.0, "p99": 0.0, "max": 0}
    return {
        "mean": round(float(taus.mean()), 2),
        "p50": float(np.percentile(taus, 50)),
        "p99": float(np.percentile(taus, 99)),
        "max": int(taus.max()),
    }


def merge_counts(*counts) -> np.ndarray:
    """The sum of `np.bincount`-style counts of different lengths."""
    total = np.zeros(max(len(c) for c in counts), np.int64)
    for c in counts:
        total[: len(c)] += c
    return total


def staleness_counts_summary(counts) -> dict:
    """`staleness_summary` of the taus `counts` counts (`counts[t]`
    updates of staleness `t`, as `np.bincount` gives), without the taus:
    the same numbers."""
    counts = np.asarray(counts, np.int64)
    n = int(counts.sum())
    if n == 0:
        return {"mean": 0.0, "p50": 0.0, "p99": 0.0, "max": 0}
    cumulative = np.cumsum(counts)

    def percentile(q: float) -> float:
        # np.percentile's linear rule between the two order statistics
        # around (n - 1) q, which the counts locate.
        virtual = (n - 1) * (q / 100)
        low = int(np.floor(virtual))
        below, above = np.searchsorted(
            cumulative, [low, min(low + 1, n - 1)], side="right"
        )
        return float(np.quantile([below, above], virtual - low))

    return {
        "mean": round(int(np.dot(np.arange(len(counts)), counts)) / n, 2),
        "p50": percentile(50),
        "p99": percentile(99),
        "max": int(np.flatnonzero(counts)[-1]),
    }


def reports_wide_zeros(runs: dict) -> bool:
    """Whether any run made wide weights exactly 0 (FTRL's L1 does; Adagrad
    never does, so a job without FTRL variants leaves the figure out)."""
    return any(
        np.any(np.asarray(r.get("wide_zero_fraction", 0.0)) > 0) for r in runs.values()
    )


def period_auc_table(metrics: dict) -> str:
    """The cluster job's per-period AUC table (period d is evaluated after
    training on d - 1), `mean ± 95% CI` over the seeds, with a mean row;
    each variant's GAUC beside its AUC when the data has users."""
    from tf_swap.jobs.protocol import format_ci

    names = list(metrics["runs"])
    runs = metrics["runs"]
    oracle = metrics.get("oracle_auc")
    keys = ["auc", "gauc"] if reports_gauc(metrics) else ["auc"]
    seeds = len(metrics.get("seeds", [0]))
    band = f" (± 95% CI, {seeds} seeds)" if seeds > 1 else ""
    head = ["period", *(["oracle"] if oracle else [])]
    for n in names:
        head.append(f"{n}{band}" if keys == ["auc"] else f"{n} AUC{band}")
        head += [f"{n} GAUC"] if "gauc" in keys else []
    rows = []
    for i, period in enumerate(metrics["evaluated_periods"]):
        cells = [str(period)]
        if oracle:
            cells.append(f"{oracle[i]:.4f}")
        for n in names:
            for key in keys:
                half = runs[n].get(f"{key}_ci", [None] * len(runs[n][key]))[i]
                cells.append(format_ci(runs[n][key][i], half))
        rows.append(cells)
    mean = ["mean"]
    if oracle:
        mean.append(f"{np.mean(oracle):.4f}")
    for n in names:
        for key in keys:
            mean.append(
                format_ci(
                    runs[n].get(f"mean_{key}", np.mean(runs[n][key])),
                    runs[n].get(f"mean_{key}_ci"),
                )
            )
    rows.append(mean)
    if reports_wide_zeros(runs):
        zeros = ["wide=0", *([""] if oracle else [])]
        for n in names:
            zeros.append(f"{runs[n].get('wide_zero_fraction', float('nan')):.1%}")
            zeros += [""] * (len(keys) - 1)
        rows.append(zeros)
    return markdown(head, rows)


def reports_tables(runs: dict) -> bool:
    """Whether the runs trained dynamic tables (`--embedding dynamic`):
    their `tables` (one per run, or per W in the simulator's) hold counts."""
    counts = []
    for run in runs.values():
        tables = run.get("tables", [])
        counts += tables if isinstance(tables, list) else [tables]
    return any(len(c.get("entries", [])) for c in counts)


def tables_table(periods: list[int], columns: dict) -> str:
    """Per evaluated period, each run's AUC next to its dynamic tables'
    entries stored, admitted and evicted over the period trained before
    it. `columns`: name -> (AUC per period, `tables` counts per period)."""
    head = ["period"]
    for name in columns:
        head += [f"{name} AUC", f"{name} stored / admitted / evicted"]
    rows = []
    for i, period in enumerate(periods):
        cells = [str(period)]
        for aucs, counts in columns.values():
            cells.append(f"{aucs[i]:.4f}")
            keys = ("entries", "admitted", "evicted")
            cells.append(" / ".join(f"{counts[k][i]:,.0f}" for k in keys))
        rows.append(cells)
    return markdown(head, rows)


def cluster_tables_table(metrics: dict) -> str:
    """The cluster job's `tables_table` (counts mean over the seeds)."""
    runs = metrics["runs"]
    return tables_table(
        metrics["evaluated_periods"],
        {name: (run["auc"], run["tables"]) for name, run in runs.items()},
    )


def paired_mean_differences(metrics: dict) -> str:
    """The cluster job's variants minus the first, in mean AUC (and GAUC)
    over the periods, paired by seed (`mean ± 95% CI`): the same seed is the
    same stream and batch order, so the pairing removes their share of the
    noise."""
    runs = metrics["runs"]
    names = list(runs)
    keys = ["auc", "gauc"] if reports_gauc(metrics) else ["auc"]
    lines = []
    for n in names[1:]:
        parts = []
        for key in keys:
            base = np.asarray(runs[names[0]][f"seed_{key}"]).mean(axis=1)
            gain = np.asarray(runs[n][f"seed_{key}"]).mean(axis=1) - base
            parts.append(f"{key.upper()} {_cell(gain)}")
        lines.append(f"{n} - {names[0]}: " + ", ".join(parts))
    return "\n".join(lines)


def _panels(plt, metrics: dict, width: float = 7.0):
    """A figure with an AUC axis, and a GAUC one beside it when the data
    has users: `(fig, [(axis, "auc" | "gauc"), ...])`."""
    keys = ["auc", "gauc"] if reports_gauc(metrics) else ["auc"]
    fig, axes = plt.subplots(1, len(keys), figsize=(width * len(keys), 4))
    axes = np.atleast_1d(axes)
    return fig, list(zip(axes, keys, strict=True))


def plot_period_auc(metrics: dict, path: str) -> None:
    """AUC (and GAUC) per evaluated period, one line per variant, plus the
    oracle's AUC."""
    plt = _pyplot()
    periods = metrics["evaluated_periods"]
    fig, panels = _panels(plt, metrics)
    for ax, key in panels:
        if key == "auc" and metrics.get("oracle_auc"):
            ax.plot(periods, metrics["oracle_auc"], "k--", label="oracle")
        for name, run in metrics["runs"].items():
            errors = [h or 0.0 for h in run.get(f"{key}_ci", [None] * len(periods))]
            ax.errorbar(
                periods, run[key], yerr=errors, marker="o", capsize=3, label=name
            )
        ax.set_xlabel("period (trained on the ones before)")
        ax.set_ylabel(key.upper())
        ax.set_title(
            f"{metrics['data']}: {metrics['workers']} workers, {metrics['ps']} PS"
        )
        ax.grid(alpha=0.3)
        ax.legend()
    _save(plt, fig, path)


def plot_period_gain(metrics: dict, path: str) -> None:
    """Per evaluated period, each variant's AUC (and GAUC) minus the first
    variant's, paired by seed, with its 95% CI band: the spread between
    seeds that dominates `plot_period_auc` cancels in the pairing."""
    from tf_swap.jobs.protocol import mean_ci

    plt = _pyplot()
    runs = metrics["runs"]
    names = list(runs)
    baseline = names[0]
    periods = metrics["evaluated_periods"]
    fig, panels = _panels(plt, metrics)
    for ax, key in panels:
        base = np.asarray(runs[baseline][f"seed_{key}"])
        for name in names[1:]:
            gains = np.asarray(runs[name][f"seed_{key}"]) - base
            stats = [mean_ci(gains[:, j]) for j in range(gains.shape[1])]
            mean = np.array([m for m, _ in stats])
            half = np.array([h or 0.0 for _, h in stats])
            (line,) = ax.plot(periods, mean, marker="o", label=f"{name} - {baseline}")
            ax.fill_between(
                periods, mean - half, mean + half, color=line.get_color(), alpha=0.2
            )
        ax.axhline(0.0, color="k", linewidth=0.8)
        ax.set_xlabel("period (trained on the ones before)")
        seeds = len(metrics.get("seeds", [0]))
        ax.set_ylabel(
            f"{key.upper()} difference, paired by seed"
            + (f" (95% CI, {seeds} seeds)" if seeds > 1 else "")
        )
        ax.set_title(f"{metrics['data']}: against {baseline}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _save(plt, fig, path)


def _cell(values) -> str:
    from tf_swap.jobs.protocol import format_ci, mean_ci

    return format_ci(*mean_ci(values))


def workers_table(metrics: dict, key: str = "seed_mean_auc") -> str:
    """The simulator's AUC against workers, `mean ± 95% CI` over seeds per
    (workers, variant): `key` "seed_mean_auc" (mean over the reported
    periods), "seed_auc" (the last period) or "seed_mean_gauc" (GAUC)."""
    names = list(metrics["runs"])
    rows = [
        [str(w), *(_cell(metrics["runs"][n][key][i]) for n in names)]
        for i, w in enumerate(metrics["workers"])
    ]
    return markdown(["workers", *names], rows)


def paired_differences(
    metrics: dict, name: str, baseline: str, i: int, key: str = "seed_mean_auc"
) -> list[float]:
    """Per seed, `name`'s mean reported AUC (or the metric `key` names, e.g.
    "seed_mean_gauc") minus `baseline`'s at the `i`-th worker count (the
    same seed is the same stream and schedule)."""
    runs = metrics["runs"]
    return [
        a - b
        for a, b in zip(runs[name][key][i], runs[baseline][key][i], strict=True)
    ]


def differences_table(metrics: dict, key: str = "seed_mean_auc") -> str:
    """Each variant minus the first one (the baseline), paired by seed:
    `mean ± 95% CI` per worker count (of the metric `key` names)."""
    names = list(metrics["runs"])
    baseline, others = names[0], names[1:]
    rows = [
        [
            str(w),
            *(_cell(paired_differences(metrics, n, baseline, i, key)) for n in others),
        ]
        for i, w in enumerate(metrics["workers"])
    ]
    return markdown(["workers", *(f"{n} - {baseline}" for n in others)], rows)


def reports_gauc(metrics: dict) -> bool:
    """Whether the runs' data named users, so they hold GAUCs."""
    run = next(iter(metrics["runs"].values()))
    gauc = run.get("seed_mean_gauc") or run.get("gauc") or [None]
    return gauc[0] is not None


def third_differences_table(metrics: dict) -> str:
    """Each variant minus the first one by thirds of the reported periods,
    paired by seed: `mean ± 95% CI` per (workers, third)."""
    runs = metrics["runs"]
    names = list(runs)
    baseline, others = names[0], names[1:]
    periods = metrics["evaluated_periods"]
    rows = []
    for i, w in enumerate(metrics["workers"]):
        base = np.asarray(runs[baseline]["seed_period_auc"][i])
        for a, b in thirds(periods):
            cells = [f"W={w} periods {periods[a]}-{periods[b - 1]}"]
            for n in others:
                gain = np.asarray(runs[n]["seed_period_auc"][i]) - base
                cells.append(_cell(gain[:, a:b].mean(axis=1)))
            rows.append(cells)
    return markdown(["", *(f"{n} - {baseline}" for n in others)], rows)


def thirds(periods: list[int]) -> list[tuple[int, int]]:
    """Index ranges `[a, b)` splitting `periods` into (up to) three runs."""
    bounds = np.linspace(0, len(periods), min(3, len(periods)) + 1).astype(int)
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def period_tables(metrics: dict) -> str:
    """Mean AUC by thirds of the reported periods, `mean ± 95% CI` over
    seeds, one row per (workers, third)."""
    names = list(metrics["runs"])
    periods = metrics["evaluated_periods"]
    rows = []
    for i, w in enumerate(metrics["workers"]):
        for a, b in thirds(periods):
            label = f"W={w} periods {periods[a]}-{periods[b - 1]}"
            cells = []
            for n in names:
                per_seed = metrics["runs"][n]["seed_period_auc"][i]
                cells.append(_cell([np.mean(aucs[a:b]) for aucs in per_seed]))
            rows.append([label, *cells])
    return markdown(["", *names], rows)


def staleness_table(metrics: dict) -> str:
    """Staleness observed (mean / p50 / p99) per (workers, variant)."""
    names = list(metrics["runs"])
    rows = []
    for i, w in enumerate(metrics["workers"]):
        cells = [str(w)]
        for n in names:
            s = metrics["runs"][n]["staleness"][i]
            cells.append(f"{s['mean']:.1f} / {s['p50']:.0f} / {s['p99']:.0f}")
        rows.append(cells)
    return markdown(["workers", *(f"{n} tau mean/p50/p99" for n in names)], rows)


def tuning_table(metrics: dict, at: int = 0) -> str:
    """The tuned protocols: each variant's dev AUC per learning rate (mean
    over seeds) at the `at`-th worker count it was tuned at
    (`metrics["tuning"]["workers"]`), the chosen one starred."""
    tuning = metrics["tuning"]
    names = list(tuning["dev_mean_auc"])
    per_workers = metrics["protocol"] == "tuned-per-workers"
    rows = []
    for j, lr in enumerate(tuning["grid"]):
        cells = [f"{lr:g}"]
        for n in names:
            chosen = metrics["learning_rates"][n]
            dev_auc = tuning["dev_mean_auc"][n]
            if per_workers:
                chosen, dev_auc = chosen[at], dev_auc[at]
            star = "*" if chosen == lr else ""
            cells.append(_cell(dev_auc[j]) + star)
        rows.append(cells)
    return markdown(["learning rate", *names], rows)


def _learning_rates_part(metrics: dict) -> str:
    """How the learning rates were set, and the tuning tables."""
    tuning = metrics["tuning"]
    if not tuning:
        return (
            f"Learning rate {metrics['config']['learning_rate']:g} for every variant "
            "(--protocol fixed)."
        )
    dev = tuning["dev_periods"]
    parts = []
    for at, w in enumerate(tuning["workers"]):
        parts.append(
            f"Learning rate per variant (--protocol {metrics['protocol']}): dev "
            f"AUC, {w} worker(s), periods {dev[0]}-{dev[-1]}; * chosen:\n"
            + tuning_table(metrics, at)
        )
    return "\n\n".join(parts)


def simulation_report(metrics: dict) -> str:
    """Everything the simulator prints after a run."""
    seeds = len(metrics["seeds"])
    periods = metrics["evaluated_periods"]
    band = (
        f"mean ± 95% CI over {seeds} seeds"
        if seeds > 1
        else "one seed, no interval: --seeds 3 gives 95% CIs"
    )
    split = "evaluated periods" if metrics["protocol"] == "fixed" else "test periods"
    parts = [_learning_rates_part(metrics)]
    parts.append(
        f"Mean AUC over the {split} {periods[0]}-{periods[-1]} ({band}):\n"
        + workers_table(metrics)
    )
    if len(metrics["runs"]) > 1:
        parts.append(
            "Difference in mean AUC, paired by seed:\n" + differences_table(metrics)
        )
    if reports_gauc(metrics):
        parts.append(
            f"Mean GAUC (per-user AUC, impression-weighted) over the {split} "
            f"{periods[0]}-{periods[-1]} ({band}):\n"
            + workers_table(metrics, "seed_mean_gauc")
        )
        if len(metrics["runs"]) > 1:
            parts.append(
                "Difference in mean GAUC, paired by seed:\n"
                + differences_table(metrics, "seed_mean_gauc")
            )
    parts.append(
        f"AUC of the last period, {periods[-1]}:\n" + workers_table(metrics, "seed_auc")
    )
    parts.append("Mean AUC by thirds of the periods:\n" + period_tables(metrics))
    if len(metrics["runs"]) > 1:
        parts.append(
            "Difference by thirds of the periods, paired by seed:\n"
            + third_differences_table(metrics)
        )
    parts.append(staleness_table(metrics))
    if reports_wide_zeros(metrics["runs"]):
        parts.append(
            "Wide weights exactly 0 (ids trained on, mean over seeds):\n"
            + wide_zero_table(metrics)
        )
    if reports_tables(metrics["runs"]):
        parts.append(
            "Dynamic tables (all tables, mean over seeds: after the period "
            "trained before each evaluated one):\n" + simulation_tables_table(metrics)
        )
    return "\n\n".join(parts)


def simulation_tables_table(metrics: dict) -> str:
    """The simulator's `tables_table`: a column pair per variant and W."""
    periods = metrics["evaluated_periods"]
    columns = {}
    for name, run in metrics["runs"].items():
        for w, aucs, tables in zip(
            run["workers"], run["period_auc"], run["tables"], strict=True
        ):
            # Period p (1-based) is evaluated after training on p - 1.
            counts = {k: [v[p - 2] for p in periods] for k, v in tables.items()}
            columns[f"{name} W={w}"] = (aucs, counts)
    return tables_table(periods, columns)


def wide_zero_table(metrics: dict) -> str:
    """The fraction of exactly-zero wide weights per variant and W."""
    runs = metrics["runs"]
    head = ["variant", *(f"W={w}" for w in metrics["workers"])]
    rows = [
        [name, *(f"{v:.1%}" for v in run.get("wide_zero_fraction", []))]
        for name, run in runs.items()
    ]
    return markdown(head, rows)


def plot_auc_vs_workers(metrics: dict, path: str) -> None:
    """Mean AUC (and GAUC) over the reported periods against workers (log x
    axis), one line per variant, error bars the 95% CI over seeds."""
    from tf_swap.jobs.protocol import mean_ci

    plt = _pyplot()
    fig, panels = _panels(plt, metrics)
    seeds = len(metrics["seeds"])
    periods = metrics["evaluated_periods"]
    for ax, key in panels:
        for name, run in metrics["runs"].items():
            stats = [mean_ci(v) for v in run[f"seed_mean_{key}"]]
            ax.errorbar(
                run["workers"],
                [m for m, _ in stats],
                yerr=[h or 0.0 for _, h in stats],
                marker="o",
                capsize=3,
                label=f"{name} ({_rate_label(run)})",
            )
        ax.set_xscale("log")
        ax.set_xlabel("simulated workers")
        ax.set_ylabel(
            f"mean {key.upper()}"
            + (f" ± 95% CI ({seeds} seeds)" if seeds > 1 else "")
        )
        ax.set_title(
            f"{metrics['data']}: {key.upper()} vs asynchronous workers, periods "
            f"{periods[0]}-{periods[-1]}"
        )
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    _save(plt, fig, path)


def _rate_label(run: dict) -> str:
    """`lr 0.05`, or the rate of each W when tuned per worker count."""
    if run.get("learning_rate") is not None:
        return f"lr {run['learning_rate']:g}"
    return "lr " + "/".join(f"{lr:g}" for lr in run["learning_rates"])


def plot_gain_vs_workers(metrics: dict, path: str) -> None:
    """Each variant's mean AUC minus the first variant's against workers (log
    x axis), paired by seed, error bars the 95% CI of the differences: the
    between-seed spread of `plot_auc_vs_workers` cancels here."""
    from tf_swap.jobs.protocol import mean_ci

    plt = _pyplot()
    names = list(metrics["runs"])
    baseline = names[0]
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in names[1:]:
        stats = [
            mean_ci(paired_differences(metrics, name, baseline, i))
            for i in range(len(metrics["workers"]))
        ]
        ax.errorbar(
            metrics["workers"],
            [m for m, _ in stats],
            yerr=[h or 0.0 for _, h in stats],
            marker="o",
            capsize=3,
            label=f"{name} - {baseline}",
        )
    ax.axhline(0.0, color="k", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("simulated workers")
    ax.set_ylabel("mean AUC difference, paired by seed")
    periods = metrics["evaluated_periods"]
    ax.set_title(
        f"{metrics['data']}: against {baseline}, periods {periods[0]}-{periods[-1]}"
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    _save(plt, fig, path)


def plot_gain_vs_budget(metrics: dict, path: str, blocks: int = 25) -> None:
    """Each variant's AUC minus the first variant's at the first worker
    count, paired by seed (95% CI band), averaged over `blocks` runs of
    consecutive periods, against the step-budget ratio `sqrt(n * (1 -
    decay_rate))` after `n` trained periods: how much larger SWAP's
    per-period step budget is than Adagrad's."""
    from tf_swap.jobs.protocol import mean_ci

    plt = _pyplot()
    names = list(metrics["runs"])
    baseline = names[0]
    rho = metrics["config"]["decay_rate"]
    n = np.asarray(metrics["evaluated_periods"]) - 1  # periods trained on
    cuts = np.linspace(0, len(n), min(blocks, len(n)) + 1).astype(int)
    spans = list(zip(cuts[:-1], cuts[1:], strict=True))
    x = [np.sqrt(n[a:b].mean() * (1.0 - rho)) for a, b in spans]
    fig, ax = plt.subplots(figsize=(7, 4))
    base = np.asarray(metrics["runs"][baseline]["seed_period_auc"][0])
    for name in names[1:]:
        gains = np.asarray(metrics["runs"][name]["seed_period_auc"][0]) - base
        stats = [mean_ci(gains[:, a:b].mean(axis=1)) for a, b in spans]
        mean = np.array([m for m, _ in stats])
        half = np.array([h or 0.0 for _, h in stats])
        (line,) = ax.plot(x, mean, marker=".", label=f"{name} - {baseline}")
        ax.fill_between(x, mean - half, mean + half, color=line.get_color(), alpha=0.2)
    ax.axhline(0.0, color="k", linewidth=0.8)
    ax.set_xlabel(f"step-budget ratio sqrt(n (1 - {rho:g})), n = periods trained")
    width = spans[0][1] - spans[0][0]
    ax.set_ylabel(f"AUC gain, paired by seed ({width}-period means)")
    ax.set_title(
        f"{metrics['data']}: gain against the step-budget ratio, "
        f"{metrics['workers'][0]} worker(s)"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(plt, fig, path)


def _save(plt, fig, path: str) -> None:
    """Writes `fig` to `path` and releases it."""
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
