"""What the jobs report of a model's dynamic tables, period by period
(no TensorFlow import: the job modules import this before TensorFlow)."""

from __future__ import annotations


class TableCounts:
    """Per trained period, the entries the model's dynamic tables store
    after it, those admitted during it and those its end evicted (all
    tables together), for the jobs' reports.

    Args:
        counts: Earlier periods' counts (`as_dict()`), when resuming.
    """

    def __init__(self, counts: dict | None = None):
        counts = counts or {"entries": [], "admitted": [], "evicted": []}
        self.entries = list(counts["entries"])
        self.admitted = list(counts["admitted"])
        self.evicted = list(counts["evicted"])

    def end_period(self, layers: list) -> None:
        """At the end of a trained period: applies the eviction policy of
        each table (the `DynamicEmbedding` layers of a model, see
        `tf_swap.jobs.models.dynamic_tables`), then counts."""
        if not layers:
            return
        evicted = sum(layer.evict() for layer in layers)
        entries = sum(layer.table_size() for layer in layers)
        before = self.entries[-1] if self.entries else 0
        self.entries.append(entries)
        self.evicted.append(evicted)
        self.admitted.append(entries - before + evicted)

    def as_dict(self) -> dict:
        return {
            "entries": self.entries,
            "admitted": self.admitted,
            "evicted": self.evicted,
        }
