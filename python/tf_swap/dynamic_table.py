"""`DynamicTable`: a dynamic embedding table sharded over devices, trained
by the SWAP rules and checkpointed by TensorFlow's own mechanisms.

Id `i` lives in shard `i mod num_shards` (non-negative remainder), each
shard a `TfSwapDynamicTable` resource on its device: under
`ParameterServerStrategy` the parameter servers, round-robin, so lookups
and applies run there. A checkpoint holds the table as one set of tensors
(every shard's entries, ascending ids per shard), so it restores into any
number of shards.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Callable

import tensorflow as tf

from tf_swap.local_batch_norm_layer import is_parameter_server_strategy
from tf_swap.ops import dynamic_tables as table_ops

_CHECKPOINT_KEYS = (
    "ids",
    "values",
    "slots",
    "power",
    "count",
    "last_step",
    "pending_ids",
    "pending_count",
    "pending_last_step",
)
_UIDS = itertools.count()
# Before an optimizer says otherwise: one slot (Adagrad-SWAP's accumulator).
DEFAULT_SLOT_INIT = (0.1,)


def _initializer_code(initializer) -> tuple[str, float, float]:
    """(init, a, b) of the table op for a Keras-style initializer: a name
    (Keras' defaults: uniform in [-0.05, 0.05), normal and truncated normal
    with stddev 0.05) or an object with Keras' `get_config()` fields."""
    defaults = {
        "zeros": ("zeros", 0.0, 0.0),
        "uniform": ("uniform", -0.05, 0.05),
        "random_uniform": ("uniform", -0.05, 0.05),
        "normal": ("normal", 0.0, 0.05),
        "random_normal": ("normal", 0.0, 0.05),
        "truncated_normal": ("truncated_normal", 0.0, 0.05),
    }
    if isinstance(initializer, str):
        if initializer not in defaults:
            raise ValueError(
                f"initializer must be one of {sorted(defaults)} or a Keras "
                f"RandomUniform, RandomNormal, TruncatedNormal or Zeros, got "
                f"{initializer!r}"
            )
        return defaults[initializer]
    kind = type(initializer).__name__
    config = initializer.get_config() if hasattr(initializer, "get_config") else {}
    if kind == "Zeros":
        return defaults["zeros"]
    if kind == "RandomUniform":
        return ("uniform", float(config["minval"]), float(config["maxval"]))
    if kind in ("RandomNormal", "TruncatedNormal"):
        code = "normal" if kind == "RandomNormal" else "truncated_normal"
        return (code, float(config["mean"]), float(config["stddev"]))
    raise ValueError(
        f"initializer {initializer!r} has no per-id form: use a name or a Keras "
        "RandomUniform, RandomNormal, TruncatedNormal or Zeros"
    )


def _whole(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_arguments(
    dim, slot_init, initializer, seed, min_count, steps_to_live, num_shards
) -> dict:
    """`DynamicTable`'s arguments checked (`ValueError` naming the first
    bad one) and normalized, as its attributes hold them."""
    slot_init = tuple(float(v) for v in slot_init)
    if len(slot_init) not in (1, 2):
        raise ValueError(f"slot_init must hold 1 or 2 values, got {slot_init!r}")
    return dict(
        dim=_whole("dim", dim, 1),
        slot_init=slot_init,
        initializer=_initializer_code(initializer),
        seed=0 if seed is None else _whole("seed", seed, 0),
        min_count=_whole("min_count", min_count, 1),
        steps_to_live=(
            None if steps_to_live is None else _whole("steps_to_live", steps_to_live, 0)
        ),
        num_shards=None if num_shards is None else _whole("num_shards", num_shards, 1),
    )


def parameter_server_devices() -> list[str]:
    """The CPU of each parameter-server task under a
    `ParameterServerStrategy`, else `[]`. The strategy connected this
    process to the cluster, whose devices are now visible here (the strategy
    itself has no public PS count)."""
    if not is_parameter_server_strategy(tf.distribute.get_strategy()):
        return []
    tasks = sorted(
        {
            device.name.split("/device:")[0]
            for device in tf.config.list_logical_devices("CPU")
            if device.name.startswith("/job:ps/")
        },
        key=lambda task: int(task.rsplit(":", 1)[1]),
    )
    return [f"{task}/device:CPU:0" for task in tasks]


def _default_devices(num_shards: int | None) -> tuple[int, list]:
    """Shard count and devices: the parameter servers round-robin under
    `ParameterServerStrategy`, else the current device."""
    servers = parameter_server_devices()
    if servers:
        count = num_shards or len(servers)
        return count, [servers[i % len(servers)] for i in range(count)]
    count = num_shards or 1
    return count, [None] * count


class DynamicTable(tf.Module):
    """Int64 ids of any value -> float32 rows, storing only the ids seen.

    Args:
        dim: Row width.
        slot_init: The initial value of each slot of the rule that trains
            the table: `(initial_accumulator_value,)` for Adagrad-SWAP,
            `(initial_accumulator_value, 0.0)` for FTRL-SWAP.
        initializer: A new row's distribution: `"uniform"` (Keras'
            default, [-0.05, 0.05)), `"normal"`, `"truncated_normal"`,
            `"zeros"`, or a Keras `RandomUniform`, `RandomNormal`,
            `TruncatedNormal` or `Zeros`. Rows are a function of `seed` and
            the id alone (a counter-based generator).
        seed: The seed of every row; `None` is 0, so runs are reproducible.
        min_count: Training lookups before an id is stored; before that its
            lookup returns zeros and its gradient is dropped.
        steps_to_live: `evict(step)` removes entries not updated for more
            than this many steps; `None` keeps them.
        num_shards: Shards (id `i` in shard `i mod num_shards`); default: the
            parameter servers under `ParameterServerStrategy`, else 1.
        devices: One device per shard; default: the parameter servers
            round-robin, else the current device.
        name: The table's name (shard resources are named after it).

    Raises:
        ValueError: an argument has the wrong type or is out of its domain.
    """

    def __init__(
        self,
        dim: int,
        *,
        slot_init: tuple = DEFAULT_SLOT_INIT,
        initializer="uniform",
        seed: int | None = None,
        min_count: int = 1,
        steps_to_live: int | None = None,
        num_shards: int | None = None,
        devices: list | None = None,
        name: str | None = None,
    ):
        super().__init__(name=name or "dynamic_table")
        checked = check_arguments(
            dim, slot_init, initializer, seed, min_count, steps_to_live, num_shards
        )
        self.dim = checked["dim"]
        self.slot_init = checked["slot_init"]
        self.initializer = checked["initializer"]
        self.seed = checked["seed"]
        self.min_count = checked["min_count"]
        self.steps_to_live = checked["steps_to_live"]
        if devices is not None:
            if num_shards is not None and len(devices) != num_shards:
                raise ValueError(
                    f"devices names {len(devices)} devices for {num_shards} shards"
                )
            num_shards = len(devices)
        else:
            num_shards, devices = _default_devices(num_shards)
        self.num_shards = num_shards
        if tf.executing_eagerly():
            base = f"{self.name}_{next(_UIDS)}"
        else:
            # The module's unique name scope in the graph: the same in every
            # process that builds the graph (between-graph replicas share the
            # PS resources by it) and in the checkpoint's keys.
            base = self.name_scope.name.rstrip("/")
        self._handles = []
        for shard, device in enumerate(devices):
            with self._placement(shard, device):
                self._handles.append(self._make_shard(f"{base}_shard{shard}"))
        if not tf.executing_eagerly():
            # As TensorFlow's mutable hash tables: saved by
            # tf.compat.v1.train.Saver() by default.
            GraphTables.add(self, base)

    def _placement(self, shard: int, device):
        """Where shard `shard` is made: on `device`."""
        del shard
        return tf.device(device)

    def _make_shard(self, shared_name: str) -> tf.Tensor:
        init, a, b = self.initializer
        return table_ops.dynamic_table(
            self.dim,
            slot_init=self.slot_init,
            init=init,
            init_a=a,
            init_b=b,
            seed=self.seed,
            min_count=self.min_count,
            steps_to_live=-1 if self.steps_to_live is None else self.steps_to_live,
            shared_name=shared_name,
        )

    def set_slot_init(self, slot_init: tuple) -> None:
        """Sets what new entries' slots start at (as the rule that trains the
        table says); their number may change only while no entry is
        stored (`InvalidArgumentError` otherwise, nothing changed).
        Returns the ops (graph mode)."""
        values = check_arguments(self.dim, slot_init, "zeros", None, 1, None, None)[
            "slot_init"
        ]
        ops = []
        for handle in self._handles:
            with tf.device(handle.device):
                ops.append(table_ops.dynamic_table_set_slot_init(handle, values))
        self.slot_init = values
        return ops

    @property
    def slots(self) -> int:
        """Slots per entry (1: Adagrad-SWAP, 2: FTRL-SWAP)."""
        return len(self.slot_init)

    @property
    def handles(self) -> tuple:
        """The shards' resource handles, shard `k` holding ids `k mod n`."""
        return tuple(self._handles)

    def _by_shard(self, ids: tf.Tensor):
        """Flat ids split by shard, and where each came from."""
        flat = tf.reshape(ids, [-1])
        if self.num_shards == 1:
            return [flat], [tf.range(tf.size(flat))]
        shard_of = tf.cast(tf.math.floormod(flat, self.num_shards), tf.int32)
        positions = tf.dynamic_partition(
            tf.range(tf.size(flat)), shard_of, self.num_shards
        )
        return tf.dynamic_partition(flat, shard_of, self.num_shards), positions

    def gather_by_shard(self, ids, lookup: Callable) -> tf.Tensor:
        """`ids.shape + [dim]` rows: `lookup(shard, ids_of_shard)` gives
        each shard's rows (run on the shard's device)."""
        ids = table_ops.ids_tensor(ids)
        parts, positions = self._by_shard(ids)
        rows = []
        for shard, part in enumerate(parts):
            with tf.device(self._handles[shard].device):
                rows.append(lookup(shard, part))
        if self.num_shards == 1:
            flat_rows = rows[0]
        else:
            flat_rows = tf.dynamic_stitch(positions, rows)
        return tf.reshape(flat_rows, tf.concat([tf.shape(ids), [self.dim]], 0))

    def lookup(self, ids, *, step, decay_period) -> tf.Tensor:
        """A training lookup at `step` of the rule with period
        `decay_period`: counts the ids, stores those admitted, and returns
        `ids.shape + [dim]` rows (zeros for ids not stored)."""

        def train(shard, part):
            return table_ops.dynamic_table_lookup(
                self._handles[shard],
                part,
                dim=self.dim,
                step=step,
                decay_period=decay_period,
            )

        return self.gather_by_shard(ids, train)

    def find(self, ids) -> tf.Tensor:
        """An inference lookup: stored rows, zeros for other ids; inserts
        nothing."""
        return self.gather_by_shard(
            ids,
            lambda shard, part: table_ops.dynamic_table_find(
                self._handles[shard], part, dim=self.dim
            ),
        )

    def apply(self, rule_op: Callable, grad, ids, **hyper) -> list:
        """Applies `rule_op` (`tf_swap.ops.dynamic_table_apply_adagrad_swap`
        or `..._ftrl_swap`) with `hyper` to the entries of `ids`, gradient
        rows `grad` (`[len(ids), dim]`), each shard on its device."""
        ids = tf.reshape(table_ops.ids_tensor(ids), [-1])
        grad = tf.reshape(tf.convert_to_tensor(grad, tf.float32), [-1, self.dim])
        if self.num_shards == 1:
            parts, grads = [ids], [grad]
        else:
            shard_of = tf.cast(tf.math.floormod(ids, self.num_shards), tf.int32)
            parts = tf.dynamic_partition(ids, shard_of, self.num_shards)
            grads = tf.dynamic_partition(grad, shard_of, self.num_shards)
        return [
            self.shard(k).apply(rule_op, part_grad, part, **hyper)
            for k, (part, part_grad) in enumerate(zip(parts, grads, strict=True))
        ]

    def shard(self, k: int) -> TableShard:
        """Shard `k` (ids `k mod num_shards`), with the `apply` of a table."""
        return TableShard(self._handles[k], self.dim)

    def size(self) -> tf.Tensor:
        """Entries stored, all shards."""
        return tf.add_n(
            [table_ops.dynamic_table_size(h).entries for h in self._handles]
        )

    def evict(self, step) -> tf.Tensor:
        """Applies `steps_to_live` at `step`; returns how many entries went."""
        evicted = []
        for handle in self._handles:
            with tf.device(handle.device):
                evicted.append(table_ops.dynamic_table_evict(handle, step))
        return tf.add_n(evicted)

    def export(self, since=-1) -> table_ops.TableExport:
        """Every shard's entries and pending counts (`since < 0`), or the
        entries updated after step `since` and the ids evicted after it;
        shard after shard, ascending ids within each."""
        parts = []
        for handle in self._handles:
            with tf.device(handle.device):
                parts.append(
                    table_ops.dynamic_table_export(
                        handle, dim=self.dim, slots=self.slots, since=since
                    )
                )
        if len(parts) == 1:
            return parts[0]
        fields = {}
        for key in table_ops.TableExport._fields:
            axis = 1 if key == "slots" else 0
            fields[key] = tf.concat([getattr(p, key) for p in parts], axis)
        return table_ops.TableExport(**fields)

    def restore(self, data: table_ops.TableExport) -> list:
        """Replaces every shard's content with its ids of `data` (an
        `export()` of a table with any number of shards)."""
        ops = []
        for shard, handle in enumerate(self._handles):
            with tf.device(handle.device):
                ops.append(
                    table_ops.dynamic_table_import(
                        handle, data, shard=shard, num_shards=self.num_shards
                    )
                )
        return ops

    # Checkpointing (tf.train.Checkpoint, CheckpointManager, and
    # tf.compat.v1.train.Saver through the saveables of a Trackable).
    def _serialize_to_tensors(self):
        data = self.export()
        return {key: getattr(data, key) for key in _CHECKPOINT_KEYS}

    def _restore_from_tensors(self, restored_tensors):
        fields = {key: restored_tensors[key] for key in _CHECKPOINT_KEYS}
        fields["evicted_ids"] = tf.zeros([0], tf.int64)
        # A graph's restore op may run before the op its optimizer made to
        # set the slots (tables_initializer runs after a restore): the
        # slots the graph's optimizer gave the table are set first.
        with tf.control_dependencies(self.set_slot_init(self.slot_init)):
            ops = self.restore(table_ops.TableExport(**fields))
        return tf.group(ops) if not tf.executing_eagerly() else None


class TableShard:
    """One shard of a `DynamicTable`: its resource and row width.

    Args:
        handle: The shard's resource handle.
        dim: Row width.
    """

    def __init__(self, handle: tf.Tensor, dim: int):
        self.handle = handle
        self.dim = dim

    def apply(self, rule_op: Callable, grad, ids, **hyper):
        """Applies `rule_op` with `hyper` to the entries of `ids` (all in
        this shard), gradient rows `grad`, on the shard's device."""
        with tf.device(self.handle.device):
            return rule_op(self.handle, grad, ids, **hyper)


class GraphTables(tf.__internal__.tracking.Trackable):
    """A graph's dynamic tables (and their serving twins) as one entry of
    its `SAVEABLE_OBJECTS`, what `tf.compat.v1.train.Saver()` saves by
    default: each table's tensors under keys prefixed by its name in the
    graph. (The Saver names every trackable entry of the collection alike,
    so there is one per graph.)"""

    def __init__(self):
        self._tables: dict[str, tf.__internal__.tracking.Trackable] = {}
        # The Saver orders its entries by name, and a MetaGraph exporting
        # the collection names the op of each entry (as for TensorFlow's
        # tables): the name of a no-op made for it.
        with tf.init_scope(), tf.compat.v1.name_scope(None):
            self.name = tf.no_op(name="tf_swap_dynamic_tables").name

    @classmethod
    def add(cls, table: tf.__internal__.tracking.Trackable, prefix: str) -> None:
        """Adds `table`, named `prefix`, to the default graph's entry."""
        collection = tf.compat.v1.GraphKeys.SAVEABLE_OBJECTS
        entry = next(
            (e for e in tf.compat.v1.get_collection(collection) if isinstance(e, cls)),
            None,
        )
        if entry is None:
            entry = cls()
            tf.compat.v1.add_to_collection(collection, entry)
        entry._tables[prefix] = table

    def _serialize_to_tensors(self):
        return {
            f"{prefix}-{key}": value
            for prefix, table in self._tables.items()
            for key, value in table._serialize_to_tensors().items()
        }

    def _restore_from_tensors(self, restored_tensors):
        by_table: dict[str, dict] = {prefix: {} for prefix in self._tables}
        for key, value in restored_tensors.items():
            prefix, local = key.rsplit("-", 1)
            by_table[prefix][local] = value
        return tf.group(
            [
                self._tables[prefix]._restore_from_tensors(tensors)
                for prefix, tensors in by_table.items()
            ]
        )
