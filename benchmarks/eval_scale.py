"""Evaluation at scale: kNN and k-means on 1,000,000 generated 128-d embeddings, faiss (the `scale` extra) against
the default paths (exact cosine top-k by torch matrix products; scikit-learn's KMeans), timed in one run.

The embeddings: 10 classes, each a Gaussian around its own random centre (std 1, centres std 0.2 a coordinate, so
classes overlap and kNN accuracy sits well below 1); 10,000 queries drawn the same way. kNN: weighted votes of the
k = 200 nearest by cosine (evaluation.knn_predict), accuracy against the queries' classes; k-means: k = 10, one run
each (n_init = 1), NMI against the classes. Run it alone: its figures are times.

Usage:  python benchmarks/eval_scale.py --json [--rows 1000000] [--dim 128]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from _common import machine, write_result  # noqa: E402
from selfsup.evaluation import knn_predict  # noqa: E402
from selfsup.evaluation import large  # noqa: E402
from sklearn.metrics import normalized_mutual_info_score  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "eval_scale.json"


def embeddings(rows: int, dim: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(scale=0.2, size=(classes, dim)).astype(np.float32)
    y = rng.integers(0, classes, rows)
    return centres[y] + rng.standard_normal((rows, dim), dtype=np.float32), y


def timed(fn) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - start, 2)


def both_ways(fn, rows: int) -> dict[str, Any]:
    """fn() with faiss (threshold at `rows`) and without it (threshold above `rows`)."""
    saved = large.FAISS_MIN_ROWS
    out = {}
    try:
        for name, threshold in (("faiss", rows), ("default", rows + 1)):
            large.FAISS_MIN_ROWS = threshold
            out[name] = timed(fn)
    finally:
        large.FAISS_MIN_ROWS = saved
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--queries", type=int, default=10_000)
    p.add_argument("--json", action="store_true", help=f"write {OUT.relative_to(ROOT)}")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    import faiss

    x, y = embeddings(args.rows, args.dim, 10, seed=1)
    q, yq = embeddings(args.queries, args.dim, 10, seed=2)
    knn = both_ways(lambda: knn_predict(x, y, q, k=200), args.rows)
    zn = x / np.linalg.norm(x, axis=1, keepdims=True)
    km = both_ways(lambda: large.kmeans(zn, 10, n_init=1, seed=0)[0], args.rows)
    doc = {
        "command": "python " + " ".join([str(Path(sys.argv[0]))] + (argv if argv is not None else sys.argv[1:])),
        "protocol": __doc__.split("\n\n")[1].replace("\n", " "),
        "rows": args.rows, "dim": args.dim, "queries": args.queries, "faiss": faiss.__version__,
        "torch_threads": torch.get_num_threads(), "machine": machine(),
        "knn": {name: {"seconds": s, "accuracy": round(float(np.mean(pred == yq)), 4)}
                for name, (pred, s) in knn.items()},
        "kmeans": {name: {"seconds": s, "nmi": round(float(normalized_mutual_info_score(y, labels)), 4)}
                   for name, (labels, s) in km.items()},
    }
    doc["knn"]["same_predictions"] = bool(np.array_equal(knn["faiss"][0], knn["default"][0]))
    doc["speedup"] = {task: round(doc[task]["default"]["seconds"] / doc[task]["faiss"]["seconds"], 2)
                      for task in ("knn", "kmeans")}
    print(doc["knn"], doc["kmeans"], doc["speedup"])
    if args.json:
        write_result(Path(args.out), doc)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
