"""The main job: asynchronous CTR training on a real parameter-server
cluster, comparing optimizers period by period.

`python -m tf_swap.train` (or `tf-swap-train`) starts `--ps` parameter
servers and `--workers` workers as separate processes on 127.0.0.1 (each a
TensorFlow gRPC server, see `tf_swap.cluster`), or connects to an existing
cluster (`--cluster-spec`, or `TF_CONFIG`), and for each variant in
`--optimizers` trains the CTR model of `tf_swap.models` with the protocol
of the method: train on period d, evaluate AUC on period d + 1
(scikit-learn), continue from the same model (engine:
`tf_swap.jobs.cluster_training`).

Writes `OUT/metrics.json`, `OUT/auc.png`, the final model of each variant
for serving in `OUT/saved_model/VARIANT/`, and the logs of this process and
of the cluster tasks in `OUT/logs/`; prints progress and a per-period AUC
table. With `--checkpoint-dir`, checkpoints every `--checkpoint-every`
steps, recovers from a failed task by itself (`--max-restarts`) and can
`--resume`.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import sys
import time

import numpy as np

from tf_swap.jobs import cli, reporting
from tf_swap.jobs.cluster_training import (
    Checkpointing,
    TrainingFailed,
    default_checkpoint_every,
    train_variant,
)
from tf_swap.jobs.experiment import Config, InputError, parse_variants
from tf_swap.jobs.protocol import mean_ci, seeds

DEFAULT_VARIANTS = "adagrad,swap+stale+lbn"
DEFAULT_SEEDS = 3


def over_seeds(per_seed: list[dict]) -> dict:
    """One variant's metrics over its seeds: the first seed's, with `auc`
    and `loss` averaged per period, `auc_ci` (95% CI half-widths per period,
    `None` with one seed), `mean_auc` / `mean_auc_ci` (over the periods),
    the per-seed AUCs in `seed_auc` and the counts summed."""
    aucs = np.asarray([r["auc"] for r in per_seed])
    per_period = [mean_ci(aucs[:, j]) for j in range(aucs.shape[1])]
    mean, mean_half = mean_ci(aucs.mean(axis=1))
    run = dict(per_seed[0])
    run.update(
        auc=[m for m, _ in per_period],
        auc_ci=[h for _, h in per_period],
        loss=np.mean([r["loss"] for r in per_seed], axis=0).tolist(),
        mean_auc=mean,
        mean_auc_ci=mean_half,
        seed_auc=aucs.tolist(),
        mean_staleness=float(np.mean([r["mean_staleness"] for r in per_seed])),
        max_staleness_seen=max(r["max_staleness_seen"] for r in per_seed),
        seconds=round(sum(r["seconds"] for r in per_seed), 1),
    )
    for key in (
        "steps",
        "applied_steps",
        "dropped_updates",
        "restarts",
        "redone_steps",
    ):
        run[key] = sum(r[key] for r in per_seed)
    return run


def run_on_cluster(
    stream,
    variants: list[str],
    workers: int = 2,
    ps: int = 1,
    config: Config | None = None,
    on_step=None,
    cluster=None,
    log_dir: str | None = None,
    saved_model_dir: str | None = None,
    checkpointing: Checkpointing | None = None,
    console=None,
    seeds: list[int] | None = None,
) -> dict:
    """Starts a `LocalCluster` (unless `cluster` is given: a `LocalCluster`
    or an `ExistingCluster`), trains every variant on it once per seed and
    returns the metrics dictionary (what `metrics.json` holds). Local tasks'
    output goes to `log_dir` if given; each variant's final model (of the
    first seed) is exported to `saved_model_dir/VARIANT` if given. Progress
    goes to `console` (default stderr).

    Args:
        stream: A `Stream`, or a function of the seed returning one.
        seeds: The seeds of every variant (default `[config.seed]`); with
            several, each seed checkpoints in `VARIANT/seed_S` and the AUCs
            are averaged, with 95% confidence intervals.

    Raises:
        TrainingFailed: a task failed beyond recovery.
    """
    from tqdm import tqdm

    from tf_swap.cluster import LocalCluster

    config = config or Config()
    console = console or sys.stderr
    seed_list = list(seeds) if seeds else [config.seed]
    load = stream if callable(stream) else (lambda _seed, s=stream: s)
    streams = {seed: load(seed) for seed in seed_list}
    stream = streams[seed_list[0]]
    own = cluster is None
    started = time.monotonic()
    if own:
        cluster = LocalCluster(ps=ps, workers=workers, log_dir=log_dir)
    try:
        batches = len(stream.periods[0].y) // config.batch_size
        steps = sum(len(p.y) // config.batch_size for p in stream.periods[:-1])
        runs = {}
        with tqdm(
            total=steps * len(variants) * len(seed_list),
            unit="step",
            disable=not config.progress,
            file=console,
            dynamic_ncols=True,
        ) as progress:
            for variant in variants:
                per_seed = [
                    train_variant(
                        variant,
                        streams[seed],
                        cluster,
                        dataclasses.replace(config, seed=seed),
                        checkpointing,
                        on_step,
                        progress,
                        saved_model_dir if seed == seed_list[0] else None,
                        report=lambda line: progress.write(line, file=console),
                        seed_directory=len(seed_list) > 1,
                    )
                    for seed in seed_list
                ]
                runs[variant] = over_seeds(per_seed)
    finally:
        # Functions traced for the cluster are removed from its tasks when
        # collected: collect them while the tasks still listen (gRPC errors
        # otherwise, at exit).
        gc.collect()
        if own:
            cluster.close()
    oracles = [streams[seed].oracle_auc() for seed in seed_list]
    oracle = (
        None if oracles[0] is None else [float(v) for v in np.mean(oracles, axis=0)]
    )
    return {
        "data": stream.name,
        "fields": stream.fields,
        "periods": len(stream.periods),
        "samples_per_period": [len(p.y) for p in stream.periods],
        "evaluated_periods": list(range(2, len(stream.periods) + 1)),
        "workers": len(cluster.spec["worker"]),
        "ps": len(cluster.spec["ps"]),
        "steps_per_period": batches,
        "config": config.as_dict(),
        "seeds": seed_list,
        "oracle_auc": None if oracle is None else oracle[1:],
        "runs": runs,
        "seconds": round(time.monotonic() - started, 1),
    }


def add_parser(subparsers=None) -> argparse.ArgumentParser:
    """The `train` command's parser (a subcommand if `subparsers` given)."""
    parser = cli.parser_for("train", __doc__.split("\n\n")[0], subparsers)
    cli.add_data_arguments(parser, samples_per_period=8192)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ps", type=int, default=1)
    parser.add_argument(
        "--cluster-spec",
        default=None,
        help=(
            'train on an existing cluster: JSON {"ps": [...], "worker": [...]} '
            "or a JSON file (default: TF_CONFIG if set, else a local cluster)"
        ),
    )
    parser.add_argument("--out", default="out", help="output directory")
    cli.add_config_arguments(parser, Config(), DEFAULT_VARIANTS)
    parser.add_argument(
        "--checkpoint-dir",
        default=None,
        help="checkpoint here, recover from a failed task, allow --resume",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        help="steps between checkpoints (default: 4 per period)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the latest checkpoint"
    )
    parser.add_argument(
        "--max-restarts",
        type=int,
        default=3,
        help="cluster restarts allowed per variant (default %(default)s)",
    )
    cli.add_seeds_argument(parser, default=DEFAULT_SEEDS)
    parser.set_defaults(func=run)
    return parser


def cluster_from(args):
    """The existing cluster `--cluster-spec` or `TF_CONFIG` names, or None
    (a local one is started)."""
    from tf_swap.cluster import ExistingCluster, parse_spec

    text = args.cluster_spec or os.environ.get("TF_CONFIG")
    if not text:
        if args.workers < 1 or args.ps < 1:
            raise InputError(
                f"--workers and --ps must be >= 1, got {args.workers} and {args.ps}"
            )
        return None
    try:
        return ExistingCluster(parse_spec(text))
    except (OSError, ValueError) as error:
        where = "--cluster-spec" if args.cluster_spec else "TF_CONFIG"
        raise InputError(f"{where}: {error}") from None


def checkpointing_from(args, stream, config) -> Checkpointing:
    if args.checkpoint_dir is None:
        if args.resume:
            raise InputError("--resume needs --checkpoint-dir")
        return Checkpointing(max_restarts=args.max_restarts)
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        raise InputError(
            f"--checkpoint-every must be >= 1, got {args.checkpoint_every}"
        )
    if args.max_restarts < 0:
        raise InputError(f"--max-restarts must be >= 0, got {args.max_restarts}")
    return Checkpointing(
        directory=args.checkpoint_dir,
        every=args.checkpoint_every
        or default_checkpoint_every(stream, config.batch_size),
        resume=args.resume,
        max_restarts=args.max_restarts,
    )


def run(args: argparse.Namespace) -> int:
    """Runs the job from parsed flags; returns the exit code."""
    variants = parse_variants(args.optimizers)
    config = cli.config_from(args, Config())
    seed_list = seeds(args.seed, args.seeds)
    existing = cluster_from(args)
    stream = cli.load_stream(args)
    checkpointing = checkpointing_from(args, stream, config)
    where = (
        f"the cluster {existing.spec}"
        if existing
        else f"{args.workers} workers + {args.ps} PS on 127.0.0.1"
    )
    print(
        f"tf_swap.train: {stream.name}, {len(stream.periods)} periods of "
        f"~{len(stream.periods[0].y)} samples, {where}, variants "
        f"{', '.join(variants)}, {len(seed_list)} seed(s)",
        flush=True,
    )
    with cli.Output(args.out, "train") as output:
        try:
            metrics = run_on_cluster(
                cli.stream_source(args, stream),
                variants,
                workers=args.workers,
                ps=args.ps,
                config=config,
                cluster=existing,
                log_dir=output.logs,
                saved_model_dir=output.path("saved_model"),
                checkpointing=checkpointing,
                console=output.console,
                seeds=seed_list,
            )
        except TrainingFailed as error:
            print(f"tf-swap-train: error: {error}", file=output.console)
            return 1
        metrics_path = output.write_json("metrics.json", metrics)
        plot = output.path("auc.png")
        with output.commit(plot) as tmp:
            reporting.plot_period_auc(metrics, tmp)
    print()
    print(reporting.period_auc_table(metrics))
    if len(variants) > 1 and len(seed_list) > 1:
        print("\nMean AUC over the periods, paired by seed:")
        print(reporting.paired_mean_differences(metrics))
    over = f" over {len(seed_list)} seeds" if len(seed_list) > 1 else ""
    for name, r in metrics["runs"].items():
        restarts = f", {r['restarts']} restart(s), {r['redone_steps']} steps redone"
        print(
            f"{name}: {r['steps']} steps{over}, mean staleness "
            f"{r['mean_staleness']:.2f} (max {r['max_staleness_seen']}), dropped "
            f"{r['dropped_updates']}"
            f"{restarts if r['restarts'] else ''}, {r['seconds']} s"
        )
    print(
        f"wrote {metrics_path}, {plot}, the servable models "
        f"{output.path('saved_model', '{' + ','.join(variants) + '}')} and the logs "
        f"{output.logs} in {metrics['seconds']} s"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m tf_swap.train` and `tf-swap-train`."""
    return cli.run_command(add_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
