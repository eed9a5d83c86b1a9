"""`python -m tf_swap.train`: the main job, asynchronous training on a
parameter-server cluster. It lives in `tf_swap.jobs` (`jobs.train`, the
command; `jobs.cluster_training`, the engine); this module keeps the
command's name and its public names."""

from tf_swap.jobs.cluster_training import Checkpointing, TrainingFailed, train_variant
from tf_swap.jobs.experiment import VARIANTS, Config, make_optimizer, parse_variant
from tf_swap.jobs.reporting import period_auc_table as format_table
from tf_swap.jobs.reporting import plot_period_auc as plot_auc
from tf_swap.jobs.train import DEFAULT_VARIANTS, add_parser, main, run, run_on_cluster

__all__ = [
    "DEFAULT_VARIANTS",
    "VARIANTS",
    "Checkpointing",
    "Config",
    "TrainingFailed",
    "add_parser",
    "format_table",
    "main",
    "make_optimizer",
    "parse_variant",
    "plot_auc",
    "run",
    "run_on_cluster",
    "train_variant",
]

if __name__ == "__main__":
    raise SystemExit(main())
