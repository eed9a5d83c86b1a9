"""`tf.compat.v1.train` Adagrad-SWAP optimizer."""

import tensorflow as tf

from tf_swap import swap_step

_COUNTER = "iterations"
_DROPPED = "dropped_updates"


class AdagradSwapOptimizer(tf.compat.v1.train.Optimizer):
    """Adagrad whose accumulator is discounted once per sampling period.

    A drop-in for `tf.compat.v1.train.AdagradOptimizer` (same arguments,
    defaults, slot name `accumulator` and update), plus the SWAP discount:
    every `decay_period` updates each accumulator row is multiplied once by
    `decay_rate`, never below `accumulator_floor`. Works in graph mode
    (`tf.compat.v1.Session`, `MonitoredTrainingSession`) and eagerly.

    The update number is `global_step + 1`, read just before the update:
    pass `global_step` to `minimize`/`apply_gradients` so it advances. The
    step variable is `global_step` if given, else the graph's global step
    (`tf.compat.v1.train.get_global_step()`); if there is neither, the
    optimizer keeps its own counter (a non-slot variable named
    `iterations`) and advances it after each `apply_gradients`.

    Unlike TensorFlow's `AdagradOptimizer`, a Python-number learning rate is
    converted straight to each variable's dtype (float64 variables get the
    float64 nearest to it, not a float32 widened).

    Staleness normalization (SPEC section 2, off by default): a step that
    read the parameters at global step `t_read` and applies at `t_apply`
    (`tau = max(0, t_apply - t_read)`) uses
    `lr_eff = lr * max(1, tau) ** (-1 / staleness_exponent)`; only the step
    is scaled, the accumulator receives the raw `g * g`. With
    `max_staleness` set, a step with `tau > max_staleness` writes no
    variable, accumulator or `power` and increments the non-slot counter
    `dropped_updates()` (the global step still advances, as TensorFlow's
    `apply_gradients` always advances it).

    The global step is the step variable above. `t_apply` is read in
    `apply_gradients` after the gradients are computed (control
    dependencies on them). `t_read` is read by `compute_gradients` (so by
    `minimize`), in the same `session.run` as the forward pass; for a read
    strictly before the forward pass, call `read_step()` before building the
    model and put the forward pass under
    `tf.control_dependencies([t_read])`. With no step variable at all
    (eagerly, without a global step) `tau` is 0.

    Args:
        learning_rate: A `Tensor`, float or callable. The learning rate.
        initial_accumulator_value: Starting value of the accumulators,
            positive.
        use_locking: If `True` use locks for update operations.
        name: Name prefix for the operations created when applying
            gradients. Defaults to "AdagradSwap".
        decay_rate: Discount applied once per period, in `(0, 1]`.
        decay_period: Updates per period, a whole number `>= 1`.
        accumulator_floor: Lower bound of a discounted accumulator, `>= 0`;
            `None` uses `initial_accumulator_value`.
        decay_mode: `"exact"` or `"once_per_update"` (DeepRec's
            `AdagradDecayOptimizer`).
        global_step: The step variable to read (see above).
        staleness_exponent: `k` of the staleness scale, `> 0`; `None` (the
            default) or `inf` disables the scaling.
        max_staleness: Drop steps staler than this whole number of global
            steps; `None` (the default) drops nothing.
    """

    def __init__(
        self,
        learning_rate,
        initial_accumulator_value=0.1,
        use_locking=False,
        name="AdagradSwap",
        *,
        decay_rate=0.8,
        decay_period=14_000_000,
        accumulator_floor=None,
        decay_mode="exact",
        global_step=None,
        staleness_exponent=None,
        max_staleness=None,
    ):
        self._settings = swap_step.SwapSettings(
            initial_accumulator_value=initial_accumulator_value,
            decay_rate=decay_rate,
            decay_period=decay_period,
            accumulator_floor=accumulator_floor,
            decay_mode=decay_mode,
            staleness_exponent=staleness_exponent,
            max_staleness=max_staleness,
            use_locking=use_locking,
        )
        super().__init__(use_locking, name)
        self._learning_rate = learning_rate
        self._initial_accumulator_value = initial_accumulator_value
        self._global_step = global_step
        self._step_variable = None
        self._pending_read_step = None
        self._pending_grads = None
        self._staleness = None

    @property
    def uses_staleness(self):
        """Whether steps are scaled or dropped by their staleness."""
        return self._settings.uses_staleness

    def _find_step_variable(self):
        # `is not None`: a variable's truth value is its value, which a graph
        # cannot know while it is being built.
        if self._global_step is not None:
            return self._global_step
        return tf.compat.v1.train.get_global_step()

    def read_step(self):
        """Reads the global step as `t_read` of the next `apply_gradients`.

        Returns:
            The int64 scalar tensor, or `None` when there is no step variable
            yet (then `tau` is 0).
        """
        step_variable = self._find_step_variable()
        if step_variable is None:
            self._pending_read_step = None
        else:
            self._pending_read_step = swap_step.read_step(step_variable)
        return self._pending_read_step

    def compute_gradients(self, loss, var_list=None, **kwargs):
        """As the base class; also records `t_read` (see the class docstring)
        unless `read_step()` already did."""
        if self.uses_staleness and self._pending_read_step is None:
            self.read_step()
        return super().compute_gradients(loss, var_list=var_list, **kwargs)

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        """As the base class, with staleness normalization when enabled."""
        grads_and_vars = tuple(grads_and_vars)
        self._pending_grads = [g for g, _ in grads_and_vars]
        try:
            return super().apply_gradients(grads_and_vars, global_step, name)
        finally:
            self._pending_grads = None
            self._pending_read_step = None
            self._staleness = None

    def dropped_updates(self, graph=None):
        """The counter of steps dropped for staleness (a non-slot variable;
        `None` without `max_staleness` or before the first apply)."""
        if self._settings.max_staleness is None:
            return None
        with tf.init_scope():
            if graph is None and not tf.executing_eagerly():
                graph = tf.compat.v1.get_default_graph()
            return self._get_non_slot_variable(_DROPPED, graph=graph)

    def _create_slots(self, var_list):
        for v in var_list:
            dtype = v.dtype.base_dtype
            shape = v.get_shape()
            init = tf.compat.v1.constant_initializer(
                self._initial_accumulator_value, dtype=dtype
            )
            self._get_or_make_slot_with_initializer(
                v, init, shape, dtype, "accumulator", self._name
            )
            self._get_or_make_slot_with_initializer(
                v,
                tf.compat.v1.zeros_initializer(),
                shape[:1],
                tf.int64,
                "power",
                self._name,
            )
        self._step_variable = self._find_step_variable()
        first = min(var_list, key=lambda x: x.name)
        if self._settings.max_staleness is not None:
            self._create_non_slot_variable(
                initial_value=tf.constant(0, tf.int64),
                name=_DROPPED,
                colocate_with=first,
            )
        if self._step_variable is None:
            self._create_non_slot_variable(
                initial_value=tf.constant(0, tf.int64),
                name=_COUNTER,
                colocate_with=first,
            )

    def _own_counter(self):
        with tf.init_scope():
            eager = tf.executing_eagerly()
            graph = None if eager else tf.compat.v1.get_default_graph()
            return self._get_non_slot_variable(_COUNTER, graph=graph)

    def _prepare(self):
        self._learning_rate_value = self._call_if_callable(self._learning_rate)
        step_variable = self._step_variable
        if step_variable is None:
            step_variable = self._own_counter()
        self._step_tensor = tf.cast(step_variable, tf.int64) + 1
        self._rates = {}  # this step's learning rate, per variable dtype
        self._staleness = None
        if self.uses_staleness:
            t_apply = swap_step.apply_step(step_variable, self._pending_grads or [])
            t_read = self._pending_read_step
            if t_read is None or self._step_variable is None:
                t_read = t_apply
            self._staleness = self._settings.staleness(t_read, t_apply)

    def _apply(self, grad, var, indices=None):
        dtype = var.dtype.base_dtype
        if dtype not in self._rates:
            self._rates[dtype] = swap_step.step_rate(
                self._learning_rate_value, dtype, self._settings, self._staleness
            )
        return swap_step.apply_swap(
            var,
            self.get_slot(var, "accumulator"),
            self.get_slot(var, "power"),
            grad,
            self._rates[dtype],
            self._step_tensor,
            self._settings,
            self._staleness,
            indices=indices,
        )

    def _resource_apply_dense(self, grad, var):
        return self._apply(grad, var)

    def _resource_apply_sparse(self, grad, var, indices):
        return self._apply(grad, var, indices)

    def _finish(self, update_ops, name_scope):
        if self._staleness is not None and self._settings.max_staleness is not None:
            counter = self.dropped_updates()
            with tf.compat.v1.colocate_with(counter):
                counted = swap_step.count_dropped(
                    counter, self._staleness, after=update_ops
                )
            update_ops = [*update_ops, counted]
        if self._step_variable is not None:
            return super()._finish(update_ops, name_scope)
        counter = self._own_counter()
        with tf.control_dependencies(update_ops):
            with tf.compat.v1.colocate_with(counter):
                advance = counter.assign_add(1, use_locking=self._use_locking)
        return tf.group(*update_ops, advance, name=name_scope)
