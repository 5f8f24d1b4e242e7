"""Transformer building blocks shared by token encoders (modalities) and by the decoders and predictors of masked
methods: a pre-norm block over `scaled_dot_product_attention`, and fixed sine-cosine position tables (MAE's
`get_2d_sincos_pos_embed`, Vaswani et al.'s 1-D table)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head self-attention through `F.scaled_dot_product_attention` (fused kernels where available); `valid`
    [B, T] bool (False: a padding token) keeps padding out of every token's keys, and `dropout` drops attention
    weights while training (BERT's 0.1, which SimCSE's views come from)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        mask = None if valid is None else valid[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """x + attention(norm(x)), then x + MLP(norm(x)) (GELU, hidden `mlp_ratio` x width), as ViT and MAE; `dropout`
    (BERT's hidden and attention dropout) after the attention and the MLP, and on the attention weights."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), valid))
        return x + self.drop(self.mlp(self.norm2(x)))


def init_transformer(module: nn.Module) -> None:
    """MAE's initialisation: Xavier-uniform linear weights, zero biases, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def sincos_1d(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """[len(positions), dim]: sin of positions x 10000^(-2i/dim) in the first half, cos in the second."""
    if dim % 2:
        raise ValueError(f"a sine-cosine table needs an even width, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64, device=positions.device) / (dim / 2))
    angles = positions.double()[:, None] * omega[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def sincos_2d(height: int, width: int, dim: int) -> torch.Tensor:
    """[height * width, dim] for a row-major grid: half the width encodes the row, half the column (MAE)."""
    if dim % 4:
        raise ValueError(f"a 2-D sine-cosine table needs a width divisible by 4, got {dim}")
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.cat([sincos_1d(cols.reshape(-1), dim // 2), sincos_1d(rows.reshape(-1), dim // 2)], dim=1)


class MaskedDecoder(nn.Module):
    """MAE's decoder, shared by the masked methods that predict something at every position from the kept tokens:
    the kept tokens' outputs embedded at `dim`, a learned mask token at every hidden position, the fixed position
    code added to all, a light Transformer, a final norm and a linear map to `out_dim` at every position."""

    def __init__(self, token_dim: int, dim: int, depth: int, heads: int, out_dim: int) -> None:
        super().__init__()
        self.embed = nn.Linear(token_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.out = nn.Linear(dim, out_dim)
        init_transformer(self)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, latent: torch.Tensor, keep: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """latent [B, K, token_dim] (the kept tokens in order), keep [B, T] bool with K True per row, positions
        [B or 1, T, dim] -> [B, T, out_dim]."""
        latent = self.embed(latent)
        b, t = keep.shape
        full = self.mask_token.to(latent.dtype).expand(b, t, -1).masked_scatter(keep[..., None], latent)
        full = full + positions.to(full.dtype)
        for block in self.blocks:
            full = block(full)
        return self.out(self.norm(full))
