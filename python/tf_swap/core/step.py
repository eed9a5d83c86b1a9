"""One SWAP step, for every rule and front end: the step number, `t_read`,
`t_apply` and `tau` (SPEC section 2), the learning rate of the step, the
drop branch and its counter, the per-dtype hyper-parameter tensors, the op
call and the advance of the step counter."""

from __future__ import annotations

import dataclasses
import numbers

import tensorflow as tf

from tf_swap.core.rules import UpdateRule
from tf_swap.core.settings import Staleness, SwapSettings


def read_step(step_variable) -> tf.Tensor:
    """The step variable's value now, as an int64 scalar."""
    return tf.cast(tf.identity(step_variable), tf.int64)


def _dense_parts(grads) -> list:
    return [
        g.values if isinstance(g, tf.IndexedSlices) else g
        for g in grads
        if g is not None
    ]


def learning_rate(lr, dtype, scale=None) -> tf.Tensor:
    """`lr` as a scalar of `dtype`: a Python number converted straight to
    it, a tensor cast; times the float64 `scale` (rounded once) if given."""
    if scale is None:
        if isinstance(lr, numbers.Number):
            return tf.convert_to_tensor(lr, dtype=dtype)
        return tf.cast(lr, dtype)
    if isinstance(lr, numbers.Number):
        lr64 = tf.convert_to_tensor(lr, tf.float64)
    else:
        lr64 = tf.cast(lr, tf.float64)
    return tf.cast(lr64 * scale, dtype)


@dataclasses.dataclass
class ApplyState:
    """What one apply computed once and shares among its variables.

    Attributes:
        step: int64, the 1-based number of this update (`t_apply + 1`).
        staleness: This step's `Staleness`, or `None` without staleness
            normalization.
        per_dtype: Learning rate, staleness scale and rule constants per
            variable dtype, made at the first variable of that dtype.
        updates: The update ops (graph mode), for what must follow them.
    """

    step: tf.Tensor
    staleness: Staleness | None
    per_dtype: dict = dataclasses.field(default_factory=dict)
    updates: list = dataclasses.field(default_factory=list)


class SwapCore:
    """The SWAP step of one optimizer.

    A front end calls `read_step` at the start of a training step (before
    the forward pass), `begin` once per apply, `update` per variable, and
    `finish` once after the updates.

    The step counter is the framework's where the framework advances it
    with one atomic increment (tf_keras' `iterations`, v1's global step),
    else a variable of the optimizer's own that `finish` advances with one
    `assign_add` (Keras 3 advances its `iterations` with a read and a
    separate write, which loses increments when workers apply at once).

    Args:
        rule: The `UpdateRule`.
        settings: The `SwapSettings`.
    """

    def __init__(self, rule: UpdateRule, settings: SwapSettings):
        self.rule = rule
        self.settings = settings
        self._pending_read = None

    @property
    def uses_staleness(self) -> bool:
        """Whether steps are scaled or dropped by their staleness."""
        return self.settings.uses_staleness

    def read_step(self, step_variable) -> tf.Tensor:
        """Reads `t_read` (recorded for the next `begin` of the same trace)."""
        self._pending_read = read_step(step_variable)
        return self._pending_read

    @property
    def has_read_step(self) -> bool:
        """Whether a `t_read` is recorded for the next `begin`."""
        return self._pending_read is not None

    def forget_read_step(self) -> None:
        """Drops a recorded `t_read` (an apply that does not use it)."""
        self._pending_read = None

    def begin(self, step_variable, grads, t_read=None) -> ApplyState:
        """The state of one apply: `t_apply` read after every gradient in
        `grads` exists, the step `t_apply + 1`, and the staleness against
        `t_read` (default: the recorded one; none recorded: `tau = 0`)."""
        with tf.control_dependencies(_dense_parts(grads)):
            t_apply = read_step(step_variable)
        if t_read is None:
            t_read = self._pending_read
        self._pending_read = None
        staleness = None
        if self.settings.uses_staleness:
            staleness = self.settings.staleness(
                t_apply if t_read is None else t_read, t_apply
            )
        return ApplyState(step=t_apply + 1, staleness=staleness)

    def _per_dtype(self, state: ApplyState, learning_rate_value, dtype):
        cached = state.per_dtype.get(dtype)
        if cached is None:
            settings, rule = self.settings, self.rule
            scale64 = None
            if state.staleness is not None and settings.scales:
                scale64 = state.staleness.scale
            if rule.scales_learning_rate:
                rate = learning_rate(learning_rate_value, dtype, scale64)
                scale = None
            else:
                rate = learning_rate(learning_rate_value, dtype)
                one = tf.constant(1.0, tf.float64)
                scale = tf.cast(one if scale64 is None else scale64, dtype)
            cached = (rate, scale, rule.constants(dtype, settings))
            state.per_dtype[dtype] = cached
        return cached

    def update(
        self,
        state: ApplyState,
        variable,
        slots,
        power,
        gradient,
        learning_rate_value,
        indices=None,
    ):
        """One rule update of `variable` (a dense gradient, a
        `tf.IndexedSlices`, or the rows of a sparse one with `indices`).
        A dropped step (`tau > max_staleness`) writes no variable, slot or
        power. Returns the op (graph mode), `None` eagerly."""
        if isinstance(gradient, tf.IndexedSlices):
            gradient, indices = gradient.values, gradient.indices
        dtype = tf.as_dtype(variable.dtype).base_dtype
        rate, scale, constants = self._per_dtype(state, learning_rate_value, dtype)

        def run():
            return self.rule.update(
                variable,
                slots,
                power,
                gradient,
                indices,
                state.step,
                rate,
                scale,
                constants,
                self.settings,
            )

        return self._guarded(state, run)

    def update_table(self, state: ApplyState, table, gradient, learning_rate_value):
        """One rule update of the entries of a `tf_swap.DynamicTable`:
        `gradient` is a `tf.IndexedSlices` whose indices are the ids (its
        float32 rows are cast, as a Keras front end casts). A dropped step
        writes nothing. Returns the op (graph mode), `None` eagerly."""
        rate, scale, constants = self._per_dtype(state, learning_rate_value, tf.float32)
        values = tf.cast(gradient.values, tf.float32)

        def run():
            ops = self.rule.update_table(
                table,
                values,
                gradient.indices,
                state.step,
                rate,
                scale,
                constants,
                self.settings,
            )
            return None if tf.executing_eagerly() else tf.group(ops)

        return self._guarded(state, run)

    def _guarded(self, state: ApplyState, run):
        """`run()`, unless this step is dropped for its staleness."""
        if state.staleness is None or self.settings.max_staleness is None:
            op = run()
        else:

            def applied():
                # An eager update returns None: control_dependencies is a
                # no-op then.
                with tf.control_dependencies([run()]):
                    return tf.constant(True)

            op = tf.cond(state.staleness.drop, lambda: tf.constant(False), applied)
        if op is not None:
            state.updates.append(op)
        return op

    def finish(self, state: ApplyState, dropped=None, own_step=None):
        """After the updates: adds 1 to the `dropped` counter if the step
        was dropped, and advances the optimizer's own step counter
        `own_step` with one atomic `assign_add`. Returns the ops made
        (graph mode) and this step's `tau` (0 without staleness)."""
        made = []
        with tf.control_dependencies(state.updates):
            if dropped is not None and state.staleness is not None:
                made.append(
                    tf.cond(
                        state.staleness.drop,
                        lambda: tf.identity(dropped.assign_add(1)),
                        lambda: tf.identity(dropped),
                    )
                )
            if own_step is not None:
                made.append(own_step.assign_add(1))
        tau = (
            tf.constant(0, tf.int64) if state.staleness is None else state.staleness.tau
        )
        return made, tau
