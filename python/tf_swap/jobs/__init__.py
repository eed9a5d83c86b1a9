"""The jobs: asynchronous training on a parameter-server cluster
(`python -m tf_swap.train`) and the single-process simulator of thousands of
workers (`python -m tf_swap.simulate`).

- `experiment`: what is trained, for every engine: variants, configuration,
  optimizer factory, batching.
- `cluster_training`: the engine on a real cluster (`ParameterServerStrategy`),
  with checkpoints and recovery from a parameter-server failure.
- `simulation`: the engine that simulates asynchronous workers in one process.
- `reporting`: tables, plots, staleness summaries.
- `cli`: argument plumbing shared by the commands, input errors (exit 2),
  output files.
- `train`, `simulate`: the two commands.
"""
