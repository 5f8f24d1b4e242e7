"""`Encoder`: ``forward(x) -> [B, out_dim]``, one vector per sample. `input_width` is how many values one
input position holds when the input is a vector or a sequence of vectors (a prepared table row's width,
a series' channels), None otherwise (images); reconstruction heads are sized by it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn


@dataclass(frozen=True)
class FineTuning:
    """How an architecture is fine-tuned whole on labels (selfsup.finetune), declared by its encoder class:
    convolutional networks with batch norm take SGD (SimCLRv2's protocol), Transformers AdamW with a warm-up and
    layer-wise learning-rate decay (MAE's fine-tuning recipe, He et al. 2022, appendix A.3: 0.75 for ViT-L, 0.65
    for ViT-B; 0.75 here for the 12 narrow blocks of ViT-Tiny). Learning rates are for the protocol's batch of 64;
    the protocol also tries a third and three times the rate, chosen on validation."""

    optimizer: str = "sgd"  # "sgd" (Nesterov momentum 0.9) or "adamw" (betas 0.9, 0.999)
    lr: float = 0.05
    weight_decay: float = 5e-4
    warmup: float = 0.0  # fraction of the steps with a linear warm-up before the cosine decay
    layer_decay: float = 1.0  # a parameter at depth d of D (Encoder.parameter_depths) trains at lr x decay^(D - d)
    view_strength: float = 0.5  # strength of the instance views during fine-tuning (0: the inputs as they are)
    max_steps: int = 1000  # the protocol trains 30 passes over the labelled rows, at least 100 and at most this
    #: the head standardises the features by a BatchNorm without affine parameters before its linear layer (MAE's
    #: linear-probing head): for features that share one large common direction, as a mean of tokens that carry
    #: their fixed positions does; off elsewhere (the tables' MLPs fine-tuned worse with it)
    head_norm: bool = False


class Encoder(nn.Module):
    """Maps a batch to [B, out_dim] features; subclasses set `out_dim` (and `input_width` where it applies)."""

    out_dim: int
    input_width: int | None = None
    fine_tuning: ClassVar[FineTuning] = FineTuning()
    #: whether this encoder's weights start from a pretrained model or table instead of at random (set per instance)
    pretrained_start: bool = False
    #: how a user gives this architecture a pretrained start, named when a run cannot learn from a random one
    pretrained_advice: ClassVar[str] = ""

    def forward(self, x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        raise NotImplementedError

    def parameter_depths(self) -> tuple[dict[str, int], int]:
        """(depth of every named parameter, the largest depth), for layer-wise learning-rate decay: 0 is the input
        end. Default: every parameter at depth 0 of 0 (one rate for the whole encoder)."""
        return {name: 0 for name, _ in self.named_parameters()}, 0
