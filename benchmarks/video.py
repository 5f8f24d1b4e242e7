"""Video methods on the generated `sprites` clips (the label is the motion): does training beat raw pixels, the
untrained encoder and an image encoder applied frame by frame?

For every method given (default: every method that trains on video with its default encoder),
`selfsup.train(DATA, method=M, epochs=E, seed=S)` with nothing else given, then `selfsup.evaluate` on the test clips:
kNN (k=20, cosine) and the linear probe (C chosen on a validation split of the training clips), beside the random
encoder of the same architecture and raw pixels measured in the same call (digits_methods.measure).

The frame-averaged baseline: the image modality's default method and encoder trained, for the same epochs and seed,
on every fourth frame of the training clips as images (labels never seen), then each clip embedded as the mean of
its frames' embeddings; kNN and linear probe as above. An encoder of single frames sees what is in a clip, not how
it moves: on `sprites` it cannot tell a motion from its reverse in time.

    python benchmarks/video.py --epochs 30 --seeds 0,1,2 [--only simclr,pace] [--threads 2] [--options JSON]

A method's options other than its defaults (`--options`, e.g. a batch and learning rate) are chosen on a
validation split first: `python benchmarks/digits_methods.py --validate NAME=JSON --data sprites --name video`
(5-fold cross-validation over the training clips' labels, into benchmarks/results/video_validation.json).

Results are merged into benchmarks/results/video.json, one entry a method (or `frame_average`) and seed.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, save  # noqa: E402
from digits_methods import markdown as methods_markdown  # noqa: E402
from digits_methods import measure, modality_methods, summarise  # noqa: E402

import selfsup  # noqa: E402
from selfsup.evaluation.knn import knn_accuracy  # noqa: E402
from selfsup.evaluation.linear import linear_probe  # noqa: E402

NAME = "video"
DATA = "sprites"
FRAME_BASELINE = "frame_average"


def frame_average(data: str, epochs: int, seed: int, threads: int | None) -> dict:
    """The image default trained on the training clips' frames, clips embedded as their frames' mean embedding."""
    ds = selfsup.load_dataset(data)
    train, test = ds.train.x, ds.test.x  # uint8 [N, T, C, H, W]
    frames = train[:, ::4].flatten(0, 1)
    start = time.perf_counter()
    run = selfsup.train(frames.numpy(), modality="image", epochs=epochs, seed=seed, threads=threads, monitor=False)
    seconds = time.perf_counter() - start

    def clip_means(x) -> np.ndarray:
        z = run.embed(x.flatten(0, 1).numpy())
        return z.reshape(len(x), x.shape[1], -1).mean(axis=1)

    z, z_test = clip_means(train), clip_means(test)
    y, y_test = np.asarray(ds.train.y), np.asarray(ds.test.y)
    return {"method": FRAME_BASELINE, "seed": seed, "epochs": epochs, "encoder": run.resolved.encoder,
            "image_method": run.summary["method"], "precision": run.resolved.precision,
            "knn": round(knn_accuracy(z, y, z_test, y_test, k=20), 4),
            "linear": round(linear_probe(z, y, z_test, y_test, seed=seed)["acc"], 4),
            "train_seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--only", default="", help=f"comma-separated methods, {FRAME_BASELINE} for the frame-averaged "
                                                   "image encoder (default: every video method and it)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--options", default="{}", help="selfsup.train options (JSON) for every method given, chosen "
                        "on validation (digits_methods.py --validate --data sprites --name video), e.g. "
                        "'{\"batch_size\": 64}'; recorded in each entry")
    args = parser.parse_args()
    methods = args.only.split(",") if args.only else [*modality_methods("video"), FRAME_BASELINE]
    path = RESULTS / f"{NAME}.json"
    command = "python benchmarks/video.py " + shlex.join(sys.argv[1:])
    options = json.loads(args.options)
    for method in methods:
        for seed in (int(s) for s in args.seeds.split(",")):
            if method == FRAME_BASELINE:
                entry = frame_average(args.data, args.epochs, seed, args.threads)
            else:
                entry = measure(method, args.epochs, seed, args.threads, args.data, options)
            doc = json.loads(path.read_text()) if path.exists() else {}  # read again: runs may go side by side
            entries = {f"{e['method']}/{e['seed']}": e for e in doc.get("entries", [])}
            entries[f"{method}/{seed}"] = {**entry, "machine": machine(args.threads)}
            commands = [*[c for c in doc.get("commands", []) if c != command], command]
            print(json.dumps(entry), flush=True)
            save(NAME, {
                "data": args.data,
                "protocol": f"{args.data} test split: kNN (cosine, k=20) and linear probe on the frozen encoder, "
                            "beside the random encoder of the same architecture and raw pixels (selfsup.evaluate); "
                            f"{FRAME_BASELINE}: the image default trained on the training frames, a clip embedded as "
                            "the mean of its frames' embeddings",
                "commands": commands,
                "entries": sorted(entries.values(), key=lambda e: (e["method"], e["seed"])),
                "summary": summarise([e for e in entries.values() if e["method"] != FRAME_BASELINE]),
                "frame_average": frame_summary([e for e in entries.values() if e["method"] == FRAME_BASELINE])})


def frame_summary(entries: list[dict]) -> dict:
    """Mean and std over seeds of the frame-averaged baseline's kNN and linear accuracy."""
    if not entries:
        return {}
    out: dict = {"seeds": sorted(e["seed"] for e in entries)}
    for key in ("knn", "linear"):
        values = np.array([e[key] for e in entries])
        out[key] = {"mean": round(float(values.mean()), 4),
                    "std": round(float(values.std(ddof=1)), 4) if len(values) > 1 else 0.0}
    return out


def markdown(doc: dict) -> str:
    """The methods' table (digits_methods.markdown) with a last row for the frame-averaged image encoder (its own
    method and encoder; no random encoder or raw input of its own)."""
    table = methods_markdown({"entries": [e for e in doc["entries"] if e["method"] != FRAME_BASELINE]})
    frames = [e for e in doc["entries"] if e["method"] == FRAME_BASELINE]
    if not frames:
        return table
    summary = frame_summary(frames)
    seeds = ", ".join(map(str, summary["seeds"]))
    epochs = "/".join(str(x) for x in sorted({e["epochs"] for e in frames}))
    knn, linear = (f"{summary[k]['mean']:.3f} ± {summary[k]['std']:.3f}" for k in ("knn", "linear"))
    return table + (f"\n| image encoder ({frames[0]['image_method']} on {frames[0]['encoder']}) frame by frame, "
                    f"averaged ({seeds}; {epochs}) | {knn} | | | {linear} | | |")


if __name__ == "__main__":
    main()
