#!/usr/bin/env python
"""A/B of the whole training loop: this checkout against an earlier git revision, run alternately on one machine.

Absolute images/s drift by 10-20% between runs on a shared VM (benchmarks/throughput.py measured 590 and 545
img/s for the same loop an hour apart), so a refactoring's cost is read from interleaved runs of both versions:
A, B, A, B, ... each a fresh process training SimCLR on Fashion-MNIST for `--seconds` (the throughput
benchmark's end-to-end setting: ConvNet-4, projection 512-512-128, batch 256, SGD, no monitoring).

    python benchmarks/loop_ab.py --rev 7fce38e --rounds 3 --seconds 30

Then the same seed trains both versions for `--curve-epochs` epochs on digits (SimCLR on ConvNet-4, the loss logged
every step): a refactoring changes no arithmetic when the two loss curves are identical.

Writes benchmarks/results/loop_ab.json (or NAME.json with --name NAME): every run's img/s, the medians, the ratio
B/A (B = this checkout), both loss curves and whether they are identical.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, publish  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUN = """
import sys, torch
sys.path.insert(0, sys.argv[1])
import selfsup
torch.set_num_threads(int(sys.argv[3]))
run = selfsup.train("fashion-mnist", method="simclr", encoder="convnet4", minutes=float(sys.argv[2]) / 60,
                    batch_size=256, optimizer="sgd", lr=0.03, monitor=False, progress=False,
                    method_options={"proj_hidden_dim": 512, "proj_dim": 128, "temperature": 0.5})
assert selfsup.__file__.startswith(sys.argv[1]), selfsup.__file__
print(run.summary["samples_per_s"])
"""
CURVE = """
import json, sys, tempfile, torch
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import selfsup
torch.set_num_threads(int(sys.argv[3]))
with tempfile.TemporaryDirectory() as out:
    selfsup.train("digits", method="simclr", encoder="convnet4", epochs=int(sys.argv[2]), batch_size=256,
                  optimizer="sgd", lr=0.03, seed=0, log_every=1, monitor=False, progress=False, out=out + "/run",
                  method_options={"proj_hidden_dim": 512, "proj_dim": 128, "temperature": 0.5})
    records = [json.loads(line) for line in (Path(out) / "run" / "metrics.jsonl").read_text().splitlines()]
assert selfsup.__file__.startswith(sys.argv[1]), selfsup.__file__
print(json.dumps([r["loss"] for r in records if "step" in r and r.get("type") != "epoch"]))
"""


def loss_curve(src: Path, epochs: int, threads: int) -> list[float]:
    out = subprocess.run([sys.executable, "-c", CURVE, str(src), str(epochs), str(threads)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def one_run(src: Path, seconds: float, threads: int) -> float:
    out = subprocess.run([sys.executable, "-c", RUN, str(src), str(seconds), str(threads)], capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rev", required=True, help="the earlier git revision (A)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--curve-epochs", type=int, default=5, help="epochs of the fixed-seed loss curves (digits)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--name", default="loop_ab", help="the result file's name in benchmarks/results (default loop_ab)")
    args = p.parse_args()
    rev = subprocess.run(["git", "rev-parse", "--short", args.rev], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "a"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), rev], cwd=ROOT, capture_output=True, check=True)
        try:
            a, b = [], []
            for _ in range(args.rounds):
                a.append(one_run(old / "src", args.seconds, args.threads))
                b.append(one_run(ROOT / "src", args.seconds, args.threads))
            curves = {"a": loss_curve(old / "src", args.curve_epochs, args.threads),
                      "b": loss_curve(ROOT / "src", args.curve_epochs, args.threads)}
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, capture_output=True)
    result = {
        "benchmark": "whole training loop, A/B interleaved (SimCLR, ConvNet-4, Fashion-MNIST, batch 256)",
        "command": "python benchmarks/loop_ab.py " + " ".join(sys.argv[1:]),
        "a": {"rev": rev, "img_per_s": a, "median": statistics.median(a)},
        "b": {"rev": f"{head} (+ working tree)", "img_per_s": b, "median": statistics.median(b)},
        "ratio_b_over_a": round(statistics.median(b) / statistics.median(a), 3),
        "loss_curves": {"data": "digits", "epochs": args.curve_epochs, "seed": 0, **curves,
                        "identical": curves["a"] == curves["b"] and bool(curves["a"])},
        "settings": {"seconds": args.seconds, "threads": args.threads, "rounds": args.rounds},
        "machine": machine(),
    }
    publish(args.name, result, args.json,
            f"A {rev}: {result['a']['median']:.0f} img/s, B {head}: {result['b']['median']:.0f} img/s, "
            f"B/A {result['ratio_b_over_a']}, loss curves identical: {result['loss_curves']['identical']}")


if __name__ == "__main__":
    main()
