"""A single-process simulator of asynchronous parameter-server training with
1 to thousands of workers, on tf_swap's real optimizers, ops and layers.

The engine of `python -m tf_swap.simulate` (or `tf-swap-simulate`): it
trains the CTR model of `tf_swap.jobs.models` on a stream of
`tf_swap.jobs.data` as `W` asynchronous workers sharing one parameter
server would.

How (an event simulation, not a delayed-gradient shortcut):

- The schedule first (`tf_swap.jobs.schedule`): which worker applies which
  batch at which global step and when each read happens depends only on
  the number of batches, `W`, the worker speeds and the seed, never on the
  model.
- Then the schedule runs inside the graph, many events per `tf.function`
  call (a `tf.while_loop` over a slice of it, one iteration per event).
  Event `k` applies worker `w`'s in-flight gradient through the real
  optimizer (`tf_swap.keras.AdagradSwap` and its ops; `adagrad` is it with
  `decay_rate=1`, plain Adagrad by the SPEC) at global step `k`, with
  `read_step=t_read`, so staleness normalization sees `tau = k - t_read`;
  then worker `w` reads its next batch at step `k + 1`: its gradient is
  computed right then, on the parameters as they are at that step, i.e. on
  what it read (a worker's gradient is a function of the values it read
  and its batch), and kept until its own event in a `GradientRing` (one
  preallocated slot per worker), so the state is bounded by `W` in-flight
  gradients of fixed size, never `W` copies of the model.
- Batch normalization. Keras `BatchNormalization` (the `adagrad` and `swap`
  variants) has one shared set of moving statistics, updated by each
  worker's forward pass at read time, as on a parameter server. Local BN
  (`+lbn`): every worker owns its local statistics (`WorkerStatistics`),
  swapped into the (single) layers around its forward pass: the real
  layers run (normalizing with the batch's statistics, updating the local
  ones, publishing to the shared `moving_*` every `sync_period` of that
  worker's own steps). The arithmetic is the layer's own.
- Evaluation, streaming-style: the AUC of period `d + 1` is computed on the
  shared parameters just before the first update computed on period-`d + 1`
  data is applied (no evaluated sample has been trained on); the last
  period after the in-flight updates are drained.

With one worker this is sequential training (the same values, bit for bit);
with equal speeds the staleness is `W - 1` once every worker has read.

Variants are those of `tf_swap.train` (`tf_swap.jobs.experiment.VARIANTS`),
optionally with `@K` to set the staleness exponent, e.g. `swap+stale+lbn@1`.

Runs over seeds, worker counts and learning rates, and their metrics:
`tf_swap.jobs.simulation_sweep`.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from tf_swap.jobs.experiment import (
    Config,
    InputError,
    make_model,
    make_optimizer,
    steps_per_period,
    stream_batches,
)
from tf_swap.jobs.schedule import make_schedule


@dataclasses.dataclass
class SimConfig(Config):
    """A `Config` with the simulator's defaults and its worker speeds."""

    batch_size: int = 32
    # The map's setting (docs/results.md), under which its commands run.
    sync_period: int = 1
    speed_sigma: float = 0.5
    jitter_sigma: float = 0.2
    progress: bool = False

    def check(self) -> None:
        super().check()
        if self.speed_sigma < 0 or self.jitter_sigma < 0:
            raise InputError("--speed-sigma and --jitter-sigma must be >= 0")


class Simulation:
    """One model and optimizer on the "parameter server" and `workers`
    simulated workers, run over a `Schedule`.

    Args:
        variant: A variant, optionally `@K`.
        stream: The stream (its fields and buckets size the model).
        batches: `(x[n, B, F], y[n, B, 1], period[n])` from `stream_batches`.
        workers: Number of simulated workers.
        decay_period: SWAP's `decay_period` (steps per period).
        config: The `SimConfig`.
    """

    def __init__(self, variant, stream, batches, workers, decay_period, config):
        import keras
        import tensorflow as tf

        from tf_swap.jobs.gradient_ring import GradientRing
        from tf_swap.jobs.models import dynamic_tables
        from tf_swap.jobs.worker_statistics import WorkerStatistics
        from tf_swap.keras import LocalBatchNormalization

        self.variant, self.workers, self.config = variant, workers, config
        self.model = make_model(variant, stream, config)
        self.optimizer = make_optimizer(
            variant, config, max(1, decay_period), self.model
        )
        self.variables = list(self.model.trainable_variables)
        self.optimizer.build(self.variables)
        xs, ys, _ = batches
        self._x, self._y = tf.constant(xs), tf.constant(ys)
        # Sparse gradients: a fixed table's rows (int32), a dynamic
        # table's ids (int64, to its gradient slot).
        index_dtype = {
            id(w): tf.int32
            for layer in self.model.layers
            if isinstance(layer, keras.layers.Embedding)
            for w in layer.trainable_weights
        }
        index_dtype.update(
            (id(layer.gradient_slot), tf.int64)
            for layer in dynamic_tables(self.model)
        )
        # One gathered row per id of a batch.
        ring = GradientRing(
            self.variables,
            [index_dtype.get(id(v)) for v in self.variables],
            workers,
            rows=xs.shape[1] * xs.shape[2],
        )
        statistics = WorkerStatistics(
            [ly for ly in self.model.layers if isinstance(ly, LocalBatchNormalization)],
            workers,
        )
        loss_fn = keras.losses.BinaryCrossentropy()
        model, optimizer, variables = self.model, self.optimizer, self.variables

        def read(w, b):
            """Worker `w` reads (the current parameters) for batch `b` and
            keeps its gradient in its slot."""
            if statistics:
                statistics.load(w)
            with tf.GradientTape() as tape:
                loss = loss_fn(self._y[b], model(self._x[b], training=True))
            grads = tape.gradient(loss, variables)
            if statistics:
                statistics.store(w)
            ring.put(w, grads)

        def apply(w, t_read):
            """Applies worker `w`'s in-flight gradient at the current step."""
            optimizer.apply(ring.take(w), variables, read_step=t_read)

        # One trace for every slice length: the cuts between evaluations
        # give slices of varying lengths.
        events = tf.TensorSpec([None], tf.int32)

        @tf.function(input_signature=[events])
        def start(first):
            def body(i):
                read(tf.cast(i, tf.int32), first[i])
                return (i + 1,)

            tf.while_loop(
                lambda i: i < tf.shape(first)[0], body, (0,), parallel_iterations=1
            )

        @tf.function(input_signature=[events, tf.TensorSpec([None], tf.int64), events])
        def run(worker, t_read, following):
            # Events whose worker reads on come first, the stream's tail
            # (nothing left to read) after: two loops, no branch per event.
            reading = tf.reduce_sum(tf.cast(following >= 0, tf.int32))

            def apply_and_read(k):
                w = worker[k]
                apply(w, t_read[k])
                read(w, following[k])
                return (k + 1,)

            def apply_only(k):
                apply(worker[k], t_read[k])
                return (k + 1,)

            (k,) = tf.while_loop(
                lambda k: k < reading, apply_and_read, (0,), parallel_iterations=1
            )
            tf.while_loop(
                lambda k: k < tf.shape(worker)[0],
                apply_only,
                (k,),
                parallel_iterations=1,
            )

        @tf.function(reduce_retracing=True)
        def predict(x):
            return model(x, training=False)

        self._start, self._run, self._predict = start, run, predict

    def predict(self, x, chunk: int = 8192):
        """Click probabilities for `x[n, F]` with the shared parameters."""
        import tensorflow as tf

        return np.concatenate(
            [
                self._predict(tf.constant(x[i : i + chunk])).numpy().ravel()
                for i in range(0, len(x), chunk)
            ]
        )

    def start(self, schedule) -> None:
        """Every worker reads its first batch (at step 0)."""
        import tensorflow as tf

        self._start(tf.constant(schedule.first))

    def run_events(self, schedule, begin: int, end: int) -> None:
        """Runs updates `begin .. end - 1` of the schedule in one call."""
        import tensorflow as tf

        sl = slice(begin, end)
        self._run(
            tf.constant(schedule.worker[sl]),
            tf.constant(schedule.t_read[sl]),
            tf.constant(schedule.next[sl]),
        )

    def run(self, stream, batches, schedule, progress=None, summaries=None) -> dict:
        """Runs the schedule, evaluating every period; returns this run's
        metrics (`auc` and `gauc` per evaluated period, `gauc` `None`
        without users, `taus`, `updates`, `dropped_updates`,
        `wide_zero_fraction`, `tables`: the dynamic tables' entries,
        admitted and evicted per period (`TableCounts`), `seconds`).
        `summaries`: a `PeriodSummaries` written as each period ends."""
        from tf_swap.jobs.models import dynamic_tables, wide_zero_fraction
        from tf_swap.jobs.ranking import score_period
        from tf_swap.jobs.table_counts import TableCounts

        _, _, period_of = batches
        tables = TableCounts()
        table_layers = dynamic_tables(self.model)
        started = time.monotonic()
        self.start(schedule)
        periods = len(stream.periods)
        # Period d + 1 is evaluated before the first update computed on it.
        arriving = period_of[schedule.batch]
        cuts = [
            int(np.searchsorted(np.maximum.accumulate(arriving), d + 1))
            for d in range(periods - 2)
        ]
        taus = schedule.staleness
        aucs: list[float] = []
        gaucs: list[float | None] = []
        begin = 0
        for end in [*cuts, len(schedule.worker)]:
            if end > begin:
                self.run_events(schedule, begin, end)
                if progress is not None:
                    progress.update(end - begin)
            tables.end_period(table_layers)
            nxt = stream.periods[len(aucs) + 1]
            score = score_period(nxt, self.predict(nxt.x))
            aucs.append(score.auc)
            gaucs.append(score.gauc)
            if summaries is not None:
                summaries.end_period(
                    len(aucs) + 1,
                    score,
                    taus[begin:end],
                    int(self.optimizer.dropped_updates),
                    tables.as_dict(),
                )
            if progress is not None:
                # Redrawn with the bar's next update (at most once a
                # second), not once per period: runs have 1000s of them.
                progress.set_postfix_str(
                    f"{self.variant} W={self.workers} period {len(aucs) + 1} "
                    f"AUC {aucs[-1]:.4f}",
                    refresh=False,
                )
            begin = end
        if int(self.optimizer.iterations.numpy()) != len(schedule.worker):
            raise RuntimeError("global step out of sync with the schedule")
        return {
            "auc": aucs,
            "gauc": gaucs,
            "taus": taus,
            "updates": len(schedule.worker),
            "dropped_updates": self.optimizer.dropped_updates,
            "wide_zero_fraction": wide_zero_fraction(self.model, stream),
            "tables": tables.as_dict(),
            "seconds": round(time.monotonic() - started, 2),
        }


def one_run(
    variant, stream, workers, config, progress=None, summaries=None
) -> dict:
    """Simulates `variant` with `workers` workers on `stream` (seeded by
    `config.seed`); `Simulation.run`'s metrics (`summaries`: its
    `PeriodSummaries`)."""
    batches = stream_batches(stream, config.batch_size, config.seed)
    n = len(batches[0])
    schedule = make_schedule(
        n, workers, config.speed_sigma, config.jitter_sigma, config.seed
    )
    sim = Simulation(
        variant,
        stream,
        batches,
        workers,
        steps_per_period(stream, config.batch_size),
        config,
    )
    return sim.run(stream, batches, schedule, progress=progress, summaries=summaries)


def head(stream, periods: int):
    """The stream's first `periods` periods."""
    return dataclasses.replace(stream, periods=stream.periods[:periods])
