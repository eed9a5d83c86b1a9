"""A run of the main job on a cluster: every variant once per seed, on a
`LocalCluster` it starts (or a cluster it is given), and the metrics over
the seeds (what `metrics.json` holds)."""

from __future__ import annotations

import dataclasses
import gc
import sys
import time
import traceback

import numpy as np

from tf_swap.jobs.aggregate import summarize
from tf_swap.jobs.cluster_training import Checkpointing, train_variant
from tf_swap.jobs.experiment import Config
from tf_swap.jobs.streams import SeededStreams


def over_seeds(per_seed: list[dict]) -> dict:
    """One variant's metrics over its seeds: the first seed's, with `auc`,
    `loss` and the dynamic tables' counts (`tables`) averaged per period,
    `auc_ci` (95% CI half-widths per period, `None` with one seed),
    `mean_auc` / `mean_auc_ci` (over the periods), the per-seed AUCs in
    `seed_auc`, the same for GAUC (`gauc`, `gauc_ci`, `mean_gauc`,
    `mean_gauc_ci`, `seed_gauc`; `gauc` a list of `None` for data without
    users) and the counts summed."""
    summary = summarize([r["auc"] for r in per_seed])
    run = dict(per_seed[0])
    if per_seed[0]["gauc"] and per_seed[0]["gauc"][0] is not None:
        gauc = summarize([r["gauc"] for r in per_seed])
        run.update(
            gauc=gauc.period_auc,
            gauc_ci=gauc.period_ci,
            mean_gauc=gauc.mean_auc,
            mean_gauc_ci=gauc.mean_auc_ci,
            seed_gauc=gauc.seed_auc,
        )
    run.update(
        auc=summary.period_auc,
        auc_ci=summary.period_ci,
        loss=np.mean([r["loss"] for r in per_seed], axis=0).tolist(),
        mean_auc=summary.mean_auc,
        mean_auc_ci=summary.mean_auc_ci,
        seed_auc=summary.seed_auc,
        mean_staleness=float(np.mean([r["mean_staleness"] for r in per_seed])),
        max_staleness_seen=max(r["max_staleness_seen"] for r in per_seed),
        wide_zero_fraction=float(np.mean([r["wide_zero_fraction"] for r in per_seed])),
        tables={
            key: np.mean([r["tables"][key] for r in per_seed], axis=0).tolist()
            for key in per_seed[0]["tables"]
        },
        seconds=round(sum(r["seconds"] for r in per_seed), 1),
    )
    for key in (
        "steps",
        "applied_steps",
        "dropped_updates",
        "restarts",
        "redone_steps",
        "retried_steps",
        "workers_down",
    ):
        run[key] = sum(r[key] for r in per_seed)
    run["lost_workers"] = [lost for r in per_seed for lost in r["lost_workers"]]
    return run


def _release_frames(error: BaseException) -> None:
    """Drops the local variables of the finished frames of `error`'s
    tracebacks (and of the errors it was raised from or during)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        error = error.__cause__ or error.__context__


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
    summary_dir: str | None = None,
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
        summary_dir: Where each run writes TensorBoard summaries
            (`VARIANT/seed_S`, `tf_swap.jobs.summaries`), if given.

    Raises:
        TrainingFailed: a task failed beyond recovery.
    """
    from tqdm import tqdm

    from tf_swap.jobs.cluster import LocalCluster

    config = config or Config()
    console = console or sys.stderr
    streams = SeededStreams(stream, seeds or [config.seed])
    first = streams.first
    own = cluster is None
    started = time.monotonic()
    if own:
        cluster = LocalCluster(ps=ps, workers=workers, log_dir=log_dir)
    try:
        batches = first.periods.samples(0) // config.batch_size
        steps = first.batch_count(config.batch_size)
        runs = {}
        with tqdm(
            total=steps * len(variants) * len(streams.seeds),
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
                        saved_model_dir if seed == streams.seeds[0] else None,
                        # Beside the table the job prints (stdout).
                        report=lambda line: progress.write(line, file=sys.stdout),
                        seed_directory=len(streams.seeds) > 1,
                        summary_dir=summary_dir,
                    )
                    for seed in streams.seeds
                ]
                runs[variant] = over_seeds(per_seed)
    except BaseException as error:
        # The failed run's frames hold its functions: freed here, they are
        # collected below, while the tasks still listen.
        _release_frames(error)
        raise
    finally:
        # Functions traced for the cluster are removed from its tasks when
        # collected: collect them while the tasks still listen (gRPC errors
        # otherwise, at exit).
        gc.collect()
        if own:
            cluster.close()
    oracle = streams.oracle_auc(range(1, len(first.periods)))
    return {
        "data": first.name,
        "fields": first.fields,
        "periods": len(first.periods),
        "samples_per_period": [
            first.periods.samples(d) for d in range(len(first.periods))
        ],
        "evaluated_periods": list(range(2, len(first.periods) + 1)),
        "workers": len(cluster.spec["worker"]),
        "ps": len(cluster.spec["ps"]),
        "steps_per_period": batches,
        "config": config.as_dict(),
        "seeds": streams.seeds,
        "oracle_auc": oracle,
        "runs": runs,
        "seconds": round(time.monotonic() - started, 1),
    }
