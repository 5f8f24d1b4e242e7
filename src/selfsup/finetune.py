"""Few-label fine-tuning of a whole encoder plus a linear head (SimCLRv2, Chen et al. 2020b, arXiv:2006.10029).

Unlike the linear probe this updates the encoder, so it needs the run (architecture, weights, modality
views), not only embeddings. Settings are fixed in advance (no search), so test labels cannot steer them.
"""
from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import Split
from .encoders import Encoder
from .evaluation.fewshot import few_label_splits
from .modalities import get_modality
from .run import Run, build_encoder, encode_storage
from .schedules import Schedule
from .training.step import autocast_context
from .views import ViewRequest


def finetune_once(encoder: Encoder, resolved: dict[str, Any], x: torch.Tensor, y: np.ndarray,
                  n_classes: int, steps: int = 300, lr: float | None = None, seed: int = 0) -> nn.Module:
    """Fine-tune a copy of `encoder` with a new linear head on (x, y) with light augmentation; returns encoder+head.
    The optimiser is the one the encoder's architecture declares (`Encoder.fine_tuning`; `lr` overrides its rate),
    with a cosine decay after its warm-up. The network runs at the run's training precision (bf16 autocast where it
    trained so; the loss in float32)."""
    torch.manual_seed(seed)
    modality = get_modality(resolved["modality"])
    spec = resolved["data_spec"]
    views = modality.view_maker(ViewRequest("instance", global_views=1), spec, strength=0.5)
    model = nn.Sequential(copy.deepcopy(encoder), nn.Linear(encoder.out_dim, n_classes))
    recipe = encoder.fine_tuning
    rate = recipe.lr if lr is None else lr
    if recipe.optimizer == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(model.parameters(), lr=rate, weight_decay=recipe.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=rate, momentum=0.9, weight_decay=recipe.weight_decay,
                              nesterov=True)
    factor = Schedule(1.0, 0.0, recipe.warmup)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: factor(step / steps))
    gen = torch.Generator().manual_seed(seed)
    yt = torch.as_tensor(y, dtype=torch.long)
    batch = min(64, len(x))
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(x), (batch,), generator=gen)
        inp = views(x[idx], gen).global_views[0]
        with autocast_context(torch.device("cpu"), resolved.get("precision", "fp32")):
            logits = model(inp)
        loss = F.cross_entropy(logits.float(), yt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def few_label_finetune(run: Run, train: Split, test: Split, fractions: Sequence[float] = (0.01, 0.1),
                       seeds: Sequence[int] = (0, 1, 2, 3, 4), steps: int = 300, baseline: bool = True
                       ) -> dict[str, dict]:
    """Fine-tune from the run's encoder and (with `baseline`) from a random encoder of its architecture on each
    labelled subset; test accuracy mean/std."""
    n_classes = int(max(train.y.max(), test.y.max())) + 1
    starts = {"selfsup": run.encoder}
    if baseline:
        starts["random_encoder"] = build_encoder(run.resolved, seed=run.config.seed + 1000)
    out: dict[str, dict] = {name: {} for name in starts}
    for fraction in fractions:
        subsets = few_label_splits(train.y, fraction, seeds)
        for name, enc in starts.items():
            accs = []
            for seed, idx in zip(seeds, subsets):
                model = finetune_once(enc, run.resolved, train.x[idx], train.y[idx], n_classes, steps, seed=int(seed))
                logits = encode_storage(model, run.modality, run.spec, test.x)
                accs.append(float(np.mean(logits.argmax(1) == test.y)))
            out[name][str(fraction)] = {"mean": float(np.mean(accs)), "std": float(np.std(accs, ddof=1)),
                                        "accs": accs, "n_labels": int(len(subsets[0])), "steps": steps}
    return out
