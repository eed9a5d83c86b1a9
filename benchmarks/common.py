"""Timing helpers shared by the benchmarks (commands, never tests)."""

import statistics
import time

import numpy as np


def median_seconds(fn, repeats=15, warmup=3):
    """Median wall time of `fn()` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def streaming_bandwidth_gbs(megabytes=256):
    """Read+write GB/s of a large NumPy copy: the machine's memory roof."""
    src = np.ones(megabytes * 2**20 // 8)
    dst = np.empty_like(src)
    seconds = median_seconds(lambda: np.copyto(dst, src), repeats=7, warmup=2)
    return 2 * src.nbytes / seconds / 1e9
