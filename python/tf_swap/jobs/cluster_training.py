"""The cluster engine: asynchronous training on a real TensorFlow cluster with
`tf.distribute.ParameterServerStrategy` and a `ClusterCoordinator`, period
by period (train on period d, AUC on d + 1), with checkpoints and recovery
from a parameter-server failure.

Every step records `t_read` before its forward pass (`optimizer.read_step()`),
so staleness normalization sees the cluster's real staleness.

Checkpoints (`Checkpointing`): every `every` steps the coordinator waits for
the steps in flight and writes a `tf.train.CheckpointManager` checkpoint of
the model (Local BN's shared statistics included), the optimizer
(accumulators, powers, iterations, dropped-update counter) and the position
in the stream (period, batch), plus `progress.json` beside it with the
metrics so far. Batches are shuffled per period from the seed alone, so a
resumed run schedules exactly the batches an uninterrupted one would.
Worker-local Local BN statistics are not saved (one copy per worker, on the
worker); a worker's first step starts them from the shared statistics.

Recovery: when a task dies, the coordinator raises `UnavailableError` (or
`AbortedError`). With checkpoints, the job starts the cluster again (a new
`LocalCluster` on new ports: TensorFlow cannot reattach a coordinator to one
restarted task, the others keep state from before), rebuilds the model,
restores the latest checkpoint and continues, up to `max_restarts` times;
the steps scheduled after the checkpoint are redone, and counted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np

from tf_swap.jobs.experiment import (
    VARIANTS,
    Config,
    Terminated,
    make_model,
    make_optimizer,
    parse_variant,
    steps_per_period,
)
from tf_swap.jobs.table_counts import TableCounts
from tf_swap.jobs.worker_watch import WorkerWatch


class TrainingFailed(RuntimeError):
    """The cluster failed and the job could not recover (one line)."""


@dataclasses.dataclass
class Checkpointing:
    """Where and how often to checkpoint, and how to recover.

    Attributes:
        directory: Root of the checkpoints (one subdirectory per variant);
            `None` disables checkpoints and recovery.
        every: Steps between checkpoints.
        resume: Start from the latest checkpoint in `directory`.
        max_restarts: Cluster restarts allowed per variant.
    """

    directory: str | None = None
    every: int = 0
    resume: bool = False
    max_restarts: int = 3

    def for_variant(self, variant: str, seed: int | None = None) -> str | None:
        """`DIRECTORY/VARIANT`, or `DIRECTORY/VARIANT/seed_SEED`."""
        if self.directory is None:
            return None
        path = os.path.join(self.directory, variant.replace("@", "_at_"))
        return path if seed is None else os.path.join(path, f"seed_{seed}")


def default_checkpoint_every(stream, batch_size: int) -> int:
    """Four checkpoints per period."""
    return max(1, steps_per_period(stream, batch_size) // 4)


def _recoverable_errors():
    import tensorflow as tf

    return (
        tf.errors.UnavailableError,
        tf.errors.AbortedError,
        tf.errors.CancelledError,
    )


class _Progress:
    """The metrics of one variant so far and where it is in the stream."""

    def __init__(self):
        self.aucs: list[float] = []
        self.gaucs: list[float | None] = []  # None: the data has no users
        self.losses: list[float] = []  # mean loss per trained period
        self.period_losses: list[float] = []  # of the period being trained
        self.taus: list[int] = []
        self.period = 0  # the period being trained
        self.batch = 0  # the next batch of that period
        self.steps = 0  # steps scheduled
        self.tables = TableCounts().as_dict()  # dynamic tables, per period

    def to_json(self) -> dict:
        return dict(vars(self))

    @classmethod
    def from_json(cls, value: dict) -> _Progress:
        progress = cls()
        vars(progress).update(value)
        return progress


class _Run:
    """One attempt at training a variant: a strategy and coordinator on the
    cluster as it is now, the model, the optimizer and their checkpoint."""

    def __init__(self, variant, stream, cluster, config, directory):
        import keras
        import tensorflow as tf

        self.variant = variant
        self.stream = stream
        self.config = config
        self.strategy = tf.distribute.ParameterServerStrategy(cluster.resolver())
        self.coordinator = tf.distribute.coordinator.ClusterCoordinator(self.strategy)
        decay_period = steps_per_period(stream, config.batch_size)
        with self.strategy.scope():
            self.model = make_model(variant, stream, config)
            self.optimizer = make_optimizer(variant, config, decay_period, self.model)
            self.optimizer.build(self.model.trainable_variables)
        self.manager = None
        if directory is not None:
            checkpoint = tf.train.Checkpoint(
                model=self.model, **self.optimizer.checkpoint_items()
            )
            self.manager = tf.train.CheckpointManager(
                checkpoint, directory, max_to_keep=2
            )
        loss_fn = keras.losses.BinaryCrossentropy()
        optimizer, model = self.optimizer, self.model
        variables = model.trainable_variables

        def step_fn(x, y):
            t_read = optimizer.read_step()
            with tf.control_dependencies([t_read]):
                with tf.GradientTape() as tape:
                    loss = loss_fn(y, model(x, training=True))
            grads = tape.gradient(loss, variables)
            return loss, optimizer.apply(grads, variables)

        strategy = self.strategy

        @tf.function
        def train_step(x, y):
            return strategy.run(step_fn, args=(x, y))

        @tf.function
        def predict(x):
            return model(x, training=False)

        self.train_step = train_step
        self.predict_fn = predict

    def restore(self, directory) -> _Progress | None:
        """Restores the latest checkpoint; its progress, or None."""
        from tf_swap.keras import LocalBatchNormalization

        if self.manager is None or self.manager.latest_checkpoint is None:
            return None
        self.manager.checkpoint.restore(self.manager.latest_checkpoint).expect_partial()
        # A fresh run's workers start Local BN from their first batch (the
        # served statistics are still the initializers then); restored, the
        # served statistics are the run's, and the workers continue from
        # them, as the uninterrupted run's did (set before the first trace).
        for layer in self.model.layers:
            if isinstance(layer, LocalBatchNormalization):
                layer.first_step_statistics = "shared"
        with open(os.path.join(directory, "progress.json")) as f:
            return _Progress.from_json(json.load(f))

    def save(self, directory, progress: _Progress) -> None:
        """Waits for the steps in flight, then checkpoints."""
        self.coordinator.join()
        self.manager.save(checkpoint_number=progress.steps)
        tmp = os.path.join(directory, "progress.json.partial")
        with open(tmp, "w") as f:
            json.dump(progress.to_json(), f)
        os.replace(tmp, os.path.join(directory, "progress.json"))

    def predict(self, x, chunk: int = 8192):
        import tensorflow as tf

        return np.concatenate(
            [
                self.predict_fn(tf.constant(x[i : i + chunk])).numpy().ravel()
                for i in range(0, len(x), chunk)
            ]
        )


def train_variant(
    variant: str,
    stream,
    cluster,
    config: Config,
    checkpointing: Checkpointing | None = None,
    on_step=None,
    progress_bar=None,
    saved_model_dir: str | None = None,
    report=None,
    seed_directory: bool = False,
    summary_dir: str | None = None,
) -> dict:
    """Trains one variant over the stream on `cluster` (a `LocalCluster`,
    restarted on failure, or an `ExistingCluster`); returns its metrics.

    `on_step(variant, step)` is called on the coordinator after each step is
    scheduled (tests kill tasks from it). `report(line)` receives the
    user-facing lines about restarts. With `saved_model_dir`, the final
    model is exported for serving to `saved_model_dir/VARIANT`. With
    `seed_directory`, checkpoints go to `VARIANT/seed_SEED` (one run of
    several seeds). With `summary_dir`, TensorBoard summaries go to
    `summary_dir/VARIANT/seed_SEED` as each period ends.

    Raises:
        TrainingFailed: a task failed and no checkpoint (or no restart)
            could recover it.
    """
    from tf_swap.jobs.models import dynamic_tables, wide_zero_fraction
    from tf_swap.jobs.summaries import PeriodSummaries
    from tf_swap.keras import ShardedEmbedding

    checkpointing = checkpointing or Checkpointing()
    directory = checkpointing.for_variant(
        variant, config.seed if seed_directory else None
    )
    every = checkpointing.every or default_checkpoint_every(stream, config.batch_size)
    if directory is not None:
        os.makedirs(directory, exist_ok=True)
    started = time.monotonic()
    restarts = _Restarts(checkpointing.max_restarts)
    redone = 0
    lost_workers: list[dict] = []
    resume = checkpointing.resume
    bar_start = progress_bar.n if progress_bar is not None else 0
    run, known_dead = None, set()
    summaries = PeriodSummaries(
        os.path.join(summary_dir, variant, f"seed_{config.seed}")
        if summary_dir is not None
        else None
    )
    while True:
        if run is None:
            run = _Run(variant, stream, cluster, config, directory)
        progress = (run.restore(directory) if resume else None) or _Progress()
        if progress_bar is not None:
            progress_bar.n = bar_start + progress.steps
            progress_bar.refresh()
        watch = WorkerWatch(
            cluster,
            restarts.left,
            restarts.add,
            lambda line: report(f"{variant}: {line}") if report else None,
            lambda progress=progress: progress.steps,
            known_dead,
        )
        try:
            with watch:
                _train(
                    run,
                    stream,
                    config,
                    progress,
                    directory,
                    every,
                    on_step,
                    progress_bar,
                    summaries,
                )
            break
        except Terminated:
            if directory is None:
                raise
            run.save(directory, progress)  # the steps in flight first
            raise Terminated(
                f"checkpointed {variant} at step {progress.steps} in {directory} "
                "(--resume continues from it)"
            ) from None
        except KeyboardInterrupt:
            if not watch.no_worker_left:
                raise
            _keep_stuck(run)
            raise TrainingFailed(
                f"{variant}: every worker of the cluster was lost (at step "
                f"{progress.steps}, after {restarts.count} restart(s) of "
                f"--max-restarts {checkpointing.max_restarts})"
            ) from None
        except _recoverable_errors() as error:
            dead = watch.dead_tasks()
            failed = ", ".join(
                f"{'parameter server' if job == 'ps' else job} {task}"
                for job, task in dead
            )
            lost = [
                {"worker": task, "step": progress.steps, "restarted": True}
                for job, task in dead
                if job == "worker"
            ]
            if directory is None:
                raise TrainingFailed(
                    f"a task of the cluster failed ({type(error).__name__}) and "
                    "there is no checkpoint to recover from: run with "
                    "--checkpoint-dir DIR"
                ) from None
            newly_dead = {task for job, task in dead if job == "worker"} - known_dead
            if (
                not watch.owned
                and newly_dead
                and all(job == "worker" for job, _ in dead)
                and len(dead) < len(cluster.spec["worker"])
            ):
                # TensorFlow's coordinator can raise a worker's death as a
                # failed step (its error carries the parameter server's
                # gRPC details). The tasks are not the job's to restart; the
                # same coordinator goes on with the others, from the
                # checkpoint.
                known_dead |= newly_dead | watch.dead_workers
                resume = True
                again = _redo_from_checkpoint(run, progress)
                redone += again
                if report is not None:
                    report(
                        f"{variant}: {failed} {'were' if len(dead) > 1 else 'was'} "
                        f"lost at step {progress.steps}; continuing with the other "
                        f"workers from {_checkpoint_name(run)} ({again} steps redone)"
                    )
                lost_workers.extend(
                    {"worker": task, "step": progress.steps, "restarted": False}
                    for task in sorted(newly_dead - {w["worker"] for w in watch.lost})
                )
                continue
            if restarts.left() <= 0:
                raise TrainingFailed(
                    f"a task of the cluster failed again after {restarts.count} "
                    f"restart(s) (--max-restarts {checkpointing.max_restarts})"
                ) from None
            try:
                cluster.restart()
            except RuntimeError as cannot:
                raise TrainingFailed(str(cannot)) from None
            restarts.add()
            lost_workers.extend(lost)
            resume = True
            origin = _checkpoint_name(run)
            again = _redo_from_checkpoint(run, progress)
            restored = progress.steps - again
            redone += again
            run = None  # a new cluster: a new coordinator
            if report is not None:
                verb = "were" if len(dead) > 1 else "was"
                what = f"{failed} {verb} lost" if dead else "a task failed"
                report(
                    f"{variant}: {what} at step {progress.steps}; restarted the "
                    f"cluster and continued from {origin} (step {restored}: "
                    f"{again} steps redone, restart {restarts.count})"
                )
        finally:
            lost_workers.extend(watch.lost)
    summaries.close()
    if watch.workers_down:
        _keep_stuck(run)
    saved_model = None
    if saved_model_dir is not None:
        from tf_swap.keras import export_for_serving

        saved_model = os.path.join(saved_model_dir, variant)
        export_for_serving(run.model, saved_model)
    taus = progress.taus
    applied = int(run.optimizer.iterations.numpy())
    return {
        "auc": progress.aucs,
        "gauc": progress.gaucs,
        "loss": progress.losses,
        "steps": progress.steps,
        "applied_steps": applied,
        "dropped_updates": run.optimizer.dropped_updates,
        "mean_staleness": float(np.mean(taus)) if taus else 0.0,
        "max_staleness_seen": int(np.max(taus)) if taus else 0,
        "restarts": restarts.count,
        "redone_steps": redone,
        # A step of a lost worker that TensorFlow ran again elsewhere after
        # its update had reached the parameter servers is applied twice.
        "retried_steps": max(0, applied - progress.steps),
        "lost_workers": lost_workers,
        "workers_down": watch.workers_down,
        "seconds": round(time.monotonic() - started, 1),
        "optimizer": ", ".join(type(o).__name__ for o in run.optimizer.optimizers),
        "wide_zero_fraction": wide_zero_fraction(run.model, stream),
        "batch_norm": VARIANTS[parse_variant(variant)[0]].batch_norm,
        "table_devices": {
            **{
                layer.name: [shard.value.device for shard in layer.shards]
                for layer in run.model.layers
                if isinstance(layer, ShardedEmbedding)
            },
            **{
                layer.name: [handle.device for handle in layer.table.handles]
                for layer in dynamic_tables(run.model)
            },
        },
        "tables": progress.tables,
        "saved_model": saved_model,
    }


def _checkpoint_name(run) -> str:
    checkpoint = run.manager.latest_checkpoint
    return os.path.basename(checkpoint) if checkpoint else "the start"


def _redo_from_checkpoint(run, progress) -> int:
    """The steps scheduled after the latest checkpoint, scheduled again
    when training resumes from it (its number is the steps it holds)."""
    checkpoint = run.manager.latest_checkpoint
    restored = int(checkpoint.rsplit("-", 1)[1]) if checkpoint else 0
    return progress.steps - restored


class _Restarts:
    """The task restarts a variant made, of the `allowed` ones."""

    def __init__(self, allowed: int):
        self.allowed = allowed
        self.count = 0

    def left(self) -> int:
        return self.allowed - self.count

    def add(self, *_) -> None:
        self.count += 1


# Runs whose coordinator waits for a worker that will not return: its
# shutdown would wait too (see `tf_swap.jobs.worker_watch`), so they are
# never collected, and the job ends its process without a shutdown
# (`coordinator_waits_for_a_lost_worker`).
_STUCK: list = []


def _keep_stuck(run) -> None:
    _STUCK.append(run)


def coordinator_waits_for_a_lost_worker() -> bool:
    """Whether this process holds a coordinator that waits for a lost
    worker: it cannot exit normally, only with `os._exit`."""
    return bool(_STUCK)


def _train(run, stream, config, progress, directory, every, on_step, bar, summaries):
    """Schedules the remaining steps period by period, evaluating after each
    period (and writing its `summaries`) and checkpointing every `every`
    steps; updates `progress`."""
    import tensorflow as tf

    from tf_swap.jobs.models import dynamic_tables
    from tf_swap.jobs.ranking import score_period

    table_layers = dynamic_tables(run.model)
    last = len(stream.periods) - 1
    while progress.period < last:
        d = progress.period
        pending = []
        for b, (x, y) in enumerate(
            stream.periods.batches(d, config.batch_size, config.seed)
        ):
            if b < progress.batch:
                continue
            pending.append(
                run.coordinator.schedule(
                    run.train_step, args=(tf.constant(x), tf.constant(y))
                )
            )
            progress.batch = b + 1
            progress.steps += 1
            if on_step is not None:
                on_step(run.variant, progress.steps)
            if directory is not None and progress.steps % every == 0:
                _collect(pending, progress, bar)
                run.save(directory, progress)
        _collect(pending, progress, bar)
        run.coordinator.join()
        counts = TableCounts(progress.tables)
        counts.end_period(table_layers)
        progress.tables = counts.as_dict()
        nxt = stream.periods[d + 1]
        score = score_period(nxt, run.predict(nxt.x))
        progress.aucs.append(score.auc)
        progress.gaucs.append(score.gauc)
        summaries.end_period(
            d + 2,
            score,
            # The period's steps so far, resumed ones included.
            progress.taus[len(progress.taus) - len(progress.period_losses) :],
            int(run.optimizer.dropped_updates),
            progress.tables,
        )
        progress.losses.append(float(np.mean(progress.period_losses)))
        progress.period, progress.batch, progress.period_losses = d + 1, 0, []
        if bar is not None:
            bar.set_postfix_str(
                f"{run.variant} period {d + 2} AUC {progress.aucs[-1]:.4f}"
            )
    if directory is not None:
        run.save(directory, progress)


def _collect(pending, progress, bar) -> None:
    """Fetches the results of the scheduled steps, in order."""
    losses, taus = [], []
    for result in pending:
        loss, tau = result.fetch()
        losses.append(float(loss))
        taus.append(int(tau))
        if bar is not None:
            bar.update(1)
    pending.clear()
    progress.period_losses.extend(losses)
    progress.taus.extend(taus)
