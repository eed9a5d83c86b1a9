"""`python -m tf_swap.train`: the main job (`tf_swap.jobs.train`)."""

from tf_swap.jobs.train import main

if __name__ == "__main__":
    raise SystemExit(main())
