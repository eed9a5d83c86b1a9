"""A single-process simulator of asynchronous parameter-server training with
1 to thousands of workers, on tf_swap's real optimizers and kernels.

The engine of `python -m tf_swap.simulate` (or `tf-swap-simulate`): it
trains the CTR model of `tf_swap.models` on a stream of `tf_swap.data` (the sources of
`tf_swap.train`) as `W` asynchronous workers sharing one parameter server
would, for every (optimizer, `W`) pair, and tabulates AUC against `W`.

How the simulation works (an event queue, not a delayed-gradient shortcut):

- The stream's batches (`--batch-size`, shuffled per period as
  `tf_swap.train` does) are handed out in order to whichever worker starts
  next. All workers start at time 0, in turn (worker 0 first).
- When a worker starts a batch it reads what it needs from the parameter
  server at the current global step `t_read`: the embedding rows of its
  batch and the dense weights. Its gradient is a deterministic function of
  that snapshot and the batch, so the simulator computes it right then (one
  `tf.function` call) and keeps only the gradient: the gathered rows'
  gradient (`[batch * fields, dim]` values + indices) and the dense
  gradients, the same number of floats as the snapshot itself. Memory is
  therefore bounded by `W` in-flight gradients of fixed size (about 25 kB
  each with the defaults), never `W` copies of the model.
- Each batch takes the worker a random time: worker `i` has a mean batch
  time drawn once from a log-normal of sigma `--speed-sigma`, and each batch
  multiplies it by a log-normal jitter of sigma `--jitter-sigma` (both 0:
  all batches take exactly 1, a deterministic round robin). A heap keyed by
  finish time (ties by start order) pops the next gradient to arrive; it is
  applied through the real optimizer (`keras.optimizers.Adagrad`, or
  `tf_swap.keras.AdagradSwap` and its ops
  `resource_{sparse_,}apply_adagrad_swap`) at global step `t_apply`, after
  every update that arrived before it, with `read_step=t_read`, so
  staleness normalization sees `tau = t_apply - t_read`. The worker then
  immediately reads for its next batch (the apply and the next read are
  fused into one `tf.function` call to halve the per-update overhead).
  With equal speeds the steady-state staleness is exactly `W - 1`.
- Batch normalization. Keras `BatchNormalization` (the `adagrad` and
  `swap` variants) has one shared set of moving statistics, updated by each
  worker's forward pass at read time, as on a parameter server. Local BN
  (`+lbn`): every simulated worker owns its local statistics (`local_mean`,
  `local_variance`, `local_steps` of each `LocalBatchNormalization` layer),
  kept in NumPy arrays of shape `[W, C]`; before a worker's forward pass
  they are loaded into the (single) layer's local variables, the real layer
  runs (normalizing with the batch's statistics, updating the local ones
  and publishing them to the shared `moving_*` every `--sync-period` of
  *that worker's* steps), and they are stored back. The layer cannot be
  instantiated once per worker (3000 copies of the model), hence this
  swap-in/swap-out; the arithmetic is the layer's own.
- Evaluation, streaming-style (no pause of the workers): the AUC of period
  `d + 1` is computed on the shared parameters just before the first update
  computed on period `d + 1` data is applied (so no evaluated sample has
  been trained on; period-`d` updates still in flight are not in it). The
  last period is evaluated after the in-flight updates are drained.

Variants are those of `tf_swap.train` (`adagrad`, `swap`, `swap+stale`,
`swap+lbn`, `swap+stale+lbn`), optionally with `@K` to set the staleness
exponent, e.g. `swap+stale+lbn@1`.

Outputs, in `--out`:

- `metrics.json`:
  `{"data", "periods", "evaluated_periods", "oracle_auc", "workers",
  "config", "seconds", "updates_per_run", "seconds_per_update",
  "runs": {VARIANT: {"workers": [W...], "auc": [final AUC per W],
  "mean_auc": [mean over evaluated periods per W],
  "period_auc": [[AUC per evaluated period] per W],
  "staleness": [{"mean", "p50", "p99", "max"} per W],
  "updates": [...], "dropped_updates": [...], "seconds": [...]}}}`
  (lists indexed like `workers`; "final" is the last evaluated period).
- `auc_vs_workers.png`: final and mean AUC against workers (log x axis), one
  line per variant.

A table of final / mean AUC per (variant, workers), the per-period AUC and
the staleness observed are printed at the end; a tqdm bar shows progress.
"""

from __future__ import annotations

import dataclasses
import heapq
import sys
import time

from tf_swap.jobs.experiment import (
    VARIANTS,
    Config,
    make_optimizer,
    parse_variant,
    stream_batches,
)
from tf_swap.jobs.reporting import staleness_summary


@dataclasses.dataclass
class SimConfig(Config):
    """A `Config` with the simulator's defaults and its worker speeds."""

    batch_size: int = 32
    speed_sigma: float = 0.5
    jitter_sigma: float = 0.2
    progress: bool = False

    def check(self) -> None:
        super().check()
        from tf_swap.jobs.experiment import InputError

        if self.speed_sigma < 0 or self.jitter_sigma < 0:
            raise InputError("--speed-sigma and --jitter-sigma must be >= 0")


class Simulator:
    """One model + optimizer on the "parameter server", and `workers`
    simulated workers with their own Local BN statistics.

    `read(worker, x, y)` is a worker starting a batch: it records `t_read`
    and computes the gradient on the current parameters. `apply(inflight)`
    applies such a gradient at the current global step. `run()` drives the
    event queue over a stream.

    Args:
        variant: A `tf_swap.train` variant, optionally `@K`.
        num_fields: Fields of the stream.
        buckets: Hash buckets per field.
        workers: Number of simulated workers.
        steps_per_period: SWAP's `decay_period`.
        config: The `SimConfig`.
    """

    def __init__(
        self,
        variant: str,
        num_fields: int,
        buckets: int,
        workers: int,
        steps_per_period: int,
        config: SimConfig,
    ):
        import keras
        import numpy as np
        import tensorflow as tf

        from tf_swap.keras import LocalBatchNormalization
        from tf_swap.models import build_ctr_model

        base, _ = parse_variant(variant)
        self.variant = variant
        self.workers = workers
        self.config = config
        self.model = build_ctr_model(
            num_fields,
            buckets,
            embedding_dim=config.embedding_dim,
            hidden=config.hidden,
            batch_norm=VARIANTS[base].batch_norm,
            sync_period=config.sync_period,
            seed=config.seed,
        )
        self.bn_layers = [
            layer
            for layer in self.model.layers
            if isinstance(layer, LocalBatchNormalization)
        ]
        self.optimizer = make_optimizer(variant, config, max(1, steps_per_period))
        self.variables = list(self.model.trainable_variables)
        self.optimizer.build(self.variables)
        self.has_read_step = hasattr(self.optimizer, "read_step")
        self.step = 0  # the global step: updates applied (== iterations)
        # Per-worker Local BN state, one row per worker: the local means and
        # variances of every layer concatenated (float32), and their steps.
        self._bn_sizes = [int(layer.local_mean.shape[0]) for layer in self.bn_layers]
        stats = np.concatenate(
            [
                np.concatenate([layer.local_mean.numpy(), layer.local_variance.numpy()])
                for layer in self.bn_layers
            ]
            or [np.zeros(0, np.float32)]
        ).astype(np.float32)
        self.bn_stats = np.repeat(stats[None], workers, axis=0)
        self.bn_steps = np.zeros((workers, len(self.bn_layers)), np.int64)
        loss_fn = keras.losses.BinaryCrossentropy()
        shapes = [tuple(v.shape) for v in self.variables]

        def gradients(x, y, bn_stats, bn_steps):
            offset = 0
            for i, (layer, c) in enumerate(
                zip(self.bn_layers, self._bn_sizes, strict=True)
            ):
                layer.local_mean.assign(bn_stats[offset : offset + c])
                layer.local_variance.assign(bn_stats[offset + c : offset + 2 * c])
                layer.local_steps.assign(bn_steps[i])
                offset += 2 * c
            with tf.GradientTape() as tape:
                loss = loss_fn(y, self.model(x, training=True))
            grads = tape.gradient(loss, self.variables)
            flat = []
            for g in grads:
                if isinstance(g, tf.IndexedSlices):
                    flat.append(
                        (
                            tf.reshape(g.values, [-1, *g.values.shape[-1:]]),
                            tf.reshape(g.indices, [-1]),
                        )
                    )
                else:
                    flat.append(g)
            if self.bn_layers:
                new_stats = tf.concat(
                    [
                        tf.identity(t)
                        for ly in self.bn_layers
                        for t in (ly.local_mean, ly.local_variance)
                    ],
                    axis=0,
                )
                new_steps = tf.stack(
                    [tf.identity(ly.local_steps) for ly in self.bn_layers]
                )
            else:
                new_stats = tf.zeros([0], tf.float32)
                new_steps = tf.zeros([0], tf.int64)
            new_bn = (new_stats, new_steps)
            return flat, new_bn, loss

        def apply(flat, t_read):
            grads = [
                tf.IndexedSlices(g[0], g[1], tf.constant(shape, tf.int64))
                if isinstance(g, tuple)
                else g
                for g, shape in zip(flat, shapes, strict=True)
            ]
            pairs = list(zip(grads, self.variables, strict=True))
            if self.has_read_step:
                self.optimizer.apply_gradients(pairs, read_step=t_read)
            else:
                self.optimizer.apply_gradients(pairs)
            return tf.cast(tf.identity(self.optimizer.iterations), tf.int64)

        def apply_then_read(flat, t_read, x, y, bn_stats, bn_steps):
            it = apply(flat, t_read)
            with tf.control_dependencies([it]):
                return gradients(x, y, bn_stats, bn_steps)

        self._read_fn = tf.function(gradients)
        self._apply_fn = tf.function(apply)
        self._apply_read_fn = tf.function(apply_then_read)
        self._predict = tf.function(
            lambda x: self.model(x, training=False), reduce_retracing=True
        )

    def _bn_in(self, worker):
        import tensorflow as tf

        return (tf.constant(self.bn_stats[worker]), tf.constant(self.bn_steps[worker]))

    def _bn_out(self, worker, new_bn):
        self.bn_stats[worker] = new_bn[0].numpy()
        self.bn_steps[worker] = new_bn[1].numpy()

    def read(self, worker: int, x, y) -> tuple:
        """Worker `worker` starts batch `(x, y)`: reads the parameters at
        the current global step and computes its gradient on them.

        Returns:
            The in-flight update `(t_read, flat_gradients)`.
        """
        t_read = self.step
        flat, new_bn, _ = self._read_fn(x, y, *self._bn_in(worker))
        if self.bn_layers:
            self._bn_out(worker, new_bn)
        return t_read, flat

    def apply(self, inflight: tuple) -> int:
        """Applies an in-flight update at the current global step.

        Returns:
            Its staleness `tau = t_apply - t_read`.
        """
        import tensorflow as tf

        t_read, flat = inflight
        tau = self.step - t_read
        self._apply_fn(flat, tf.constant(t_read, tf.int64))
        self.step += 1
        return tau

    def apply_then_read(self, inflight: tuple, worker: int, x, y) -> tuple:
        """`apply(inflight)` then `read(worker, x, y)` in one call.

        Returns:
            `(tau, new_inflight)`.
        """
        import tensorflow as tf

        t_read, flat = inflight
        tau = self.step - t_read
        new_flat, new_bn, _ = self._apply_read_fn(
            flat, tf.constant(t_read, tf.int64), x, y, *self._bn_in(worker)
        )
        self.step += 1
        if self.bn_layers:
            self._bn_out(worker, new_bn)
        return tau, (self.step, new_flat)

    def predict(self, x, chunk: int = 8192):
        """Click probabilities for `x[n, F]` with the shared parameters."""
        import numpy as np
        import tensorflow as tf

        return np.concatenate(
            [
                self._predict(tf.constant(x[i : i + chunk])).numpy().ravel()
                for i in range(0, len(x), chunk)
            ]
        )

    def durations(self, rng):
        """A function `worker -> time of its next batch` (see module doc)."""
        import numpy as np

        c = self.config
        mean = (
            rng.lognormal(0.0, c.speed_sigma, self.workers)
            if c.speed_sigma > 0
            else np.ones(self.workers)
        )

        def duration(worker):
            if c.jitter_sigma > 0:
                return float(mean[worker] * rng.lognormal(0.0, c.jitter_sigma))
            return float(mean[worker])

        return duration

    def run(self, stream, batches, progress=None, on_apply=None) -> dict:
        """Trains on `batches` (from `stream_batches`) with the event queue
        and evaluates every period; returns this run's metrics.

        `on_apply(worker, tau)` is called after each update (tests)."""
        import numpy as np
        import tensorflow as tf
        from sklearn.metrics import roc_auc_score

        xs, ys, period_of = batches
        n = len(xs)
        last = len(stream.periods) - 2  # last trained period
        rng = np.random.default_rng([self.config.seed, self.workers])
        duration = self.durations(rng)
        started = time.monotonic()
        aucs: list[float] = []

        def evaluate_through(d):
            # AUC of every period up to d + 1 not yet evaluated.
            while len(aucs) <= d:
                nxt = stream.periods[len(aucs) + 1]
                aucs.append(float(roc_auc_score(nxt.y, self.predict(nxt.x))))
                if progress is not None:
                    progress.set_postfix_str(
                        f"{self.variant} W={self.workers} period {len(aucs) + 1} "
                        f"AUC {aucs[-1]:.4f}"
                    )

        heap: list = []
        seq = 0
        nxt_batch = 0
        for w in range(min(self.workers, n)):
            inflight = self.read(w, tf.constant(xs[w]), tf.constant(ys[w]))
            heapq.heappush(heap, (duration(w), seq, w, w, inflight))
            seq += 1
            nxt_batch += 1
        taus = np.zeros(n, np.int64)
        applied = 0
        while heap:
            now, _, w, b, inflight = heapq.heappop(heap)
            evaluate_through(period_of[b] - 1)
            if nxt_batch < n:
                tau, new = self.apply_then_read(
                    inflight, w, tf.constant(xs[nxt_batch]), tf.constant(ys[nxt_batch])
                )
                heapq.heappush(heap, (now + duration(w), seq, w, nxt_batch, new))
                seq += 1
                nxt_batch += 1
            else:
                tau = self.apply(inflight)
            taus[applied] = tau
            applied += 1
            if on_apply is not None:
                on_apply(w, tau)
            if progress is not None:
                progress.update(1)
        evaluate_through(last)
        if int(self.optimizer.iterations.numpy()) != self.step:
            raise RuntimeError("global step out of sync with the optimizer")
        dropped = getattr(self.optimizer, "dropped_updates", 0)
        return {
            "auc": aucs,
            "taus": taus,
            "updates": applied,
            "dropped_updates": int(np.asarray(dropped)),
            "seconds": round(time.monotonic() - started, 2),
        }


def simulate(
    stream,
    variants: list[str],
    workers: list[int],
    config: SimConfig | None = None,
    progress: bool = True,
    console=None,
) -> dict:
    """Runs every (variant, workers) pair; returns the metrics dictionary
    (what `metrics.json` holds, see the module docstring)."""
    from tqdm import tqdm

    config = config or SimConfig()
    started = time.monotonic()
    batches = stream_batches(stream, config.batch_size, config.seed)
    n = len(batches[0])
    steps_per_period = len(stream.periods[0].y) // config.batch_size
    runs: dict = {}
    update_seconds = 0.0
    with tqdm(
        total=n * len(variants) * len(workers),
        unit="update",
        disable=not progress,
        file=console or sys.stderr,
        dynamic_ncols=True,
        mininterval=1.0,
    ) as bar:
        for variant in variants:
            run = runs[variant] = {
                k: []
                for k in (
                    "workers",
                    "auc",
                    "mean_auc",
                    "period_auc",
                    "staleness",
                    "updates",
                    "dropped_updates",
                    "seconds",
                )
            }
            for w in workers:
                sim = Simulator(
                    variant,
                    len(stream.fields),
                    stream.buckets,
                    w,
                    steps_per_period,
                    config,
                )
                r = sim.run(stream, batches, progress=bar)
                run["workers"].append(w)
                run["auc"].append(r["auc"][-1])
                run["mean_auc"].append(sum(r["auc"]) / len(r["auc"]))
                run["period_auc"].append(r["auc"])
                run["staleness"].append(staleness_summary(r["taus"]))
                run["updates"].append(r["updates"])
                run["dropped_updates"].append(r["dropped_updates"])
                run["seconds"].append(r["seconds"])
                update_seconds += r["seconds"]
    oracle = stream.oracle_auc()
    total_updates = n * len(variants) * len(workers)
    return {
        "data": stream.name,
        "periods": len(stream.periods),
        "samples_per_period": [len(p.y) for p in stream.periods],
        "evaluated_periods": list(range(2, len(stream.periods) + 1)),
        "oracle_auc": None if oracle is None else oracle[1:],
        "workers": list(workers),
        "config": config.as_dict(),
        "updates_per_run": n,
        "seconds_per_update": round(update_seconds / max(1, total_updates), 6),
        "runs": runs,
        "seconds": round(time.monotonic() - started, 1),
    }
