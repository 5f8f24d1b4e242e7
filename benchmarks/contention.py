"""Two training runs at once on one machine versus one alone: does the pair collapse?

Each run is a whole process, start-up included:

    selfsup train --data digits --method simclr --epochs 8 --no-eval --no-report --quiet --json

measured (1) alone with the adaptive thread count (the default: training/threads.py), (2) alone with the
thread count fixed at PyTorch's default (what selfsup did before), (3) two started together with the
default, (4) two started together with the fixed thread count (skipped with --skip-fixed-pair: on 2 cores
it takes minutes). The figure of merit is the pair's combined images/s over one run alone (target >= 0.8):
images/s = images trained / wall seconds until the process (for the pair: both processes) ended.

    python benchmarks/contention.py --json

Run it alone: any other process on the machine is part of what it measures.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, publish  # noqa: E402

import torch  # noqa: E402

TARGET = 0.8


def command(out: Path, epochs: int, threads: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "selfsup", "train", "--data", "digits", "--method", "simclr", "--epochs", str(epochs),
           "--no-eval", "--no-report", "--quiet", "--json", "--out", str(out)]
    return cmd + (["--threads", str(threads)] if threads else [])


def run_together(count: int, epochs: int, threads: int | None, folder: Path) -> dict:
    """Start `count` identical runs at once; wall time until the last one ended, and each run's summary."""
    start = time.perf_counter()
    procs = [subprocess.Popen(command(folder / f"run{i}", epochs, threads), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(count)]
    ended: dict[int, float] = {}
    while len(ended) < count:  # each process's own end time (output is small: the pipes cannot fill)
        for i, proc in enumerate(procs):
            if i not in ended and proc.poll() is not None:
                ended[i] = time.perf_counter() - start
        time.sleep(0.02)
    summaries = []
    for proc in procs:
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"contention: a training run failed: {stderr.strip().splitlines()[-1:]}")
        summaries.append(json.loads(stdout.strip().splitlines()[-1])["summary"])
    wall = max(ended.values())
    ended = [ended[i] for i in range(count)]
    images = sum(s["steps"] * s["batch_size"] for s in summaries)
    return {"runs": count, "threads": threads or "adaptive", "wall_s": round(wall, 2),
            "per_run_wall_s": [round(e, 2) for e in ended], "images": round(images),
            "img_per_s": round(images / wall, 1),
            "per_run": [{k: s.get(k) for k in ("train_seconds", "samples_per_s", "precision", "threads", "threads_policy",
                                               "thread_changes", "steps")} for s in summaries]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--skip-fixed-pair", action="store_true", help="skip two fixed-thread runs at once (slow)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args()
    fixed = torch.get_num_threads()  # PyTorch's default here (cores, or OMP_NUM_THREADS)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cases = {}
        for name, count, threads in (("alone_adaptive", 1, None), ("alone_fixed", 1, fixed),
                                     ("pair_adaptive", 2, None), ("pair_fixed", 2, fixed)):
            if name == "pair_fixed" and args.skip_fixed_pair:
                continue
            sub = folder / name
            sub.mkdir()
            cases[name] = run_together(count, args.epochs, threads, sub)
            print(f"{name}: {cases[name]['wall_s']} s, {cases[name]['img_per_s']} img/s", file=sys.stderr, flush=True)
    alone = cases["alone_adaptive"]["img_per_s"]
    ratio = cases["pair_adaptive"]["img_per_s"] / alone
    result = {
        "protocol": "two identical `selfsup train --data digits --method simclr --epochs "
                    f"{args.epochs} --no-eval --no-report --quiet` processes started together versus one alone "
                    "(wall time of whole processes, start-up included)",
        "command": "python benchmarks/contention.py " + " ".join(sys.argv[1:]),
        "pair_over_alone": round(ratio, 3),
        "target_pair_over_alone": TARGET,
        "met": ratio >= TARGET,
        "alone_adaptive_over_alone_fixed": round(alone / cases["alone_fixed"]["img_per_s"], 3),
        "fixed_threads": fixed,
        "pair_fixed_over_alone_fixed": round(cases["pair_fixed"]["img_per_s"] / cases["alone_fixed"]["img_per_s"], 3)
        if "pair_fixed" in cases else None,
        "cases": cases,
        "machine": machine(),
    }
    publish("contention", result, args.json, f"pair / alone = {result['pair_over_alone']} (target {TARGET})")


if __name__ == "__main__":
    main()
