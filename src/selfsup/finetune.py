"""Fine-tuning a whole encoder plus a linear head on labels: the protocol behind `finetune` results.

Unlike the linear probe this updates the encoder, so it needs the run (architecture, weights, modality views), not
only embeddings. The recipe, for every encoder alike:
- the head is a linear layer, after a BatchNorm without affine parameters where the architecture declares it
  (`FineTuning.head_norm`: the Transformers; MAE's linear-probing head, He et al. 2022, appendix A.2), and starts
  from the linear probe's solution on the frozen features (LP-FT, Kumar et al. 2022, arXiv:2202.10054: fine-tuning
  from a fitted head distorts the pretrained features less than from a random one, so it starts where the linear
  probe ends). Without the BatchNorm, a ViT whose features share one large common direction (MAE on digits) got a
  head far below the standardised probe, and fine-tuning started from it;
- then every parameter trains with the optimiser the encoder's architecture declares (`Encoder.fine_tuning`: SGD
  for convolutional networks, AdamW with layer-wise learning-rate decay for ViTs, as MAE's recipe), a linear
  warm-up where declared, then cosine decay, label smoothing 0.1 (MAE, DeiT), batch 64;
- views: the modality's instance recipe at the strength the architecture declares (`FineTuning.view_strength`: 0.5,
  or 0 for the tabular encoders: rows as they are, chosen on validation splits, benchmarks/tabular_recipes.py)
  under the data source's own view options (digits: no mirror images, crops of at least 56%);
- the length follows the labelled set: `epochs` passes over it, at least `min_steps` and at most `max_steps`
  (default: the architecture's `FineTuning.max_steps`);
- the learning rate is chosen on a stratified fifth of the labelled subset among the declared rate x `lr_factors`
  (when the subset has at least 4 validation samples a class, else the declared rate), then the model is trained
  again on the whole subset. Test labels never steer anything.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import Split
from .encoders import Encoder
from .evaluation.fewshot import few_label_splits
from .evaluation.linear import fit_softmax
from .evaluation.splits import stratified_validation_split
from .modalities import get_modality
from .resolved import Resolved
from .run import Run, encode_storage, untrained_encoder
from .schedules import Schedule
from .training.step import autocast_context
from .views import ViewRequest

LABEL_SMOOTHING = 0.1
BATCH = 64
LR_FACTORS = (1 / 3, 1.0, 3.0)
VIEW_SIZE_OPTIONS = ("size", "local_size")  # the training run's view sizes: fine-tuning views keep the images' size


def fit_head(features: torch.Tensor, y: torch.Tensor, n_classes: int, standardise: bool = False,
             weight_decay: float = 1e-4, iterations: int = 100) -> nn.Sequential:
    """The linear probe as a torch head: a linear layer fitted by the evaluation's multinomial logistic regression
    (evaluation.linear's L-BFGS solver, float32) on the frozen features, with mean cross-entropy +
    weight_decay * ||W||^2. With `standardise`, a BatchNorm1d without affine parameters comes first, its running
    statistics the features' mean and variance, and the linear layer is fitted on the standardised features; in
    training mode it normalises by the batch, so the head follows the features as the encoder changes."""
    features = features.float()
    norm = nn.BatchNorm1d(features.shape[1], affine=False) if standardise else nn.Identity()
    linear = nn.Linear(features.shape[1], n_classes)
    with torch.no_grad():
        if standardise:
            norm.running_mean.copy_(features.mean(0))
            norm.running_var.copy_(features.var(0) if len(features) > 1 else torch.ones(features.shape[1]))
        inputs = norm.eval()(features)
    # fit_softmax's penalty is ||W||^2 / (2 C n): C = 1 / (2 weight_decay n) gives weight_decay ||W||^2
    w, b = fit_softmax(inputs, y, n_classes, C=1.0 / (2 * weight_decay * len(features)), max_iter=iterations)
    with torch.no_grad():
        linear.weight.copy_(w)
        linear.bias.copy_(b)
    return nn.Sequential(norm, linear)


def parameter_groups(encoder: Encoder, head: nn.Module, lr: float, layer_decay: float) -> list[dict[str, Any]]:
    """One optimiser group per encoder depth, at lr x layer_decay^(deepest - depth); the head at lr."""
    depths, deepest = encoder.parameter_depths()
    groups: dict[int, list[nn.Parameter]] = {}
    for name, p in encoder.named_parameters():
        groups.setdefault(depths[name], []).append(p)
    return [{"params": ps, "lr": lr * layer_decay ** (deepest - d)} for d, ps in sorted(groups.items())] + [
        {"params": list(head.parameters()), "lr": lr}]


def training_steps(n: int, epochs: float, min_steps: int, max_steps: int) -> int:
    return int(min(max_steps, max(min_steps, math.ceil(epochs * n / BATCH))))


def finetune_once(encoder: Encoder, resolved: Resolved, x: torch.Tensor, y: np.ndarray, n_classes: int,
                  steps: int, lr: float | None = None, seed: int = 0) -> nn.Module:
    """Fine-tune a copy of `encoder` with a head started at the linear probe on (x, y) for `steps` steps at rate `lr`
    (default: the architecture's declared rate); returns encoder+head in eval mode. The network runs at the run's
    training precision (bf16 autocast where it trained so; the loss in float32)."""
    torch.manual_seed(seed)
    modality = get_modality(resolved.modality)
    spec = resolved.data_spec
    recipe = encoder.fine_tuning
    options = {k: v for k, v in resolved.augmentation.items() if k not in VIEW_SIZE_OPTIONS}
    views = modality.view_maker(ViewRequest("instance", global_views=1), spec, recipe.view_strength, options)
    yt = torch.as_tensor(y, dtype=torch.long)
    backbone = copy.deepcopy(encoder)
    features = torch.as_tensor(encode_storage(backbone, modality, spec, x), dtype=torch.float32)
    head = fit_head(features, yt, n_classes, recipe.head_norm)
    model = nn.Sequential(backbone, head)
    rate = recipe.lr if lr is None else lr
    groups = parameter_groups(backbone, head, rate, recipe.layer_decay)
    if recipe.optimizer == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(groups, weight_decay=recipe.weight_decay)
    else:
        opt = torch.optim.SGD(groups, momentum=0.9, weight_decay=recipe.weight_decay, nesterov=True)
    factor = Schedule(1.0, 0.0, recipe.warmup)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: factor(step / steps))
    gen = torch.Generator().manual_seed(seed)
    batch = min(BATCH, len(x))
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(x), (batch,), generator=gen)
        inp = views(x[idx], gen).global_views[0]
        with autocast_context(torch.device("cpu"), resolved.precision):
            logits = model(inp)
        loss = F.cross_entropy(logits.float(), yt[idx], label_smoothing=LABEL_SMOOTHING)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def accuracy(model: nn.Module, resolved: Resolved, x: torch.Tensor, y: np.ndarray) -> float:
    logits = encode_storage(model, get_modality(resolved.modality), resolved.data_spec, x)
    return float(np.mean(logits.argmax(1) == np.asarray(y)))


def choose_lr(encoder: Encoder, resolved: Resolved, x: torch.Tensor, y: np.ndarray, n_classes: int,
              steps: int, factors: Sequence[float], seed: int) -> tuple[float, dict[str, float]]:
    """The declared rate x the factor of best accuracy on a stratified fifth of (x, y), trained on the rest (the
    declared rate alone when the fifth would hold fewer than 4 samples a class)."""
    base = encoder.fine_tuning.lr
    if len(factors) < 2 or len(y) < 20 * n_classes:
        return base, {}
    fit, val = stratified_validation_split(y, 0.2, seed)
    scores = {}
    for rate in sorted(base * factor for factor in factors):
        model = finetune_once(encoder, resolved, x[fit], y[fit], n_classes, steps, rate, seed)
        scores[rate] = accuracy(model, resolved, x[val], y[val])
    best = max(scores, key=lambda rate: scores[rate])  # the first of equal scores: the smaller rate
    return best, {f"{rate:.3g}": score for rate, score in scores.items()}


def few_label_finetune(run: Run, train: Split, test: Split, fractions: Sequence[float] = (0.01, 0.1),
                       seeds: Sequence[int] = (0, 1, 2, 3, 4), epochs: float = 30, min_steps: int = 100,
                       max_steps: int | None = None, lr_factors: Sequence[float] = LR_FACTORS, baseline: bool = True
                       ) -> dict[str, dict]:
    """Fine-tune from the run's encoder and (with `baseline`) from a random encoder of its architecture on each
    labelled subset (a fraction of `train`'s labels per class, one subset a seed); test accuracy mean/std, the
    steps and the rate chosen on validation for every seed. `max_steps` defaults to the architecture's declared
    `FineTuning.max_steps`."""
    n_classes = int(max(train.y.max(), test.y.max())) + 1
    starts = {"selfsup": run.encoder}
    if baseline:
        starts["random_encoder"] = untrained_encoder(run, train.x)
    out: dict[str, dict] = {name: {} for name in starts}
    for fraction in fractions:
        subsets = few_label_splits(train.y, fraction, seeds)
        steps = training_steps(len(subsets[0]), epochs, min_steps, max_steps or run.encoder.fine_tuning.max_steps)
        for name, enc in starts.items():
            accs, rates, searches = [], [], []
            for seed, idx in zip(seeds, subsets):
                x, y = train.x[idx], train.y[idx]
                lr, scores = choose_lr(enc, run.resolved, x, y, n_classes, steps, lr_factors, int(seed))
                model = finetune_once(enc, run.resolved, x, y, n_classes, steps, lr, int(seed))
                accs.append(accuracy(model, run.resolved, test.x, test.y))
                rates.append(lr)
                searches.append(scores)
            out[name][str(fraction)] = {"mean": float(np.mean(accs)),
                                        "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
                                        "accs": accs, "n_labels": int(len(subsets[0])), "steps": steps,
                                        "lr": rates, "validation": searches}
    return out
