"""The main job: asynchronous CTR training on a real local parameter-server
cluster, comparing optimizers period by period.

`python -m tf_swap.train` (or `tf-swap-train`) starts `--ps` parameter
servers and `--workers` workers as separate processes on 127.0.0.1 (each a
TensorFlow gRPC server, see `tf_swap.cluster`), connects to them with
`tf.distribute.ParameterServerStrategy` and a `ClusterCoordinator`, and for
each variant in `--optimizers` trains the CTR model of `tf_swap.models`
with the protocol of the method: train on period d, evaluate AUC on period
d + 1 (scikit-learn), continue from the same model. Steps are scheduled
asynchronously on the workers; every step records `t_read` before its
forward pass (`optimizer.read_step()`), so Adagrad-SWAP's staleness
normalization sees the real staleness of the cluster.

Writes `OUT/metrics.json`, `OUT/auc.png` and the cluster tasks' logs
`OUT/logs/JOB-TASK.log`, and prints a per-period AUC table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

VARIANTS = {
    # name: (optimizer, staleness normalization, batch norm)
    "adagrad": ("adagrad", False, "keras"),
    "swap": ("swap", False, "keras"),
    "swap+stale": ("swap", True, "keras"),
    "swap+lbn": ("swap", False, "local"),
    "swap+stale+lbn": ("swap", True, "local"),
}
DEFAULT_VARIANTS = "adagrad,swap+stale+lbn"


@dataclasses.dataclass
class Config:
    """Hyper-parameters of a run (the command-line flags)."""

    batch_size: int = 256
    learning_rate: float = 0.05
    decay_rate: float = 0.8
    staleness_exponent: float = 2.0
    max_staleness: int | None = None
    embedding_dim: int = 8
    hidden: tuple[int, ...] = (64, 32)
    seed: int = 0
    progress: bool = True


def make_optimizer(variant: str, config: Config, decay_period: int):
    """The Keras optimizer of a variant."""
    import keras

    from tf_swap.keras import AdagradSwap
    from tf_swap.keras.adagrad_swap import make_increments_atomic

    kind, stale, _ = VARIANTS[variant]
    if kind == "adagrad":
        optimizer = keras.optimizers.Adagrad(config.learning_rate)
        # Keras advances `iterations` by a read and a write, which loses
        # steps when workers apply concurrently; the global step (and the
        # staleness reported) must count every step, as AdagradSwap's does.
        make_increments_atomic(optimizer.iterations)
        return optimizer
    return AdagradSwap(
        config.learning_rate,
        decay_rate=config.decay_rate,
        decay_period=decay_period,
        staleness_exponent=config.staleness_exponent if stale else None,
        max_staleness=config.max_staleness if stale else None,
    )


def _batches(period, batch_size, rng):
    """Shuffled full batches of one period (the remainder is dropped)."""
    order = rng.permutation(len(period.y))
    for start in range(0, len(order) - batch_size + 1, batch_size):
        idx = order[start : start + batch_size]
        yield period.x[idx], period.y[idx, None]


def train_variant(
    variant,
    stream,
    strategy,
    coordinator,
    config: Config,
    on_step=None,
    progress=None,
    saved_model_dir: str | None = None,
) -> dict:
    """Trains one variant over the stream; returns its metrics.

    `on_step(variant, step)` is called on the coordinator after each step is
    scheduled (tests use it to kill a worker mid-training). With
    `saved_model_dir`, the final model is exported for serving to
    `saved_model_dir/VARIANT` (`tf_swap.keras.export_for_serving`).
    """
    import keras
    import numpy as np
    import tensorflow as tf
    from sklearn.metrics import roc_auc_score

    from tf_swap.keras import ShardedEmbedding
    from tf_swap.models import build_ctr_model

    steps_per_period = len(stream.periods[0].y) // config.batch_size
    with strategy.scope():
        model = build_ctr_model(
            len(stream.fields),
            stream.buckets,
            embedding_dim=config.embedding_dim,
            hidden=config.hidden,
            batch_norm=VARIANTS[variant][2],
            seed=config.seed,
        )
        optimizer = make_optimizer(variant, config, max(1, steps_per_period))
        optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.BinaryCrossentropy()
    has_read_step = hasattr(optimizer, "read_step")
    variables = model.trainable_variables

    def step_fn(x, y):
        if has_read_step:
            t_read = optimizer.read_step()
        else:
            t_read = tf.cast(tf.identity(optimizer.iterations), tf.int64)
        with tf.control_dependencies([t_read]):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, variables)
        dense = [g.values if isinstance(g, tf.IndexedSlices) else g for g in grads]
        with tf.control_dependencies(dense):
            t_apply = tf.cast(tf.identity(optimizer.iterations), tf.int64)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss, tf.maximum(t_apply - t_read, 0)

    @tf.function
    def train_step(x, y):
        return strategy.run(step_fn, args=(x, y))

    @tf.function
    def predict(x):
        return model(x, training=False)

    rng = np.random.default_rng(config.seed)
    aucs, losses, taus = [], [], []
    step = 0
    started = time.monotonic()
    for d in range(len(stream.periods) - 1):
        results = []
        for x, y in _batches(stream.periods[d], config.batch_size, rng):
            results.append(
                coordinator.schedule(train_step, args=(tf.constant(x), tf.constant(y)))
            )
            step += 1
            if on_step is not None:
                on_step(variant, step)
        period_loss, period_tau = [], []
        for r in results:  # in order; each fetch waits for its step
            loss, tau = r.fetch()
            period_loss.append(float(loss))
            period_tau.append(int(tau))
            if progress is not None:
                progress.update(1)
        coordinator.join()
        nxt = stream.periods[d + 1]
        scores = np.concatenate(
            [
                predict(tf.constant(nxt.x[i : i + 8192])).numpy().ravel()
                for i in range(0, len(nxt.y), 8192)
            ]
        )
        aucs.append(float(roc_auc_score(nxt.y, scores)))
        losses.append(float(np.mean(period_loss)))
        taus.extend(period_tau)
        if progress is not None:
            progress.set_postfix_str(f"{variant} period {d + 2} AUC {aucs[-1]:.4f}")
    dropped = getattr(optimizer, "dropped_updates", 0)
    saved_model = None
    if saved_model_dir is not None:
        from tf_swap.keras import export_for_serving

        saved_model = os.path.join(saved_model_dir, variant)
        export_for_serving(model, saved_model)
    tables = {
        layer.name: [shard.value.device for shard in layer.shards]
        for layer in model.layers
        if isinstance(layer, ShardedEmbedding)
    }
    return {
        "auc": aucs,
        "loss": losses,
        "steps": step,
        "applied_steps": int(optimizer.iterations.numpy()),
        "dropped_updates": int(np.asarray(dropped)),
        "mean_staleness": float(np.mean(taus)) if taus else 0.0,
        "max_staleness_seen": int(np.max(taus)) if taus else 0,
        "seconds": round(time.monotonic() - started, 1),
        "optimizer": type(optimizer).__name__,
        "batch_norm": VARIANTS[variant][2],
        "table_devices": tables,
        "saved_model": saved_model,
    }


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
) -> dict:
    """Starts a `LocalCluster` (unless one is given), trains every variant on
    it and returns the metrics dictionary (also what `metrics.json` holds).
    The cluster tasks' output goes to `log_dir` if given; each variant's
    final model is exported to `saved_model_dir/VARIANT` if given."""
    import tensorflow as tf
    from tqdm import tqdm

    from tf_swap.cluster import LocalCluster

    config = config or Config()
    own = cluster is None
    started = time.monotonic()
    if own:
        cluster = LocalCluster(ps=ps, workers=workers, log_dir=log_dir)
    try:
        strategy = tf.distribute.ParameterServerStrategy(cluster.resolver())
        coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
        steps = sum(len(p.y) // config.batch_size for p in stream.periods[:-1]) * len(
            variants
        )
        runs = {}
        with tqdm(
            total=steps,
            unit="step",
            disable=not config.progress,
            file=sys.stderr,
            dynamic_ncols=True,
        ) as progress:
            for variant in variants:
                runs[variant] = train_variant(
                    variant,
                    stream,
                    strategy,
                    coordinator,
                    config,
                    on_step,
                    progress,
                    saved_model_dir,
                )
    finally:
        if own:
            cluster.close()
    oracle = stream.oracle_auc()
    return {
        "data": stream.name,
        "fields": stream.fields,
        "periods": len(stream.periods),
        "samples_per_period": [len(p.y) for p in stream.periods],
        "evaluated_periods": list(range(2, len(stream.periods) + 1)),
        "workers": len(cluster.spec["worker"]),
        "ps": len(cluster.spec["ps"]),
        "config": {
            k: v for k, v in dataclasses.asdict(config).items() if k != "progress"
        },
        "oracle_auc": None if oracle is None else oracle[1:],
        "runs": runs,
        "seconds": round(time.monotonic() - started, 1),
    }


def format_table(metrics: dict) -> str:
    """The per-period AUC table (period d is evaluated after training on
    d - 1), with a mean row."""
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
        mean.append(f"{sum(oracle) / len(oracle):.4f}")
    for n in names:
        auc = metrics["runs"][n]["auc"]
        mean.append(f"{sum(auc) / len(auc):.4f}")
    rows.append(mean)
    widths = [max(len(r[j]) for r in [head, *rows]) for j in range(len(head))]

    def line(cells):
        return (
            "| "
            + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))
            + " |"
        )

    sep = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(r) for r in rows)])


def plot_auc(metrics: dict, path: str) -> None:
    """AUC per evaluated period, one line per variant, plus the oracle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


def add_parser(subparsers=None) -> argparse.ArgumentParser:
    """The `train` command's parser (a subcommand if `subparsers` given)."""
    kwargs = dict(description=__doc__.split("\n\n")[0])
    if subparsers is None:
        parser = argparse.ArgumentParser(prog="tf-swap-train", **kwargs)
    else:
        parser = subparsers.add_parser("train", **kwargs)
    parser.add_argument(
        "--data",
        default="synthetic",
        help="synthetic (default), movielens:PATH or criteo:PATH",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ps", type=int, default=1)
    parser.add_argument(
        "--periods", type=int, default=None, help="default: 12 synthetic, 10 files"
    )
    parser.add_argument(
        "--optimizers",
        default=DEFAULT_VARIANTS,
        help=f"comma-separated, from {', '.join(VARIANTS)} (default %(default)s)",
    )
    parser.add_argument("--out", default="out", help="output directory")
    parser.add_argument("--batch-size", type=int, default=Config.batch_size)
    parser.add_argument("--learning-rate", type=float, default=Config.learning_rate)
    parser.add_argument("--decay-rate", type=float, default=Config.decay_rate)
    parser.add_argument(
        "--staleness-exponent", type=float, default=Config.staleness_exponent
    )
    parser.add_argument("--max-staleness", type=int, default=None)
    parser.add_argument(
        "--samples-per-period",
        type=int,
        default=8192,
        help="synthetic stream only",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Runs the job from parsed flags; returns the exit code."""
    variants = [v.strip() for v in args.optimizers.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        print(
            f"unknown --optimizers {unknown}; choose from {', '.join(VARIANTS)}",
            file=sys.stderr,
        )
        return 2
    if args.workers < 1 or args.ps < 1:
        print("--workers and --ps must be >= 1", file=sys.stderr)
        return 2

    from tf_swap import data

    try:
        stream = data.load_for_job(
            args.data, args.periods, args.seed, args.samples_per_period
        )
    except (OSError, ValueError) as e:
        print(f"--data: {e}", file=sys.stderr)
        return 2
    config = Config(
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        decay_rate=args.decay_rate,
        staleness_exponent=args.staleness_exponent,
        max_staleness=args.max_staleness,
        seed=args.seed,
        progress=not args.no_progress,
    )
    print(
        f"tf_swap.train: {stream.name}, {len(stream.periods)} periods of "
        f"~{len(stream.periods[0].y)} samples, {args.workers} workers + "
        f"{args.ps} PS on 127.0.0.1, variants {', '.join(variants)}",
        flush=True,
    )
    os.makedirs(args.out, exist_ok=True)
    metrics = run_on_cluster(
        stream,
        variants,
        workers=args.workers,
        ps=args.ps,
        config=config,
        log_dir=os.path.join(args.out, "logs"),
        saved_model_dir=os.path.join(args.out, "saved_model"),
    )
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    plot_auc(metrics, os.path.join(args.out, "auc.png"))
    print()
    print(format_table(metrics))
    for name, r in metrics["runs"].items():
        print(
            f"{name}: {r['steps']} steps, mean staleness {r['mean_staleness']:.2f} "
            f"(max {r['max_staleness_seen']}), dropped {r['dropped_updates']}, "
            f"{r['seconds']} s"
        )
    print(
        f"wrote {os.path.join(args.out, 'metrics.json')}, "
        f"{os.path.join(args.out, 'auc.png')} and the servable models "
        f"{os.path.join(args.out, 'saved_model', '{' + ','.join(variants) + '}')} "
        f"in {metrics['seconds']} s"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m tf_swap.train` and `tf-swap-train`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = add_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
