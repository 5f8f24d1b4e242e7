#!/usr/bin/env python
"""Vision Transformer costs, measured in one run on this machine:

  - masked forward: selfsup's ViT-Tiny on a batch with 75% of the patches hidden (dropped before the first block,
    as MAE) against the same forward on every patch; target <= 0.4x the time;
  - the training step (forward, backward, AdamW step on a mean-pooled linear head) of selfsup's ViT-Tiny against
    timm's ViT of the same size and patching (`timm.models.vision_transformer.VisionTransformer`, no [CLS] token,
    global average pooling), when timm is installed; target ratio >= 1.0 (selfsup's images/s over timm's);
  - MAE's whole training step (masked encoder, decoder, loss, optimiser) in images/s.
Sizes: 28 px greyscale (Fashion-MNIST, 4-px patches: 49 tokens) and 96 px RGB (8-px patches: 144 tokens).
Each timing is the median of --repeats runs of --steps steps after warm-up (selfsup's and timm's training-step
rounds alternate), fp32 and bf16 autocast where the CPU has native bf16. Run it alone: other processes on 2 cores distort every figure.

timm imports torchvision when it is imported (data transforms, `FrozenBatchNorm2d`), and no torchvision wheel may
exist for the torch in use (none on this machine's disk is built for torch 2.13). Its VisionTransformer calls nothing
of torchvision, so `--stub-torchvision` answers those imports with a placeholder package (recorded in the JSON) and
the comparison runs on timm's real model code (`pip install --no-deps timm`):

    python benchmarks/vit_masking.py --json [--stub-torchvision]
"""
from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import statistics
import sys
import time
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, publish  # noqa: E402

from selfsup.methods.mae import MAE, random_keep  # noqa: E402
from selfsup.modalities import get_modality, new_encoder  # noqa: E402
from selfsup.training.devices import cpu_has_native_bf16  # noqa: E402
from selfsup.views import Views  # noqa: E402

SETTINGS = {"28px-grey": (1, 28, 256), "96px-rgb": (3, 96, 64)}  # channels, side, batch


def timed(fn, steps: int, repeats: int) -> float:
    """Median seconds per call of `fn` over `repeats` rounds of `steps` calls, after two warm-up calls."""
    fn()
    fn()
    rounds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        rounds.append((time.perf_counter() - start) / steps)
    return statistics.median(rounds)


def timed_alternately(fns: dict, steps: int, repeats: int) -> dict[str, float]:
    """`timed` for several functions whose rounds alternate (A, B, A, B, ...), so that a change in the machine's
    speed during the measurement (other load, clock) falls on all of them alike; median seconds per call each."""
    for fn in fns.values():
        fn()
        fn()
    rounds: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            rounds[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(r) for name, r in rounds.items()}


def autocast(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


def training_step(model: torch.nn.Module, head: torch.nn.Module, x: torch.Tensor, precision: str):
    optimizer = torch.optim.AdamW([*model.parameters(), *head.parameters()], lr=1e-4)
    labels = torch.randint(0, 10, (x.shape[0],))

    def step() -> None:
        with autocast(precision):
            loss = torch.nn.functional.cross_entropy(head(model(x)).float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


class _Placeholder(type):
    """Stands for any torchvision class; its attributes (enum members) are their own names."""

    def __getattr__(cls, attr: str) -> str:
        return f"{cls.__name__}.{attr}"


class TorchvisionPlaceholder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers `import torchvision...` with empty packages whose capitalised names are classes and other names
    functions doing nothing: enough for timm's module-level imports, never called by its VisionTransformer."""

    def find_spec(self, name, path, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []

        def attribute(name: str):
            if name.startswith("__"):
                raise AttributeError(name)
            return _Placeholder(name, (), {}) if name[:1].isupper() else (lambda *args, **kwargs: None)
        module.__getattr__ = attribute
        return module

    def exec_module(self, module) -> None:
        pass


def timm_available() -> tuple[bool, str]:
    """Whether timm imports here, and its version or why not (it needs a torchvision built for this torch)."""
    try:
        import timm
        from timm.models.vision_transformer import VisionTransformer  # noqa: F401
    except Exception as exc:  # ImportError, or torchvision's operators missing for this torch build
        return False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return True, timm.__version__


def timm_vit(channels: int, side: int, patch: int):
    if not timm_available()[0]:
        return None
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=side, patch_size=patch, in_chans=channels, num_classes=0, embed_dim=192,
                             depth=12, num_heads=3, class_token=False, global_pool="avg")


def measure(name: str, channels: int, side: int, batch: int, precision: str, steps: int, repeats: int) -> dict:
    torch.manual_seed(0)
    spec = {"channels": channels, "size": side}
    ours = new_encoder(get_modality("image"), "vit_tiny", spec)
    x = torch.randn(batch, channels, side, side)
    tokens = ours.token_count(x)
    keep = random_keep(batch, tokens, 0.75, x.device)
    with torch.no_grad(), autocast(precision):
        full_s = timed(lambda: ours(x), steps, repeats)
        masked_s = timed(lambda: ours.tokens(x, keep), steps, repeats)
    result = {"setting": name, "precision": precision, "batch": batch, "tokens": tokens,
              "kept_tokens": int(keep[0].sum()), "patch_size": ours.patch_size,
              "forward_all_tokens_ms": round(1000 * full_s, 2), "forward_75pct_masked_ms": round(1000 * masked_s, 2),
              "masked_over_full": round(masked_s / full_s, 3)}
    contenders = {"selfsup": training_step(ours, torch.nn.Linear(192, 10), x, precision)}
    reference = timm_vit(channels, side, ours.patch_size)
    if reference is not None:
        contenders["timm"] = training_step(reference, torch.nn.Linear(192, 10), x, precision)
    step_s = timed_alternately(contenders, max(1, steps // 2), repeats)
    result["selfsup_train_img_per_s"] = round(batch / step_s["selfsup"], 1)
    if reference is not None:
        result["timm_train_img_per_s"] = round(batch / step_s["timm"], 1)
        result["selfsup_over_timm"] = round(step_s["timm"] / step_s["selfsup"], 3)
    mae = MAE(ours)
    optimizer = torch.optim.AdamW(mae.parameters(), lr=1e-4, betas=(0.9, 0.95))

    def mae_step() -> None:
        with autocast(precision):
            loss, _ = mae(Views([x]))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    result["mae_train_img_per_s"] = round(batch / timed(mae_step, max(1, steps // 2), repeats), 1)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.add_argument("--stub-torchvision", action="store_true",
                   help="answer timm's torchvision imports with a placeholder (see the module's docstring)")
    args = p.parse_args()
    if args.stub_torchvision:
        sys.meta_path.insert(0, TorchvisionPlaceholder())
    precisions = ["fp32"] + (["bf16"] if cpu_has_native_bf16() else [])
    rows = [measure(name, c, s, b, precision, args.steps, args.repeats)
            for name, (c, s, b) in SETTINGS.items() for precision in precisions]
    has_timm, timm_version = timm_available()
    doc = {"benchmark": "Vision Transformer: masked forward cost, training step against timm, MAE step",
           "command": "python benchmarks/vit_masking.py " + " ".join(sys.argv[1:]),
           "timm": timm_version if has_timm else f"not importable here ({timm_version})",
           "torchvision": "placeholder for timm's module-level imports (--stub-torchvision)" if args.stub_torchvision
           else "as installed",
           "targets": {"masked_over_full": 0.4, "selfsup_over_timm": 1.0}, "results": rows, "machine": machine()}
    worst = max(r["masked_over_full"] for r in rows)
    vs_timm = [r["selfsup_over_timm"] for r in rows if "selfsup_over_timm" in r]
    summary = f"masked forward at most {worst}x the full one" + (
        f"; selfsup/timm training step {min(vs_timm)}-{max(vs_timm)}x" if vs_timm else "; timm not importable")
    publish("vit_masking", doc, args.json, summary)


if __name__ == "__main__":
    main()
