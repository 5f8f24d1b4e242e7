"""Shared helpers for the benchmark scripts: machine description and result files."""
from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """CPU model, cores, vector/bf16 support, load average and versions, so a figure can be judged."""
    import torch

    info = {"python": sys.version.split()[0], "torch": torch.__version__, "platform": platform.platform(),
            "cpus": os.cpu_count(), "threads": torch.get_num_threads(), "load_average_1min": os.getloadavg()[0]}
    try:
        cpuinfo = open("/proc/cpuinfo").read()
        info["cpu"] = next(l.split(":", 1)[1].strip() for l in cpuinfo.splitlines() if l.startswith("model name"))
        flags = next(l for l in cpuinfo.splitlines() if l.startswith("flags")).split()
        info["avx512"] = any(f.startswith("avx512") for f in flags)
        info["native_bf16"] = "avx512_bf16" in flags or "amx_bf16" in flags
    except (OSError, StopIteration):
        pass
    return info


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
