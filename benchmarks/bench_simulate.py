"""Benchmark: the simulator's cost per simulated update, at 1, 128 and 3000
workers, with the simulator's default model (embeddings of 8, tower 64-32,
batch 32, synthetic stream) on the real optimizers and layers.

Two ways to run the same events on the same graph, side by side in one
process: the engine's (`Simulation.run_events` over a slice of 2000 events:
one `tf.function` call running a `tf.while_loop` over them) and one call
per event (slices of length 1, as a loop in Python driving the model would
do). Each reports the median over 3 repetitions of ms per update; the ratio
is the second over the first. Evaluation is not included (the simulator's
`seconds_per_update` includes it; at the default size it adds ~5%). Run
(`make bench` runs it):

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


def ms_per_update(sim, schedule, begin: int, events: int, per_call: int) -> float:
    """Wall time of updates `begin .. begin + events`, `per_call` per call."""
    started = time.perf_counter()
    for a in range(begin, begin + events, per_call):
        sim.run_events(schedule, a, a + per_call)
    return (time.perf_counter() - started) / events * 1e3


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
    print(
        "| workers | variant | in-graph loop (ms) | one call per event (ms) | ratio |"
    )
    print("|---:|---|---:|---:|---:|")
    for w in workers:
        schedule = make_schedule(n, w, config.speed_sigma, config.jitter_sigma, 0)
        for variant in VARIANTS:
            sim = Simulation(variant, stream, batches, w, samples // 32, config)
            sim.start(schedule)
            sim.run_events(schedule, 0, warm - 1)  # traces the loop
            sim.run_events(schedule, warm - 1, warm)
            at = warm
            loop, single = [], []
            for _ in range(reps):
                loop.append(ms_per_update(sim, schedule, at, args.events, args.events))
                at += args.events
                single.append(ms_per_update(sim, schedule, at, args.single_events, 1))
                at += args.single_events
            a, b = statistics.median(loop), statistics.median(single)
            print(f"| {w} | {variant} | {a:.3f} | {b:.3f} | {b / a:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
