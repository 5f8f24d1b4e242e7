"""Shared helpers for the benchmark scripts: machine description and result files."""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def machine(threads: int | None = None) -> dict:
    """CPU model, cores, the vector/bf16 flags detected, the precision selfsup's `auto` picks here, load average
    and versions, so a figure can be judged. Everything comes from detection on the machine that ran, except
    `threads`: the threads the measured run was given (`threads`, e.g. selfsup.train's, which sets them for the run
    only), else torch's count now."""
    import torch

    from selfsup.training.devices import cpu_has_native_bf16, resolve_precision

    info = {"python": sys.version.split()[0], "torch": torch.__version__, "platform": platform.platform(),
            "cpus": os.cpu_count(), "threads": threads or torch.get_num_threads(),
            "load_average_1min": os.getloadavg()[0],
            "native_bf16": cpu_has_native_bf16(),
            "auto_precision": resolve_precision("auto", torch.device("cpu"))}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(l.split(":", 1)[1].strip() for l in cpuinfo.splitlines() if l.startswith("model name"))
        flags = set(next(l for l in cpuinfo.splitlines() if l.startswith("flags")).split(":", 1)[1].split())
        info["cpu_flags"] = [f for f in CPU_FLAGS if f in flags]
        info["avx512"] = "avx512f" in flags
    except (OSError, StopIteration):
        pass
    info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    return info


def flat_options(options: dict) -> dict:
    """Options as the command line gives them: mappings (encoder_options, ...) by their keys, the rest as they are."""
    return {k: v for key, value in options.items() for k, v in (value.items() if isinstance(value, dict)
                                                                 else [(key, value)])}


def options_text(options: dict) -> str:
    """flat_options as a table shows them: "key=value, key=value"."""
    return ", ".join(f"{k}={v}" for k, v in flat_options(options).items())


def result_of(path: Path, data: str) -> dict:
    """The result document at `path` as it is now (read again before each write: runs may go side by side), or {};
    one data set a file: a document of runs on another data set is refused in one line."""
    doc = json.loads(path.read_text()) if path.exists() else {}
    if doc.get("data", data) != data:
        raise SystemExit(f"{path} holds runs on {doc['data']}, not {data}: give another --name")
    return doc


def write_result(path: Path, doc: dict) -> Path:
    """Write a result document as JSON atomically (selfsup.artifacts: temporary file + rename)."""
    from selfsup.artifacts import write_json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, doc)
    return path


def save(name: str, result: dict) -> Path:
    """Write benchmarks/results/NAME.json (atomically, with the time written) and return its path."""
    return write_result(RESULTS / f"{name}.json", {**result, "written": time.strftime("%Y-%m-%d %H:%M:%S")})


def publish(name: str, result: dict, as_json: bool, summary: str) -> Path:
    """Save benchmarks/results/NAME.json and print it (as one JSON object with `as_json`, else `summary` and the path)."""
    path = save(name, result)
    if as_json:
        print(json.dumps(result))
    else:
        print(f"{summary} -> {path}")
    return path


def reference_python() -> str:
    """The interpreter of the reference environment (torch 2.14.1 + torchvision + LightlySSL 1.6.0), built by
    scripts/reference_env.sh when missing or incomplete."""
    import subprocess

    root = RESULTS.parents[1]
    proc = subprocess.run(["bash", str(root / "scripts" / "reference_env.sh")], capture_output=True, text=True,
                          cwd=root)
    if proc.returncode != 0:
        raise SystemExit(f"scripts/reference_env.sh failed: {proc.stderr[-2000:]}")
    return str(root / proc.stdout.strip().splitlines()[-1])


def lightly_simclr(python: str, minutes: float, seed: int, out: Path, every: float) -> dict:
    """Run benchmarks/lightly_simclr.py (LightlySSL 1.6.0's SimCLR on Fashion-MNIST) in the reference environment;
    its run.json (steps, images/s, the minutes at which it embedded the training images into OUT/minuteM.npy)."""
    import subprocess

    cmd = [python, str(Path(__file__).resolve().parent / "lightly_simclr.py"), "--minutes", str(minutes), "--seed",
           str(seed), "--every", str(every), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"lightly_simclr.py failed: {proc.stderr[-3000:]}")
    return json.loads((out / "run.json").read_text())
