"""Benchmark: the simulator's cost per simulated update, at 1, 128 and 3000
workers, with the simulator's default model (embeddings of 8, tower 64-32,
batch 32, synthetic stream) on the real optimizers and layers.

Two ways to run the same events on the same graph, side by side in one
process: the engine's (`Simulation.run_events` over a block of 2000 events:
one `tf.function` call running a `tf.while_loop` over them) and one call
per event (slices of length 1, as a loop in Python driving the model would
do). Each reports the median over 3 repetitions of ms per update; the ratio
is the second over the first. Evaluation is not included (the simulator's
`seconds_per_update` includes it; at the default size it adds ~5%).

Because these machines differ by 2x from day to day, the table also gives
the engine's time over a plain-TensorFlow reference step measured in the
same run: a `tf.while_loop` over the same batches of a gather from
embedding tables of the same size (8 wide, and the 1-wide wide part),
a DNN 64-32 with ReLU, a sigmoid cross-entropy, its gradients and an SGD
update of every variable (rows by `scatter_sub`); no batch normalization,
no workers, no optimizer state: the floor a simulated update cannot go
under. Run (`make bench` runs it):

    PYTHONPATH=python .venv/bin/python benchmarks/bench_simulate.py

This is a command, not a test: it asserts nothing.
"""

import argparse
import statistics
import time

from tf_swap.jobs import data
from tf_swap.jobs.experiment import stream_batches
from tf_swap.jobs.schedule import make_schedule
from tf_swap.jobs.simulation import SimConfig, Simulation

VARIANTS = ("adagrad", "swap+stale+lbn")


def run_events(sim, events, batches) -> None:
    """Runs `events` on `sim`, its reads reading `batches`."""
    xs, ys, _ = batches
    reads = events.next[events.next >= 0]
    sim.run_events(events, xs[reads], ys[reads])


def ms_per_update(sim, replay, batches, events: int, per_call: int) -> float:
    """Wall time of the next `events` updates of `replay`, `per_call` per
    call (the batches they read sliced beforehand, as the engine's feed
    draws them before the call)."""
    blocks = [replay.take(per_call) for _ in range(events // per_call)]
    xs, ys, _ = batches
    reads = [b.next[b.next >= 0] for b in blocks]
    inputs = [(xs[r], ys[r]) for r in reads]
    started = time.perf_counter()
    for block, (x, y) in zip(blocks, inputs, strict=True):
        sim.run_events(block, x, y)
    return (time.perf_counter() - started) / events * 1e3


def reference_ms(batches, rows: int, config, events: int, reps: int) -> float:
    """ms per step of the plain-TensorFlow reference (module docstring) on
    the first `events` batches, median of `reps` after a warm-up."""
    import tensorflow as tf

    xs, ys, _ = batches
    fields = xs.shape[2]
    x = tf.constant(xs[:events] + (tf.range(fields) * rows // fields).numpy())
    y = tf.constant(ys[:events])
    rng = tf.random.Generator.from_seed(0)
    deep = tf.Variable(rng.uniform([rows, config.embedding_dim], -0.05, 0.05))
    wide = tf.Variable(tf.zeros([rows, 1]))
    dense = []
    width = fields * config.embedding_dim
    for out in (*config.hidden, 1):
        dense.append(
            (
                tf.Variable(rng.normal([width, out], stddev=0.1)),
                tf.Variable(tf.zeros([out])),
            )
        )
        width = out
    weights = [v for pair in dense for v in pair]

    def step(k):
        ids = x[k]
        with tf.GradientTape() as tape:
            e = tf.gather(deep, ids)
            w = tf.gather(wide, ids)
            tape.watch([e, w])
            h = tf.reshape(e, [tf.shape(ids)[0], -1])
            for i, (kernel, bias) in enumerate(dense):
                h = tf.matmul(h, kernel) + bias
                if i < len(dense) - 1:
                    h = tf.nn.relu(h)
            logit = h + tf.reduce_sum(w, axis=1)
            loss = tf.reduce_mean(
                tf.nn.sigmoid_cross_entropy_with_logits(labels=y[k], logits=logit)
            )
        grads = tape.gradient(loss, [e, w, *weights])
        flat = tf.reshape(ids, [-1])
        deep.scatter_sub(
            tf.IndexedSlices(
                config.learning_rate
                * tf.reshape(grads[0], [-1, config.embedding_dim]),
                flat,
            )
        )
        wide.scatter_sub(
            tf.IndexedSlices(config.learning_rate * tf.reshape(grads[1], [-1, 1]), flat)
        )
        for v, g in zip(weights, grads[2:], strict=True):
            v.assign_sub(config.learning_rate * g)
        return k + 1

    @tf.function
    def run():
        tf.while_loop(lambda k: k < events, step, (0,), parallel_iterations=1)

    run()  # traces
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) / events * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,128,3000")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--single-events", type=int, default=200)
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    config = SimConfig()
    warm, reps = 500, 3
    # Enough batches for the warm-up and every repetition of both ways.
    need = warm + reps * (args.events + args.single_events)
    samples = 98304
    stream = data.synthetic_stream(
        periods=2 + need * config.batch_size // samples, samples=samples, seed=0
    )
    batches = stream_batches(stream, config.batch_size, config.seed)
    n = len(batches[0])
    print(
        f"simulator, {n} batches of {config.batch_size}, model {config.hidden} "
        f"x{config.embedding_dim}; ms per simulated update (median of {reps})\n"
    )
    rows = len(stream.fields) * stream.buckets
    reference = reference_ms(batches, rows, config, args.events, reps)
    print(
        f"plain-TensorFlow reference step (gather + DNN {config.hidden} + SGD, "
        f"batch {config.batch_size}): {reference:.3f} ms\n"
    )
    print(
        "| workers | variant | in-graph loop (ms) | one call per event (ms) | ratio "
        "| engine / reference |"
    )
    print("|---:|---|---:|---:|---:|---:|")
    for w in workers:
        schedule = make_schedule(n, w, config.speed_sigma, config.jitter_sigma, 0)
        for variant in VARIANTS:
            sim = Simulation(variant, stream, w, samples // 32, config)
            replay = schedule.replay()
            sim.start(batches[0][replay.first], batches[1][replay.first])
            run_events(sim, replay.take(warm - 1), batches)  # traces the loop
            run_events(sim, replay.take(1), batches)
            loop, single = [], []
            for _ in range(reps):
                loop.append(
                    ms_per_update(sim, replay, batches, args.events, args.events)
                )
                single.append(
                    ms_per_update(sim, replay, batches, args.single_events, 1)
                )
            a, b = statistics.median(loop), statistics.median(single)
            print(
                f"| {w} | {variant} | {a:.3f} | {b:.3f} | {b / a:.1f}x "
                f"| {a / reference:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
