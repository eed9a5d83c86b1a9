"""A single-process simulator of asynchronous parameter-server training with
1 to thousands of workers, on tf_swap's real optimizers, ops and layers.

The engine of `python -m tf_swap.simulate` (or `tf-swap-simulate`): it
trains the CTR model of `tf_swap.models` on a stream of `tf_swap.data` as
`W` asynchronous workers sharing one parameter server would.

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
  and its batch), and kept until its own event. So the state is bounded by
  `W` in-flight gradients of fixed size, never `W` copies of the model: a
  ring of `W` slots, preallocated (per embedding table `[W, rows, dim]`
  values and `[W, rows]` indices of its sparse gradient; the dense
  gradients of a worker packed in one row of `[W, D]`), written and read
  by worker id with scatters and gathers of one slot.
- Batch normalization. Keras `BatchNormalization` (the `adagrad` and `swap`
  variants) has one shared set of moving statistics, updated by each
  worker's forward pass at read time, as on a parameter server. Local BN
  (`+lbn`): every worker owns its local statistics, kept in a `[W, 2C]`
  variable (every layer's local means and variances in one row) and a
  `[W, layers]` one (their step counts); before worker `w`'s forward pass
  its row is gathered into the (single) layers' local variables, the real
  layers run (normalizing with the batch's statistics, updating the local
  ones, publishing to the shared `moving_*` every `sync_period` of that
  worker's own steps), and the row is scattered back. The arithmetic is the
  layer's own.
- Evaluation, streaming-style: the AUC of period `d + 1` is computed on the
  shared parameters just before the first update computed on period-`d + 1`
  data is applied (no evaluated sample has been trained on); the last
  period after the in-flight updates are drained.

With one worker this is sequential training (the same values, bit for bit);
with equal speeds the staleness is `W - 1` once every worker has read.

Variants are those of `tf_swap.train` (`adagrad`, `swap`, `swap+stale`,
`swap+lbn`, `swap+stale+lbn`), optionally with `@K` to set the staleness
exponent, e.g. `swap+stale+lbn@1`.

Seeds and protocol (`tf_swap.jobs.protocol`): every (variant, `W`) cell
runs once per seed (stream, batch order, initialisation and schedule);
`--protocol tuned` first picks each variant's learning rate on the dev
periods at one worker and reports the test periods only.

Outputs, in `--out`:

- `metrics.json`:
  `{"data", "periods", "samples_per_period", "protocol", "seeds",
  "learning_rates": {VARIANT: lr}, "tuning": null | {"grid",
  "dev_periods", "dev_mean_auc": {VARIANT: [[per seed] per lr]}},
  "evaluated_periods" (the reported ones, 1-based), "oracle_auc", "workers",
  "config", "seconds", "updates_per_run", "seconds_per_update",
  "runs": {VARIANT: {"workers": [W...], "learning_rate",
  "auc" / "auc_ci": [last reported period's AUC, mean over seeds / 95% CI
  half-width (null with one seed), per W],
  "mean_auc" / "mean_auc_ci": [the same for the mean over the reported
  periods], "seed_auc", "seed_mean_auc": [[per seed] per W],
  "period_auc": [[per reported period, mean over seeds] per W],
  "seed_period_auc": [[[per period] per seed] per W],
  "staleness": [{"mean", "p50", "p99", "max"} per W, over all seeds],
  "updates": [...], "dropped_updates": [...], "seconds": [...]}}}`.
  `seconds_per_update` is the simulation's wall time (evaluation
  included) over the updates simulated.
- `auc_vs_workers.png`: mean AUC against workers (log x axis), one line
  per variant, error bars the 95% CI over seeds.
- `gain_vs_budget.png` (two variants or more): per period, each variant's
  AUC minus the first's at the first worker count, paired by seed, against
  the step-budget ratio `sqrt(n * (1 - decay_rate))`.
"""

from __future__ import annotations

import dataclasses
import sys
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
from tf_swap.jobs.protocol import (
    LEARNING_RATE_GRID,
    PROTOCOLS,
    best_learning_rate,
    dev_periods,
    mean_ci,
)
from tf_swap.jobs.reporting import staleness_summary
from tf_swap.jobs.schedule import make_schedule


@dataclasses.dataclass
class SimConfig(Config):
    """A `Config` with the simulator's defaults and its worker speeds."""

    batch_size: int = 32
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

        from tf_swap.keras import LocalBatchNormalization

        self.variant, self.workers, self.config = variant, workers, config
        self.model = make_model(variant, stream, config)
        self.optimizer = make_optimizer(variant, config, max(1, decay_period))
        self.variables = list(self.model.trainable_variables)
        self.optimizer.build(self.variables)
        has_read_step = hasattr(self.optimizer, "read_step")
        xs, ys, _ = batches
        self._x, self._y = tf.constant(xs), tf.constant(ys)
        rows = xs.shape[1] * xs.shape[2]  # one gathered row per id of a batch
        tables = {
            id(w)
            for layer in self.model.layers
            if isinstance(layer, keras.layers.Embedding)
            for w in layer.trainable_weights
        }
        self._sparse = [id(v) in tables for v in self.variables]
        # The ring: per sparse variable `[W, rows, dim]` values and `[W,
        # rows]` indices; the dense gradients of a worker packed in one row
        # of `[W, D]` (one gather and one scatter for all of them).
        self._tables = [
            (
                tf.Variable(tf.zeros((workers, rows, *v.shape[1:]), v.dtype)),
                tf.Variable(tf.zeros((workers, rows), tf.int32)),
            )
            for v, sparse in zip(self.variables, self._sparse, strict=True)
            if sparse
        ]
        dense = [
            v
            for v, sparse in zip(self.variables, self._sparse, strict=True)
            if not sparse
        ]
        sizes = [int(np.prod(v.shape)) for v in dense]
        self._dense = tf.Variable(tf.zeros((workers, sum(sizes)), tf.float32))
        self.bn_layers = [
            layer
            for layer in self.model.layers
            if isinstance(layer, LocalBatchNormalization)
        ]
        # Every worker's Local BN state: the layers' local means and
        # variances in one `[W, 2 * sum(C)]` row, their step counts in `[W,
        # layers]`.
        locals_f = [
            t for ly in self.bn_layers for t in (ly.local_mean, ly.local_variance)
        ]
        widths = [int(t.shape[0]) for t in locals_f]
        init = (
            tf.concat([tf.convert_to_tensor(t) for t in locals_f], 0)
            if locals_f
            else tf.zeros([0])
        )
        self._bn_floats = tf.Variable(tf.repeat(init[None], workers, 0))
        self._bn_steps = tf.Variable(tf.zeros((workers, len(self.bn_layers)), tf.int64))
        loss_fn = keras.losses.BinaryCrossentropy()
        model, optimizer, variables = self.model, self.optimizer, self.variables
        shapes = [tf.constant(tuple(v.shape), tf.int64) for v in variables]
        dense_shapes = [tuple(v.shape) for v in dense]

        def read(w, b):
            """Worker `w` reads (the current parameters) for batch `b` and
            keeps its gradient in its slot."""
            if self.bn_layers:
                floats = tf.split(tf.gather(self._bn_floats, w), widths)
                for local, value in zip(locals_f, floats, strict=True):
                    local.assign(value)
                steps = tf.gather(self._bn_steps, w)
                for i, layer in enumerate(self.bn_layers):
                    layer.local_steps.assign(steps[i])
            with tf.GradientTape() as tape:
                loss = loss_fn(self._y[b], model(self._x[b], training=True))
            grads = tape.gradient(loss, variables)
            if self.bn_layers:
                row = tf.concat([tf.convert_to_tensor(t) for t in locals_f], 0)
                self._bn_floats.scatter_update(tf.IndexedSlices(row[None], w[None]))
                steps = tf.stack(
                    [tf.convert_to_tensor(ly.local_steps) for ly in self.bn_layers]
                )
                self._bn_steps.scatter_update(tf.IndexedSlices(steps[None], w[None]))
            tables = iter(self._tables)
            flat = []
            for g, sparse in zip(grads, self._sparse, strict=True):
                if sparse:
                    values_of, indices_of = next(tables)
                    values = tf.reshape(g.values, [rows, *g.values.shape[-1:]])
                    indices = tf.cast(tf.reshape(g.indices, [rows]), tf.int32)
                    values_of.scatter_update(tf.IndexedSlices(values[None], w[None]))
                    indices_of.scatter_update(tf.IndexedSlices(indices[None], w[None]))
                else:
                    flat.append(tf.reshape(g, [-1]))
            row = tf.concat(flat, 0)
            self._dense.scatter_update(tf.IndexedSlices(row[None], w[None]))

        def apply(w, t_read):
            """Applies worker `w`'s in-flight gradient at the current step."""
            # Gathers read one slot: a read of the whole ring would make the
            # next write copy it (copy-on-write of a shared buffer).
            dense_grads = iter(
                tf.reshape(g, shape)
                for g, shape in zip(
                    tf.split(tf.gather(self._dense, w), sizes),
                    dense_shapes,
                    strict=True,
                )
            )
            tables = iter(self._tables)
            grads = []
            for sparse, shape in zip(self._sparse, shapes, strict=True):
                if sparse:
                    values_of, indices_of = next(tables)
                    values, indices = tf.gather(values_of, w), tf.gather(indices_of, w)
                    grads.append(tf.IndexedSlices(values, indices, shape))
                else:
                    grads.append(next(dense_grads))
            pairs = list(zip(grads, variables, strict=True))
            if has_read_step:
                optimizer.apply_gradients(pairs, read_step=t_read)
            else:
                optimizer.apply_gradients(pairs)

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

    def run(self, stream, batches, schedule, progress=None) -> dict:
        """Runs the schedule, evaluating every period; returns this run's
        metrics (`auc` per evaluated period, `taus`, `updates`,
        `dropped_updates`, `seconds`)."""
        from sklearn.metrics import roc_auc_score

        _, _, period_of = batches
        started = time.monotonic()
        self.start(schedule)
        periods = len(stream.periods)
        # Period d + 1 is evaluated before the first update computed on it.
        arriving = period_of[schedule.batch]
        cuts = [
            int(np.searchsorted(np.maximum.accumulate(arriving), d + 1))
            for d in range(periods - 2)
        ]
        aucs: list[float] = []
        begin = 0
        for end in [*cuts, len(schedule.worker)]:
            if end > begin:
                self.run_events(schedule, begin, end)
                if progress is not None:
                    progress.update(end - begin)
            nxt = stream.periods[len(aucs) + 1]
            aucs.append(float(roc_auc_score(nxt.y, self.predict(nxt.x))))
            if progress is not None:
                progress.set_postfix_str(
                    f"{self.variant} W={self.workers} period {len(aucs) + 1} "
                    f"AUC {aucs[-1]:.4f}"
                )
            begin = end
        if int(self.optimizer.iterations.numpy()) != len(schedule.worker):
            raise RuntimeError("global step out of sync with the schedule")
        dropped = getattr(self.optimizer, "dropped_updates", 0)
        return {
            "auc": aucs,
            "taus": schedule.staleness,
            "updates": len(schedule.worker),
            "dropped_updates": int(np.asarray(dropped)),
            "seconds": round(time.monotonic() - started, 2),
        }


def one_run(variant, stream, workers, config, progress=None) -> dict:
    """Simulates `variant` with `workers` workers on `stream` (seeded by
    `config.seed`); `Simulation.run`'s metrics."""
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
    return sim.run(stream, batches, schedule, progress=progress)


def head(stream, periods: int):
    """The stream's first `periods` periods."""
    return dataclasses.replace(stream, periods=stream.periods[:periods])


def simulate(
    stream,
    variants: list[str],
    workers: list[int],
    config: SimConfig | None = None,
    protocol: str = "fixed",
    seeds: list[int] | None = None,
    grid: list[float] | tuple[float, ...] = LEARNING_RATE_GRID,
    progress: bool = True,
    console=None,
) -> dict:
    """Runs every (variant, workers, seed) cell under `protocol` (see
    `tf_swap.jobs.protocol`); returns the metrics dictionary (what
    `metrics.json` holds, see the module docstring).

    Args:
        stream: A `Stream`, or a function of the seed returning one (each
            seed then has its own stream).
        variants: Variant names (`name@K` allowed).
        workers: Worker counts.
        config: The `SimConfig`; its `learning_rate` is the one of
            `protocol="fixed"`.
        protocol: `"fixed"` or `"tuned"`.
        seeds: The seeds of every cell (`tf_swap.jobs.protocol.seeds`);
            default `[config.seed]`.
        grid: The learning rates `"tuned"` chooses from.
    """
    from tqdm import tqdm

    config = config or SimConfig()
    if protocol not in PROTOCOLS:
        raise InputError(f"--protocol must be one of {', '.join(PROTOCOLS)}")
    started = time.monotonic()
    seed_list = list(seeds) if seeds else [config.seed]
    load = stream if callable(stream) else (lambda _seed, s=stream: s)
    first = load(seed_list[0])
    periods = len(first.periods)
    dev = dev_periods(periods) if protocol == "tuned" else 0
    streams = {
        seed: first if seed == seed_list[0] else load(seed) for seed in seed_list
    }
    n = len(stream_batches(first, config.batch_size, config.seed)[0])
    dev_n = (
        len(stream_batches(head(first, dev), config.batch_size, config.seed)[0])
        if dev
        else 0
    )
    # Evaluated periods are 1 .. P-1 (0-based); tuned reports dev .. P-1.
    reported = list(range(max(1, dev), periods))
    total = (
        len(variants)
        * len(seed_list)
        * (len(grid) * dev_n * bool(dev) + n * len(workers))
    )
    updates = 0
    update_seconds = 0.0
    tuning: dict = {}
    learning_rates: dict = {}
    runs: dict = {}
    with tqdm(
        total=total,
        unit="update",
        disable=not progress,
        file=console or sys.stderr,
        dynamic_ncols=True,
        mininterval=1.0,
    ) as bar:

        def cell(variant, stream, w, lr, seed) -> dict:
            nonlocal updates, update_seconds
            cfg = dataclasses.replace(config, learning_rate=lr, seed=seed)
            result = one_run(variant, stream, w, cfg, progress=bar)
            updates += result["updates"]
            update_seconds += result["seconds"]
            return result

        for variant in variants:
            if dev:
                dev_auc = [
                    [
                        float(
                            np.mean(
                                cell(variant, head(streams[s], dev), 1, lr, s)["auc"]
                            )
                        )
                        for s in seed_list
                    ]
                    for lr in grid
                ]
                tuning[variant] = dev_auc
                learning_rates[variant] = best_learning_rate(list(grid), dev_auc)
            else:
                learning_rates[variant] = config.learning_rate
            run = runs[variant] = {
                "workers": [],
                "learning_rate": learning_rates[variant],
            }
            for key in (
                "auc",
                "auc_ci",
                "mean_auc",
                "mean_auc_ci",
                "seed_auc",
                "seed_mean_auc",
                "period_auc",
                "seed_period_auc",
                "staleness",
                "updates",
                "dropped_updates",
                "seconds",
            ):
                run[key] = []
            for w in workers:
                results = [
                    cell(variant, streams[s], w, learning_rates[variant], s)
                    for s in seed_list
                ]
                # `auc` lists periods 1 .. P-1; keep the reported ones.
                per_seed = [[r["auc"][p - 1] for p in reported] for r in results]
                finals = [aucs[-1] for aucs in per_seed]
                means = [float(np.mean(aucs)) for aucs in per_seed]
                final, final_ci = mean_ci(finals)
                mean, mean_half = mean_ci(means)
                run["workers"].append(w)
                run["auc"].append(final)
                run["auc_ci"].append(final_ci)
                run["mean_auc"].append(mean)
                run["mean_auc_ci"].append(mean_half)
                run["seed_auc"].append(finals)
                run["seed_mean_auc"].append(means)
                run["period_auc"].append(np.mean(per_seed, axis=0).tolist())
                run["seed_period_auc"].append(per_seed)
                taus = np.concatenate([r["taus"] for r in results])
                run["staleness"].append(staleness_summary(taus))
                run["updates"].append(results[0]["updates"])
                run["dropped_updates"].append(
                    sum(r["dropped_updates"] for r in results)
                )
                run["seconds"].append(round(sum(r["seconds"] for r in results), 2))
    oracles = [streams[s].oracle_auc() for s in seed_list]
    oracle = (
        None
        if oracles[0] is None
        else np.mean([[o[p] for p in reported] for o in oracles], axis=0).tolist()
    )
    return {
        "data": first.name,
        "periods": periods,
        "samples_per_period": [len(p.y) for p in first.periods],
        "protocol": protocol,
        "seeds": seed_list,
        "learning_rates": learning_rates,
        "tuning": (
            {
                "grid": list(grid),
                "dev_periods": list(range(2, dev + 1)),
                "dev_mean_auc": tuning,
            }
            if dev
            else None
        ),
        "evaluated_periods": [p + 1 for p in reported],
        "oracle_auc": oracle,
        "workers": list(workers),
        "config": config.as_dict(),
        "updates_per_run": n,
        "seconds_per_update": round(update_seconds / max(1, updates), 6),
        "runs": runs,
        "seconds": round(time.monotonic() - started, 1),
    }
