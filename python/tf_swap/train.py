"""`python -m tf_swap.train`: the main job (`tf_swap.jobs.train`)."""

from tf_swap.jobs.train import main, run_main

__all__ = ["main"]

if __name__ == "__main__":
    run_main()
