"""Reads the TensorBoard event files a job wrote (no TensorBoard server)."""

from pathlib import Path

import tensorflow as tf


def summaries(directory) -> dict:
    """`{tag: {step: value}}` of every summary under `directory` (scalars as
    floats, histograms as their `[buckets, 3]` arrays)."""
    out: dict = {}
    for path in sorted(Path(directory).rglob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                array = tf.make_ndarray(value.tensor)
                out.setdefault(value.tag, {})[event.step] = (
                    float(array) if array.ndim == 0 else array
                )
    return out
