"""Bad input to the jobs: every malformed source and every bad flag exits
with code 2 and one line naming the problem, with no traceback and no output
files left behind (nothing is started before the input is checked)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tf_swap.jobs import simulate, train

ROOT = Path(__file__).resolve().parents[2]
GOOD_RATINGS = "userId,movieId,rating,timestamp\n" + "".join(
    f"{u},{m},{(u + m) % 5 + 1},{1000 + 10 * u + m}\n"
    for u in range(1, 7) for m in range(1, 6)
)


@pytest.fixture
def files(tmp_path):
    def write(name, text):
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return {
        "missing": str(tmp_path / "nothing.csv"),
        "empty": write("empty.csv", ""),
        "no_user": write("no_user.csv", "user,movieId,rating,timestamp\n1,2,4,5\n"),
        "words": write(
            "words.csv", "userId,movieId,rating,timestamp\n1,2,four,5\n"
        ),
        "few": write("few.csv", "userId,movieId,rating,timestamp\n1,2,4,5\n1,3,2,6\n"),
        "good": write("ratings.csv", GOOD_RATINGS),
        "criteo_words": write("criteo.tsv", "\t".join(["x"] * 40) + "\n"),
        "criteo_none": write("criteo_none.tsv", "1\t2\t3\n"),
    }


CASES = [
    # (flags, words the one line must contain)
    (["--data", "movielens:{missing}"], ["No such file", "nothing.csv"]),
    (["--data", "movielens:{empty}"], ["empty"]),
    (["--data", "movielens:{no_user}"], ["lacks", "userId"]),
    (["--data", "movielens:{words}"], ["line 2", "rating", "'four'", "not a number"]),
    (["--data", "movielens:{few}", "--periods", "3"], ["2 rows", "3 periods"]),
    (["--data", "criteo:{criteo_words}"], ["line 1", "numbers"]),
    (["--data", "criteo:{criteo_none}"], ["no rows with 40"]),
    (["--data", "parquet:{good}"], ["unknown data kind", "parquet"]),
    (["--data", "movielens"], ["needs a path"]),
    (["--periods", "1"], ["--periods", ">= 2"]),
    (["--optimizers", "sgd"], ["unknown variant", "sgd"]),
    (["--optimizers", "swap@2"], ["@K needs a variant with staleness"]),
    (["--optimizers", "swap+stale@x"], ["@K must be a number"]),
    (["--optimizers", ","], ["names no variant"]),
    (["--batch-size", "0"], ["--batch-size"]),
    (["--learning-rate", "-1"], ["--learning-rate"]),
    (["--sync-period", "0"], ["--sync-period"]),
    (["--samples-per-period", "0"], ["--samples-per-period"]),
    (["--periods", "x"], ["invalid int value"]),
    (["--data", "synthetic:bogus=1"], ["bogus", "KEY=VALUE"]),
    (["--data", "synthetic:frequent=2"], ["frequent", "[0, 1]"]),
    (["--data", "synthetic:frequent=x"], ["'x'", "not a number"]),
    (["--data", "synthetic:new_items=1.5"], ["new_items", "whole number"]),
    (["--seeds", "0"], ["--seeds", ">= 1"]),
    (["--embedding", "sparse"], ["--embedding", "hashed, dynamic"]),
    (["--min-count", "2"], ["--min-count", "--embedding dynamic"]),
    (["--embedding", "dynamic", "--steps-to-live", "-1"], ["--steps-to-live"]),
]
TRAIN_ONLY = [
    (["--workers", "0"], ["--workers"]),
    (["--ps", "0"], ["--ps"]),
    (["--resume"], ["--resume needs --checkpoint-dir"]),
    (
        ["--checkpoint-dir", "{tmp}/c", "--checkpoint-every", "0"],
        ["--checkpoint-every"],
    ),
    (["--checkpoint-dir", "{tmp}/c", "--resume"], ["--resume", "holds no run"]),
    (["--cluster-spec", "{{not json"], ["--cluster-spec", "not JSON"]),
    (["--cluster-spec", "{tmp}/spec.json"], ["--cluster-spec", "no such file"]),
    (["--cluster-spec", '{{"ps": ["a:1"]}}'], ["--cluster-spec", '"worker"']),
]
SIMULATE_ONLY = [
    (["--workers", "0"], ["--workers", ">= 1"]),
    (["--workers", "two"], ["--workers", "whole numbers"]),
    (["--speed-sigma", "-1"], ["--speed-sigma"]),
    (["--eval-samples", "-1"], ["--eval-samples", ">= 0"]),
    (["--lr-grid", "a,b"], ["--lr-grid", "numbers"]),
    (["--lr-grid", "0.1,0"], ["--lr-grid", "> 0"]),
    (["--protocol", "best"], ["--protocol", "invalid choice"]),
    (
        ["--protocol", "tuned", "--periods", "2", "--samples-per-period", "64"],
        ["--protocol tuned needs at least 3 periods"],
    ),
]


def check(main, flags, words, files, tmp_path, capfd):
    out = tmp_path / "out"
    values = dict(files, tmp=str(tmp_path))
    argv = [f.format(**values) for f in flags] + ["--out", str(out), "--no-progress"]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    captured = capfd.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, (argv, captured.err)
    assert len(lines) == 1, lines
    assert "Traceback" not in captured.err
    for word in words:
        assert word in lines[0], (word, lines[0])
    outputs = ("metrics.json", "auc.png", "auc_vs_workers.png")
    assert not any((out / name).exists() for name in outputs)


@pytest.mark.parametrize("flags, words", CASES + TRAIN_ONLY)
def test_train_refuses_bad_input_in_one_line(flags, words, files, tmp_path, capfd):
    check(train.main, flags, words, files, tmp_path, capfd)


@pytest.mark.parametrize("flags, words", CASES + SIMULATE_ONLY)
def test_simulate_refuses_bad_input_in_one_line(flags, words, files, tmp_path, capfd):
    check(simulate.main, flags, words, files, tmp_path, capfd)


def test_resume_with_another_setting_exits_2_and_writes_nothing(tmp_path, capfd):
    from tf_swap.jobs import cli
    from tf_swap.jobs.experiment import Config

    ckpt, out = tmp_path / "ckpt", tmp_path / "out"
    flags = ["--checkpoint-dir", str(ckpt), "--optimizers", "swap", "--seeds", "1"]
    # What a run started with these flags records in its checkpoint dir.
    args = train.add_parser().parse_args(flags)
    config = cli.config_from(args, Config())
    train.record_run(args, train.run_settings(args, ["swap"], [0], config))
    recorded = (ckpt / train.RUN_FILE).read_text()
    assert json.loads(recorded)["--learning-rate"] == 0.05
    code = train.main([*flags, "--resume", "--learning-rate", "0.2",
                       "--out", str(out), "--no-progress"])
    line = capfd.readouterr().err.strip()
    assert code == 2 and len(line.splitlines()) == 1, line
    assert "--learning-rate is 0.2" in line and "0.05" in line and "--out" in line
    assert not out.exists()
    assert (ckpt / train.RUN_FILE).read_text() == recorded
    assert sorted(p.name for p in ckpt.iterdir()) == [train.RUN_FILE]


def test_tf_config_is_read_like_cluster_spec(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1"]}}')
    assert train.main(["--out", str(tmp_path), "--no-progress"]) == 2
    assert 'TF_CONFIG: the cluster spec needs "ps"' in capfd.readouterr().err


def test_the_command_line_exits_2_with_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "tf_swap.train", "--optimizers", "sgd"],
        env=dict(os.environ, PYTHONPATH=str(ROOT / "python")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "tf-swap-train: error: unknown variant 'sgd'; choose from adagrad, swap, "
        "swap+stale, swap+lbn, swap+stale+lbn, ftrl, ftrl-swap, ftrl-swap+stale, "
        "ftrl-swap+lbn, ftrl-swap+stale+lbn"
    ]


# A child whose import system finds no tqdm: the wheel's console script
# installed without the [train] extra.
WITHOUT_TQDM = """
import sys
sys.modules["tqdm"] = None  # `import tqdm` raises ModuleNotFoundError
from tf_swap.jobs import {command}
sys.exit({command}.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("command", ["train", "simulate"])
def test_without_the_train_extra_exits_2_before_writing(command, tmp_path):
    out = tmp_path / "o"
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_TQDM.format(command=command),
         "--periods", "2", "--seeds", "1", "--out", str(out)],
        env=dict(os.environ, PYTHONPATH=str(ROOT / "python")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"tf-swap-{command}: error: the jobs need tf_swap's [train] extra "
        "(missing tqdm): pip install 'tf_swap[train]'"
    ]
    assert not out.exists()


@pytest.mark.parametrize("main", [train.main, simulate.main])
def test_help_shows_every_default(main, capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in [
        "--batch-size BATCH_SIZE per worker step (default:",
        "--learning-rate LEARNING_RATE every variant's step size (default: 0.05)",
        "--decay-rate DECAY_RATE SWAP's discount per period",
        "(default: 0.8)",
        "--seed SEED first seed (stream, order, init) (default: 0)",
        "--out OUT output directory (default: out",
    ]:
        assert shown in text, shown
    if main is train.main:
        for shown in [
            "--workers WORKERS worker tasks of the local cluster (default: 2)",
            "--ps PS parameter servers of the local cluster (default: 1)",
        ]:
            assert shown in text, shown
