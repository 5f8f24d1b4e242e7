"""Faults injected into training runs, and what they cost: every run must complete with the final weights and
metrics of an uninterrupted run of the same seed.

- kill -9: `selfsup train` (CLI, one thread) is killed at random moments (uniform 2.5-6 s after its process starts,
  once its first checkpoint exists), `--resume`d, killed again, ... `--kills` times, then left to finish.
- A full disk (ENOSPC): in this process, a random checkpoint write among the next three fails as a full disk
  answers (the write sent to /dev/full), the run stops in one line keeping its last complete checkpoint, and it is
  resumed; `--disk-faults` times, then left to finish.
- Remote shards: `selfsup train` streams generated tar shards (--memory-budget 0: worker processes read each sample
  with a ranged HTTP request) from a server on the loopback whose answers fail at random (`--connection-faults`,
  the chance per request: half 503, half a connection dropped mid-body), and from the same server without faults.
  Counted: every complete answer per shard and byte range; a sample is lost when the faulty run received it fewer
  times than the fault-free run, repeated when more.

Recorded: faults injected, runs completed, steps trained again (work lost between the last checkpoint and the
fault), and whether the final weights and metrics.jsonl (timings aside) equal the uninterrupted run's: a lost or
repeated sample changes both.

Usage:  python benchmarks/faults.py --json [--kills 20] [--disk-faults 10] [--connection-faults 0.05] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # the flaky HTTP server and the shard writer of the tests

from _common import machine, write_result  # noqa: E402
from selfsup.training import checkpoint as ckpt_io  # noqa: E402
from selfsup.training.checkpoint_codec import CHECKPOINT_FILE  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "faults.json"
TIMING = ("elapsed_s", "samples_per_s")
# BYOL (EMA target, LARS momentum, a momentum schedule): the state a resume must restore; 100 epochs of digits
TRAIN = ["--data", "digits", "--method", "byol", "--epochs", "100", "--batch-size", "64", "--seed", "3",
         "--encoder-option", "widths=[16,32,32,32]", "--method-option", "proj_hidden_dim=128", "--method-option",
         "pred_hidden_dim=128", "--method-option", "proj_dim=64", "--no-monitor", "--threads", "1",
         "--checkpoint-every", "20", "--no-eval", "--quiet"]
DISK_EPOCHS = "10"  # the in-process runs of the disk faults are shorter (each fault costs a setup)
STREAM_SHARDS = (250,) * 8  # samples per generated shard
STREAM = ["--method", "simclr", "--epochs", "3", "--batch-size", "64", "--seed", "5", "--encoder-option",
          "widths=[16,32,32,32]", "--method-option", "proj_hidden_dim=64", "--no-monitor", "--threads", "1",
          "--memory-budget", "0", "--no-eval", "--quiet"]


def cli(*args: Any) -> list[str]:
    return [sys.executable, "-m", "selfsup", *map(str, args)]


def same_run(a: Path, b: Path) -> dict[str, bool]:
    weights = all(torch.equal(x[k], y[k]) for name in ("encoder.safetensors", "method.safetensors")
                  for x, y in [(load_file(str(a / name)), load_file(str(b / name)))] for k in x)
    metrics = [[{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in open(run / "metrics.jsonl")]
               for run in (a, b)]
    return {"weights_identical": weights, "metrics_identical": metrics[0] == metrics[1]}


def kills(work: Path, n: int, rng: random.Random) -> dict[str, Any]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    subprocess.run(cli("train", *TRAIN, "--out", work / "ref"), check=True, env=env, capture_output=True)
    run, partial = work / "run", work / "run.partial"
    proc = subprocess.Popen(cli("train", *TRAIN, "--out", run), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    killed, steps_at = 0, []
    while killed < n:
        started = time.monotonic()
        while not ckpt_io.checkpoint_file(partial).exists() and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(max(0.0, started + rng.uniform(2.5, 6.0) - time.monotonic()))
        if proc.poll() is not None:
            break  # finished before this kill: fewer kills than asked (recorded)
        before = ckpt_io.load(ckpt_io.checkpoint_file(partial)).step
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed += 1
        steps_at.append(before)
        proc = subprocess.Popen(cli("train", "--resume", run, "--quiet", "--no-eval"), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = proc.communicate()
    done = proc.returncode == 0 and (run / "summary.json").exists()
    summary = json.loads((run / "summary.json").read_text()) if done else {}
    return {"faults": killed, "completed": done, "error": err.decode()[-500:] if not done else "",
            "checkpoint_steps_at_kills": steps_at, "final_steps": summary.get("steps"),
            **(same_run(work / "ref", run) if done else {})}


def fill_disk_at(write: int):
    """From now on, the `write`-th checkpoint write (1 = the next) goes to /dev/full; returns the undo."""
    import selfsup.artifacts as artifacts

    real = artifacts.temporary_beside
    count = {"n": 0}

    def beside(path: Path):
        if path.name == CHECKPOINT_FILE:
            count["n"] += 1
            if count["n"] == write:
                fd, tmp = real(path)
                os.close(fd)
                return os.open("/dev/full", os.O_WRONLY), tmp
        return real(path)
    artifacts.temporary_beside = beside
    return lambda: setattr(artifacts, "temporary_beside", real)


def disk_faults(work: Path, n: int, rng: random.Random) -> dict[str, Any]:
    from selfsup.cli import main as selfsup_main

    args = [a if a != "100" else DISK_EPOCHS for a in TRAIN]
    torch.set_num_threads(1)
    assert selfsup_main(["train", *args, "--out", str(work / "ref")]) == 0
    faults, stopped_in_one_line, lost = 0, 0, []
    command = ["train", *args, "--out", str(work / "run")]
    for _ in range(n):
        undo = fill_disk_at(rng.randint(1, 3))
        try:
            code = selfsup_main(command)
        finally:
            undo()
        if code == 0:
            break  # the run finished before the fault: fewer faults than asked (recorded)
        faults += 1
        stopped_in_one_line += code == 2
        kept = [p for p in ckpt_io.checkpoint_files(work / "run.partial") if p.exists()]
        lost.append(ckpt_io.load(kept[0]).step if kept else None)
        command = ["train", "--resume", str(work / "run"), "--quiet", "--no-eval"] if kept else \
            ["train", *args, "--out", str(work / "run"), "--overwrite"]
    done = selfsup_main(command) == 0 if faults else False
    return {"faults": faults, "stopped_in_one_line": stopped_in_one_line, "completed": done,
            "checkpoint_steps_at_faults": lost, **(same_run(work / "ref", work / "run") if done else {})}


def connection_faults(work: Path, rate: float, seed: int) -> dict[str, Any]:
    from servers import flaky_files
    from test_streaming import write_shards

    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    write_shards(work / "shards", STREAM_SHARDS)
    shards = f"shards/shard-{{000..{len(STREAM_SHARDS) - 1:03d}}}.tar?size=16"
    subprocess.run(cli("train", "--data", f"tar:{work}/{shards}", *STREAM, "--out", work / "local"), check=True,
                   env=env, capture_output=True)
    answers, faults, errors = {}, {}, {}
    for name, chance in (("clean", 0.0), ("faulty", rate)):
        with flaky_files(work, chance, seed) as server:
            proc = subprocess.run(cli("train", "--data", f"tar:{server.url}/{shards}", *STREAM, "--out", work / name),
                                  env=env, capture_output=True, text=True)
            answers[name], faults[name], errors[name] = server.served, dict(server.faults), proc.stderr[-500:]
    done = all((work / name / "summary.json").exists() for name in answers)
    ranges = set(answers["clean"]) | set(answers["faulty"])
    lost = sum(max(0, answers["clean"][r] - answers["faulty"][r]) for r in ranges)
    repeated = sum(max(0, answers["faulty"][r] - answers["clean"][r]) for r in ranges)
    return {"fault_chance_per_request": rate, "samples": sum(STREAM_SHARDS), "faults": faults["faulty"],
            "completed": done, "error": "" if done else errors["faulty"] or errors["clean"],
            "answers_fault_free": sum(answers["clean"].values()), "answers_with_faults": sum(answers["faulty"].values()),
            "samples_lost": lost, "samples_repeated": repeated,
            **(same_run(work / "local", work / "faulty") if done else {})}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--disk-faults", type=int, default=10)
    p.add_argument("--connection-faults", type=float, default=0.05, help="chance that a request fails")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help=f"write {OUT.relative_to(ROOT)}")
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="selfsup-faults-"))
    start = time.perf_counter()
    try:
        doc = {"command": "python " + " ".join([str(Path(sys.argv[0]))] + (argv if argv is not None else sys.argv[1:])),
               "protocol": __doc__.split("\n\n")[1].replace("\n", " "), "train": TRAIN, "machine": machine(),
               "kill9": kills(work / "kills", args.kills, rng),
               "disk_full": disk_faults(work / "disk", args.disk_faults, rng),
               "remote_shards": connection_faults(work / "remote", args.connection_faults, args.seed)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    doc["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps({k: doc[k] for k in ("kill9", "disk_full", "remote_shards", "seconds")}, indent=1))
    if args.json:
        write_result(OUT, doc)
        print(f"wrote {OUT}")
    return 0 if all(doc[k]["completed"] for k in ("kill9", "disk_full", "remote_shards")) else 1


if __name__ == "__main__":
    sys.exit(main())
