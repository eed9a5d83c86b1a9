"""Keras 3 embedding table split into shards, one variable per shard."""

import keras
import tensorflow as tf

from tf_swap.dynamic_table import parameter_server_devices


def shard_sizes(rows: int, num_shards: int) -> list[int]:
    """Rows per shard in TensorFlow's partitioners' layout: consecutive row
    ranges, the first `rows % num_shards` shards one row longer."""
    base, extra = divmod(rows, num_shards)
    return [base + 1 if i < extra else base for i in range(num_shards)]


def default_num_shards() -> int:
    """The number of parameter-server tasks under a
    `ParameterServerStrategy`, else 1."""
    return max(1, len(parameter_server_devices()))


@keras.saving.register_keras_serializable(package="tf_swap")
class ShardedEmbedding(keras.layers.Embedding):
    """`keras.layers.Embedding` whose table is `num_shards` variables.

    Keras 3 cannot train a table that TensorFlow partitions
    (`ParameterServerStrategy(variable_partitioner=...)` makes a
    `ShardedVariable`, which Keras 3 optimizers do not support). This layer
    shards the table itself: shard `i` is a variable of its own holding a
    consecutive range of rows (TensorFlow's partitioners' layout: the first
    `input_dim % num_shards` shards one row longer), so under a
    `ParameterServerStrategy` *without* a `variable_partitioner` the
    strategy places the shards round-robin on the parameter servers (with
    `num_shards` equal to the number of PS tasks, one shard on each). A
    lookup gathers each id's row from its shard (on the shard's parameter
    server); the gradient of each shard is a `tf.IndexedSlices` of its own
    rows, which `tf_swap.keras.AdagradSwap` applies with the sparse op where
    the shard lives.

    With `num_shards=1` the layer computes what `keras.layers.Embedding`
    computes, but reads rows sparsely (`ResourceGather`), which a sparse
    optimizer (`AdagradSwap`, TF's sparse applies) needs to never copy the
    table; with an optimizer that updates the table densely (Keras 3's
    `Adagrad`) each such update copies it instead. Each
    shard is initialized with `embeddings_initializer` on its own shape (as
    TF's partitioned variables are), so a sharded table does not start from
    the same values as an unsharded one; `set_weights` takes one array per
    shard.

    Args:
        input_dim: Rows of the table (vocabulary size), >= `num_shards`.
        output_dim: Width of each row.
        embeddings_initializer: Initializer of each shard.
        embeddings_regularizer: Regularizer, applied to each shard.
        embeddings_constraint: Constraint, applied to each shard.
        mask_zero: As in `keras.layers.Embedding`.
        weights: Optional initial weights, one array per shard.
        num_shards: Number of shards; `None` (the default) is the number of
            parameter-server tasks when the layer is created under a
            `ParameterServerStrategy`, else 1.
        **kwargs: Base layer arguments (and, with one shard, Embedding's
            `lora_rank`, `lora_alpha`, `quantization_config`).
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        embeddings_constraint=None,
        mask_zero=False,
        weights=None,
        num_shards=None,
        **kwargs,
    ):
        num_shards = default_num_shards() if num_shards is None else num_shards
        if int(num_shards) != num_shards or num_shards < 1:
            raise ValueError(f"num_shards must be an integer >= 1, got {num_shards}")
        if num_shards > input_dim:
            raise ValueError(
                f"num_shards ({num_shards}) must not exceed input_dim ({input_dim})"
            )
        if num_shards > 1 and any(
            kwargs.get(k) is not None
            for k in ("lora_rank", "lora_alpha", "quantization_config")
        ):
            raise ValueError("LoRA and quantization need num_shards=1")
        super().__init__(
            input_dim,
            output_dim,
            embeddings_initializer=embeddings_initializer,
            embeddings_regularizer=embeddings_regularizer,
            embeddings_constraint=embeddings_constraint,
            mask_zero=mask_zero,
            **kwargs,
        )
        self.num_shards = int(num_shards)
        self.shards = []
        if weights is not None:
            self.build()
            self.set_weights(weights)

    def build(self, input_shape=None):
        if self.built:
            return
        if self.num_shards == 1:
            super().build(input_shape)
            self.shards = [self._embeddings]
            return
        self.shards = [
            self.add_weight(
                shape=(rows, self.output_dim),
                initializer=self.embeddings_initializer,
                name=f"embeddings_shard_{i}",
                regularizer=self.embeddings_regularizer,
                constraint=self.embeddings_constraint,
                trainable=True,
            )
            for i, rows in enumerate(shard_sizes(self.input_dim, self.num_shards))
        ]
        self.built = True

    @property
    def embeddings(self):
        """The whole table (with several shards, their concatenation: a
        tensor, not a variable)."""
        if self.num_shards == 1:
            return super().embeddings
        return tf.concat([tf.convert_to_tensor(s) for s in self.shards], axis=0)

    def call(self, inputs):
        if self.num_shards == 1 and (self.lora_enabled or self.quantization_mode):
            return super().call(inputs)
        ids = tf.convert_to_tensor(inputs)
        if ids.dtype not in (tf.int32, tf.int64):
            ids = tf.cast(ids, "int32")
        # Negative ids count from the end, as in `keras.ops.take`.
        ids = tf.where(ids < 0, ids + tf.constant(self.input_dim, ids.dtype), ids)
        if self.num_shards == 1:
            outputs = self._rows(self._embeddings, ids)
            return keras.ops.cast(outputs, dtype=self.compute_dtype)
        flat = tf.reshape(ids, [-1])
        sizes = shard_sizes(self.input_dim, self.num_shards)
        long, extra = sizes[0], self.input_dim % self.num_shards
        # Ids below `boundary` are in the `extra` longer shards.
        boundary = tf.cast(extra * long, flat.dtype)
        short = tf.cast(sizes[-1], flat.dtype)
        long = tf.cast(long, flat.dtype)
        in_long = flat < boundary
        shard = tf.where(in_long, flat // long, extra + (flat - boundary) // short)
        row = tf.where(in_long, flat % long, (flat - boundary) % short)
        shard = tf.cast(shard, "int32")
        positions = tf.dynamic_partition(
            tf.range(tf.size(flat)), shard, self.num_shards
        )
        rows = tf.dynamic_partition(row, shard, self.num_shards)
        gathered = [
            self._rows(table, part)
            for table, part in zip(self.shards, rows, strict=True)
        ]
        outputs = tf.dynamic_stitch(positions, gathered)
        outputs = tf.reshape(
            outputs, tf.concat([tf.shape(ids), [self.output_dim]], axis=0)
        )
        outputs.set_shape(ids.shape.concatenate([self.output_dim]))
        return keras.ops.cast(outputs, dtype=self.compute_dtype)

    @staticmethod
    def _rows(table, ids):
        """Rows `ids` of the variable `table`, read sparsely
        (`ResourceGather`). `keras.ops.take` reads the whole table first,
        and once a sparse update has put the variable in copy-on-read mode
        every such read copies the table."""
        return tf.gather(table.value, ids)

    def save_own_variables(self, store):
        if self.num_shards == 1:
            return super().save_own_variables(store)
        # Embedding's own saving knows one `embeddings` variable; the shards
        # are saved as any layer's variables are.
        return keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        if self.num_shards == 1:
            return super().load_own_variables(store)
        return keras.layers.Layer.load_own_variables(self, store)

    def enable_lora(self, *args, **kwargs):
        if self.num_shards > 1:
            raise ValueError("LoRA needs num_shards=1")
        return super().enable_lora(*args, **kwargs)

    def quantize(self, *args, **kwargs):
        if self.num_shards > 1:
            raise ValueError("quantization needs num_shards=1")
        return super().quantize(*args, **kwargs)

    def get_config(self):
        return {**super().get_config(), "num_shards": self.num_shards}
