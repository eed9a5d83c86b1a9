"""The CTR model of the training job: hashed embeddings (or dynamic tables
of raw ids), a DNN tower with batch normalization, a sigmoid output."""

from __future__ import annotations

import keras
import numpy as np

from tf_swap.keras import DynamicEmbedding, LocalBatchNormalization, ShardedEmbedding

BATCH_NORMS = ("local", "keras", "none")
# The wide part: one linear weight per id.
WIDE_LAYER = "wide"


def table_rows(x, buckets: int):
    """The table rows of the model's inputs `x[n, fields]`: each field has
    its own range of `buckets` rows."""
    return x + np.arange(x.shape[1], dtype=x.dtype) * buckets


def build_ctr_model(
    num_fields: int,
    buckets: int,
    embedding_dim: int = 8,
    hidden: tuple[int, ...] = (64, 32),
    batch_norm: str = "local",
    optimizer: keras.optimizers.Optimizer | None = None,
    seed: int = 0,
    sync_period: int = 1,
    embedding: type[keras.layers.Embedding] = ShardedEmbedding,
    dynamic: dict | None = None,
) -> keras.Model:
    """A wide-and-deep CTR model on `num_fields` hashed categorical fields.

    Inputs are int32 `[batch, num_fields]` buckets in `[0, buckets)`. Each
    field gets its own range of rows of one embedding table (an offset per
    field), so the whole model has one sparse table for the deep part and
    one for the wide (linear) part. Both are `ShardedEmbedding`s: under a
    `ParameterServerStrategy` each is split over all parameter servers (one
    shard on each), elsewhere a plain `keras.layers.Embedding`. The deep tower is
    `Dense -> batch norm -> ReLU` per hidden layer; the output is
    `sigmoid(wide + deep)`.

    Args:
        num_fields: Number of categorical fields.
        buckets: Hash buckets per field.
        embedding_dim: Width of the deep embeddings.
        hidden: Widths of the hidden layers.
        batch_norm: `"local"` (`tf_swap.keras.LocalBatchNormalization`),
            `"keras"` (`keras.layers.BatchNormalization`) or `"none"`.
        optimizer: Compiled into the model if given (the training job runs
            its own loop and only uses it from there).
        seed: Initialization seed.
        sync_period: Steps between Local BN's publishes of its worker-local
            statistics.
        embedding: The tables' layer class: `ShardedEmbedding` (default),
            or `keras.layers.Embedding` for a model of stock Keras only
            (the benchmarks' baseline).
        dynamic: If given, the tables are `tf_swap.keras.DynamicEmbedding`s
            with these arguments (`min_count`, `steps_to_live`), and the
            inputs int64 raw ids (`tf_swap.jobs.data.raw_id_column`: ids of
            different fields never collide, so no offsets) instead of
            buckets; `buckets` is then unused.

    Returns:
        The `keras.Model`.
    """
    if batch_norm not in BATCH_NORMS:
        raise ValueError(f"batch_norm must be one of {BATCH_NORMS}, got {batch_norm!r}")
    keras.utils.set_random_seed(seed)
    if dynamic is None:
        inputs = keras.Input((num_fields,), dtype="int32", name="features")
        rows = table_rows(inputs, buckets)

        def table(dim, name, **kwargs):
            return embedding(num_fields * buckets, dim, name=name, **kwargs)(rows)
    else:
        inputs = keras.Input((num_fields,), dtype="int64", name="features")

        def table(dim, name, **kwargs):
            return DynamicEmbedding(dim, seed=seed, name=name, **dynamic, **kwargs)(
                inputs
            )

    deep = table(embedding_dim, "embeddings")
    x = keras.layers.Flatten()(deep)
    for i, width in enumerate(hidden):
        x = keras.layers.Dense(width, use_bias=batch_norm == "none", name=f"dense_{i}")(
            x
        )
        if batch_norm == "local":
            # From the first batch: with the initializers' (0, 1) weighing
            # in W times longer than in a shared layer, the method lost
            # 0.017 AUC in the main job's first periods (docs/results.md).
            x = LocalBatchNormalization(
                momentum=0.9,
                sync_period=sync_period,
                first_step_statistics="batch",
                name=f"bn_{i}",
            )(x)
        elif batch_norm == "keras":
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn_{i}")(x)
        x = keras.layers.ReLU()(x)
    deep_logit = keras.layers.Dense(1, name="deep_logit")(x)
    wide = table(1, WIDE_LAYER, embeddings_initializer="zeros")
    wide_logit = keras.ops.sum(wide, axis=1)
    outputs = keras.layers.Activation("sigmoid", name="click")(deep_logit + wide_logit)
    model = keras.Model(inputs, outputs, name="ctr")
    if optimizer is not None:
        model.compile(optimizer, "binary_crossentropy")
    return model


def wide_zero_fraction(model: keras.Model, stream) -> float:
    """The fraction of the wide weights of the ids trained on (every period
    of `stream` but the last) that are exactly zero (FTRL's L1 makes them
    so; Adagrad leaves none)."""
    layer = model.get_layer(WIDE_LAYER)
    if isinstance(layer, DynamicEmbedding):  # its entries: the ids trained on
        values = layer.table.export().values.numpy()
        return float(np.mean(values == 0.0)) if values.size else 0.0
    table = np.concatenate([np.asarray(w).reshape(-1) for w in layer.get_weights()])
    # Read chunk by chunk: a streamed period is never held whole.
    seen = np.zeros(table.size, bool)
    for d in range(len(stream.periods) - 1):
        for chunk in stream.periods.chunks(d):
            seen[table_rows(chunk.x, stream.buckets)] = True
    return float(np.mean(table[seen] == 0.0))


def dynamic_tables(model: keras.Model) -> list:
    """The model's `DynamicEmbedding` layers."""
    return [layer for layer in model.layers if isinstance(layer, DynamicEmbedding)]
