"""`custom_op_library`: a TensorFlow op library, tensorflow/addons style."""

load("@rules_cc//cc:defs.bzl", "cc_binary")
load(
    "@local_tensorflow//:defs.bzl",
    "TF_COPTS",
    "TF_FRAMEWORK",
    "TF_LINKOPTS",
    "TF_PYTHON",
)

def custom_op_library(name, srcs = [], deps = [], copts = [], linkopts = [], **kwargs):
    """A shared library `tf.load_op_library` loads, and its TF version.

    `srcs` are linked as object files, so their `REGISTER_OP` initializers
    are kept; `deps` (static libraries) contribute only what they define for
    `srcs`. Compiled and linked with `tf.sysconfig`'s flags against the
    installed TensorFlow (`@local_tensorflow`).

    Next to `name` (`foo.so`), `foo.tf_version` records the version of that
    TensorFlow; `import tf_swap` compares it with the running one before it
    loads the library.

    Args:
      name: the library's file name, ending in `.so`.
      srcs: C++ sources and headers of the ops.
      deps: further `cc_library` dependencies.
      copts: extra compile options.
      linkopts: extra link options.
      **kwargs: passed to `cc_binary`.
    """
    if not name.endswith(".so"):
        fail("custom_op_library: name must end in .so: " + name)
    cc_binary(
        name = name,
        srcs = srcs,
        copts = copts + TF_COPTS,
        # Every symbol resolved at link time, like the cargo build.
        linkopts = linkopts + TF_LINKOPTS + ["-Wl,--no-undefined"],
        linkshared = 1,
        deps = deps + [
            "@local_tensorflow//:tf_header_lib",
            "@local_tensorflow//:libtensorflow_framework",
        ],
        **kwargs
    )

    # Reruns when libtensorflow_framework changes (a TensorFlow upgrade).
    native.genrule(
        name = name[:-len(".so")] + "_tf_version",
        srcs = [TF_FRAMEWORK],
        outs = [name[:-len(".so")] + ".tf_version"],
        # TensorFlow's import chatter is shown only if the import fails.
        cmd = ("log=$$('{}' -c 'import tensorflow as tf; print(tf.__version__)' " +
               "2>&1 >$@) || {{ echo \"$$log\" >&2; exit 1; }}").format(TF_PYTHON),
        local = True,
        visibility = kwargs.get("visibility"),
    )
