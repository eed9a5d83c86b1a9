"""A small Adagrad-SWAP example: `python -m tf_swap.demo`.

Trains the same embedding CTR model with `keras.optimizers.Adagrad` and with
`tf_swap.keras.AdagradSwap` on a synthetic click stream whose click
probabilities drift from period to period, and prints, per period, the
training loss and the AUC on the next period (train on d, evaluate on d+1).
The best possible AUC (from the true click probabilities) is printed too.
"""

import argparse

import keras
import numpy as np
from sklearn.metrics import roc_auc_score

from tf_swap.keras import AdagradSwap


def drifting_stream(periods, samples, items, seed):
    """Yields (item ids, clicks, true click probabilities) per period.

    Item popularity follows a power law; each item's click logit drifts by
    a random walk between periods, so old statistics go stale.
    """
    rng = np.random.default_rng(seed)
    logits = rng.normal(-1.0, 1.0, items)
    popularity = 1.0 / np.arange(1, items + 1) ** 1.1
    popularity /= popularity.sum()
    for _ in range(periods):
        ids = rng.choice(items, size=samples, p=popularity)
        p = 1.0 / (1.0 + np.exp(-logits[ids]))
        yield ids[:, None], (rng.random(samples) < p).astype("float32"), p
        logits += rng.normal(0.0, 0.6, items)


def build_model(items, optimizer):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((1,), dtype="int32")
    x = keras.layers.Flatten()(keras.layers.Embedding(items, 8)(inputs))
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer, "binary_crossentropy")
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--periods", type=int, default=12)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    steps_per_period = args.samples // args.batch_size
    optimizers = {
        "Adagrad": lambda: keras.optimizers.Adagrad(0.2),
        "AdagradSwap": lambda: AdagradSwap(
            0.2, decay_rate=0.8, decay_period=steps_per_period
        ),
    }
    stream = list(drifting_stream(args.periods, args.samples, args.items, args.seed))
    results = {}
    for name, make in optimizers.items():
        model = build_model(args.items, make())
        rows = []
        for d in range(args.periods - 1):
            x, y, _ = stream[d]
            history = model.fit(x, y, batch_size=args.batch_size, verbose=0)
            x_next, y_next, _ = stream[d + 1]
            auc = roc_auc_score(y_next, model.predict(x_next, verbose=0).ravel())
            rows.append((history.history["loss"][-1], auc))
            print(
                f"{name:12s} period {d + 1}: loss {rows[-1][0]:.4f}, "
                f"next-period AUC {auc:.4f}",
                flush=True,
            )
        results[name] = rows

    print("\nperiod | oracle AUC | " + " | ".join(f"{n} AUC" for n in results))
    for d in range(args.periods - 1):
        _, y_next, p_next = stream[d + 1]
        cells = " | ".join(f"{results[n][d][1]:.4f}" for n in results)
        print(f"{d + 2:6d} | {roc_auc_score(y_next, p_next):.4f} | {cells}")
    means = {n: np.mean([auc for _, auc in rows]) for n, rows in results.items()}
    print("mean   |        | " + " | ".join(f"{m:.4f}" for m in means.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
