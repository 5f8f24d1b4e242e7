"""How the digits source's view defaults were chosen: the papers' views against crops >= 56% without flips.

For each of the six image methods, `selfsup.train` on 80% of digits' training images (10 epochs, default
encoder and batch, seed 0), scored by weighted kNN on the other 20% of the training images (never the test
split), once with each method's paper recipe (crops from 8-20% of the image up, horizontal flips) and once
with the digits defaults over it (`crop_scale` (0.56, 1), `flip_p` 0: what `load_digits_source` declares as
`view_options`).

    python benchmarks/digits_views.py --json
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, publish  # noqa: E402

import selfsup  # noqa: E402
from selfsup.data import Dataset, Split  # noqa: E402
from selfsup.loading import load_dataset  # noqa: E402
from selfsup.evaluation import knn_accuracy  # noqa: E402

METHODS = ("simclr", "moco", "byol", "simsiam", "barlow_twins", "vicreg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args()
    ds = load_dataset("digits")
    defaults = ds.info["view_options"]
    x, y = ds.train.x, ds.train.y
    perm = np.random.default_rng(args.seed).permutation(len(y))
    val, fit = perm[: len(perm) // 5], perm[len(perm) // 5:]
    info_without = {k: v for k, v in ds.info.items() if k != "view_options"}
    variants = {"paper": Dataset("digits", "image", Split(x[fit], None), None, info_without),
                "digits_defaults": Dataset("digits", "image", Split(x[fit], None), None, dict(ds.info))}
    start = time.perf_counter()
    scores: dict[str, dict[str, float]] = {}
    precision = None
    for method in METHODS:
        scores[method] = {}
        for name, unlabelled in variants.items():
            run = selfsup.train(unlabelled, method=method, epochs=args.epochs, seed=args.seed, monitor=False)
            assert run.resolved.augmentation == (defaults if name == "digits_defaults" else {})
            precision = run.resolved.precision
            acc = knn_accuracy(run.embed(x[fit]), y[fit], run.embed(x[val]), y[val])
            scores[method][name] = round(float(acc), 4)
            print(f"{method} {name}: {acc:.3f}", file=sys.stderr, flush=True)
    means = {name: round(float(np.mean([s[name] for s in scores.values()])), 4)
             for name in ("paper", "digits_defaults")}
    result = {
        "protocol": "digits view defaults: kNN (k=200, T=0.1) on a 20% validation split of the training images",
        "command": "python benchmarks/digits_views.py " + " ".join(sys.argv[1:]),
        "epochs": args.epochs, "seed": args.seed, "precision": precision,
        "views": {"paper": "each method's recipe (modalities/image/augment.py RECIPES)", "digits_defaults": defaults},
        "validation_knn": scores, "mean": means, "seconds": round(time.perf_counter() - start, 1),
        "machine": machine(),
    }
    publish("digits_views", result, args.json,
            f"mean kNN: paper {means['paper']}, digits defaults {means['digits_defaults']}")


if __name__ == "__main__":
    main()
