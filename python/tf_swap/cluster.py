"""`python -m tf_swap.cluster`: runs one task of a TensorFlow cluster (the
README's multi-machine recipe). It lives in `tf_swap.jobs.cluster`, with
`LocalCluster` and `ExistingCluster`, which scripts may use from here."""

from tf_swap.jobs.cluster import ExistingCluster, LocalCluster, main

__all__ = ["ExistingCluster", "LocalCluster", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
