"""The jobs: asynchronous training on a parameter-server cluster
(`python -m tf_swap.train`) and the single-process simulator of thousands of
workers (`python -m tf_swap.simulate`), with their infrastructure.

- `experiment`: what is trained, for every engine: variants, configuration,
  optimizers, batching; `models` (the CTR model), `data` (the streams),
  `streams` (a stream per seed).
- `cluster_run`, `cluster_training`: the engine on a real cluster
  (`ParameterServerStrategy`): every variant and seed on a cluster; one
  variant with checkpoints and recovery. `cluster`: local clusters, the
  task entry point (`python -m tf_swap.cluster`), existing clusters.
- `simulation` (with `schedule`, `gradient_ring`, `worker_statistics`):
  the engine that simulates asynchronous workers in one process;
  `simulation_sweep`: its cells over seeds, workers and learning rates.
- `protocol`, `aggregate`, `reporting`: seeds, dev/test split and tuning;
  means and intervals over seeds; tables and plots.
- `cli`, `quiet_tensorflow`: flags, exit code 2, output, TensorFlow's
  start-up notices; `train`, `simulate`: the two commands.

No module here imports TensorFlow at import time: `cli.run_command` imports
it first, quietly, then runs the command.
"""
