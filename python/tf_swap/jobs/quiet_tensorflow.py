"""Imports TensorFlow without its start-up notices, for the jobs.

TensorFlow's C++ side prints a few informational lines before its logging is
initialized, whatever `TF_CPP_MIN_LOG_LEVEL` says: absl's notice that early
messages go to stderr, that oneDNN custom operations are on, and which CPU
instructions the build does not use. Every process of a job prints them, and
users read them as problems. `import_tensorflow` drops exactly those lines
(the first import only; everything else TensorFlow writes to stderr is
passed on, in order). The library (`import tf_swap`) never does this: a
job owns its process, a library does not.
"""

import os
import re
import sys
import tempfile

_NOTICES = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are "
    r"written to STDERR"
    r"|I\d{4} [\d:. ]+ +\d+ (port\.cc|cpu_feature_guard\.cc):\d+\] .*"
    r"|To enable the following instructions: .*in other operations, rebuild "
    r"TensorFlow with the appropriate compiler flags\.)$"
)


def import_tensorflow():
    """`import tensorflow`, with the start-up notices removed from stderr."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable file descriptor 2
        import tensorflow

        return tensorflow
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(True)
            kept = "".join(line for line in lines if not _NOTICES.match(line.rstrip()))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
    return tensorflow
