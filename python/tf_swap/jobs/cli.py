"""Command-line plumbing shared by the jobs: arguments, input errors (exit
code 2, one line), where the output goes."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import sys

from tf_swap.jobs.experiment import Config, InputError, Terminated
from tf_swap.jobs.quiet_tensorflow import import_tensorflow

# What the jobs import beyond tf_swap's own dependencies: the wheel's
# `[train]` extra (AUC, plots, progress, TensorBoard summaries), module ->
# package.
TRAIN_EXTRA = {
    "sklearn": "scikit-learn",
    "matplotlib": "matplotlib",
    "tqdm": "tqdm",
    "tensorboard": "tensorboard",
}


class HelpFormatter(argparse.HelpFormatter):
    """`--help` with every flag's default, unless its help already says it
    or it has none (`None`, an unset switch)."""

    def _get_help_string(self, action):
        text = action.help or ""
        unset = any(action.default is v for v in (None, False, argparse.SUPPRESS))
        if "default" in text or unset or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)".lstrip()


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a bad flag reported in one line (exit code 2) and
    every default shown in `--help`."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def parser_for(name: str, description: str, subparsers=None) -> ArgumentParser:
    """The parser of command `name` (a subcommand if `subparsers` given)."""
    if subparsers is None:
        return ArgumentParser(prog=f"tf-swap-{name}", description=description)
    return subparsers.add_parser(
        name, description=description, formatter_class=HelpFormatter
    )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # hidden, or a broken install
        return False


def missing_train_extra() -> list[str]:
    """The packages of the `[train]` extra that are not installed."""
    return [
        package for module, package in TRAIN_EXTRA.items() if not _installed(module)
    ]


def add_data_arguments(
    parser, samples_per_period: int, synthetic_periods: int = 12
) -> None:
    """`--data`, `--periods`, `--samples-per-period`, `--seed`."""
    parser.add_argument(
        "--data",
        default="synthetic",
        help=(
            "synthetic[:KEY=VALUE,...] (default; KEY: items, frequent, interests "
            "(drift rates in [0, 1]), new_items, popular_items), movielens:PATH "
            "or criteo:PATH"
        ),
    )
    parser.add_argument(
        "--periods",
        type=int,
        default=None,
        help=f"default: {synthetic_periods} synthetic, 10 files",
    )
    parser.set_defaults(synthetic_periods=synthetic_periods)
    parser.add_argument(
        "--samples-per-period",
        type=int,
        default=samples_per_period,
        help="synthetic stream only",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="first seed (stream, order, init)"
    )


def add_config_arguments(parser, defaults: Config, variants_default: str) -> None:
    """`--optimizers`, `--out` and the flags of a `Config`."""
    from tf_swap.jobs.experiment import EMBEDDINGS, VARIANTS

    parser.add_argument(
        "--optimizers",
        default=variants_default,
        help=(
            f"comma-separated, from {', '.join(VARIANTS)}, optionally NAME@K for "
            "staleness exponent K"
        ),
    )
    parser.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help="per worker step"
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=defaults.learning_rate,
        help="every variant's step size",
    )
    parser.add_argument(
        "--ftrl-l1",
        type=float,
        default=defaults.ftrl_l1,
        help="L1 strength of FTRL-SWAP on the wide part (ftrl variants)",
    )
    parser.add_argument(
        "--decay-rate",
        type=float,
        default=defaults.decay_rate,
        help="SWAP's discount per period (swap and ftrl-swap variants)",
    )
    parser.add_argument(
        "--staleness-exponent",
        type=float,
        default=defaults.staleness_exponent,
        help="k of +stale variants without @K",
    )
    parser.add_argument(
        "--max-staleness",
        type=int,
        default=None,
        help="drop steps staler than this (+stale variants; default: none)",
    )
    parser.add_argument(
        "--sync-period",
        type=int,
        default=defaults.sync_period,
        help="Local BN publish period, in a worker's own steps",
    )
    parser.add_argument(
        "--embedding",
        default=defaults.embedding,
        help=(
            f"{' or '.join(EMBEDDINGS)}: the models' tables, hashed ids in "
            "fixed tables or raw ids in dynamic tables "
            "(tf_swap.keras.DynamicEmbedding)"
        ),
    )
    parser.add_argument(
        "--min-count",
        type=int,
        default=defaults.min_count,
        help="dynamic tables: training lookups before an id is stored",
    )
    parser.add_argument(
        "--steps-to-live",
        type=int,
        default=None,
        help=(
            "dynamic tables: evict, at each period's end, ids not updated for "
            "this many steps (default: keep them)"
        ),
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar"
    )


def add_seeds_argument(parser, default: int) -> None:
    """`--seeds`: how many seeds each variant (cell) runs."""
    parser.add_argument(
        "--seeds",
        type=int,
        default=default,
        help=(
            "seeds per variant, --seed, --seed + 1, ... (stream if synthetic, "
            "batch order, initialisation); >= 2 gives 95%% confidence intervals"
        ),
    )


def config_from(args, defaults: Config) -> Config:
    """The `Config` the flags give (checked)."""
    import dataclasses

    config = dataclasses.replace(
        defaults,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        ftrl_l1=args.ftrl_l1,
        decay_rate=args.decay_rate,
        staleness_exponent=args.staleness_exponent,
        max_staleness=args.max_staleness,
        sync_period=args.sync_period,
        embedding=args.embedding,
        min_count=args.min_count,
        steps_to_live=args.steps_to_live,
        seed=args.seed,
        progress=not args.no_progress,
    )
    config.check()
    return config


def load_stream(args, seed: int | None = None):
    """The stream `--data` names (generated with `seed`, default `--seed`,
    if synthetic), or `InputError` naming what is wrong."""
    from tf_swap.jobs import data

    if args.periods is not None and args.periods < 2:
        raise InputError(
            f"--periods must be >= 2 (train on one, evaluate the next), got "
            f"{args.periods}"
        )
    if args.samples_per_period < 1:
        raise InputError(
            f"--samples-per-period must be >= 1, got {args.samples_per_period}"
        )
    try:
        synthetic = args.data.partition(":")[0] == "synthetic"
        periods = args.periods or (args.synthetic_periods if synthetic else None)
        return data.load_for_job(
            args.data,
            periods,
            args.seed if seed is None else seed,
            args.samples_per_period,
            raw_ids=args.embedding == "dynamic",
        )
    except (OSError, ValueError) as error:
        raise InputError(f"--data: {_one_line(error)}") from error


def stream_source(args, stream):
    """What the engines take as their stream: for synthetic data a function
    of the seed (each seed draws its own stream; `stream`, already loaded,
    is `--seed`'s), else `stream` itself (a file is the same for every
    seed)."""
    if args.data.partition(":")[0] != "synthetic":
        return stream

    def stream_of(seed: int):
        return stream if seed == args.seed else load_stream(args, seed)

    return stream_of


def _one_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, OSError) and error.strerror:
        text = f"{error.strerror}: {error.filename}"
    return " ".join(text.split())


def run_command(parser: ArgumentParser, argv: list[str] | None) -> int:
    """Parses `argv` and runs the command: its exit code, 2 with one line on
    stderr for bad input, 130 on Ctrl-C."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parser.parse_args(argv)
    missing = missing_train_extra()
    if missing:
        print(
            f"{parser.prog}: error: the jobs need tf_swap's [train] extra "
            f"(missing {', '.join(missing)}): pip install 'tf_swap[train]'",
            file=sys.stderr,
        )
        return 2
    # Before any module imports TensorFlow: the jobs own their process.
    import_tensorflow()
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except InputError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    except Terminated as stop:
        print(f"{parser.prog}: terminated{f'; {stop}' if str(stop) else ''}",
              file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminate(signum, frame):
    """SIGTERM (how cluster managers stop a job): unwinds the job from
    where it is, as Ctrl-C does, so it can checkpoint and end its tasks."""
    raise Terminated()


class Output:
    """A job's output directory and its console.

    Entered, it sends this process's own stderr (TensorFlow's C++ and Python
    logging, gRPC's messages when the cluster shuts down) to
    `OUT/logs/NAME.log`, so the terminal shows only what the job says to the
    user through `console` (progress, results, the paths written). Files
    are written whole or not at all (`write_json`, `commit`).
    """

    def __init__(self, out: str, name: str):
        self.out = out
        self.logs = os.path.join(out, "logs")
        self.log_path = os.path.join(self.logs, f"{name}.log")
        self.console = sys.stderr
        self._saved_fd = None
        self._log = None

    def __enter__(self) -> Output:
        os.makedirs(self.logs, exist_ok=True)
        sys.stderr.flush()
        self._saved_fd = os.dup(2)
        self.console = os.fdopen(os.dup(self._saved_fd), "w", buffering=1)
        self._log = open(self.log_path, "a", buffering=1)
        os.dup2(self._log.fileno(), 2)
        self._stderr, sys.stderr = sys.stderr, self._log
        return self

    def __exit__(self, *exc) -> None:
        sys.stderr.flush()
        sys.stderr = self._stderr
        os.dup2(self._saved_fd, 2)
        os.close(self._saved_fd)
        self.console.flush()
        self.console.close()
        self.console = sys.stderr
        self._log.close()

    def path(self, *parts: str) -> str:
        return os.path.join(self.out, *parts)

    def write_json(self, name: str, value) -> str:
        """Writes `OUT/name` atomically; returns its path."""
        path = self.path(name)
        with self.commit(path) as tmp, open(tmp, "w") as f:
            json.dump(value, f, indent=2)
        return path

    @contextlib.contextmanager
    def commit(self, path: str):
        """Yields a temporary name to write; renames it to `path` only if
        the block succeeds."""
        root, ext = os.path.splitext(path)
        tmp = f"{root}.partial{ext}"
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
