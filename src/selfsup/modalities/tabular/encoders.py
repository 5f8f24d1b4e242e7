"""Tabular encoders over prepared tables [B, D] (layout in preprocess.py).

Both embed each categorical column: the hot slot of its one-hot block (missing, unknown or a known
category) indexes an `nn.Embedding`. Both expose `out_dim` and `input_width` (= D, the prepared width,
which reconstruction methods such as VIME and the denoising autoencoder size their heads by).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...encoders import Encoder, FineTuning
from ...errors import ConfigError
from ...registry import Registry
from .preprocess import Layout

tabular_encoders: Registry = Registry("tabular encoder")
# Fine-tuning on labelled rows (selfsup.finetune): AdamW at 1e-3 as SCARF fine-tunes, on the rows as they are rather
# than corrupted copies, for up to 3,000 steps; chosen on validation splits of the training rows of four tables
# (benchmarks/tabular_recipes.py; figures in docs/benchmarks.md).
TABLE_FINE_TUNING = FineTuning("adamw", lr=1e-3, weight_decay=1e-5, view_strength=0.0, max_steps=3000)


class CategoricalSlots(nn.Module):
    """Prepared [B, D] -> (non-categorical inputs [B, D - sum K], global embedding indices [B, n_cat])."""

    def __init__(self, layout: Layout) -> None:
        super().__init__()
        cat_dims = [s + k for s, size in layout.cat_blocks for k in range(size)]
        other = sorted(set(range(layout.dim)) - set(cat_dims))
        # slot_value[d, j] = slot number of dim d inside block j (0 elsewhere): onehot @ slot_value = slot
        slot_value = torch.zeros(len(cat_dims), len(layout.cat_blocks))
        offsets, pos = [], 0
        for j, (_, size) in enumerate(layout.cat_blocks):
            slot_value[pos:pos + size, j] = torch.arange(size, dtype=torch.float32)
            offsets.append(pos)
            pos += size
        self.register_buffer("cat_dims", torch.tensor(cat_dims, dtype=torch.long), persistent=False)
        self.register_buffer("other_dims", torch.tensor(other, dtype=torch.long), persistent=False)
        self.register_buffer("slot_value", slot_value, persistent=False)
        self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.long), persistent=False)
        self.n_other, self.n_cat, self.n_slots = len(other), len(layout.cat_blocks), len(cat_dims)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        other = x.index_select(1, self.other_dims) if self.n_other else x[:, :0]
        if not self.n_cat:
            return other, torch.zeros(x.shape[0], 0, dtype=torch.long, device=x.device)
        slots = (x.index_select(1, self.cat_dims).float() @ self.slot_value).round().long()
        return other, slots + self.offsets


def _norm(kind: str, width: int) -> nn.Module:
    if kind == "batchnorm":
        return nn.BatchNorm1d(width)
    if kind == "layernorm":
        return nn.LayerNorm(width)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"encoder option norm must be batchnorm, layernorm or none, got {kind!r}")


class TabularMLP(Encoder):
    """Categorical embeddings + `depth` x (Linear -> norm -> ReLU -> dropout). The feature is every block's output
    side by side (`readout="concat"`, depth x width, the default: the early blocks keep what the input held; chosen
    over the last block on validation splits of the training rows of four tables, benchmarks/tabular_recipes.py) or
    the last block's output (`readout="last"`, SCARF's choice; with `last_activation=False` the last block stops
    after its normalisation)."""

    fine_tuning = TABLE_FINE_TUNING

    def __init__(self, spec: dict[str, Any], width: int = 256, depth: int = 4, norm: str = "batchnorm",
                 dropout: float = 0.0, cat_embed_dim: int = 8, last_activation: bool = True,
                 readout: str = "concat") -> None:
        super().__init__()
        layout = Layout.from_spec(spec)
        self.input_width = layout.dim
        self.slots = CategoricalSlots(layout)
        self.embed = nn.Embedding(max(1, self.slots.n_slots), cat_embed_dim) if self.slots.n_cat else None
        dim = self.slots.n_other + self.slots.n_cat * cat_embed_dim
        if depth < 1 or width < 1:
            raise ConfigError(f"encoder options depth and width must be >= 1, got depth={depth}, width={width}")
        if readout not in ("last", "concat"):
            raise ConfigError(f"encoder option readout must be last or concat, got {readout!r}")
        blocks: list[nn.Module] = []
        for i in range(depth):
            layers = [nn.Linear(dim, width), _norm(norm, width)]
            if i < depth - 1 or last_activation:
                layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            blocks.append(nn.Sequential(*layers))
            dim = width
        self.net = nn.Sequential(*blocks)
        self.readout = readout
        self.out_dim = width * depth if readout == "concat" else width

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        other, idx = self.slots(x)
        if self.embed is not None:
            other = torch.cat([other, self.embed(idx).flatten(1)], dim=1)
        if self.readout == "last":
            return self.net(other)
        outputs = []
        for block in self.net:
            other = block(other)
            outputs.append(other)
        return torch.cat(outputs, dim=1)


class FTTransformer(Encoder):
    """FT-Transformer-style encoder (Gorishniy et al. 2021): one token per input (numeric value or
    indicator: x * w_i + b_i; categorical column: embedding + bias), a [CLS] token, pre-norm
    Transformer blocks; the feature is the final LayerNorm of the [CLS] token. Fine-tuned with AdamW at 1e-4
    (the paper's scale for Transformers on tables)."""

    fine_tuning = FineTuning("adamw", lr=1e-4, weight_decay=1e-5, view_strength=0.0, max_steps=3000)

    def __init__(self, spec: dict[str, Any], d_token: int = 64, n_blocks: int = 3, n_heads: int = 8,
                 ffn_factor: float = 4 / 3, dropout: float = 0.1) -> None:
        super().__init__()
        layout = Layout.from_spec(spec)
        self.input_width = layout.dim
        self.slots = CategoricalSlots(layout)
        n_tok = self.slots.n_other + self.slots.n_cat
        self.num_weight = nn.Parameter(torch.randn(self.slots.n_other, d_token) * d_token ** -0.5)
        self.cat_embed = nn.Embedding(max(1, self.slots.n_slots), d_token)
        self.bias = nn.Parameter(torch.randn(n_tok, d_token) * d_token ** -0.5)
        self.cls = nn.Parameter(torch.randn(1, 1, d_token) * d_token ** -0.5)
        block = nn.TransformerEncoderLayer(d_token, n_heads, int(ffn_factor * d_token), dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, n_blocks, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_token)
        self.out_dim = d_token

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        other, idx = self.slots(x)
        tokens = [other.unsqueeze(-1) * self.num_weight]
        if self.slots.n_cat:
            tokens.append(self.cat_embed(idx))
        t = torch.cat(tokens, dim=1) + self.bias
        t = torch.cat([self.cls.expand(x.shape[0], -1, -1), t], dim=1)  # x.shape[0]: a traced batch size stays dynamic
        return self.norm(self.blocks(t)[:, 0])


@tabular_encoders.register("mlp", "MLP with categorical embeddings, 4 x 256 (Linear-BN-ReLU), SCARF's encoder size; "
                           "the embedding is the four blocks side by side (1,024-d)",
                           "Bahri et al. 2022 (SCARF)", small={"width": 32, "depth": 2})
def mlp_encoder(spec: dict[str, Any], **options: Any) -> Encoder:
    return TabularMLP(spec, **options)


@tabular_encoders.register("ft_transformer", "FT-Transformer: feature tokens + [CLS], 3 pre-norm blocks, 64-d",
                           "Gorishniy et al. 2021, arXiv:2106.11959",
                           small={"d_token": 16, "n_blocks": 1, "n_heads": 2})
def ft_transformer_encoder(spec: dict[str, Any], **options: Any) -> Encoder:
    return FTTransformer(spec, **options)
