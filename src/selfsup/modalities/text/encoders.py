"""Text encoders over token ids (int64 [B, T], 0 = padding, made by the modality's tokenizer).

- ``transformer``: a small Transformer trained from scratch (Vaswani et al. 2017; BERT's pre-norm variant as in
  layers.Block): token embeddings plus fixed sine-cosine positions, `depth` blocks with dropout 0.1 (BERT's; SimCSE's
  two views of a sentence differ only by it), a final LayerNorm, and the mean of the non-padding tokens as the
  sentence embedding (mean pooling: Reimers & Gurevych 2019; SimCSE's unsupervised models are evaluated with it
  as well as with [CLS]).

Padding never changes an embedding: padding tokens are left out of every token's keys and of the pooling, so a
sentence padded to any length (batched with longer ones) gets the same vector.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...encoders import SequenceEncoder
from ...layers import Block, init_transformer, sincos_1d
from ...registry import Registry
from .tokenizer import PAD

text_encoders: Registry = Registry("text encoder")


class TextTransformer(SequenceEncoder):
    """Token ids -> one vector per token (`forward_sequence`) or per text (`forward`: the mean over real tokens)."""

    def __init__(self, vocab_size: int, dim: int = 256, depth: int = 4, heads: int = 4, mlp_ratio: float = 4.0,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.embed_dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.out_dim = dim
        init_transformer(self)
        nn.init.normal_(self.embedding.weight, std=0.02)  # BERT's initialisation of the embedding table
        with torch.no_grad():
            self.embedding.weight[PAD].zero_()
        self._positions: dict[tuple[int, torch.device], torch.Tensor] = {}

    def positions(self, length: int, device: torch.device) -> torch.Tensor:
        key = (length, device)  # made once per length and device
        if key not in self._positions:
            self._positions[key] = sincos_1d(torch.arange(length), self.out_dim).to(device)
        return self._positions[key]

    def forward_sequence(self, x: torch.Tensor, step_mask: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T, dim]; padding tokens (and tokens with `step_mask` False) are no token's keys and come out as 0."""
        valid = x != PAD
        if step_mask is not None:
            valid = valid & step_mask.bool()
        t = self.embedding(x) + self.positions(x.shape[1], x.device).to(self.embedding.weight.dtype)
        t = self.embed_dropout(t)
        for block in self.blocks:
            t = block(t, valid)
        return self.norm(t) * valid.unsqueeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        valid = (x != PAD).unsqueeze(-1)
        tokens = self.forward_sequence(x)
        return (tokens * valid).sum(1) / valid.sum(1).clamp_min(1).to(tokens.dtype)


@text_encoders.register("transformer", "a small Transformer from scratch over the run's WordPiece tokens (4 blocks, "
                                       "256 wide, 4 heads, dropout 0.1), mean-pooled over the real tokens",
                        "Vaswani et al. 2017, arXiv:1706.03762")
def transformer(spec: dict[str, Any], dim: int = 256, depth: int = 4, heads: int = 4, mlp_ratio: float = 4.0,
                dropout: float = 0.1) -> TextTransformer:
    return TextTransformer(spec["tokenizer"]["vocab_size"], dim, depth, heads, mlp_ratio, dropout)
