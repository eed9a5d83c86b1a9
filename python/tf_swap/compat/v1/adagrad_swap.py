"""`tf.compat.v1.train` Adagrad-SWAP optimizer."""

import numbers

import tensorflow as tf

from tf_swap import ops
from tf_swap._hyper import check_adagrad_swap_args

_COUNTER = "iterations"


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
    ):
        check_adagrad_swap_args(
            initial_accumulator_value,
            decay_rate,
            decay_period,
            accumulator_floor,
            decay_mode,
        )
        super().__init__(use_locking, name)
        self._learning_rate = learning_rate
        self._initial_accumulator_value = initial_accumulator_value
        self._decay_rate = decay_rate
        self._decay_period = int(decay_period)
        self._accumulator_floor = (
            initial_accumulator_value
            if accumulator_floor is None
            else accumulator_floor
        )
        self._decay_mode = decay_mode
        self._global_step = global_step
        self._step_variable = None

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
        self._step_variable = self._global_step or tf.compat.v1.train.get_global_step()
        if self._step_variable is None:
            first = min(var_list, key=lambda x: x.name)
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

    def _lr_as(self, dtype):
        lr = self._learning_rate_value
        if isinstance(lr, numbers.Number):
            return tf.convert_to_tensor(lr, dtype=dtype)
        return tf.cast(lr, dtype)

    def _swap_hyper(self):
        return dict(
            decay_rate=self._decay_rate,
            decay_period=self._decay_period,
            accumulator_floor=self._accumulator_floor,
            decay_mode=self._decay_mode,
            use_locking=self._use_locking,
        )

    def _state(self, var):
        return (
            var,
            self.get_slot(var, "accumulator"),
            self.get_slot(var, "power"),
        )

    def _resource_apply_dense(self, grad, var):
        return ops.resource_apply_adagrad_swap(
            *self._state(var),
            self._lr_as(var.dtype.base_dtype),
            grad,
            self._step_tensor,
            **self._swap_hyper(),
        )

    def _resource_apply_sparse(self, grad, var, indices):
        return ops.resource_sparse_apply_adagrad_swap(
            *self._state(var),
            self._lr_as(var.dtype.base_dtype),
            grad,
            indices,
            self._step_tensor,
            **self._swap_hyper(),
        )

    def _finish(self, update_ops, name_scope):
        if self._step_variable is not None:
            return super()._finish(update_ops, name_scope)
        counter = self._own_counter()
        with tf.control_dependencies(update_ops):
            with tf.compat.v1.colocate_with(counter):
                advance = counter.assign_add(1, use_locking=self._use_locking)
        return tf.group(*update_ops, advance, name=name_scope)
