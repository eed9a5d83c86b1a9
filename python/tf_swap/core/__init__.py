"""The optimizer core every tf_swap optimizer runs, whatever its front end
(`tf_swap.keras`, `tf_swap.tf_keras`, `tf_swap.compat.v1`):

- `SwapSettings`: the period discount and staleness arguments, checked
  once, when the optimizer is made;
- `UpdateRule` (`AdagradSwapRule`, `FtrlSwapRule`): what a rule adds, its
  slots, their initial values and its op;
- `SwapCore`: one SWAP step, `t_read` / `t_apply` / `tau`, the scaled step,
  the drop branch and its counter, the per-dtype hyper-parameter tensors,
  the op call, and the advance of the step counter it owns.

A front end converts gradients where its framework does and adapts only
its framework's hooks (slot creation, `apply_gradients`, config).
"""

from tf_swap.core.rules import AdagradSwapRule, FtrlSwapRule, SlotSpec, UpdateRule
from tf_swap.core.settings import DECAY_MODES, Staleness, SwapSettings
from tf_swap.core.step import ApplyState, SwapCore

__all__ = [
    "DECAY_MODES",
    "AdagradSwapRule",
    "ApplyState",
    "FtrlSwapRule",
    "SlotSpec",
    "Staleness",
    "SwapCore",
    "SwapSettings",
    "UpdateRule",
]
