"""What the jobs train, whatever the engine: the variants compared, their
configuration, the optimizer of a variant, and the batches of a stream."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from tf_swap.jobs.stream import shuffled_batches


class Variant(NamedTuple):
    """What a variant name stands for."""

    discount: bool  # the SWAP discount (decay_rate < 1) or plain (1)
    stale: bool  # staleness normalization
    batch_norm: str  # "keras" or "local"
    wide: str  # the wide (linear) table's rule: "adagrad" or "ftrl"


VARIANTS = {
    "adagrad": Variant(False, False, "keras", "adagrad"),
    "swap": Variant(True, False, "keras", "adagrad"),
    "swap+stale": Variant(True, True, "keras", "adagrad"),
    "swap+lbn": Variant(True, False, "local", "adagrad"),
    "swap+stale+lbn": Variant(True, True, "local", "adagrad"),
    "ftrl": Variant(False, False, "keras", "ftrl"),
    "ftrl-swap": Variant(True, False, "keras", "ftrl"),
    "ftrl-swap+stale": Variant(True, True, "keras", "ftrl"),
    "ftrl-swap+lbn": Variant(True, False, "local", "ftrl"),
    "ftrl-swap+stale+lbn": Variant(True, True, "local", "ftrl"),
}


# The models' tables: hashed ids in fixed tables, or raw ids in dynamic ones.
EMBEDDINGS = ("hashed", "dynamic")


class InputError(ValueError):
    """A bad flag or data source: the job exits with code 2 and this
    one-line message."""


class Terminated(KeyboardInterrupt):
    """The job was sent SIGTERM: it stops as on Ctrl-C, after writing a
    checkpoint when it keeps them (the message says where)."""


def parse_variant(name: str) -> tuple[str, float | None]:
    """`"swap+stale+lbn@1"` -> `("swap+stale+lbn", 1.0)`.

    Raises:
        InputError: an unknown variant, or `@K` on one without staleness.
    """
    base, at, k = name.partition("@")
    if base not in VARIANTS:
        raise InputError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
    if not at:
        return base, None
    if not VARIANTS[base].stale:
        raise InputError(f"{name!r}: @K needs a variant with staleness (+stale)")
    try:
        exponent = float(k)
    except ValueError:
        raise InputError(f"{name!r}: K in @K must be a number") from None
    if not exponent > 0:
        raise InputError(f"{name!r}: K in @K must be > 0")
    return base, exponent


def parse_variants(text: str) -> list[str]:
    """A comma-separated list of variants, each checked by `parse_variant`."""
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise InputError("--optimizers names no variant")
    for name in names:
        parse_variant(name)
    return names


@dataclasses.dataclass
class Config:
    """Hyper-parameters of a run, shared by every engine."""

    batch_size: int = 256
    learning_rate: float = 0.05
    ftrl_l1: float = 0.01
    decay_rate: float = 0.8
    staleness_exponent: float = 2.0
    max_staleness: int | None = None
    embedding_dim: int = 8
    hidden: tuple[int, ...] = (64, 32)
    # Local BN publishing every 10 of a worker's steps, as the layer is
    # meant to be used (docs/results.md: the period does not matter there).
    sync_period: int = 10
    embedding: str = "hashed"
    min_count: int = 1
    steps_to_live: int | None = None
    seed: int = 0
    progress: bool = True

    def check(self) -> None:
        """Raises `InputError` for a value out of its domain: the job's own
        flags here; the optimizers' arguments by making them once
        (`check_optimizers`)."""
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be >= 1, got {self.batch_size}")
        if not self.learning_rate > 0:
            raise InputError(f"--learning-rate must be > 0, got {self.learning_rate}")
        if self.sync_period < 1:
            raise InputError(f"--sync-period must be >= 1, got {self.sync_period}")
        if self.embedding not in EMBEDDINGS:
            raise InputError(
                f"--embedding must be one of {', '.join(EMBEDDINGS)}, got "
                f"{self.embedding!r}"
            )
        if self.min_count < 1:
            raise InputError(f"--min-count must be >= 1, got {self.min_count}")
        if self.steps_to_live is not None and self.steps_to_live < 0:
            raise InputError(
                f"--steps-to-live must be >= 0, got {self.steps_to_live}"
            )
        if self.embedding == "hashed" and (
            self.min_count != 1 or self.steps_to_live is not None
        ):
            raise InputError(
                "--min-count and --steps-to-live need --embedding dynamic"
            )

    def as_dict(self) -> dict:
        """The configuration as `metrics.json` records it."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "progress"}


# The flag of each optimizer argument the jobs set from one.
_FLAGS = {
    "decay_rate": "--decay-rate",
    "staleness_exponent": "--staleness-exponent",
    "max_staleness": "--max-staleness",
    "l1_regularization_strength": "--ftrl-l1",
}


def _optimizer(rule: str, variant: str, config: Config, decay_period: int):
    from tf_swap.keras import AdagradSwap, FtrlSwap

    base, k = parse_variant(variant)
    kind = VARIANTS[base]
    swap = dict(
        # Without the discount, decay rate 1: plain Adagrad (FTRL) by the
        # SPEC, so a baseline differs from its SWAP variant by the discount
        # alone, and, like TF's sparse ops, sums a batch's repeated ids
        # before the update (Keras 3's Adagrad instead writes its whole
        # accumulator for a sparse gradient, 3x slower, and squares each
        # repeat separately).
        decay_rate=config.decay_rate if kind.discount else 1.0,
        decay_period=decay_period,
        staleness_exponent=(k or config.staleness_exponent) if kind.stale else None,
        max_staleness=config.max_staleness if kind.stale else None,
    )
    if rule == "ftrl":
        return FtrlSwap(
            config.learning_rate, l1_regularization_strength=config.ftrl_l1, **swap
        )
    return AdagradSwap(config.learning_rate, **swap)


def check_optimizers(variants: list[str], config: Config) -> None:
    """Makes each variant's optimizers once, so that an argument they
    refuse exits as bad input (`InputError` naming the flag)."""
    for variant in variants:
        for rule in {"adagrad", VARIANTS[parse_variant(variant)[0]].wide}:
            try:
                _optimizer(rule, variant, config, decay_period=1)
            except ValueError as error:
                flag = next((f for a, f in _FLAGS.items() if a in str(error)), None)
                prefix = f"{flag}: " if flag else ""
                raise InputError(f"{prefix}{error}") from None


class VariantOptimizer:
    """The optimizers of a variant and the variables each trains.

    Every variant trains the model with `tf_swap.keras.AdagradSwap`; the
    `ftrl` variants train the wide table (`models.WIDE_LAYER`, the linear weight
    of each id) with `tf_swap.keras.FtrlSwap` instead, as CTR systems train
    their wide, sparse part (L1 keeps most of those weights exactly zero),
    with the same discount and staleness settings. Both advance their steps
    once per apply, so `tau` is the same for both.

    Args:
        variant: A variant, optionally `@K`.
        config: The `Config`.
        decay_period: SWAP's period, in steps.
        model: The variant's model (`make_model`), whose wide layer's
            weights the wide optimizer trains.
    """

    def __init__(self, variant: str, config: Config, decay_period: int, model):
        from tf_swap.jobs.models import WIDE_LAYER

        self.main = _optimizer("adagrad", variant, config, decay_period)
        wide = VARIANTS[parse_variant(variant)[0]].wide
        self.wide = (
            _optimizer("ftrl", variant, config, decay_period)
            if wide == "ftrl"
            else None
        )
        self._wide_ids: set[int] = set()
        if self.wide is not None:
            layer = model.get_layer(WIDE_LAYER)
            self._wide_ids = {id(w) for w in layer.trainable_weights}

    @property
    def optimizers(self) -> list:
        """Every optimizer of the variant (the main one first)."""
        return [self.main] + ([self.wide] if self.wide is not None else [])

    @property
    def iterations(self):
        """The steps applied: the main optimizer's `swap_step`, which counts
        every apply (Keras' `iterations` loses increments when workers
        apply at once)."""
        return self.main.swap_step

    @property
    def dropped_updates(self) -> int:
        """Steps dropped for staleness (the optimizers drop together)."""
        return int(np.asarray(self.main.dropped_updates))

    def checkpoint_items(self) -> dict:
        """The optimizers as `tf.train.Checkpoint` keyword arguments."""
        items = {"optimizer": self.main}
        if self.wide is not None:
            items["wide_optimizer"] = self.wide
        return items

    def _parts(self, grads, variables):
        main, wide = ([], []), ([], [])
        for g, v in zip(grads, variables, strict=True):
            part = wide if id(v) in self._wide_ids else main
            part[0].append(g)
            part[1].append(v)
        return [(self.main, main), (self.wide, wide)][: len(self.optimizers)]

    def build(self, variables) -> None:
        """Builds each optimizer on its part of `variables`."""
        wide = [v for v in variables if id(v) in self._wide_ids]
        self.main.build([v for v in variables if id(v) not in self._wide_ids])
        if self.wide is not None:
            self.wide.build(wide)

    def read_step(self):
        """Records `t_read` in every optimizer; returns the main one's."""
        reads = [optimizer.read_step() for optimizer in self.optimizers]
        return reads[0]

    def apply_gradients(self, grads_and_vars, read_step=None):
        """As `apply`, from `(gradient, variable)` pairs."""
        grads, variables = zip(*grads_and_vars, strict=True)
        return self.apply(list(grads), list(variables), read_step=read_step)

    def apply(self, grads, variables, read_step=None):
        """Applies each part with its optimizer; returns this step's `tau`."""
        taus = [
            optimizer.apply(list(g), list(v), read_step=read_step)
            for optimizer, (g, v) in self._parts(grads, variables)
        ]
        return taus[0]


def make_optimizer(
    variant: str, config: Config, decay_period: int, model
) -> VariantOptimizer:
    """The optimizers of a variant for its `model` (`name@K` sets the
    staleness exponent)."""
    return VariantOptimizer(variant, config, decay_period, model)


def make_model(variant: str, stream, config: Config):
    """The CTR model of `tf_swap.jobs.models` for a variant on a stream,
    with Local BN publishing every `config.sync_period` steps, its tables
    dynamic with `config.embedding == "dynamic"` (a stream of raw ids)."""
    from tf_swap.jobs.models import build_ctr_model

    base, _ = parse_variant(variant)
    dynamic = None
    if config.embedding == "dynamic":
        dynamic = dict(min_count=config.min_count, steps_to_live=config.steps_to_live)
    return build_ctr_model(
        len(stream.fields),
        stream.buckets,
        embedding_dim=config.embedding_dim,
        hidden=config.hidden,
        batch_norm=VARIANTS[base].batch_norm,
        sync_period=config.sync_period,
        seed=config.seed,
        dynamic=dynamic,
    )


def steps_per_period(stream, batch_size: int) -> int:
    """Full batches in the stream's first period (SWAP's decay period)."""
    return max(1, stream.periods.samples(0) // batch_size)


def training_batches(stream, batch_size: int) -> int:
    """The stream's training batches (periods 0 .. P-2), counted without
    reading it.

    Raises:
        InputError: there is none.
    """
    n = stream.batch_count(batch_size)
    if n == 0:
        raise InputError("no full batch in the stream; lower --batch-size")
    return n


def period_batches(period, batch_size: int, seed: int, index: int):
    """The shuffled full batches of the in-memory `period` with index
    `index` (the remainder is dropped): `(x[B, F], y[B, 1])` pairs. The
    order depends only on the seed and the period, so a resumed run sees
    the same batches."""
    return shuffled_batches([period], batch_size, seed, index)


def stream_batches(stream, batch_size: int, seed: int):
    """All training batches of the stream in order (periods 0 .. P-2), in
    memory: `(x[n, B, F], y[n, B, 1], period[n])`."""
    training_batches(stream, batch_size)
    xs, ys, ps = [], [], []
    for d in range(len(stream.periods) - 1):
        for x, y in stream.periods.batches(d, batch_size, seed):
            xs.append(x)
            ys.append(y)
            ps.append(d)
    return np.stack(xs), np.stack(ys).astype(np.float32), np.asarray(ps)
