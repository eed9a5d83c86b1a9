"""Benchmark: whole training steps of a CTR model, tf_swap against the stock
optimizer and batch norm it replaces, side by side in one process.

The model: 4 hashed fields, a wide part and a deep part (embeddings of 16,
a DNN tower with batch normalization), a sigmoid; one step is forward,
loss, gradients and the optimizer's apply, in one tf.function.

- Keras 3 (`tf_swap.jobs.models.build_ctr_model`): the stock baseline
  `keras.optimizers.Adagrad` + `BatchNormalization` with `keras.layers.Embedding`
  tables, the same with tf_swap's `ShardedEmbedding` (which reads its rows
  sparsely, so a dense-updating optimizer copies the table on each update),
  then `AdagradSwap` + `BatchNormalization` and
  `AdagradSwap(staleness_exponent=2)` + `LocalBatchNormalization` (with the
  read of `t_read` before the forward pass, as in asynchronous training), both
  on `ShardedEmbedding`;
- tf.compat.v1, the same model as a graph in a Session:
  `tf.compat.v1.train.AdagradOptimizer` vs `AdagradSwapOptimizer`;
- tf_keras (Keras 2), the same model: legacy `Adagrad` vs
  `tf_swap.tf_keras.AdagradSwap`.

Two sizes: the large model (2^20 rows per field, tower 256-128, batch 4096)
and a small one (2^16 rows, tower 64-32, batch 256) where per-call overhead
dominates. Steps cycle over 8 fixed batches of Zipf-distributed ids; the
variants of a group are timed interleaved (one step of each in turn, many
rounds) and each reports the median. Run (`make bench` runs it):

    PYTHONPATH=python .venv/bin/python benchmarks/bench_train_step.py

This is a command, not a test: it asserts nothing.
"""

import argparse
import statistics
import time

import numpy as np
import tensorflow as tf

import tf_swap
from tf_swap.jobs.models import build_ctr_model

FIELDS, DIM = 4, 16
SIZES = {
    "large": dict(buckets=1 << 20, hidden=(256, 128), batch=4096),
    "small": dict(buckets=1 << 16, hidden=(64, 32), batch=256),
}
LR = 0.05


def batches(size, count=8, seed=0):
    """`count` batches of Zipf ids per field and random clicks."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        ids = (rng.zipf(1.2, (size["batch"], FIELDS)) - 1) % size["buckets"]
        clicks = (rng.random((size["batch"], 1)) < 0.2).astype(np.float32)
        out.append((tf.constant(ids.astype(np.int32)), tf.constant(clicks)))
    return out


def keras3_step(size, optimizer, batch_norm, read_step=False, embedding=None):
    import keras

    model = build_ctr_model(
        FIELDS,
        size["buckets"],
        DIM,
        size["hidden"],
        batch_norm=batch_norm,
        **({"embedding": embedding} if embedding else {}),
    )
    optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.BinaryCrossentropy()
    variables = model.trainable_variables

    @tf.function
    def step(x, y):
        deps = [optimizer.read_step()] if read_step else []
        with tf.control_dependencies(deps):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    return step


def tf_keras_step(size, optimizer):
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    inputs = tf_keras.Input((FIELDS,), dtype="int32")
    rows = inputs + np.arange(FIELDS, dtype=np.int32) * size["buckets"]
    deep = tf_keras.layers.Embedding(FIELDS * size["buckets"], DIM)(rows)
    x = tf_keras.layers.Flatten()(deep)
    for width in size["hidden"]:
        x = tf_keras.layers.Dense(width, use_bias=False)(x)
        x = tf_keras.layers.BatchNormalization(momentum=0.9)(x)
        x = tf_keras.layers.ReLU()(x)
    deep_logit = tf_keras.layers.Dense(1)(x)
    wide = tf_keras.layers.Embedding(
        FIELDS * size["buckets"], 1, embeddings_initializer="zeros"
    )(rows)
    logit = deep_logit + tf_keras.layers.Lambda(lambda w: tf.reduce_sum(w, 1))(wide)
    model = tf_keras.Model(inputs, tf_keras.layers.Activation("sigmoid")(logit))
    loss_fn = tf_keras.losses.BinaryCrossentropy()
    variables = model.trainable_variables

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    return step


def v1_step(size, make_optimizer, data):
    """A Session running the model's train op; the batch index is fed."""
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        xs = tf.constant(np.stack([x.numpy() for x, _ in data]))
        ys = tf.constant(np.stack([y.numpy() for _, y in data]))
        index = v1.placeholder(tf.int32, [])
        x, y = xs[index], ys[index]
        rows = x + np.arange(FIELDS, dtype=np.int32) * size["buckets"]
        init = v1.random_uniform_initializer(-0.05, 0.05, seed=1)
        table = v1.get_variable("deep", [FIELDS * size["buckets"], DIM],
                                initializer=init, use_resource=True)
        wide = v1.get_variable("wide", [FIELDS * size["buckets"], 1],
                               initializer=v1.zeros_initializer(), use_resource=True)
        h = tf.reshape(tf.nn.embedding_lookup(table, rows), [-1, FIELDS * DIM])
        for i, width in enumerate(size["hidden"]):
            w = v1.get_variable(f"w{i}", [h.shape[1], width], use_resource=True,
                                initializer=v1.glorot_uniform_initializer(seed=i))
            h = tf.matmul(h, w)
            mean, var = tf.nn.moments(h, [0])
            gamma = v1.get_variable(f"gamma{i}", [width], use_resource=True,
                                    initializer=v1.ones_initializer())
            beta = v1.get_variable(f"beta{i}", [width], use_resource=True,
                                   initializer=v1.zeros_initializer())
            h = tf.nn.relu(tf.nn.batch_normalization(h, mean, var, beta, gamma, 1e-3))
        out = v1.get_variable("out", [h.shape[1], 1], use_resource=True,
                              initializer=v1.glorot_uniform_initializer(seed=9))
        logit = tf.matmul(h, out) + tf.reduce_sum(tf.nn.embedding_lookup(wide, rows), 1)
        loss = tf.reduce_mean(
            tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logit))
        step_var = v1.train.get_or_create_global_step()
        train = make_optimizer().minimize(loss, global_step=step_var)
        session = v1.Session(graph=graph)
        session.run(v1.global_variables_initializer())
    state = {"i": 0}

    def run():
        session.run(train, {index: state["i"] % len(data)})
        state["i"] += 1

    return run


def keras3_group(size):
    import keras

    from tf_swap.keras import AdagradSwap

    return {
        "keras.optimizers.Adagrad + BatchNormalization": keras3_step(
            size, keras.optimizers.Adagrad(LR), "keras",
            embedding=keras.layers.Embedding),
        "keras.optimizers.Adagrad + BatchNormalization, ShardedEmbedding": keras3_step(
            size, keras.optimizers.Adagrad(LR), "keras"),
        "AdagradSwap + BatchNormalization": keras3_step(
            size, AdagradSwap(LR), "keras"),
        "AdagradSwap(k=2) + LocalBatchNormalization": keras3_step(
            size, AdagradSwap(LR, staleness_exponent=2), "local", read_step=True),
    }


def v1_group(size, data):
    from tf_swap.compat.v1 import AdagradSwapOptimizer

    return {
        "tf.compat.v1.train.AdagradOptimizer": v1_step(
            size, lambda: tf.compat.v1.train.AdagradOptimizer(LR), data),
        "AdagradSwapOptimizer": v1_step(
            size, lambda: AdagradSwapOptimizer(LR), data),
    }


def tf_keras_group(size):
    import tf_keras

    from tf_swap.tf_keras import AdagradSwap

    return {
        "tf_keras legacy Adagrad": tf_keras_step(
            size, tf_keras.optimizers.legacy.Adagrad(LR)),
        "tf_swap.tf_keras.AdagradSwap": tf_keras_step(size, AdagradSwap(LR)),
    }


def time_interleaved(steps, data, rounds, feed):
    """Median ms per step of each, one step of each in turn per round."""
    for _ in range(3):  # warm up: traces, first-touch of the tables
        for i, step in enumerate(steps.values()):
            feed(step, data, i)
    times = {name: [] for name in steps}
    for r in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            feed(step, data, r)
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def feed_function(step, data, i):
    x, y = data[i % len(data)]
    step(x, y).numpy()


def feed_session(step, data, i):
    step()


def report(title, medians, baseline):
    print(f"\n{title}")
    print("| variant | ms per step | speed-up vs stock |")
    print("|---|---:|---:|")
    for name, ms in medians.items():
        print(f"| {name} | {ms:.2f} | {medians[baseline] / ms:.2f}x |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="large,small")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    print(f"tf_swap {tf_swap.__version__}, TensorFlow {tf.__version__}, "
          f"intra-op threads {tf.config.threading.get_intra_op_parallelism_threads()}"
          " (0: all cores)")
    for name in args.sizes.split(","):
        size = SIZES[name]
        data = batches(size)
        print(f"\n## {name}: {FIELDS} fields x {size['buckets']} rows x {DIM}, "
              f"tower {'-'.join(map(str, size['hidden']))}, batch {size['batch']}")
        group = keras3_group(size)
        report("Keras 3", time_interleaved(group, data, args.rounds, feed_function),
               next(iter(group)))
        del group
        group = v1_group(size, data)
        report("tf.compat.v1 (Session)",
               time_interleaved(group, data, args.rounds, feed_session),
               next(iter(group)))
        del group
        group = tf_keras_group(size)
        report("tf_keras (Keras 2)",
               time_interleaved(group, data, args.rounds, feed_function),
               next(iter(group)))
        del group


if __name__ == "__main__":
    main()
