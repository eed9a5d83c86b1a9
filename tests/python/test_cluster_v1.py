"""tf_swap.compat.v1's AdagradSwapOptimizer and FtrlSwapOptimizer under
classic between-graph replication: 2 PS and 2 worker processes, each worker
building its own
graph with `replica_device_setter` and training in a
`MonitoredTrainingSession` a table partitioned over both PS and a
`tf_swap.compat.v1.DynamicTable` of raw ids sharded over both (this file is
also the worker's script)."""

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
LAST_STEP = 120
RAW_ID_SCALE = 1_000_003  # the dynamic table's ids: raw, far beyond the rows


def wait_for(path, seconds=120):
    """Waits until `path` exists."""
    import time

    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.05)


def worker(spec, task, rule, sync):
    """One between-graph replica; prints its result as JSON. The replicas
    meet before training (files in `sync`): a non-chief that asks for its
    session before the chief has initialized the variables sleeps 30 s (the
    session manager's recovery wait), and the chief must not finish before
    the other starts."""
    import numpy as np
    import tensorflow as tf

    from tf_swap.compat.v1 import (
        AdagradSwapOptimizer,
        DynamicTable,
        FtrlSwapOptimizer,
        dynamic_embedding_lookup,
    )

    v1 = tf.compat.v1
    v1.disable_eager_execution()
    cluster = tf.train.ClusterSpec(spec)
    server = tf.distribute.Server(cluster, job_name="worker", task_index=task)
    rng = np.random.default_rng(task)
    rows, dim = 50, 4
    truth = np.random.default_rng(99).normal(size=(rows, dim)).astype(np.float32)
    with v1.device(
        v1.train.replica_device_setter(
            worker_device=f"/job:worker/task:{task}", cluster=cluster
        )
    ):
        global_step = v1.train.get_or_create_global_step()
        table = v1.get_variable(
            "table",
            [rows, dim],
            initializer=v1.zeros_initializer(),
            partitioner=v1.fixed_size_partitioner(2),
            use_resource=True,
        )
        users = DynamicTable(dim, num_shards=2, initializer="zeros", name="users")
        ids = v1.placeholder(tf.int32, [None])
        target = v1.placeholder(tf.float32, [None, dim])
        raw_ids = tf.cast(ids, tf.int64) * RAW_ID_SCALE - 7
        swap = dict(
            decay_rate=0.8, decay_period=40, staleness_exponent=2, max_staleness=1000
        )
        if rule == "ftrl":
            optimizer = FtrlSwapOptimizer(0.5, **swap)
            slots = ("accum", "linear", "power")
        else:
            optimizer = AdagradSwapOptimizer(0.5, **swap)
            slots = ("accumulator", "power")
        t_read = optimizer.read_step()
        with tf.control_dependencies([t_read]):
            loss = tf.reduce_mean(tf.square(tf.gather(table, ids) - target))
            user_rows = dynamic_embedding_lookup(users, raw_ids)
            loss += tf.reduce_mean(tf.square(user_rows - target))
        train_op = optimizer.minimize(loss, global_step=global_step)
        dropped = optimizer.dropped_updates
        full_table = tf.concat(list(table), 0)
        user_table = dynamic_embedding_lookup(
            users, tf.range(rows, dtype=tf.int64) * RAW_ID_SCALE - 7, training=False
        )
        user_count = users.size()
    devices = {
        "users": [h.device for h in users.handles],
        # The staleness drop puts the applies in a cond's branch functions.
        "users_ops": sorted(
            {
                (node.op, node.device)
                for function in v1.get_default_graph().as_graph_def().library.function
                for node in function.node_def
                if node.op.startswith("TfSwapDynamicTable")
            }
            | {
                (op.type, op.device)
                for op in v1.get_default_graph().get_operations()
                if op.type.startswith("TfSwapDynamicTable")
            }
        ),
        "parts": [
            [part.device, *(optimizer.get_slot(part, s).device for s in slots)]
            for part in table
        ],
        "dropped": dropped.device,
    }
    losses, steps, done = [], 0, 0
    # Each replica talks to the PS and itself only: without the filter its
    # session waits for every task of the cluster, so a worker that starts
    # after the chief has finished and exited waits forever.
    config = v1.ConfigProto(device_filters=["/job:ps", f"/job:worker/task:{task}"])
    chief_ready, other_ready = (os.path.join(sync, n) for n in ("chief", "other"))
    if task != 0:
        wait_for(chief_ready)
    with v1.train.MonitoredTrainingSession(
        master=server.target, is_chief=task == 0, config=config
    ) as session:
        open(chief_ready if task == 0 else other_ready, "w").close()
        if task == 0:
            wait_for(other_ready)
        while done < LAST_STEP:
            batch = rng.integers(0, rows, 32)
            _, value, done = session.run(
                [train_op, loss, global_step], {ids: batch, target: truth[batch]}
            )
            losses.append(float(value))
            steps += 1
        step_value, dropped_value, table_value, users_value, count = session.run(
            [global_step, dropped, full_table, user_table, user_count]
        )
    final = [
        int(step_value),
        int(dropped_value),
        float(np.mean(np.square(table_value - truth))),
        float(np.mean(np.square(users_value - truth))),
        int(count),
    ]
    print(
        json.dumps(
            {
                "task": task,
                "steps": steps,
                "losses": losses,
                "final": final,
                "devices": devices,
            }
        ),
        flush=True,
    )


@pytest.mark.parametrize("rule", ["adagrad", "ftrl"])
def test_between_graph_replication_with_two_workers(rule, tmp_path):
    from tf_swap.jobs.cluster import LocalCluster

    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    with LocalCluster(ps=2, workers=2, jobs=("ps",)) as cluster:
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--spec",
                    json.dumps(cluster.spec),
                    "--task",
                    str(task),
                    "--rule",
                    rule,
                    "--sync",
                    str(tmp_path),
                ],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            for task in range(2)
        ]
        try:
            outputs = [w.communicate(timeout=240)[0] for w in workers]
            assert [w.returncode for w in workers] == [0, 0]
        finally:
            for w in workers:
                if w.poll() is None:
                    os.killpg(w.pid, signal.SIGKILL)
                    w.wait()
        results = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    for r in results:
        parts = r["devices"]["parts"]
        # One part on each PS, and each part's slots with it.
        assert sorted(p[0] for p in parts) == ["/job:ps/task:0", "/job:ps/task:1"]
        for part, *slot_devices in parts:
            assert set(slot_devices) == {part}, parts
        # The dynamic table: a shard on each PS, applied there.
        assert sorted(r["devices"]["users"]) == ["/job:ps/task:0", "/job:ps/task:1"]
        rule_op = "FtrlSwap" if rule == "ftrl" else "AdagradSwap"
        apply = "TfSwapDynamicTableApply" + rule_op
        for op in ("TfSwapDynamicTable", "TfSwapDynamicTableLookup", apply):
            devices = sorted(d for o, d in r["devices"]["users_ops"] if o == op)
            assert devices == ["/job:ps/task:0", "/job:ps/task:1"], (op, devices)
        assert r["steps"] > 0
    # Both replicas trained one shared table: together they made every
    # step, and the loss fell.
    assert sum(r["steps"] for r in results) >= LAST_STEP
    chief = results[0]
    global_step, dropped, error, users_error, users_count = chief["final"]
    assert global_step >= LAST_STEP
    assert dropped == 0
    # The tables start at zero: the initial error is mean(truth^2) ~ 1.
    truth = np.random.default_rng(99).normal(size=(50, 4)).astype(np.float32)
    assert error < 0.1 * float(np.mean(np.square(truth)))
    assert users_error < 0.1 * float(np.mean(np.square(truth)))
    assert users_count == 50  # every id seen, once each
    for w in workers:
        assert w.poll() is not None


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", required=True)
    parser.add_argument("--task", type=int, required=True)
    parser.add_argument("--rule", default="adagrad")
    parser.add_argument("--sync", required=True)
    args = parser.parse_args()
    worker(json.loads(args.spec), args.task, args.rule, args.sync)
