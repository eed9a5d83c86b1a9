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


def period_auc_table(metrics: dict) -> str:
    """The cluster job's per-period AUC table (period d is evaluated after
    training on d - 1), with a mean row."""
    names = list(metrics["runs"])
    oracle = metrics.get("oracle_auc")
    head = ["period", *(["oracle"] if oracle else []), *names]
    rows = []
    for i, period in enumerate(metrics["evaluated_periods"]):
        cells = [str(period)]
        if oracle:
            cells.append(f"{oracle[i]:.4f}")
        cells += [f"{metrics['runs'][n]['auc'][i]:.4f}" for n in names]
        rows.append(cells)
    mean = ["mean"]
    if oracle:
        mean.append(f"{np.mean(oracle):.4f}")
    mean += [f"{np.mean(metrics['runs'][n]['auc']):.4f}" for n in names]
    rows.append(mean)
    return markdown(head, rows)


def plot_period_auc(metrics: dict, path: str) -> None:
    """AUC per evaluated period, one line per variant, plus the oracle."""
    plt = _pyplot()
    periods = metrics["evaluated_periods"]
    fig, ax = plt.subplots(figsize=(7, 4))
    if metrics.get("oracle_auc"):
        ax.plot(periods, metrics["oracle_auc"], "k--", label="oracle")
    for name, run in metrics["runs"].items():
        ax.plot(periods, run["auc"], marker="o", label=name)
    ax.set_xlabel("period (trained on the ones before)")
    ax.set_ylabel("AUC")
    ax.set_title(f"{metrics['data']}: {metrics['workers']} workers, {metrics['ps']} PS")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def workers_table(metrics: dict) -> str:
    """The simulator's AUC against workers: `final / mean` AUC per
    (workers, variant)."""
    names = list(metrics["runs"])
    rows = []
    for i, w in enumerate(metrics["workers"]):
        rows.append(
            [str(w)]
            + [
                f"{metrics['runs'][n]['auc'][i]:.4f} / "
                f"{metrics['runs'][n]['mean_auc'][i]:.4f}"
                for n in names
            ]
        )
    return markdown(["workers", *names], rows)


def period_tables(metrics: dict) -> str:
    """One per-period AUC table per variant (columns: workers)."""
    out = []
    for name, run in metrics["runs"].items():
        head = ["period", *(f"W={w}" for w in run["workers"])]
        rows = [
            [str(p)] + [f"{aucs[i]:.4f}" for aucs in run["period_auc"]]
            for i, p in enumerate(metrics["evaluated_periods"])
        ]
        out.append(f"{name}:\n" + markdown(head, rows))
    return "\n\n".join(out)


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


def plot_auc_vs_workers(metrics: dict, path: str) -> None:
    """Final (solid) and mean (dashed) AUC against workers, log x axis."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, run in metrics["runs"].items():
        (line,) = ax.plot(run["workers"], run["auc"], marker="o", label=name)
        ax.plot(
            run["workers"],
            run["mean_auc"],
            marker=".",
            linestyle="--",
            color=line.get_color(),
            label=f"{name} (mean over periods)",
        )
    ax.set_xscale("log")
    ax.set_xlabel("simulated workers")
    ax.set_ylabel("AUC (solid: last period)")
    ax.set_title(f"{metrics['data']}: AUC vs asynchronous workers")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
