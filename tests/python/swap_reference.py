"""A plain NumPy Adagrad-SWAP (SPEC section 1), row by row.

Computes in the dtype it is given, with the same float operations in the
same order as the kernels, so results can be compared bit for bit; pass
float64 arrays for a float64 reference of a float32 run.
"""

import numpy as np


class SwapState:
    """var, accum and power of one variable, updated by `apply`."""

    def __init__(self, var, initial_accumulator_value, dtype):
        self.dtype = np.dtype(dtype)
        self.var = np.array(var, dtype=self.dtype)
        self.accum = np.full_like(self.var, initial_accumulator_value)
        rows = self.var.shape[:1]
        self.power = np.zeros(rows, dtype=np.int64)

    def _rows(self):
        # A scalar variable is one row of one element.
        if self.var.ndim == 0:
            return (
                self.var.reshape(1, 1),
                self.accum.reshape(1, 1),
                self.power.reshape(1),
            )
        n = self.var.shape[0]
        return self.var.reshape(n, -1), self.accum.reshape(n, -1), self.power

    def apply(
        self,
        grad,
        step,
        *,
        lr,
        decay_rate,
        decay_period,
        floor,
        epsilon=0.0,
        mode="exact",
        placement="after_sqrt",
        indices=None,
    ):
        """One update; `indices` selects rows (duplicates summed in order)."""
        t = self.dtype.type
        lr, eps, floor = t(lr), t(epsilon), t(floor)
        rho = float(t(decay_rate))
        var, acc, power = self._rows()
        grad = np.asarray(grad, dtype=self.dtype).reshape(-1, var.shape[1])
        if indices is None:
            rows = list(range(var.shape[0]))
            grads = list(grad)
        else:
            summed = {}
            for i, r in enumerate(np.asarray(indices).tolist()):
                summed[r] = summed[r] + grad[i] if r in summed else grad[i].copy()
            rows, grads = list(summed), list(summed.values())
        periods = step // decay_period
        for r, g in zip(rows, grads, strict=True):
            if periods > power[r]:
                missed = periods - power[r] if mode == "exact" else 1
                factor = t(rho ** int(missed))
                acc[r] = np.maximum(acc[r] * factor, floor)
                power[r] = periods if mode == "exact" else power[r] + 1
            acc[r] = acc[r] + g * g
            if placement == "after_sqrt":
                var[r] = var[r] - g * lr / (np.sqrt(acc[r]) + eps)
            else:
                var[r] = var[r] - g * lr / np.sqrt(acc[r] + eps)
