"""`python -m tf_swap.simulate`: the simulator (`tf_swap.jobs.simulate`)."""

from tf_swap.jobs.simulate import main

if __name__ == "__main__":
    raise SystemExit(main())
