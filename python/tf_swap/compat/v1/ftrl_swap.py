"""`tf.compat.v1.train` FTRL-SWAP optimizer."""

from tf_swap.compat.v1.swap_optimizer import SwapOptimizer
from tf_swap.core import FtrlSwapRule, SwapSettings


class FtrlSwapOptimizer(SwapOptimizer):
    """FTRL-proximal whose accumulator is discounted once per sampling period.

    A drop-in for `tf.compat.v1.train.FtrlOptimizer`: same arguments,
    defaults, errors, slot names (`accum`, `linear`, made with the op names
    `accum_name` / `linear_name`) and update (`ResourceApplyFtrlV2`, bit for
    bit at `decay_rate=1`), plus the SWAP discount of SPEC section 4: every
    `decay_period` updates a row's accumulator is multiplied once by
    `decay_rate` (never below `accumulator_floor`) and its linear term
    re-anchored so that its weight is unchanged. Each variable also gets an
    int64 `power` slot (one entry per row; partitioned variables: per part,
    on the part's device). The step variable is as for
    `AdagradSwapOptimizer`; staleness normalization scales the gradient's
    contribution to the linear term by `max(1, tau) ** (-1 /
    staleness_exponent)` and `max_staleness` drops staler steps.

    Args:
        learning_rate: A float value or a constant float `Tensor`.
        learning_rate_power: `<= 0`; 0 is a fixed learning rate.
        initial_accumulator_value: Starting accumulator, `>= 0`.
        l1_regularization_strength: `>= 0`.
        l2_regularization_strength: `>= 0`.
        use_locking: If `True` use locks for update operations.
        name: Name prefix of the ops. Defaults to "Ftrl".
        accum_name: The op name of the `accum` slots (default: `name`).
        linear_name: The op name of the `linear` slots (default: `name`).
        l2_shrinkage_regularization_strength: `>= 0`, a magnitude penalty
            on the gradient.
        beta: `>= 0` or `None` (0), added to the L2 strength as
            `beta / (2 lr)`.
        decay_rate, decay_period, accumulator_floor, decay_mode,
        global_step, staleness_exponent, max_staleness: As in
            `AdagradSwapOptimizer`.

    Raises:
        ValueError: one of the arguments is invalid.
    """

    def __init__(
        self,
        learning_rate,
        learning_rate_power=-0.5,
        initial_accumulator_value=0.1,
        l1_regularization_strength=0.0,
        l2_regularization_strength=0.0,
        use_locking=False,
        name="Ftrl",
        accum_name=None,
        linear_name=None,
        l2_shrinkage_regularization_strength=0.0,
        beta=None,
        *,
        decay_rate=0.8,
        decay_period=14_000_000,
        accumulator_floor=None,
        decay_mode="exact",
        global_step=None,
        staleness_exponent=None,
        max_staleness=None,
    ):
        super().__init__(
            FtrlSwapRule(
                learning_rate_power,
                initial_accumulator_value,
                l1_regularization_strength,
                l2_regularization_strength,
                l2_shrinkage_regularization_strength,
                0.0 if beta is None else beta,
                messages="v1",
            ),
            SwapSettings(
                decay_rate=decay_rate,
                decay_period=decay_period,
                accumulator_floor=accumulator_floor,
                decay_mode=decay_mode,
                staleness_exponent=staleness_exponent,
                max_staleness=max_staleness,
                use_locking=use_locking,
            ),
            learning_rate,
            use_locking,
            name,
            global_step,
            slot_names={
                "accumulator": ("accum", accum_name),
                "linear": ("linear", linear_name),
            },
        )
