"""Dynamic embedding tables for `tf.compat.v1` graphs: `DynamicTable`,
trained by the v1 tf_swap optimizers through `dynamic_embedding_lookup`,
and `ServingTable`, its stock-op twin for inference graphs."""

from __future__ import annotations

import tensorflow as tf

from tf_swap import dynamic_table
from tf_swap.ops import dynamic_tables as table_ops
from tf_swap.table_gradients import (
    NO_PERIOD,
    register,
    require_trainer,
    route_gradient,
)

V1_OPTIMIZERS = (
    "tf_swap.compat.v1.AdagradSwapOptimizer or tf_swap.compat.v1.FtrlSwapOptimizer"
)


def _untrained(name: str) -> str:
    return (
        f"DynamicTable {name!r} is trained by {V1_OPTIMIZERS}: build the train "
        "op with one of them (minimize or apply_gradients), then run "
        "tf.compat.v1.tables_initializer() after the variables' initializer "
        "(MonitoredTrainingSession does); other optimizers cannot update a "
        "dynamic table."
    )


class _Shard:
    """The owner of one shard's gradient slot (see
    `tf_swap.table_gradients`): the rule applies to this shard only."""

    def __init__(self, table: DynamicTable, shard: int):
        self._table = table
        self.table = table.shard(shard)
        self.gradient_slot = table.gradient_slots[shard]

    def attach(self, core) -> None:
        self._table.attach(core)

    def trained(self, step):
        return self._table.trained(step)


class DynamicTable(dynamic_table.DynamicTable):
    """A `tf_swap.DynamicTable` for `tf.compat.v1` graphs (and eager v1
    code): looked up by `dynamic_embedding_lookup`, trained by
    `tf_swap.compat.v1.AdagradSwapOptimizer` or `FtrlSwapOptimizer`.

    Each shard has a gradient slot, a `[1, dim]` trainable local variable
    of zeros (not saved: it holds no state) that receives the shard's rows'
    gradients as a `tf.IndexedSlices` indexed by the ids (one per shard, as
    a partitioned variable gives one per part). Made under
    `tf.compat.v1.train.replica_device_setter`, the slots go to the
    parameter servers round-robin and each shard's table with its slot, so
    lookups and applies run there. The table also keeps
    `next_step` and `decay_period` variables, written by its optimizer: a
    graph's optimizer sets the period and the slots in an op it adds to
    `tf.compat.v1.GraphKeys.TABLE_INITIALIZERS`, which
    `tf.compat.v1.tables_initializer()` (and `MonitoredTrainingSession`)
    runs. `tf.compat.v1.train.Saver()` saves and restores the table by
    default, into any number of shards.

    Args:
        dim: Row width.
        initializer: A new row's distribution (see `tf_swap.DynamicTable`).
        seed: The seed of every row; `None` is 0.
        min_count: Training lookups before an id is stored.
        steps_to_live: `evict(step)` removes entries not updated for more
            than this many steps; `None` keeps them.
        num_shards: Shards (id `i` in shard `i mod num_shards`); default 1
            (a v1 graph has no strategy to count its parameter servers:
            pass their number, as to `fixed_size_partitioner`).
        name: The table's name (its name scope, checkpoint keys and shared
            resource names; `ServingTable` uses the same).

    Raises:
        ValueError: an argument has the wrong type or is out of its domain.
    """

    def __init__(
        self,
        dim: int,
        *,
        initializer="uniform",
        seed: int | None = None,
        min_count: int = 1,
        steps_to_live: int | None = None,
        num_shards: int | None = None,
        name: str | None = None,
    ):
        super().__init__(
            dim,
            initializer=initializer,
            seed=seed,
            min_count=min_count,
            steps_to_live=steps_to_live,
            num_shards=num_shards,
            name=name or "dynamic_table",
        )
        with self.name_scope, tf.device(self.gradient_slots[0].device or None):
            self.next_step = tf.Variable(
                tf.constant(1, tf.int64), name="next_step", trainable=False
            )
            self.decay_period = tf.Variable(
                tf.constant(NO_PERIOD, tf.int64), name="decay_period", trainable=False
            )
        self._attached = False
        self._shards = [_Shard(self, k) for k in range(self.num_shards)]
        for shard in self._shards:
            register(shard.gradient_slot, shard)

    def _placement(self, shard: int, device):
        """Shard `shard`'s gradient slot is made first (a device function
        places it), and the shard's table where the slot went."""
        del device
        if shard == 0:
            self.gradient_slots = ()
        with self.name_scope:
            # Local: it holds no state (zeros, never changed) and there is
            # one per shard, so a checkpoint restores into any shard count.
            slot = tf.compat.v1.Variable(
                tf.zeros([1, self.dim]),
                name=f"gradient_{shard}",
                trainable=True,
                collections=[tf.compat.v1.GraphKeys.LOCAL_VARIABLES],
                use_resource=True,
            )
        self.gradient_slots += (slot,)
        return tf.device(slot.device or None)

    def attach(self, core) -> None:
        """Called by a tf_swap optimizer whose gradients include this
        table's: its `tf_swap.core.SwapCore` (the rule's slots, the period)
        trains the table. In a graph the setting is an op in
        `TABLE_INITIALIZERS`; eagerly it is made at once."""
        if self._attached:
            return
        self._attached = True
        ops = self.set_slot_init(core.rule.slot_init)
        ops.append(self.decay_period.assign(core.settings.decay_period))
        ops.extend(slot.initializer for slot in self.gradient_slots)
        if not tf.executing_eagerly():
            # After the variables' initializer (or a restore), so the period
            # is the optimizer's, not the initial value.
            tf.compat.v1.add_to_collection(
                tf.compat.v1.GraphKeys.TABLE_INITIALIZERS,
                tf.group(ops, name=f"{self.name}_attach"),
            )

    def trained(self, step):
        """The trainer's apply at `step`: the next training lookup is at
        `step + 1`. Returns the op."""
        return self.next_step.assign(tf.cast(step, tf.int64) + 1)

    def training_lookup(self, ids) -> tf.Tensor:
        """A training lookup (see `dynamic_embedding_lookup`)."""
        step = tf.convert_to_tensor(self.next_step)

        def train(shard, part):
            rows = table_ops.dynamic_table_lookup(
                self.handles[shard],
                part,
                dim=self.dim,
                step=step,
                decay_period=tf.convert_to_tensor(self.decay_period),
            )
            slot = tf.convert_to_tensor(self.gradient_slots[shard])
            return route_gradient(rows, slot, part, self.dim)

        with tf.control_dependencies(
            [require_trainer(self.decay_period, _untrained(self.name))]
        ):
            return self.gather_by_shard(ids, train)


class ServingTable(tf.lookup.experimental.MutableHashTable):
    """A `DynamicTable`'s rows in stock TensorFlow ops, for an inference
    graph: a `MutableHashTable` from id to row, zeros for unknown ids, as
    `DynamicTable`'s inference lookup gives. Built with the training
    table's `name` (in the same name scope), `tf.compat.v1.train.Saver`
    restores its rows from the training checkpoint, and a
    `tf.compat.v1.saved_model.Builder` saves them with the SavedModel, which
    then loads where tf_swap is not installed.

    Args:
        dim: Row width.
        name: The training `DynamicTable`'s name.
    """

    def __init__(self, dim: int, name: str = "dynamic_table"):
        self.dim = dynamic_table.check_arguments(
            dim, dynamic_table.DEFAULT_SLOT_INIT, "zeros", None, 1, None, None
        )["dim"]
        with tf.name_scope(name) as scope:
            prefix = scope.rstrip("/")
        super().__init__(
            tf.int64,
            tf.float32,
            default_value=tf.zeros([self.dim]),
            name=prefix.replace("/", "_"),
            checkpoint=False,  # saved under the training table's keys
        )
        if not tf.executing_eagerly():
            dynamic_table.GraphTables.add(self, prefix)

    def _serialize_to_tensors(self):
        ids, rows = self.export()
        return {"ids": ids, "values": rows}

    def _restore_from_tensors(self, restored_tensors):
        with tf.control_dependencies([self.remove(self.export()[0])]):
            return self.insert(restored_tensors["ids"], restored_tensors["values"])

    def find(self, ids) -> tf.Tensor:
        """Rows of `ids` (int64 or int32), zeros for unknown ids."""
        return self.lookup(table_ops.ids_tensor(ids))


def dynamic_embedding_lookup(table, ids, training: bool = True, name=None):
    """`ids.shape + [dim]` rows of `table`, as `tf.nn.embedding_lookup`.

    Args:
        table: A `DynamicTable`, or a `ServingTable` in an inference graph.
        ids: int64 or int32 ids of any value.
        training: A training lookup counts each id, stores those admitted
            (`min_count`) and routes the rows' gradients to the table's
            optimizer; an inference lookup (`False`, or a `ServingTable`)
            inserts nothing. Ids not stored get zeros.
        name: Name scope of the ops.

    Returns:
        The rows, float32.

    Raises:
        ValueError: `ids` are not int64 or int32.
    """
    with tf.name_scope(name or "dynamic_embedding_lookup"):
        if isinstance(table, ServingTable) or not training:
            return table.find(ids)
        return table.training_lookup(ids)
