"""What the jobs train, whatever the engine: the variants compared, their
configuration, the optimizer of a variant, and the batches of a stream."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np


class Variant(NamedTuple):
    """What a variant name stands for."""

    optimizer: str  # "adagrad" or "swap"
    stale: bool  # staleness normalization
    batch_norm: str  # "keras" or "local"


VARIANTS = {
    "adagrad": Variant("adagrad", False, "keras"),
    "swap": Variant("swap", False, "keras"),
    "swap+stale": Variant("swap", True, "keras"),
    "swap+lbn": Variant("swap", False, "local"),
    "swap+stale+lbn": Variant("swap", True, "local"),
}


class InputError(ValueError):
    """A bad flag or data source: the job exits with code 2 and this
    one-line message."""


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
    decay_rate: float = 0.8
    staleness_exponent: float = 2.0
    max_staleness: int | None = None
    embedding_dim: int = 8
    hidden: tuple[int, ...] = (64, 32)
    sync_period: int = 1
    seed: int = 0
    progress: bool = True

    def check(self) -> None:
        """Raises `InputError` for a value out of its domain."""
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be >= 1, got {self.batch_size}")
        if not self.learning_rate > 0:
            raise InputError(f"--learning-rate must be > 0, got {self.learning_rate}")
        if not 0 < self.decay_rate <= 1:
            raise InputError(f"--decay-rate must be in (0, 1], got {self.decay_rate}")
        if not self.staleness_exponent > 0:
            raise InputError(
                f"--staleness-exponent must be > 0, got {self.staleness_exponent}"
            )
        if self.max_staleness is not None and self.max_staleness < 0:
            raise InputError(f"--max-staleness must be >= 0, got {self.max_staleness}")
        if self.sync_period < 1:
            raise InputError(f"--sync-period must be >= 1, got {self.sync_period}")

    def as_dict(self) -> dict:
        """The configuration as `metrics.json` records it."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "progress"}


def make_optimizer(variant: str, config: Config, decay_period: int):
    """The Keras 3 optimizer of a variant (`name@K` sets the staleness
    exponent)."""
    from tf_swap.keras import AdagradSwap

    base, k = parse_variant(variant)
    kind = VARIANTS[base]
    # `adagrad` is Adagrad-SWAP with decay rate 1 (SPEC: plain Adagrad):
    # the baseline differs from `swap` by the discount alone, and, like TF's
    # sparse Adagrad, sums a batch's repeated ids before the update (Keras 3's
    # Adagrad instead writes its whole accumulator for a sparse gradient,
    # 3x slower, and squares each repeat separately).
    return AdagradSwap(
        config.learning_rate,
        decay_rate=config.decay_rate if kind.optimizer == "swap" else 1.0,
        decay_period=decay_period,
        staleness_exponent=(k or config.staleness_exponent) if kind.stale else None,
        max_staleness=config.max_staleness if kind.stale else None,
    )


def make_model(variant: str, stream, config: Config):
    """The CTR model of `tf_swap.models` for a variant on a stream, with
    Local BN publishing every `config.sync_period` steps."""
    from tf_swap.models import build_ctr_model

    base, _ = parse_variant(variant)
    return build_ctr_model(
        len(stream.fields),
        stream.buckets,
        embedding_dim=config.embedding_dim,
        hidden=config.hidden,
        batch_norm=VARIANTS[base].batch_norm,
        sync_period=config.sync_period,
        seed=config.seed,
    )


def steps_per_period(stream, batch_size: int) -> int:
    """Full batches in the stream's first period (SWAP's decay period)."""
    return max(1, len(stream.periods[0].y) // batch_size)


def period_batches(period, batch_size: int, seed: int, index: int):
    """The shuffled full batches of period `index` (the remainder is
    dropped): `(x[B, F], y[B, 1])` pairs. The order depends only on the
    seed and the period, so a resumed run sees the same batches."""
    order = np.random.default_rng([seed, index]).permutation(len(period.y))
    for start in range(0, len(order) - batch_size + 1, batch_size):
        idx = order[start : start + batch_size]
        yield period.x[idx], period.y[idx, None]


def stream_batches(stream, batch_size: int, seed: int):
    """All training batches of the stream in order (periods 0 .. P-2):
    `(x[n, B, F], y[n, B, 1], period[n])`."""
    xs, ys, ps = [], [], []
    for d in range(len(stream.periods) - 1):
        for x, y in period_batches(stream.periods[d], batch_size, seed, d):
            xs.append(x)
            ys.append(y)
            ps.append(d)
    if not xs:
        raise InputError("no full batch in the stream; lower --batch-size")
    return np.stack(xs), np.stack(ys).astype(np.float32), np.asarray(ps)
