"""The main job: asynchronous CTR training on a real parameter-server
cluster, comparing optimizers period by period.

`python -m tf_swap.train` (or `tf-swap-train`) starts `--ps` parameter
servers and `--workers` workers as separate processes on 127.0.0.1 (each a
TensorFlow gRPC server, see `tf_swap.jobs.cluster`), or connects to an existing
cluster (`--cluster-spec`, or `TF_CONFIG`), and for each variant in
`--optimizers` trains the CTR model of `tf_swap.jobs.models` with the protocol
of the method: train on period d, evaluate AUC (and GAUC, for data with
users: `tf_swap.jobs.ranking`) on period d + 1, continue from the same
model (engine: `tf_swap.jobs.cluster_run` and
`tf_swap.jobs.cluster_training`).

Writes `OUT/metrics.json`, `OUT/auc.png` (AUC and GAUC per period), with
two variants or more `OUT/auc_gain.png` (each variant minus the first per
period, paired by seed, with 95% CIs), TensorBoard summaries of every run
in `OUT/tensorboard/VARIANT/seed_S/` (`tf_swap.jobs.summaries`), the final
model of each variant for serving in `OUT/saved_model/VARIANT/`, and the
logs of this process and of the cluster tasks in `OUT/logs/`; prints
progress and a per-period AUC table. With `--checkpoint-dir`, checkpoints
every `--checkpoint-every` steps, recovers from a failed task by itself
(`--max-restarts`) and can `--resume`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from tf_swap.jobs import cli, reporting
from tf_swap.jobs.cluster_run import run_on_cluster
from tf_swap.jobs.cluster_training import (
    Checkpointing,
    TrainingFailed,
    coordinator_waits_for_a_lost_worker,
    default_checkpoint_every,
)
from tf_swap.jobs.experiment import Config, InputError, check_optimizers, parse_variants
from tf_swap.jobs.protocol import seeds

DEFAULT_VARIANTS = "adagrad,swap+stale+lbn"
DEFAULT_SEEDS = 3
# What a resumed run may change: where its output goes, the cluster it runs
# on, how often it checkpoints and restarts, its progress bar. Every other
# setting is recorded in the checkpoint directory (`RUN_FILE`).
RESUME_MAY_CHANGE = (
    "--out",
    "--workers",
    "--ps",
    "--cluster-spec",
    "--checkpoint-every",
    "--max-restarts",
    "--no-progress",
)
RUN_FILE = "run.json"
# Settings of a `Config` that no flag sets (the model's shape).
_MODEL_SETTINGS = ("embedding_dim", "hidden")


def add_parser(subparsers=None) -> argparse.ArgumentParser:
    """The `train` command's parser (a subcommand if `subparsers` given)."""
    parser = cli.parser_for("train", __doc__.split("\n\n")[0], subparsers)
    cli.add_data_arguments(parser, samples_per_period=8192)
    parser.add_argument(
        "--workers", type=int, default=2, help="worker tasks of the local cluster"
    )
    parser.add_argument(
        "--ps", type=int, default=1, help="parameter servers of the local cluster"
    )
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
        "--resume",
        action="store_true",
        help=(
            "continue from the latest checkpoint, with the settings the "
            "checkpoint directory recorded (another value exits 2 naming it); "
            f"these may change: {', '.join(RESUME_MAY_CHANGE)}"
        ),
    )
    parser.add_argument(
        "--max-restarts",
        type=int,
        default=3,
        help="cluster restarts allowed per variant",
    )
    cli.add_seeds_argument(parser, default=DEFAULT_SEEDS)
    parser.set_defaults(func=run)
    return parser


def cluster_from(args):
    """The existing cluster `--cluster-spec` or `TF_CONFIG` names, or None
    (a local one is started)."""
    from tf_swap.jobs.cluster import ExistingCluster, parse_spec

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


def run_settings(args, variants: list[str], seed_list: list[int], config) -> dict:
    """What a checkpoint directory records of a run: the data, the variants,
    the seeds and every model and optimizer setting, by flag."""
    settings = {
        "--data": args.data,
        "--periods": args.periods,
        "--samples-per-period": args.samples_per_period,
        "--optimizers": variants,
        "--seeds": seed_list,
    }
    for key, value in config.as_dict().items():
        if key == "seed":
            continue  # in --seeds
        name = key if key in _MODEL_SETTINGS else "--" + key.replace("_", "-")
        settings[name] = list(value) if isinstance(value, tuple) else value
    return settings


def check_resume(args, settings: dict) -> None:
    """With `--resume`, the settings must be the recorded ones (`InputError`
    naming the first that differs)."""
    if not args.resume:
        return
    path = os.path.join(args.checkpoint_dir, RUN_FILE)
    try:
        with open(path) as f:
            recorded = json.load(f)
    except FileNotFoundError:
        raise InputError(
            f"--resume: {args.checkpoint_dir} holds no run ({RUN_FILE}); start "
            "it without --resume"
        ) from None
    except (OSError, ValueError) as error:
        raise InputError(f"--resume: cannot read {path}: {error}") from None
    for name, value in settings.items():
        if recorded.get(name) != value:
            raise InputError(
                f"--resume: {name} is {json.dumps(value)}, but the run in "
                f"{args.checkpoint_dir} has {json.dumps(recorded.get(name))} (only "
                f"{', '.join(RESUME_MAY_CHANGE)} may change on resume)"
            )


def record_run(args, settings: dict) -> None:
    """Writes the run's settings into the checkpoint directory (a new run)."""
    os.makedirs(args.checkpoint_dir, exist_ok=True)
    path = os.path.join(args.checkpoint_dir, RUN_FILE)
    with open(f"{path}.partial", "w") as f:
        json.dump(settings, f, indent=2)
    os.replace(f"{path}.partial", path)


def run(args: argparse.Namespace) -> int:
    """Runs the job from parsed flags; returns the exit code."""
    variants = parse_variants(args.optimizers)
    config = cli.config_from(args, Config())
    check_optimizers(variants, config)
    seed_list = seeds(args.seed, args.seeds)
    existing = cluster_from(args)
    stream = cli.load_stream(args)
    checkpointing = checkpointing_from(args, stream, config)
    if checkpointing.directory is not None:
        settings = run_settings(args, variants, seed_list, config)
        check_resume(args, settings)
        if not args.resume:
            record_run(args, settings)
    where = (
        f"the cluster {existing.spec}"
        if existing
        else f"{args.workers} workers + {args.ps} PS on 127.0.0.1"
    )
    print(
        f"tf_swap.train: {stream.name}, {len(stream.periods)} periods of "
        f"~{stream.periods.samples(0)} samples, {where}, variants "
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
                summary_dir=output.path("tensorboard"),
            )
        except TrainingFailed as error:
            print(f"tf-swap-train: error: {error}", file=output.console)
            return 1
        metrics_path = output.write_json("metrics.json", metrics)
        plots = {"auc.png": reporting.plot_period_auc}
        if len(variants) > 1:
            plots["auc_gain.png"] = reporting.plot_period_gain
        for name, draw in plots.items():
            with output.commit(output.path(name)) as tmp:
                draw(metrics, tmp)
    print()
    print(reporting.period_auc_table(metrics))
    if reporting.reports_tables(metrics["runs"]):
        print(
            "\nDynamic tables (all tables, mean over seeds: after the period "
            "trained before each evaluated one):"
        )
        print(reporting.cluster_tables_table(metrics))
    if len(variants) > 1 and len(seed_list) > 1:
        print("\nMean over the periods, paired by seed:")
        print(reporting.paired_mean_differences(metrics))
    over = f" over {len(seed_list)} seeds" if len(seed_list) > 1 else ""
    wide = reporting.reports_wide_zeros(metrics["runs"])
    for name, r in metrics["runs"].items():
        restarts = f", {r['restarts']} restart(s), {r['redone_steps']} steps redone"
        lost = (
            f", {len(r['lost_workers'])} worker(s) lost, {r['retried_steps']} "
            "step(s) applied twice"
        )
        zeros = f", wide weights exactly 0: {r['wide_zero_fraction']:.1%}"
        print(
            f"{name}: {r['steps']} steps{over}, mean staleness "
            f"{r['mean_staleness']:.2f} (max {r['max_staleness_seen']}), dropped "
            f"{r['dropped_updates']}{zeros if wide else ''}"
            f"{restarts if r['restarts'] else ''}"
            f"{lost if r['lost_workers'] else ''}, {r['seconds']} s"
        )
    print(
        f"wrote {metrics_path}, {', '.join(output.path(n) for n in plots)}, "
        f"TensorBoard summaries in {output.path('tensorboard')}, the servable models "
        f"{output.path('saved_model', '{' + ','.join(variants) + '}')} and the logs "
        f"{output.logs} in {metrics['seconds']} s"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Runs the job with `argv` (default: the command line); its exit
    code."""
    return cli.run_command(add_parser(), argv)


def run_main() -> None:
    """Entry point of `python -m tf_swap.train` and `tf-swap-train`: exits
    with `main()`'s code. A coordinator that waits for a lost worker (of a
    cluster the job does not own) would wait at the process's exit too, so
    the process then ends without it, once every output is written."""
    code = main()
    if coordinator_waits_for_a_lost_worker():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise SystemExit(code)


if __name__ == "__main__":
    run_main()
