"""Builds tf_swap's wheel: the Python package plus its op library.

The op library is built by cargo exactly as `make build` builds it
(`TF_SWAP_OPS=1 cargo build --release`), against the TensorFlow of the Python
running this build (so build with `pip install --no-build-isolation .` where
TensorFlow is installed), and goes into the package as `_tf_swap_ops.so`, the
first place `tf_swap._ops` looks. Next to it, `_tf_swap_ops.tf_version` records
that TensorFlow's version; `import tf_swap` refuses to load the library into
another one. The wheel is platform-specific.

`CARGO_TARGET_DIR` is honoured (default: `target/` of the source tree, so a
wheel built after `make build` reuses its library).
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Distribution, find_packages, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
LIBRARY = "_tf_swap_ops.so"


def tensorflow_version():
    """The version of the TensorFlow the library is compiled against."""
    result = subprocess.run(
        [sys.executable, "-c", "import tensorflow as tf; print(tf.__version__)"],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(
            f"tf_swap is built against the installed TensorFlow, but "
            f"{sys.executable} cannot import tensorflow. Install it, then "
            "build with `pip install --no-build-isolation .`.\n" + result.stderr
        )
    return result.stdout.split()[-1]


class BuildPyWithOps(build_py):
    """`build_py`, then the op library and its TensorFlow version."""

    def run(self):
        super().run()
        version = tensorflow_version()
        target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
        env = dict(
            os.environ,
            TF_SWAP_OPS="1",
            TF_SWAP_PYTHON=sys.executable,
            CARGO_TARGET_DIR=str(target.resolve()),
        )
        manifest = str(ROOT / "Cargo.toml")
        cargo = ["cargo", "build", "--release", "--locked", "--lib"]
        self.announce(f"building the op library for TensorFlow {version}", 2)
        subprocess.run([*cargo, "--manifest-path", manifest], env=env, check=True)
        package = Path(self.build_lib) / "tf_swap"
        shutil.copyfile(target / "release" / "libtf_swap.so", package / LIBRARY)
        (package / LIBRARY).with_suffix(".tf_version").write_text(version + "\n")


class BinaryDistribution(Distribution):
    """The wheel carries a native library: tag it for this platform."""

    def has_ext_modules(self):
        return True


def long_description():
    """The README and the algorithm definitions it points at
    (docs/algorithms.md), so that the wheel's description is whole without
    the repository."""
    readme = (ROOT / "README.md").read_text()
    algorithms = (ROOT / "docs" / "algorithms.md").read_text()
    return f"{readme}\n\n---\n\n{algorithms}"


def package_version():
    """`tf_swap.__version__`, read without importing the package."""
    init = (ROOT / "python" / "tf_swap" / "__init__.py").read_text()
    return re.search(r'^__version__ = "([^"]+)"', init, re.MULTILINE).group(1)


setup(
    version=package_version(),
    long_description=long_description(),
    long_description_content_type="text/markdown",
    package_dir={"": "python"},
    packages=find_packages("python", include=["tf_swap", "tf_swap.*"]),
    cmdclass={"build_py": BuildPyWithOps},
    distclass=BinaryDistribution,
)
