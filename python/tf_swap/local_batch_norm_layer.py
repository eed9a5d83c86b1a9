"""The body of the Local Batch Normalization layer (SPEC section 3), shared by
the Keras 3 class (`tf_swap.keras`) and the tf_keras one (`tf_swap.tf_keras`).

`LocalBatchNormalizationBase` holds the arguments, weights, op calls,
statistics updates and config; each framework's class mixes it into its
`Layer` and names the framework module (`keras` or `tf_keras`), whose
`initializers`, `regularizers`, `constraints` and `layers.InputSpec` have
the same names. Only the creation of the worker-local weights differs.
"""

from __future__ import annotations

import tensorflow as tf

from tf_swap.ops import local_batch_norm, local_batch_norm_inference

LOCAL_WEIGHTS = ("local_mean", "local_variance", "local_steps")
# Where a worker's first training step starts its local statistics from.
FIRST_STEP_STATISTICS = ("shared", "batch")


def is_parameter_server_strategy(strategy) -> bool:
    """Whether `strategy` is a parameter-server strategy (v2 or v1)."""
    # Matched by name to avoid TensorFlow's private modules.
    return "ParameterServerStrategy" in type(strategy).__name__


def local_variable(name, shape, initializer, dtype, local_device=None):
    """A non-trainable `tf.Variable` that never lives on a parameter server:
    on `local_device` if given, else (under a parameter-server strategy) one
    copy per worker."""
    kwargs = dict(trainable=False, name=name, dtype=dtype)
    if local_device is not None:
        with tf.device(local_device):
            return tf.Variable(initializer(shape, dtype), **kwargs)
    # TF 2.21's ParameterServerStrategy places every variable made in its
    # scope on a parameter server (round robin), whatever its
    # synchronization, except per_worker_variable ones.
    return tf.Variable(
        lambda: initializer(shape, dtype), per_worker_variable=True, **kwargs
    )


def batch_norm_in_stock_ops(x, gamma, beta, epsilon):
    """Training batch normalization in stock TensorFlow ops (float64
    two-pass statistics): what a SavedModel's training-mode trace holds, so
    that it loads where tf_swap's ops are not registered. Returns
    `(y, batch_mean, batch_variance)`."""
    x64 = tf.cast(x, tf.float64)
    axes = list(range(x.shape.rank - 1))
    mean = tf.reduce_mean(x64, axes)
    centered = x64 - mean
    variance = tf.reduce_mean(tf.square(centered), axes)
    inv = tf.math.rsqrt(variance + tf.cast(tf.constant(epsilon, x.dtype), tf.float64))
    y = centered * (tf.cast(gamma, tf.float64) * inv) + tf.cast(beta, tf.float64)
    return tf.cast(y, x.dtype), tf.cast(mean, x.dtype), tf.cast(variance, x.dtype)


class LocalBatchNormalizationBase:
    """Batch normalization whose statistics stay local to each worker.

    Training normalizes with the statistics of the worker's own mini-batch
    (never stale), computed in float64 by tf_swap's ops. Each training step
    updates worker-local moving statistics,

        local = momentum * local + (1 - momentum) * batch

    (a worker's first step starts them from the shared statistics, so a
    restarted or restored worker continues from what is served; with
    `first_step_statistics="batch"`, from its first batch's) with the
    biased batch variance (as Keras 3's `BatchNormalization`;
    `unbiased_variance=True` applies Bessel's correction, as
    `FusedBatchNormV3`), and every `sync_period` steps publishes them to the
    shared serving statistics `moving_mean` / `moving_variance` (placed like
    any other variable, i.e. on a parameter server) with one write each:

        moving = (1 - sync_rate) * moving + sync_rate * local

    Inference normalizes with the shared statistics in stock TensorFlow
    ops, `(x - moving_mean) * (gamma * rsqrt(moving_variance + epsilon)) +
    beta`, so an exported model serves where tf_swap is not installed. With
    one worker, `sync_period=1` and `sync_rate=1` the layer computes what
    the framework's `BatchNormalization` does.

    Locality (see docs/local_batch_norm.md): under
    `tf.distribute.ParameterServerStrategy` the local statistics are
    created with `per_worker_variable=True` (one copy per worker, never on a
    parameter server); `local_device` pins them to a device instead (e.g.
    the worker's device under `tf.compat.v1.train.replica_device_setter`,
    which otherwise puts every variable on a parameter server).

    Args:
        axis: The channel axis; only the last axis (-1 or rank - 1) is
            supported.
        momentum: Momentum of the local moving statistics.
        epsilon: Added to the variance, > 0.
        center: Whether to add the offset `beta`.
        scale: Whether to multiply by `gamma`.
        beta_initializer, gamma_initializer, moving_mean_initializer,
        moving_variance_initializer: Initializers (the local statistics
            start from the moving ones' initializers).
        beta_regularizer, gamma_regularizer: Optional regularizers.
        beta_constraint, gamma_constraint: Optional constraints.
        sync_period: Training steps between publishes, >= 1.
        sync_rate: Weight `alpha` of the local statistics in a publish, in
            (0, 1].
        unbiased_variance: Accumulate the unbiased (Bessel-corrected) batch
            variance into the moving variance; `False` (the default, SPEC
            section 3) accumulates the biased one.
        local_device: Optional device for the local statistics.
        first_step_statistics: What a worker's first training step starts
            its local statistics from: `"shared"` (the default, SPEC
            section 3: the served `moving_*`, which a fresh run holds at
            their initializers, so that one worker with `sync_period=1`
            matches `BatchNormalization`) or `"batch"` (that step's batch
            statistics: the initializers never weigh in). With W workers a
            worker's statistics move on one step in W, so the
            initializers' weight fades W times slower than in a shared
            layer; `"batch"` removes it (docs/local_batch_norm.md).
        **kwargs: Base layer arguments.
    """

    # The framework module (`keras` or `tf_keras`); set by each subclass.
    _api = None

    def __init__(
        self,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        sync_period=1,
        sync_rate=1.0,
        unbiased_variance=False,
        local_device=None,
        first_step_statistics="shared",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon}")
        if int(sync_period) != sync_period or sync_period < 1:
            raise ValueError(f"sync_period must be an integer >= 1, got {sync_period}")
        if not 0.0 < sync_rate <= 1.0:
            raise ValueError(f"sync_rate must be in (0, 1], got {sync_rate}")
        if first_step_statistics not in FIRST_STEP_STATISTICS:
            raise ValueError(
                "first_step_statistics must be one of "
                f"{', '.join(map(repr, FIRST_STEP_STATISTICS))}, got "
                f"{first_step_statistics!r}"
            )
        api = self._api
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.beta_initializer = api.initializers.get(beta_initializer)
        self.gamma_initializer = api.initializers.get(gamma_initializer)
        self.moving_mean_initializer = api.initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = api.initializers.get(
            moving_variance_initializer
        )
        self.beta_regularizer = api.regularizers.get(beta_regularizer)
        self.gamma_regularizer = api.regularizers.get(gamma_regularizer)
        self.beta_constraint = api.constraints.get(beta_constraint)
        self.gamma_constraint = api.constraints.get(gamma_constraint)
        self.sync_period = int(sync_period)
        self.sync_rate = float(sync_rate)
        self.unbiased_variance = bool(unbiased_variance)
        self.local_device = local_device
        self.first_step_statistics = first_step_statistics
        self.supports_masking = False

    def _add_float_weight(self, name, shape, initializer, **kwargs):
        """A float32 weight the framework must not autocast."""
        raise NotImplementedError

    def _add_local_weight(self, name, shape, initializer, dtype):
        """A non-trainable weight that stays on the worker."""
        raise NotImplementedError

    def _uses_kernels(self) -> bool:
        """Whether training runs tf_swap's ops (else the stock-op twin)."""
        return True

    def build(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        rank = input_shape.rank
        if rank is None or rank < 2:
            raise ValueError(
                "LocalBatchNormalization needs inputs of rank >= 2 "
                f"([N, ..., C]), got shape {input_shape}"
            )
        if self.axis not in (-1, rank - 1):
            raise ValueError(
                "LocalBatchNormalization normalizes over the last axis only "
                f"(axis=-1); got axis={self.axis} for rank {rank}. Transpose "
                "the channels last first."
            )
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("The channel dimension must be known")
        shape = (channels,)
        self.gamma = self.beta = None
        if self.scale:
            self.gamma = self._add_float_weight(
                "gamma",
                shape,
                self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                trainable=True,
            )
        if self.center:
            self.beta = self._add_float_weight(
                "beta",
                shape,
                self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                trainable=True,
            )
        # Shared serving statistics: created like any variable, so a
        # parameter server holds them under ParameterServerStrategy.
        self.moving_mean = self._add_float_weight(
            "moving_mean", shape, self.moving_mean_initializer, trainable=False
        )
        self.moving_variance = self._add_float_weight(
            "moving_variance",
            shape,
            self.moving_variance_initializer,
            trainable=False,
        )
        self.local_mean = self._add_local_weight(
            "local_mean", shape, self.moving_mean_initializer, "float32"
        )
        self.local_variance = self._add_local_weight(
            "local_variance", shape, self.moving_variance_initializer, "float32"
        )
        self.local_steps = self._add_local_weight(
            "local_steps", (), self._api.initializers.get("zeros"), "int64"
        )
        self.input_spec = self._api.layers.InputSpec(min_ndim=2, axes={-1: channels})
        self.built = True

    def _uses_local_variables(self) -> bool:
        """Whether the local statistics must be plain worker-side variables
        rather than the framework's weights."""
        return self.local_device is not None or is_parameter_server_strategy(
            tf.distribute.get_strategy()
        )

    def call(self, inputs, training=None):
        x = tf.convert_to_tensor(inputs)
        compute_dtype = tf.float64 if x.dtype == tf.float64 else tf.float32
        x = tf.cast(x, compute_dtype)
        channels = x.shape[-1]
        gamma = (
            tf.cast(self.gamma, compute_dtype)
            if self.scale
            else tf.ones([channels], compute_dtype)
        )
        beta = (
            tf.cast(self.beta, compute_dtype)
            if self.center
            else tf.zeros([channels], compute_dtype)
        )
        if training and self.trainable:
            if self._uses_kernels():
                y, mean, _, variance = local_batch_norm(
                    x, gamma, beta, self.epsilon, return_variance=True
                )
            else:
                y, mean, variance = batch_norm_in_stock_ops(
                    x, gamma, beta, self.epsilon
                )
            self._update_statistics(x, mean, variance)
        else:
            y = local_batch_norm_inference(
                x,
                gamma,
                beta,
                tf.cast(self.moving_mean, compute_dtype),
                tf.cast(self.moving_variance, compute_dtype),
                self.epsilon,
            )
        return tf.cast(y, self.compute_dtype)

    def _update_statistics(self, x, mean, variance):
        # `variance` is the biased batch variance the forward computed.
        if self.unbiased_variance:
            n = tf.cast(tf.size(x) // tf.shape(x)[-1], tf.float64)
            variance = tf.cast(variance, tf.float64) * (n / tf.maximum(n - 1.0, 1.0))
        mean = tf.cast(mean, tf.float32)
        variance = tf.cast(variance, tf.float32)
        # The worker-local variables are read and written only here, never
        # inside a tf.cond branch: a per-worker variable (parameter-server
        # strategy) cannot be captured by a branch function.
        local_mean = tf.identity(self.local_mean)
        local_variance = tf.identity(self.local_variance)
        steps = tf.identity(self.local_steps)

        def first():
            if self.first_step_statistics == "batch":
                return mean, variance
            # The served statistics (a fresh run: the same values as the
            # initializers; after a restart or a restore: what the other
            # workers published).
            return (
                tf.cast(self.moving_mean, tf.float32),
                tf.cast(self.moving_variance, tf.float32),
            )

        previous_mean, previous_variance = tf.cond(
            tf.equal(steps, 0), first, lambda: (local_mean, local_variance)
        )
        m = self.momentum
        new_mean = previous_mean * m + mean * (1.0 - m)
        new_variance = previous_variance * m + variance * (1.0 - m)
        self.local_mean.assign(new_mean)
        self.local_variance.assign(new_variance)
        self.local_steps.assign_add(1)

        def publish():
            alpha = self.sync_rate
            for target, local in (
                (self.moving_mean, new_mean),
                (self.moving_variance, new_variance),
            ):
                local = tf.cast(local, target.dtype)
                if alpha == 1.0:
                    target.assign(local)
                else:
                    target.assign((1.0 - alpha) * target + alpha * local)
            return tf.constant(True)

        if self.sync_period == 1:
            publish()
        else:
            tf.cond(
                tf.equal((steps + 1) % self.sync_period, 0),
                publish,
                lambda: tf.constant(False),
            )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        api = self._api
        config = {
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": api.initializers.serialize(self.beta_initializer),
            "gamma_initializer": api.initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": api.initializers.serialize(
                self.moving_mean_initializer
            ),
            "moving_variance_initializer": api.initializers.serialize(
                self.moving_variance_initializer
            ),
            "beta_regularizer": api.regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": api.regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": api.constraints.serialize(self.beta_constraint),
            "gamma_constraint": api.constraints.serialize(self.gamma_constraint),
            "sync_period": self.sync_period,
            "sync_rate": self.sync_rate,
            "unbiased_variance": self.unbiased_variance,
            "local_device": self.local_device,
            "first_step_statistics": self.first_step_statistics,
        }
        return {**super().get_config(), **config}
