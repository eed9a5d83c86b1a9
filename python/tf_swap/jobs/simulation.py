"""A single-process simulator of asynchronous parameter-server training with
1 to thousands of workers, on tf_swap's real optimizers, ops and layers.

The engine of `python -m tf_swap.simulate` (or `tf-swap-simulate`): it
trains the CTR model of `tf_swap.jobs.models` on a stream of
`tf_swap.jobs.data` as `W` asynchronous workers sharing one parameter
server would.

How (an event simulation, not a delayed-gradient shortcut):

- The schedule (`tf_swap.jobs.schedule`): which worker applies which
  batch at which global step and when each read happens depends only on
  the number of batches, `W`, the worker speeds and the seed, never on the
  model; it is computed ahead of the model a block of events at a time.
- Each block runs inside the graph, up to `SAMPLES_PER_CALL` samples'
  events per `tf.function` call (a `tf.while_loop` over them, one iteration per
  event), with the batches its reads read, drawn from the stream just
  before (`_BatchFeed`; reads take the batches in stream order). A run
  holds one block and one chunk of a period at a time, so its memory does
  not grow with `--samples-per-period`; a period is evaluated on at most
  `--eval-samples` of its samples, spread evenly over it.
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
import itertools
import time

import numpy as np

from tf_swap.jobs.experiment import (
    Config,
    InputError,
    make_model,
    make_optimizer,
    steps_per_period,
    training_batches,
)
from tf_swap.jobs.schedule import ScheduleStream
from tf_swap.jobs.stream import evaluation_chunks


@dataclasses.dataclass
class SimConfig(Config):
    """A `Config` with the simulator's defaults and its worker speeds."""

    batch_size: int = 32
    # The map's setting (docs/results.md), under which its commands run.
    sync_period: int = 1
    speed_sigma: float = 0.5
    jitter_sigma: float = 0.2
    # At most this many samples of a period are evaluated, spread evenly
    # over it (0: all): 2^18 keeps an evaluation within ~40 MB whatever
    # the period's length, the AUC's sampling error about 0.001.
    eval_samples: int = 1 << 18
    progress: bool = False

    def check(self) -> None:
        super().check()
        if self.speed_sigma < 0 or self.jitter_sigma < 0:
            raise InputError("--speed-sigma and --jitter-sigma must be >= 0")
        if self.eval_samples < 0:
            raise InputError(f"--eval-samples must be >= 0, got {self.eval_samples}")


class _BatchFeed:
    """The stream's training batches (periods 0 .. P-2) in order, drawn as
    they are taken: a simulation holds the batches of one call, never the
    stream's."""

    def __init__(self, stream, batch_size: int, seed: int):
        periods = range(len(stream.periods) - 1)
        self._batches = itertools.chain.from_iterable(
            stream.periods.batches(d, batch_size, seed) for d in periods
        )
        self._shape = (batch_size, len(stream.fields))
        self._dtype = np.int64 if stream.raw_ids else np.int32

    def take(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The next `count` batches: `(x[count, B, F], y[count, B, 1])`."""
        x = np.empty((count, *self._shape), self._dtype)
        y = np.empty((count, self._shape[0], 1), np.float32)
        for k, (xb, yb) in enumerate(itertools.islice(self._batches, count)):
            x[k], y[k] = xb, yb
        return x, y


class Simulation:
    """One model and optimizer on the "parameter server" and `workers`
    simulated workers, run over a schedule.

    Args:
        variant: A variant, optionally `@K`.
        stream: The stream (its fields and buckets size the model).
        workers: Number of simulated workers.
        decay_period: SWAP's `decay_period` (steps per period).
        config: The `SimConfig`.
    """

    # Samples read per graph call at most (2,048 events at batch 32), so
    # the batches a call holds do not grow with the period (1 MB of ids).
    SAMPLES_PER_CALL = 1 << 16

    def __init__(self, variant, stream, workers, decay_period, config):
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
        batch, fields = config.batch_size, len(stream.fields)
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
            rows=batch * fields,
        )
        statistics = WorkerStatistics(
            [ly for ly in self.model.layers if isinstance(ly, LocalBatchNormalization)],
            workers,
        )
        loss_fn = keras.losses.BinaryCrossentropy()
        model, optimizer, variables = self.model, self.optimizer, self.variables

        def read(w, x, y):
            """Worker `w` reads (the current parameters) for batch `(x, y)`
            and keeps its gradient in its slot."""
            if statistics:
                statistics.load(w)
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            grads = tape.gradient(loss, variables)
            if statistics:
                statistics.store(w)
            ring.put(w, grads)

        def apply(w, t_read):
            """Applies worker `w`'s in-flight gradient at the current step."""
            optimizer.apply(ring.take(w), variables, read_step=t_read)

        # One trace for every call: calls differ in their numbers of events
        # and of batches read.
        events = tf.TensorSpec([None], tf.int32)
        ids = tf.int64 if stream.raw_ids else tf.int32
        xs = tf.TensorSpec([None, batch, fields], ids)
        ys = tf.TensorSpec([None, batch, 1], tf.float32)

        @tf.function(input_signature=[xs, ys])
        def start(x, y):
            def body(i):
                read(tf.cast(i, tf.int32), x[i], y[i])
                return (i + 1,)

            tf.while_loop(
                lambda i: i < tf.shape(x)[0], body, (0,), parallel_iterations=1
            )

        @tf.function(input_signature=[events, tf.TensorSpec([None], tf.int64), xs, ys])
        def run(worker, t_read, x, y):
            # Events whose worker reads on come first (the k-th reads batch
            # `x[k]`), the stream's tail (nothing left to read) after: two
            # loops, no branch per event.
            reading = tf.shape(x)[0]

            def apply_and_read(k):
                w = worker[k]
                apply(w, t_read[k])
                read(w, x[k], y[k])
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

    def score(self, stream, d: int):
        """The `PeriodScore` of the shared parameters on period `d`'s
        evaluated samples (`config.eval_samples`), read chunk by chunk."""
        from tf_swap.jobs.ranking import score

        ys, users, scores = [], [], []
        for chunk in evaluation_chunks(stream.periods, d, self.config.eval_samples):
            scores.append(self.predict(chunk.x))
            ys.append(chunk.y)
            users.append(chunk.users)
        return score(
            np.concatenate(ys),
            np.concatenate(scores),
            None if users[0] is None else np.concatenate(users),
        )

    def start(self, x, y) -> None:
        """Every worker `w` reads its first batch `(x[w], y[w])` (at step
        0)."""
        import tensorflow as tf

        self._start(tf.constant(x), tf.constant(y))

    def run_events(self, events, x, y) -> None:
        """Runs `events` (`tf_swap.jobs.schedule.Events`) in one call; the
        `k`-th of them whose worker reads on reads batch `(x[k], y[k])`."""
        import tensorflow as tf

        self._run(
            tf.constant(events.worker),
            tf.constant(events.t_read),
            tf.constant(x),
            tf.constant(y),
        )

    def run(self, stream, schedule, progress=None, summaries=None) -> dict:
        """Runs `schedule` (a `ScheduleStream`, or a `Schedule.replay()`)
        on `stream`'s batches, evaluating every period; returns this run's
        metrics (`auc` and `gauc` per evaluated period, `gauc` `None`
        without users, `staleness`: `bincount` of the updates' `tau`,
        `updates`, `dropped_updates`, `wide_zero_fraction`, `tables`: the
        dynamic tables' entries, admitted and evicted per period
        (`TableCounts`), `seconds`). `summaries`: a `PeriodSummaries`
        written as each period ends."""
        from tf_swap.jobs.models import dynamic_tables, wide_zero_fraction
        from tf_swap.jobs.reporting import merge_counts
        from tf_swap.jobs.table_counts import TableCounts

        tables = TableCounts()
        table_layers = dynamic_tables(self.model)
        started = time.monotonic()
        feed = _BatchFeed(stream, self.config.batch_size, self.config.seed)
        self.start(*feed.take(len(schedule.first)))
        periods = len(stream.periods)
        # The last batch of each training period, + 1.
        ends = np.cumsum(
            [
                stream.periods.samples(d) // self.config.batch_size
                for d in range(periods - 1)
            ]
        )
        staleness = np.zeros(1, np.int64)
        aucs: list[float] = []
        gaucs: list[float | None] = []
        taus: list[np.ndarray] = []  # staleness since the last evaluation

        def run_events(events) -> None:
            nonlocal staleness
            if not len(events):
                return
            self.run_events(events, *feed.take(int(np.sum(events.next >= 0))))
            tau = events.staleness
            taus.append(tau)
            staleness = merge_counts(staleness, np.bincount(tau))
            if progress is not None:
                progress.update(len(events))

        def evaluate() -> None:
            tables.end_period(table_layers)
            score = self.score(stream, len(aucs) + 1)
            aucs.append(score.auc)
            gaucs.append(score.gauc)
            if summaries is not None:
                summaries.end_period(
                    len(aucs) + 1,
                    score,
                    np.concatenate(taus) if taus else np.zeros(0, np.int64),
                    int(self.optimizer.dropped_updates),
                    tables.as_dict(),
                )
            taus.clear()
            if progress is not None:
                # Redrawn with the bar's next update (at most once a
                # second), not once per period: runs have 1000s of them.
                progress.set_postfix_str(
                    f"{self.variant} W={self.workers} period {len(aucs) + 1} "
                    f"AUC {aucs[-1]:.4f}",
                    refresh=False,
                )

        # Period d + 1 is evaluated just before the first update computed on
        # its data: where the latest period applied so far first reaches it.
        reached = -1
        per_call = max(1, self.SAMPLES_PER_CALL // self.config.batch_size)
        while True:
            events = schedule.take(per_call)
            if not len(events):
                break
            arriving = np.searchsorted(ends, events.batch, side="right")
            latest = np.maximum.accumulate(np.maximum(arriving, reached))
            reached = int(latest[-1])
            begin = 0
            while len(aucs) + 1 <= periods - 2:
                cut = int(np.searchsorted(latest, len(aucs) + 1))
                if cut >= len(events):
                    break
                run_events(events[begin:cut])
                evaluate()
                begin = cut
            run_events(events[begin:])
        while len(aucs) < periods - 1:  # the last period, once all is applied
            evaluate()
        if int(self.optimizer.iterations.numpy()) != schedule.batches:
            raise RuntimeError("global step out of sync with the schedule")
        return {
            "auc": aucs,
            "gauc": gaucs,
            "staleness": staleness,
            "updates": schedule.batches,
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
    schedule = ScheduleStream(
        training_batches(stream, config.batch_size),
        workers,
        config.speed_sigma,
        config.jitter_sigma,
        config.seed,
    )
    sim = Simulation(
        variant,
        stream,
        workers,
        steps_per_period(stream, config.batch_size),
        config,
    )
    return sim.run(stream, schedule, progress=progress, summaries=summaries)


def head(stream, periods: int):
    """The stream's first `periods` periods."""
    return dataclasses.replace(stream, periods=stream.periods[:periods])
