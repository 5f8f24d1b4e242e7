#!/usr/bin/env python
"""Attention on the CPU in bf16: PyTorch's fused kernel against the product written out (selfsup.layers.attention).

Part `kernel`: forward + backward of one attention call, in bf16, for the shapes selfsup's Transformers make
(batch x heads x tokens x head width: ViT-Tiny on 8 px digits, 28 px Fashion-MNIST and its MAE-visible quarter,
96 px images, the text Transformer's sentences, and longer sequences beyond the written-out path's limit), each
path's median of `--repeats` timings, and its largest error against a float64 reference on a small probe.

Part `training`: whole training runs of the masked-token methods on ViT-Tiny (Fashion-MNIST, bf16, `--seconds`
each), alternately with the fused kernel forced everywhere (A) and with selfsup's choice (B), `--rounds` times
each in one process; images/s of every run from the run's summary, medians and the ratio B / A.

    python benchmarks/attention.py --rounds 2 --seconds 30

Writes benchmarks/results/attention.json. Run it alone: it is a timing benchmark.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, publish  # noqa: E402

import selfsup  # noqa: E402
from selfsup import layers  # noqa: E402

# (what makes it, batch, heads, tokens, head width)
SHAPES = [("ViT-Tiny, 8 px digits (4 x 4 patches of 2 px)", 256, 3, 16, 64),
          ("ViT-Tiny, 28 px: MAE's visible quarter", 256, 3, 12, 64),
          ("ViT-Tiny, 28 px Fashion-MNIST (7 x 7 patches)", 256, 3, 49, 64),
          ("text Transformer, 64-token sentences", 64, 4, 64, 64),
          ("ViT-Tiny, 96 px (12 x 12 patches)", 64, 3, 144, 64),
          ("160 tokens", 64, 3, 160, 64),
          ("192 tokens", 32, 3, 192, 64),
          ("256 tokens", 32, 3, 256, 64),
          ("512 tokens", 16, 3, 512, 64)]
METHODS = ("mae", "ijepa", "data2vec2")


def fused(q, k, v):
    return F.scaled_dot_product_attention(q, k, v)


def written_out(q, k, v):
    """selfsup.layers.attention's written-out path, whatever the dispatch would choose for this shape."""
    with forced(True):
        return layers.attention(q, k, v)


class forced:
    """Within the block, `layers.attention` takes the written-out path (True) or the fused kernel (False)."""

    def __init__(self, explicit: bool) -> None:
        self.explicit, self.saved = explicit, layers.explicit_attention_pays

    def __enter__(self) -> None:
        layers.explicit_attention_pays = lambda q: self.explicit

    def __exit__(self, *exc) -> None:
        layers.explicit_attention_pays = self.saved


def timed(fn, q, k, v, repeats: int) -> float:
    """Median milliseconds of forward + backward."""
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        fn(q, k, v).float().sum().backward()
        if i >= 2:
            times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def error(fn) -> float:
    g = torch.Generator().manual_seed(0)
    q, k, v = (2 * torch.randn(4, 3, 49, 32, generator=g) for _ in range(3))
    ref = ((q.double() @ k.double().transpose(-2, -1)) / 32 ** 0.5).softmax(-1) @ v.double()
    return float((fn(q.bfloat16(), k.bfloat16(), v.bfloat16()).double() - ref).abs().max())


def kernel_part(repeats: int) -> list[dict]:
    rows = []
    for name, b, h, t, d in SHAPES:
        q, k, v = (torch.randn(b, h, t, d, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
        row = {"shape": name, "batch": b, "heads": h, "tokens": t, "head_width": d,
               "selfsup_path": "written out" if layers.explicit_attention_pays(q) else "fused",
               "fused_ms": round(timed(fused, q, k, v, repeats), 2),
               "written_out_ms": round(timed(written_out, q, k, v, repeats), 2)}
        row["speedup"] = round(row["fused_ms"] / row["written_out_ms"], 2)
        rows.append(row)
        print(row, flush=True)
    return rows


def training_part(rounds: int, seconds: float, threads: int) -> dict:
    out = {}
    for method in METHODS:
        runs: dict[str, list[float]] = {"A": [], "B": []}
        for _ in range(rounds):
            for label in ("A", "B"):
                with forced(False) if label == "A" else contextlib.nullcontext():
                    run = selfsup.train("fashion-mnist", method=method, encoder="vit_tiny", minutes=seconds / 60,
                                        precision="bf16", threads=threads, monitor=False, progress=False)
                runs[label].append(round(run.summary["samples_per_s"], 1))
                print(method, label, runs[label][-1], flush=True)
        a, b = statistics.median(runs["A"]), statistics.median(runs["B"])
        out[method] = {"fused_img_per_s": runs["A"], "selfsup_img_per_s": runs["B"],
                       "median_fused": a, "median_selfsup": b, "ratio": round(b / a, 2)}
    return out


def markdown(doc: dict) -> str:
    """The result file as two tables: one attention call by shape, and whole training runs by method."""
    rows = ["| one attention call, bf16 (batch x heads x tokens x width) | fused kernel | written out | speed-up | "
            "selfsup uses |", "|---|---|---|---|---|"]
    rows += [f"| {r['shape']} ({r['batch']} x {r['heads']} x {r['tokens']} x {r['head_width']}) | "
             f"{r['fused_ms']:.1f} ms | {r['written_out_ms']:.1f} ms | {r['speedup']:.2f}x | {r['selfsup_path']} |"
             for r in doc["kernel"]]
    rows += ["", "| training on ViT-Tiny, Fashion-MNIST, bf16 | fused kernel everywhere | selfsup | ratio |",
             "|---|---|---|---|"]
    rows += [f"| `{m}` | {r['median_fused']:.0f} img/s | {r['median_selfsup']:.0f} img/s | **{r['ratio']:.2f}x** |"
             for m, r in doc["training"].items()]
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    doc = {"protocol": __doc__.split("\n\n")[1].replace("\n", " ") + " " + __doc__.split("\n\n")[2].replace("\n", " "),
           "command": "python benchmarks/attention.py " + " ".join(sys.argv[1:]),
           "errors_vs_float64": {"fused": round(error(fused), 4), "written_out": round(error(written_out), 4)},
           "kernel": kernel_part(args.repeats),
           "training": training_part(args.rounds, args.seconds, args.threads),
           "machine": machine(args.threads)}
    publish("attention", doc, args.json, "attention: " + ", ".join(
        f"{m} x{r['ratio']}" for m, r in doc["training"].items()))


if __name__ == "__main__":
    main()
