# The README's two commands: `make run` (the main job) and `make test`
# (every test). Both create .venv and build the op library first.

PYTHON ?= python3
VENV := .venv
PY := $(abspath $(VENV)/bin/python)
# The op library links TensorFlow; Rust-only tests and lints build without
# it in their own target dir so they never replace it.
RUST_ONLY := CARGO_TARGET_DIR=target/rust-only TF_SWAP_OPS=0
PYENV := PYTHONPATH=$(abspath python) TF_CPP_MIN_LOG_LEVEL=2
# Prints TensorFlow's version; recorded next to the library for the check
# `import tf_swap` makes (python/tf_swap/_ops.py).
PRINT_TF_VERSION := TF_CPP_MIN_LOG_LEVEL=3 $(PY) -c \
	'import tensorflow as tf; print(tf.__version__)'

# Bazel: Debian's bazel-bootstrap 4.2.3, offline (.bazelrc); with a current
# bazel and network, `make bazel-test BAZEL_FLAGS=`. The server exits when idle.
BAZEL ?= bazel
BAZEL_FLAGS ?= --config=offline
BAZEL_LIB := $(abspath bazel-bin/python/tf_swap/_tf_swap_ops.so)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# The wheel, and a virtual environment with only TensorFlow and the wheel.
WHEEL_DIR := build/wheel
WHEEL_VENV := build/wheel-venv
TF_REQUIREMENT := $(shell grep -E '^tensorflow' requirements.txt)

.PHONY: run simulate test test-suites build bench rust-test python-test python-unit \
	python-cluster bazel-test wheel-test bazel-install lint lint-rust rust-test-build clean

# tf-keras names `tensorflow` as its dependency; tensorflow-cpu provides the
# same package, so tf-keras goes in without dependencies (pip would
# otherwise install the CUDA `tensorflow` wheel over tensorflow-cpu).
NO_DEPS := ^tf-keras
$(VENV)/.installed: requirements.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	grep -vE '$(NO_DEPS)' requirements.txt > $(VENV)/requirements-deps.txt
	$(PY) -m pip install --quiet -r $(VENV)/requirements-deps.txt
	$(PY) -m pip install --quiet --no-deps $$(grep -E '$(NO_DEPS)' requirements.txt)
	touch $@

build: $(VENV)/.installed
	+TF_SWAP_OPS=1 TF_SWAP_PYTHON=$(PY) cargo build --release
	@# TensorFlow's start-up notices go to a file, shown only if the probe fails.
	$(PRINT_TF_VERSION) > target/release/libtf_swap.tf_version \
		2> target/release/tf_version.log || { cat target/release/tf_version.log >&2; exit 1; }

# The main job's default: the map's variants (docs/results.md) at a size 2 cores
# run in about 1.5 minutes, Local BN publishing every 10 steps as it is meant
# to be used.
RUN_FLAGS = --workers 4 --periods 24 --sync-period 10 \
	--optimizers adagrad,swap,swap+stale+lbn

# Its second step: the same model on raw ids in dynamic tables, the entries
# stored, admitted and evicted next to each period's AUC (about 40 s).
DYNAMIC_FLAGS = --workers 4 --periods 8 --seeds 1 --sync-period 10 \
	--optimizers swap+stale+lbn --embedding dynamic --steps-to-live 64

# Its third step: where the map finds the method matters (docs/results.md,
# section (d)): 16 simulated workers over 1200 periods of a drift that
# outgrows the step tuned on the first 300 (0.2, the tuned rate), SWAP
# against Adagrad, 3 seeds (about 2 minutes).
DRIFT_FLAGS = --workers 16 --periods 1200 --samples-per-period 1024 --seeds 3 \
	--data synthetic:frequent=0.05,frequent_start=300,frequent_growth=0.01 \
	--optimizers adagrad,swap --learning-rate 0.2

run: build
	$(PYENV) $(PY) -m tf_swap.train --out out $(RUN_FLAGS)
	$(PYENV) $(PY) -m tf_swap.train --out out/dynamic $(DYNAMIC_FLAGS)
	$(PYENV) $(PY) -m tf_swap.simulate --out out/drift $(DRIFT_FLAGS)

simulate: build
	$(PYENV) $(PY) -m tf_swap.simulate --out out_sim

# The suites run side by side: on 2 cores one's compiling overlaps another's
# downloads and cluster waits. Each suite's output is printed whole when it
# ends; `make test TEST_JOBS=1` runs them one after another. Cargo shares
# make's job slots (`+`).
TEST_JOBS ?= 4
test:
	@$(MAKE) --no-print-directory -j$(TEST_JOBS) --output-sync=target test-suites

# The Python suites, the longest, first: they wait for `build`, which waits
# for .venv; the Rust-only lints and test builds need neither.
test-suites: python-test bazel-test wheel-test lint rust-test

lint: lint-rust $(VENV)/.installed
	$(PY) -m ruff check python tests benchmarks setup.py

lint-rust:
	cargo fmt --check
	+$(RUST_ONLY) cargo clippy --profile rust-test --all-targets -- -D warnings

# The header test loads the libclang of .venv (TensorFlow's `libclang` wheel).
rust-test: rust-test-build $(VENV)/.installed
	+$(RUST_ONLY) cargo test --profile rust-test

rust-test-build:
	+$(RUST_ONLY) cargo test --profile rust-test --no-run

# The training-job tests connect their own process to a local cluster, which
# renames TensorFlow's devices for every later test in it: they get their own
# pytest process.
CLUSTER_TESTS := tests/python/test_train.py tests/python/test_cluster.py \
	tests/python/test_sharded_cluster.py tests/python/test_recovery.py \
	tests/python/test_worker_loss.py

python-test: python-unit python-cluster

python-unit: build
	$(PYENV) $(PY) -m pytest -q tests/python $(CLUSTER_TESTS:%=--ignore=%)

python-cluster: build
	$(PYENV) $(PY) -m pytest -q $(CLUSTER_TESTS)

# `bazel build //:tf_swap_ops`, then the op tests on its library.
bazel-test: build bazel-install
	$(BAZEL) --max_idle_secs=120 build $(BAZEL_FLAGS) //:tf_swap_ops
	TF_SWAP_LIBRARY=$(BAZEL_LIB) $(PYENV) $(PY) -m pytest -q \
		tests/python/test_adagrad_swap_ops.py tests/python/test_ftrl_swap_ops.py \
		tests/python/test_local_batch_norm.py
	TF_SWAP_BAZEL_LIBRARY=$(BAZEL_LIB) $(PYENV) $(PY) -m pytest -q \
		tests/python/test_packaging.py -k bazel

# Debian's bazel and the `platforms` repository `--config=offline` uses.
bazel-install:
	@if ! command -v $(BAZEL) >/dev/null || { case "$(BAZEL_FLAGS)" in \
		*offline*) test ! -d /usr/share/bazel/platforms;; *) false;; esac; }; then \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y bazel-bootstrap bazel-platforms; \
	fi

# `pip wheel` as `pip install --no-build-isolation .` builds it, installed
# with TensorFlow alone into its own environment, then used from there.
wheel-test: build $(WHEEL_VENV)/.installed
	rm -rf $(WHEEL_DIR) build/lib
	$(PY) -m pip wheel --quiet --no-build-isolation --no-deps -w $(WHEEL_DIR) .
	$(WHEEL_VENV)/bin/python -m pip uninstall --quiet --yes tf_swap
	$(WHEEL_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		$(WHEEL_DIR)/tf_swap-*.whl
	TF_SWAP_WHEEL_PYTHON=$(abspath $(WHEEL_VENV)/bin/python) $(PYENV) $(PY) -m \
		pytest -q tests/python/test_packaging.py -k wheel

$(WHEEL_VENV)/.installed: requirements.txt
	rm -rf $(WHEEL_VENV)
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		'$(TF_REQUIREMENT)'
	touch $@

bench: build
	$(PYENV) $(PY) benchmarks/bench_adagrad_swap.py
	$(PYENV) $(PY) benchmarks/bench_ftrl_swap.py
	$(PYENV) $(PY) benchmarks/bench_dynamic_embedding.py
	$(PYENV) $(PY) benchmarks/bench_local_batch_norm.py
	$(PYENV) $(PY) benchmarks/bench_train_step.py
	$(PYENV) $(PY) benchmarks/bench_simulate.py

clean:
	cargo clean
	if [ -e bazel-out ]; then $(BAZEL) clean --expunge; fi
	rm -rf $(VENV) build
