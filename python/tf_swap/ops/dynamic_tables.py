"""Dynamic embedding table ops (docs/algorithms.md, "Dynamic embedding
tables"): one table resource per op device, int64 ids -> float32 rows with
the update rule's slots, trained by the SWAP rules.

These are the raw ops, one shard at a time; `tf_swap.DynamicTable` shards
ids over several tables and checkpoints them.
"""

from typing import NamedTuple

import tensorflow as tf

from tf_swap import _ops
from tf_swap.ops import _convert

INITIALIZERS = ("zeros", "uniform", "normal", "truncated_normal")


class TableExport(NamedTuple):
    """A table's entries in ascending id order, as
    `dynamic_table_export` returns them and `dynamic_table_import` takes
    them."""

    ids: tf.Tensor
    values: tf.Tensor
    slots: tf.Tensor
    power: tf.Tensor
    count: tf.Tensor
    last_step: tf.Tensor
    pending_ids: tf.Tensor
    pending_count: tf.Tensor
    pending_last_step: tf.Tensor
    evicted_ids: tf.Tensor


def ids_tensor(ids) -> tf.Tensor:
    """`ids` as int64 (int32 widened); other dtypes raise `ValueError`."""
    ids = tf.convert_to_tensor(ids)
    if ids.dtype == tf.int32:
        return tf.cast(ids, tf.int64)
    if ids.dtype != tf.int64:
        raise ValueError(f"ids must be int64 or int32, got {ids.dtype.name}")
    return ids


def dynamic_table(
    dim: int,
    *,
    slot_init: tuple,
    init: str = "uniform",
    init_a: float = -0.05,
    init_b: float = 0.05,
    seed: int = 0,
    min_count: int = 1,
    steps_to_live: int = -1,
    shared_name: str = "",
    name=None,
) -> tf.Tensor:
    """Makes (on its first run) a table on the current device; its handle.

    Args:
        dim: Row width, `>= 1`.
        slot_init: Initial value of each slot of the rule that trains the
            table: `(accumulator,)` for Adagrad-SWAP, `(n, z)` for FTRL-SWAP.
        init: A new row's distribution, one of `INITIALIZERS`: uniform in
            `[init_a, init_b)`, or (truncated) normal with mean `init_a`
            and standard deviation `init_b`.
        seed: With the id, all a new row depends on.
        min_count: Training lookups before an id is stored, `>= 1`.
        steps_to_live: Steps an entry lives without an update; -1: forever.
        shared_name: The table's name on its device (ops naming the same
            one share it); empty: the op's name.

    Raises:
        InvalidArgumentError: a setting is out of its domain, or a table of
            this name exists with other settings.
    """
    return _ops.library().tf_swap_dynamic_table(
        dim=dim,
        slots=len(slot_init),
        slot_init=[float(v) for v in slot_init],
        init=init,
        init_a=float(init_a),
        init_b=float(init_b),
        seed=seed,
        min_count=min_count,
        steps_to_live=steps_to_live,
        shared_name=shared_name,
        name=name,
    )


def dynamic_table_set_slot_init(table, slot_init, name=None):
    """Sets what new entries' slots start at (the rule training the table
    decides); their number may change only while no entry is stored."""
    return _ops.library().tf_swap_dynamic_table_set_slot_init(
        table=table,
        slot_init=tf.constant([float(v) for v in slot_init], tf.float64),
        name=name,
    )


def dynamic_table_lookup(table, ids, *, dim, step, decay_period, name=None):
    """A training lookup: counts each id (`min_count` admission), stores the
    ids admitted (`power = step // decay_period`) and returns their rows,
    zeros for the others; shape `ids.shape + [dim]`."""
    return _ops.library().tf_swap_dynamic_table_lookup(
        table=table,
        ids=ids_tensor(ids),
        step=_convert.scalar(step, tf.int64, "step"),
        decay_period=_convert.period(decay_period),
        dim=dim,
        name=name,
    )


def dynamic_table_find(table, ids, *, dim, name=None):
    """An inference lookup: rows of stored ids, zeros for the others; never
    inserts."""
    return _ops.library().tf_swap_dynamic_table_find(
        table=table, ids=ids_tensor(ids), dim=dim, name=name
    )


def dynamic_table_size(table, name=None):
    """(entries, pending, bytes): ids stored, ids counted but not admitted,
    bytes held."""
    return _ops.library().tf_swap_dynamic_table_size(table=table, name=name)


def dynamic_table_evict(table, step, name=None):
    """Removes entries not updated for more than `steps_to_live` steps
    before `step`; returns how many went."""
    return _ops.library().tf_swap_dynamic_table_evict(
        table=table, step=_convert.scalar(step, tf.int64, "step"), name=name
    )


def dynamic_table_export(table, *, dim, slots, since=-1, name=None) -> TableExport:
    """Every entry and pending count (`since < 0`), or the entries updated
    after step `since` and the ids evicted after it."""
    outputs = _ops.library().tf_swap_dynamic_table_export(
        table=table,
        since=_convert.scalar(since, tf.int64, "since"),
        dim=dim,
        slots_count=slots,
        name=name,
    )
    return TableExport(*outputs)


def dynamic_table_import(table, data, *, shard=0, num_shards=1, name=None):
    """Replaces the table's content with the entries of `data` (a
    `TableExport`, its `evicted_ids` unused) whose id is `shard` mod
    `num_shards`."""
    return _ops.library().tf_swap_dynamic_table_import(
        table=table,
        ids=data.ids,
        values=data.values,
        slots=data.slots,
        power=data.power,
        count=data.count,
        last_step=data.last_step,
        pending_ids=data.pending_ids,
        pending_count=data.pending_count,
        pending_last_step=data.pending_last_step,
        shard=_convert.scalar(shard, tf.int64, "shard"),
        num_shards=_convert.scalar(num_shards, tf.int64, "num_shards"),
        name=name,
    )


def _discount(step, decay_rate, decay_period, accumulator_floor):
    return dict(
        step=_convert.scalar(step, tf.int64, "step"),
        decay_rate=_convert.scalar(decay_rate, tf.float32, "decay_rate"),
        decay_period=_convert.period(decay_period),
        accumulator_floor=_convert.scalar(
            accumulator_floor, tf.float32, "accumulator_floor"
        ),
    )


def dynamic_table_apply_adagrad_swap(
    table,
    grad,
    ids,
    lr,
    *,
    epsilon,
    step,
    decay_rate,
    decay_period,
    accumulator_floor,
    decay_mode="exact",
    epsilon_placement="after_sqrt",
    name=None,
):
    """Adagrad-SWAP on the entries of `ids` of a one-slot table, as
    `resource_sparse_apply_adagrad_swap` on rows: repeated ids summed
    first; ids not stored are skipped; each entry's `last_step` becomes
    `step`."""
    return _ops.library().tf_swap_dynamic_table_apply_adagrad_swap(
        table=table,
        grad=grad,
        ids=ids_tensor(ids),
        lr=_convert.scalar(lr, tf.float32, "lr"),
        epsilon=_convert.scalar(epsilon, tf.float32, "epsilon"),
        decay_mode=decay_mode,
        epsilon_placement=epsilon_placement,
        name=name,
        **_discount(step, decay_rate, decay_period, accumulator_floor),
    )


def dynamic_table_apply_ftrl_swap(
    table,
    grad,
    ids,
    lr,
    *,
    step,
    decay_rate,
    decay_period,
    accumulator_floor,
    l1=0.0,
    l2=0.0,
    l2_shrinkage=0.0,
    lr_power=-0.5,
    beta=0.0,
    staleness_scale=1.0,
    decay_mode="exact",
    name=None,
):
    """FTRL-SWAP on the entries of `ids` of a two-slot (`n`, `z`) table, as
    `resource_sparse_apply_ftrl_swap` on rows."""
    floats = dict(
        lr=lr,
        l1=l1,
        l2=l2,
        l2_shrinkage=l2_shrinkage,
        lr_power=lr_power,
        beta=beta,
        staleness_scale=staleness_scale,
    )
    return _ops.library().tf_swap_dynamic_table_apply_ftrl_swap(
        table=table,
        grad=grad,
        ids=ids_tensor(ids),
        decay_mode=decay_mode,
        name=name,
        **{k: _convert.scalar(v, tf.float32, k) for k, v in floats.items()},
        **_discount(step, decay_rate, decay_period, accumulator_floor),
    )
