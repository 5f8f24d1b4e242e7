"""How many t-SNE iterations the report's map needs: trustworthiness (scikit-learn, 10 neighbours) and the 5-fold
kNN accuracy of the 2-D map, against the time, at 1,000 (scikit-learn's default), 750 and 500 iterations.

Embeddings of a SimCLR run on digits (4 epochs, ConvNet-4 of widths 32-256, seed 0-2), reduced by PCA to 50
dimensions as the report does, for the report's sizes: the 450 test digits and 1,797 (train + test, near the
report's 2,000-point cap). torch on one thread; scikit-learn's t-SNE on its own OpenMP threads (every core), as in a
report built after training.

    python benchmarks/report_tsne.py --json
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, publish  # noqa: E402

ITERATIONS = (1000, 750, 500)


def one_seed(seed: int, out: Path) -> list[dict]:
    import torch
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE, trustworthiness
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    import selfsup

    run = selfsup.train("digits", method="simclr", epochs=4, seed=seed, out=out / f"seed{seed}", threads=1,
                        encoder_options={"widths": [32, 64, 128, 256]}, monitor=False)
    ds = selfsup.load_dataset("digits")
    torch.set_num_threads(1)
    sets = {"test": (ds.test.x, np.asarray(ds.test.y)),
            "train+test": (torch.cat([ds.train.x, ds.test.x]), np.concatenate([ds.train.y, ds.test.y]))}
    rows = []
    for name, (x, y) in sets.items():
        z = PCA(n_components=50, random_state=seed).fit_transform(run.embed(x))
        perplexity = min(30, max(5, len(z) // 10), (len(z) - 1) / 3)  # as report.embedding_map
        for iterations in ITERATIONS:
            start = time.perf_counter()
            xy = TSNE(n_components=2, init="pca", random_state=seed, perplexity=perplexity,
                      max_iter=iterations).fit_transform(z)
            seconds = time.perf_counter() - start
            rows.append({"seed": seed, "points": name, "n": len(z), "iterations": iterations, "seconds": seconds,
                         "trustworthiness": float(trustworthiness(z, xy, n_neighbors=10)),
                         "knn_2d": float(cross_val_score(KNeighborsClassifier(10), xy, y, cv=5).mean())})
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs/report-tsne"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [row for seed in range(args.seeds) for row in one_seed(seed, args.out)]
    summary = []
    for points in ("test", "train+test"):
        for iterations in ITERATIONS:
            sel = [r for r in rows if r["points"] == points and r["iterations"] == iterations]
            summary.append({"points": points, "n": sel[0]["n"], "iterations": iterations,
                            **{f"{k}_mean": float(np.mean([r[k] for r in sel])) for k in
                               ("seconds", "trustworthiness", "knn_2d")},
                            **{f"{k}_std": float(np.std([r[k] for r in sel], ddof=1)) if len(sel) > 1 else 0.0
                               for k in ("trustworthiness", "knn_2d")}})
    text = "\n".join(f"{s['points']:>10} n={s['n']:5d} {s['iterations']:5d} iterations: {s['seconds_mean']:.2f} s, "
                     f"trustworthiness {s['trustworthiness_mean']:.4f}, 2-D kNN {s['knn_2d_mean']:.4f}"
                     for s in summary)
    import sklearn

    publish("report_tsne", {"machine": machine(threads=1), "scikit_learn": sklearn.__version__, "seeds": args.seeds,
                            "runs": rows, "summary": summary}, args.json, text)


if __name__ == "__main__":
    main()
