"""Argument checks shared by the Adagrad-SWAP optimizers, run when they are
constructed so a typo fails before training starts (the ops check again at
run time, where values may come from tensors)."""

import math

DECAY_MODES = ("exact", "once_per_update")


def check_adagrad_swap_args(
    initial_accumulator_value,
    decay_rate,
    decay_period,
    accumulator_floor,
    decay_mode,
):
    """Raises `ValueError` naming the first argument out of its domain."""
    if not initial_accumulator_value > 0.0:
        raise ValueError(
            "initial_accumulator_value must be positive, got "
            f"{initial_accumulator_value}"
        )
    if not 0.0 < decay_rate <= 1.0:
        raise ValueError(f"decay_rate must be in (0, 1], got {decay_rate}")
    if not (decay_period >= 1 and float(decay_period).is_integer()):
        raise ValueError(
            f"decay_period must be a whole number >= 1, got {decay_period}"
        )
    if accumulator_floor is not None and not (
        math.isfinite(accumulator_floor) and accumulator_floor >= 0.0
    ):
        raise ValueError(
            f"accumulator_floor must be finite and >= 0, got {accumulator_floor}"
        )
    if decay_mode not in DECAY_MODES:
        raise ValueError(f"decay_mode must be one of {DECAY_MODES}, got {decay_mode!r}")
