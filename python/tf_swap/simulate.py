"""`python -m tf_swap.simulate`: simulated asynchronous parameter-server
training with 1 to thousands of workers. It lives in `tf_swap.jobs`
(`jobs.simulate`, the command; `jobs.simulation`, the engine); this module
keeps the command's name and its public names."""

from tf_swap.jobs.experiment import parse_variant, stream_batches
from tf_swap.jobs.reporting import period_tables as format_period_tables
from tf_swap.jobs.reporting import plot_auc_vs_workers, staleness_summary
from tf_swap.jobs.reporting import staleness_table as format_staleness
from tf_swap.jobs.reporting import workers_table as format_table
from tf_swap.jobs.simulate import (
    DEFAULT_VARIANTS,
    DEFAULT_WORKERS,
    add_parser,
    main,
    run,
)
from tf_swap.jobs.simulation import SimConfig, Simulation, simulate

__all__ = [
    "DEFAULT_VARIANTS",
    "DEFAULT_WORKERS",
    "SimConfig",
    "Simulation",
    "add_parser",
    "format_period_tables",
    "format_staleness",
    "format_table",
    "main",
    "parse_variant",
    "plot_auc_vs_workers",
    "run",
    "simulate",
    "staleness_summary",
    "stream_batches",
]

if __name__ == "__main__":
    raise SystemExit(main())
