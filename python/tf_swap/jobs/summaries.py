"""TensorBoard summaries of a job's runs, written as each period ends, so a
long run can be watched with `tensorboard --logdir OUT/tensorboard`.

One event directory per run (`VARIANT/seed_S` in `tf_swap.train`,
`VARIANT/W=W/seed_S` in `tf_swap.simulate`); the step of every summary is
the evaluated period (1-based; period `p` is evaluated after training on
the periods before it):

- `auc`, `gauc` (when the data has users): the evaluated period's scores;
- `staleness`: a histogram of the staleness of the updates of the period
  trained just before, and `staleness_mean`;
- `dropped_updates`: the updates dropped for staleness so far;
- `table/entries`, `table/admitted`, `table/evicted`: the dynamic tables'
  counts after the period trained (with `--embedding dynamic`).
"""

from __future__ import annotations

import os
import time

import numpy as np


class PeriodSummaries:
    """The summary writer of one run.

    Events are built in Python (TensorBoard's summary protos and event
    file writer) rather than with `tf.summary`'s writer resource: the
    cluster job's eager context is connected and reconnected to the
    cluster as tasks restart, and a resource made on one context's local
    device is gone on the next.

    Args:
        directory: The run's event directory, or `None` to write nothing.
    """

    def __init__(self, directory: str | None):
        self._writer = None
        if directory is not None:
            from tensorboard.summary.writer.event_file_writer import (
                EventFileWriter,
            )

            os.makedirs(directory, exist_ok=True)
            self._writer = EventFileWriter(directory)

    def end_period(
        self,
        period: int,
        score,
        taus,
        dropped_updates: int,
        tables: dict | None = None,
    ) -> None:
        """Writes evaluated period `period`'s summaries: `score` (a
        `tf_swap.jobs.ranking.PeriodScore`), `taus` (the staleness of the
        updates trained on before it), the dropped updates so far and the
        dynamic tables' `TableCounts.as_dict()` (the last entries)."""
        if self._writer is None:
            return
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.v1 import histogram_pb, scalar_pb

        summaries = [scalar_pb("auc", score.auc)]
        if score.gauc is not None:
            summaries.append(scalar_pb("gauc", score.gauc))
        taus = np.asarray(taus, np.float64)
        if taus.size:
            summaries.append(histogram_pb("staleness", taus))
            summaries.append(scalar_pb("staleness_mean", taus.mean()))
        summaries.append(scalar_pb("dropped_updates", int(dropped_updates)))
        if tables and tables.get("entries"):
            for key in ("entries", "admitted", "evicted"):
                summaries.append(scalar_pb(f"table/{key}", tables[key][-1]))
        for summary in summaries:
            # `*_pb` build TensorFlow's Summary (tagged `NAME/scalar_summary`,
            # TF 1's convention); the writer takes TensorBoard's copy of the
            # proto, tagged as `tf.summary` would tag it.
            proto = summary_pb2.Summary.FromString(summary.SerializeToString())
            for value in proto.value:
                value.tag = value.tag.rsplit("/", 1)[0]
            self._writer.add_event(
                event_pb2.Event(wall_time=time.time(), step=period, summary=proto)
            )
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
