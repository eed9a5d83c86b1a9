"""`bazel_offline_repositories()`: rules_cc and rules_java shims, on demand.

Bazel 4.2.3's built-in C++ and Java setup downloads `rules_cc` and
`rules_java` (DEFAULT.WORKSPACE.SUFFIX declares them with `maybe`). Offline,
`--config=offline` sets `--repo_env=TF_SWAP_BAZEL_OFFLINE=1` and these tiny
local repositories, whose `defs.bzl` forward to the native rules, are
declared first instead. Without it nothing is declared and bazel fetches the
real ones. (`--override_repository` would do the same, but bazel 4.2.3 wants
an absolute path there, which a checked-in .bazelrc cannot give.)
"""

def _offline_switch_impl(ctx):
    offline = ctx.os.environ.get("TF_SWAP_BAZEL_OFFLINE", "") == "1"
    ctx.file("BUILD", "")
    ctx.file("defs.bzl", "OFFLINE = {}\n".format(offline))

bazel_offline_switch = repository_rule(
    implementation = _offline_switch_impl,
    environ = ["TF_SWAP_BAZEL_OFFLINE"],
    local = True,
)
