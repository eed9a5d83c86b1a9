"""Keras 3 Adagrad-SWAP optimizer."""

import keras
import tensorflow as tf

from tf_swap import swap_step


@keras.saving.register_keras_serializable(package="tf_swap")
class AdagradSwap(keras.optimizers.Optimizer):
    """Adagrad whose accumulator is discounted once per sampling period.

    A drop-in for `keras.optimizers.Adagrad`: same arguments, defaults and
    update (`variable -= lr * g / sqrt(accumulator + epsilon)`), plus the
    SWAP discount: every `decay_period` steps each accumulator row is
    multiplied once by `decay_rate` (never below `accumulator_floor`), so
    long incremental training keeps learning from new data. With
    `decay_rate=1` it reproduces `keras.optimizers.Adagrad` bit for bit.

    The update number is `iterations + 1`. A row untouched for `m` periods
    is discounted by `decay_rate ** m` when it is next updated
    (`decay_mode="exact"`), or by `decay_rate` once per update
    (`"once_per_update"`, DeepRec's `AdagradDecayOptimizer`). Sparse
    gradients (`tf.IndexedSlices`, e.g. from an `Embedding`) update only
    their rows; repeated indices are summed first. Each variable gets an
    `accumulator` slot like Adagrad's and an int64 `power` slot with one
    entry per row. TensorFlow backend only.

    Staleness normalization (SPEC section 2, off by default). In
    asynchronous training a step reads the parameters at global step
    `t_read` and applies its gradient at `t_apply`; with
    `tau = max(0, t_apply - t_read)` the step uses

        lr_eff = lr * max(1, tau) ** (-1 / staleness_exponent)

    (only the step is scaled; the accumulator receives the raw `g * g`).
    With `max_staleness` set, a step with `tau > max_staleness` is dropped:
    it writes no variable, accumulator or `power`; the counter
    `dropped_updates` is incremented instead (`iterations` still advances:
    it counts steps taken, and the other workers' staleness counts them).

    Here the global step is `iterations`. `t_apply` is read inside
    `apply`/`apply_gradients`, after the gradients are computed (control
    dependencies on them). `t_read` must be recorded by the training step
    *before* its forward pass, with `read_step()`:

    ```python
    @tf.function
    def step_fn(x, y):
        t_read = optimizer.read_step()  # records t_read for the next apply
        with tf.control_dependencies([t_read]):  # forward reads after it
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
    ```

    or passed explicitly: `apply_gradients(..., read_step=t_read)`. This is
    what `tf_swap.train` runs on each worker under
    `tf.distribute.ParameterServerStrategy`. A step with no recorded
    `t_read` (e.g. Keras' synchronous `model.fit`) has `tau = 0` and is
    applied unscaled.

    Args:
        learning_rate: A float, a
            `keras.optimizers.schedules.LearningRateSchedule` instance, or
            a callable that takes no arguments and returns the actual value to
            use. The learning rate. Defaults to `0.001`.
        initial_accumulator_value: Starting value of the accumulators,
            positive. Defaults to `0.1`.
        epsilon: Small floating point value for maintaining numerical
            stability, added inside the square root as in Keras' Adagrad.
        decay_rate: Discount applied once per period, in `(0, 1]`.
            Defaults to `0.8`.
        decay_period: Steps per period, a whole number `>= 1`. Defaults to
            `14_000_000`.
        accumulator_floor: Lower bound of a discounted accumulator, `>= 0`;
            `None` (the default) uses `initial_accumulator_value`.
        decay_mode: `"exact"` (default) or `"once_per_update"`.
        staleness_exponent: `k` of the staleness scale, `> 0`; `None` (the
            default) or `inf` disables the scaling. SPEC's reference is 2.
        max_staleness: Drop steps staler than this whole number of global
            steps; `None` (the default) drops nothing.
        {{base_optimizer_keyword_args}}

    Reference:
    - [Duchi et al., 2011](
        http://www.jmlr.org/papers/volume12/duchi11a/duchi11a.pdf).
    """

    def __init__(
        self,
        learning_rate=0.001,
        initial_accumulator_value=0.1,
        epsilon=1e-7,
        decay_rate=0.8,
        decay_period=14_000_000,
        accumulator_floor=None,
        decay_mode="exact",
        staleness_exponent=None,
        max_staleness=None,
        weight_decay=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        use_ema=False,
        ema_momentum=0.99,
        ema_overwrite_frequency=None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        name="adagrad_swap",
        **kwargs,
    ):
        if keras.backend.backend() != "tensorflow":
            raise ValueError(
                "AdagradSwap runs tf_swap's TensorFlow ops and needs the "
                f"tensorflow backend, not {keras.backend.backend()!r}."
            )
        settings = swap_step.SwapSettings(
            initial_accumulator_value=initial_accumulator_value,
            decay_rate=decay_rate,
            decay_period=decay_period,
            accumulator_floor=accumulator_floor,
            decay_mode=decay_mode,
            epsilon=epsilon,
            epsilon_placement="inside_sqrt",
            staleness_exponent=staleness_exponent,
            max_staleness=max_staleness,
        )
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            name=name,
            **kwargs,
        )
        self._settings = settings
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon
        self.decay_rate = decay_rate
        self.decay_period = self._settings.decay_period
        self.accumulator_floor = accumulator_floor
        self.decay_mode = decay_mode
        self.staleness_exponent = self._settings.staleness_exponent
        self.max_staleness = self._settings.max_staleness
        self._pending_read_step = None
        self._staleness = None
        self._per_apply = None
        make_increments_atomic(self._iterations)

    @property
    def uses_staleness(self):
        """Whether steps are scaled or dropped by their staleness."""
        return self._settings.uses_staleness

    @property
    def dropped_updates(self):
        """The number of steps dropped for staleness (an int64 variable when
        `max_staleness` is set, else a constant 0)."""
        if self.max_staleness is None or not self.built:
            return tf.constant(0, tf.int64)
        return self._dropped_updates

    def read_step(self):
        """Reads the global step (`iterations`) as this step's `t_read`.

        Call it at the start of a training step, before the forward pass
        (put the forward pass under `tf.control_dependencies([t_read])` so
        that its parameter reads follow it); the next
        `apply`/`apply_gradients` call in the same step (the same trace,
        inside a `tf.function`) uses it and forgets it.

        Returns:
            The int64 scalar tensor `t_read`.
        """
        t_read = swap_step.read_step(self.iterations)
        self._pending_read_step = t_read
        return t_read

    def apply_gradients(self, grads_and_vars, read_step=None):
        """As Keras' `apply_gradients`; `read_step` is this step's `t_read`
        (default: the one recorded by `read_step()`, else none, `tau = 0`)."""
        grads, trainable_variables = zip(*grads_and_vars, strict=True)
        self.apply(grads, trainable_variables, read_step=read_step)
        return self._iterations

    def apply(self, grads, trainable_variables=None, read_step=None):
        """As Keras' `apply`, with staleness normalization (see the class
        docstring) when it is enabled."""
        if read_step is None:
            read_step = self._pending_read_step
        self._pending_read_step = None
        self._per_apply = {}
        try:
            return self._apply(grads, trainable_variables, read_step)
        finally:
            self._per_apply = None

    def _apply(self, grads, trainable_variables, read_step):
        if not self.uses_staleness:
            return super().apply(grads, trainable_variables)
        if not self.built and trainable_variables is not None:
            with tf.name_scope(self.name):
                self.build(list(trainable_variables))
            self.built = True
        t_apply = swap_step.apply_step(self.iterations, grads)
        t_read = t_apply if read_step is None else read_step
        self._staleness = self._settings.staleness(t_read, t_apply)
        try:
            super().apply(grads, trainable_variables)
        finally:
            staleness, self._staleness = self._staleness, None
        if self.max_staleness is not None:
            swap_step.count_dropped(self._dropped_updates, staleness)
        return staleness.tau

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._accumulators = self.add_optimizer_variables(
            var_list,
            "accumulator",
            initializer=keras.initializers.Constant(self.initial_accumulator_value),
        )
        self._powers = [self._add_power(v) for v in var_list]
        if self.max_staleness is not None:
            self._dropped_updates = self.add_variable(
                shape=(), initializer="zeros", dtype="int64", name="dropped_updates"
            )

    def _add_power(self, variable):
        """One int64 per row of `variable`, placed with it."""
        reference = variable.value if isinstance(variable, keras.Variable) else variable
        name = f"{variable.path.replace('/', '_')}_power"
        with self._distribution_strategy.extended.colocate_vars_with(reference):
            return self.add_variable(
                shape=tuple(variable.shape[:1]),
                initializer="zeros",
                dtype="int64",
                name=name,
            )

    def update_step(self, gradient, variable, learning_rate):
        """Update step given gradient and the associated model variable."""
        index = self._get_variable_index(variable)
        step, rate = self._step_and_rate(learning_rate, variable.dtype)
        swap_step.apply_swap(
            variable,
            self._accumulators[index],
            self._powers[index],
            gradient,
            rate,
            step,
            self._settings,
            self._staleness,
        )

    def _step_and_rate(self, learning_rate, dtype):
        """The step number and learning rate of this apply for `dtype`,
        computed once per apply and shared by its variables."""
        key = str(dtype)
        cached = self._per_apply.get(key) if self._per_apply is not None else None
        if cached is None:
            cached = (
                tf.cast(self.iterations, tf.int64) + 1,
                swap_step.step_rate(
                    learning_rate, dtype, self._settings, self._staleness
                ),
            )
            if self._per_apply is not None:
                self._per_apply[key] = cached
        return cached

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon,
                "decay_rate": self.decay_rate,
                "decay_period": self.decay_period,
                "accumulator_floor": self.accumulator_floor,
                "decay_mode": self.decay_mode,
                "staleness_exponent": self.staleness_exponent,
                "max_staleness": self.max_staleness,
            }
        )
        return config


_ATOMIC_CLASSES = {}


def make_increments_atomic(variable):
    """Makes `variable.assign_add` one atomic `AssignAddVariableOp`.

    Keras 3 advances `iterations` with `assign(self + 1)`, a read and a
    separate write: when several workers apply to a parameter-server
    variable at once, increments are lost (a quarter of them with two
    workers, measured here), and with them the global step that SWAP's
    periods and the staleness `tau` count. The variable keeps its class's
    behaviour otherwise (a subclass made once per class)."""
    base = type(variable)
    atomic = _ATOMIC_CLASSES.get(base)
    if atomic is None:

        def assign_add(self, value):
            tf_variable = getattr(self, "_value", None)
            # AdagradSwap's ops write variables directly, so Keras'
            # stateless_apply is not supported anyway.
            if tf_variable is None or not hasattr(tf_variable, "assign_add"):
                return base.assign_add(self, value)
            tf_variable.assign_add(tf.cast(value, tf_variable.dtype))
            return tf_variable

        atomic = type(base.__name__, (base,), {"assign_add": assign_add})
        _ATOMIC_CLASSES[base] = atomic
    variable.__class__ = atomic


def _base_keyword_args():
    """Keras' shared optimizer argument docs, taken from the public Adagrad
    docstring (the template lives in keras.src, which we do not import)."""
    doc = keras.optimizers.Adagrad.__doc__ or ""
    start, end = doc.find("        name:"), doc.find("    Reference:")
    return doc[start:end].strip() if 0 <= start < end else ""


AdagradSwap.__doc__ = AdagradSwap.__doc__.replace(
    "{{base_optimizer_keyword_args}}", _base_keyword_args()
)
