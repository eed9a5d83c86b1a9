# The README's two commands: `make run` (the main job) and `make test`
# (every test). Both create .venv and build the op library first.

PYTHON ?= python3
VENV := .venv
PY := $(abspath $(VENV)/bin/python)
# The op library links TensorFlow; Rust-only tests and lints build without
# it in their own target dir so they never replace it.
RUST_ONLY := CARGO_TARGET_DIR=target/rust-only TF_SWAP_OPS=0
PYENV := PYTHONPATH=$(abspath python) TF_CPP_MIN_LOG_LEVEL=2

.PHONY: run test build bench rust-test python-test lint clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

build: $(VENV)/.installed
	TF_SWAP_OPS=1 TF_SWAP_PYTHON=$(PY) cargo build --release

run: build
	$(PYENV) $(PY) -m tf_swap.demo

test: lint rust-test python-test

lint: $(VENV)/.installed
	cargo fmt --check
	$(RUST_ONLY) cargo clippy --release --all-targets -- -D warnings
	$(PY) -m ruff check python tests benchmarks

rust-test: $(VENV)/.installed
	$(RUST_ONLY) cargo test --release

python-test: build
	$(PYENV) $(PY) -m pytest -q tests/python

bench: build
	$(PYENV) $(PY) benchmarks/bench_adagrad_swap.py

clean:
	cargo clean
	rm -rf $(VENV)
