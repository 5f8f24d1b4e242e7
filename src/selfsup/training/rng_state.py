"""Random-number-generator state of one process (the loop's generators, torch, numpy, Python), as tensors + JSON."""
from __future__ import annotations

import random

import numpy as np
import torch


def rng_state(generators: dict[str, torch.Tensor], device: torch.device) -> tuple[dict[str, torch.Tensor], dict]:
    """This process's RNG states: the loop's generators, torch's global CPU/CUDA generators, numpy, random."""
    tensors = {f"gen_{k}": v for k, v in generators.items()}
    tensors["torch_cpu"] = torch.get_rng_state()
    if device.type == "cuda":
        tensors["torch_cuda"] = torch.cuda.get_rng_state(device)
    alg, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy_keys"] = torch.from_numpy(keys.astype(np.int64))
    version, internal, gauss = random.getstate()
    doc = {"numpy": [alg, int(pos), int(has_gauss), float(cached)], "python": [version, list(internal), gauss]}
    return tensors, doc


def restore_global_rng(tensors: dict[str, torch.Tensor], doc: dict, device: torch.device) -> None:
    """Set torch's, numpy's and Python's global RNGs from `rng_state` output."""
    torch.set_rng_state(tensors["torch_cpu"])
    if device.type == "cuda" and "torch_cuda" in tensors:
        torch.cuda.set_rng_state(tensors["torch_cuda"], device)
    alg, pos, has_gauss, cached = doc["numpy"]
    np.random.set_state((alg, tensors["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = doc["python"]
    random.setstate((version, tuple(internal), gauss))
