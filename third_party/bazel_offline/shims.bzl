"""Declares the shims when `--config=offline` asked for them."""

load("@tf_swap_bazel_offline//:defs.bzl", "OFFLINE")

def bazel_offline_repositories():
    if not OFFLINE:
        return
    for name in ["rules_cc", "rules_java"]:
        native.local_repository(
            name = name,
            path = "third_party/bazel_offline/" + name,
        )
