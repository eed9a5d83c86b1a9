"""Simulated asynchronous parameter-server training with 1 to thousands of
workers, in one process, on tf_swap's real optimizers and kernels.

`python -m tf_swap.simulate` (or `tf-swap-simulate`) trains the CTR model of
`tf_swap.jobs.models` on a stream of `tf_swap.jobs.data` as `W`
asynchronous workers sharing one parameter server would, for every
(variant, `W`) pair (engine: `tf_swap.jobs.simulation`, sweep:
`tf_swap.jobs.simulation_sweep`), and tabulates AUC against `W`.

Writes `OUT/metrics.json` and `OUT/auc_vs_workers.png` (the layout of
`metrics.json` is in `tf_swap.jobs.simulation_sweep`'s docstring), with two
variants or more `OUT/gain_vs_workers.png` and `OUT/gain_vs_budget.png`
(differences from the first variant, paired by seed), TensorBoard summaries
of every run in `OUT/tensorboard/` (`tf_swap.jobs.summaries`) and the log
of this process in `OUT/logs/`.
"""

from __future__ import annotations

import argparse

from tf_swap.jobs import cli, reporting
from tf_swap.jobs.experiment import InputError, check_optimizers, parse_variants
from tf_swap.jobs.protocol import (
    LEARNING_RATE_GRID,
    PROTOCOLS,
    dev_periods,
    parse_grid,
    seeds,
)
from tf_swap.jobs.simulation import SimConfig
from tf_swap.jobs.simulation_sweep import simulate

DEFAULT_WORKERS = "1,16,128,1024,3000"
DEFAULT_VARIANTS = "adagrad,swap+stale+lbn"
# 49 trained periods of 3072 batches of 32: 150,528 updates per run, 50
# per worker at 3000 workers.
DEFAULT_PERIODS = 50
DEFAULT_SAMPLES_PER_PERIOD = 98304


def add_parser(subparsers=None) -> argparse.ArgumentParser:
    """The `simulate` command's parser (a subcommand if `subparsers` given)."""
    d = SimConfig()
    parser = cli.parser_for("simulate", __doc__.split("\n\n")[0], subparsers)
    cli.add_data_arguments(
        parser,
        samples_per_period=DEFAULT_SAMPLES_PER_PERIOD,
        synthetic_periods=DEFAULT_PERIODS,
    )
    parser.add_argument(
        "--workers",
        default=DEFAULT_WORKERS,
        help="comma-separated worker counts",
    )
    parser.add_argument("--out", default="out_sim", help="output directory")
    cli.add_config_arguments(parser, d, DEFAULT_VARIANTS)
    parser.add_argument(
        "--speed-sigma",
        type=float,
        default=d.speed_sigma,
        help="log-normal sigma of the workers' mean batch times (0: equal)",
    )
    parser.add_argument(
        "--jitter-sigma",
        type=float,
        default=d.jitter_sigma,
        help="log-normal sigma of each batch's time around its worker's mean",
    )
    parser.add_argument(
        "--eval-samples",
        type=int,
        default=d.eval_samples,
        help=(
            "evaluate each period on at most this many of its samples, "
            "every ceil(n / N)-th (0: all), so memory stays bounded however "
            "long the period"
        ),
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="fixed",
        help=(
            "fixed: --learning-rate for every variant, every period reported; "
            "tuned: each variant's rate chosen from --lr-grid on the first "
            "quarter of the periods at 1 worker, the rest reported; "
            "tuned-per-workers: chosen so at every worker count"
        ),
    )
    cli.add_seeds_argument(parser, default=1)
    parser.add_argument(
        "--lr-grid",
        default=",".join(str(v) for v in LEARNING_RATE_GRID),
        help="learning rates --protocol tuned (and tuned-per-workers) chooses from",
    )
    parser.set_defaults(func=run)
    return parser


def parse_workers(text: str) -> list[int]:
    """Comma-separated worker counts, each >= 1."""
    try:
        workers = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise InputError(f"--workers must be whole numbers, got {text!r}") from None
    if not workers or min(workers) < 1:
        raise InputError(f"--workers must be counts >= 1, got {text!r}")
    return workers


def run(args: argparse.Namespace) -> int:
    """Runs the simulation from parsed flags; returns the exit code."""
    import dataclasses

    variants = parse_variants(args.optimizers)
    workers = parse_workers(args.workers)
    config = dataclasses.replace(
        cli.config_from(args, SimConfig()),
        speed_sigma=args.speed_sigma,
        jitter_sigma=args.jitter_sigma,
        eval_samples=args.eval_samples,
    )
    config.check()
    check_optimizers(variants, config)
    grid = parse_grid(args.lr_grid)
    seed_list = seeds(args.seed, args.seeds)
    stream = cli.load_stream(args)
    if args.protocol != "fixed":
        dev_periods(len(stream.periods), args.protocol)

    print(
        f"tf_swap.simulate: {stream.name}, {len(stream.periods)} periods of "
        f"~{stream.periods.samples(0)} samples, batch {config.batch_size}, "
        f"workers {workers}, variants {', '.join(variants)}, protocol "
        f"{args.protocol}, {args.seeds} seed(s)",
        flush=True,
    )
    with cli.Output(args.out, "simulate") as output:
        metrics = simulate(
            cli.stream_source(args, stream),
            variants,
            workers,
            config,
            protocol=args.protocol,
            seeds=seed_list,
            grid=grid,
            progress=config.progress,
            console=output.console,
            summary_dir=output.path("tensorboard"),
        )
        metrics_path = output.write_json("metrics.json", metrics)
        plots = {"auc_vs_workers.png": reporting.plot_auc_vs_workers}
        if len(variants) > 1:
            plots["gain_vs_workers.png"] = reporting.plot_gain_vs_workers
            plots["gain_vs_budget.png"] = reporting.plot_gain_vs_budget
        for name, draw in plots.items():
            with output.commit(output.path(name)) as tmp:
                draw(metrics, tmp)
    print()
    print(reporting.simulation_report(metrics))
    print(
        f"\n{metrics['updates_per_run']} updates per run, "
        f"{metrics['seconds_per_update'] * 1e3:.2f} ms per simulated update "
        f"(incl. evaluation); wrote {metrics_path} and {', '.join(plots)} in "
        f"{metrics['seconds']} s"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m tf_swap.simulate` and `tf-swap-simulate`."""
    return cli.run_command(add_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
