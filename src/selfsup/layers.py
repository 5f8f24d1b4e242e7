"""Transformer building blocks shared by token encoders (modalities) and by the decoders and predictors of masked
methods: a pre-norm block over scaled dot-product attention, and fixed sine-cosine position tables (MAE's
`get_2d_sincos_pos_embed`, Vaswani et al.'s 1-D table)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


EXPLICIT_ATTENTION_MAX_TOKENS = 144


def explicit_attention_pays(q: torch.Tensor) -> bool:
    """Whether `attention` writes softmax(q k^T / sqrt(d)) v out for these queries rather than calling PyTorch's fused
    kernel: on the CPU, in a reduced precision (bf16 autocast), up to EXPLICIT_ATTENTION_MAX_TOKENS tokens. There the
    fused CPU kernel (`_scaled_dot_product_flash_attention_for_cpu`) is the slower of the two, by several times on
    the shortest sequences and mostly in its backward; past 144 tokens the written-out path's lead is small and
    from 256 on its [T, T] weights cost more than they save (benchmarks/results/attention.json), so the limit stays
    where it wins clearly. In float32 and on CUDA the fused kernel stays."""
    return q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16) \
        and q.shape[-2] <= EXPLICIT_ATTENTION_MAX_TOKENS


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor | None = None,
              dropout: float = 0.0) -> torch.Tensor:
    """Scaled dot-product attention over [..., T, d] queries, keys and values, as `F.scaled_dot_product_attention`
    computes it: `valid` [B, T] bool (False: a key no query may attend to), `dropout` on the attention weights.
    Where `explicit_attention_pays`, written out: the scores q k^T and their softmax in float32 (the fused kernel's
    accumulation precision: rounding the scores to bf16 would double its error), the weights cast back to the
    inputs' precision for the product with v."""
    if not explicit_attention_pays(q):
        mask = None if valid is None else valid[:, None, None, :]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
    scores = (q.float() * q.shape[-1] ** -0.5) @ k.float().transpose(-2, -1)
    empty = None
    if valid is not None:  # a sequence with no valid key attends to nothing (zeros, as the fused kernel gives)
        empty = ~valid.any(dim=1)[:, None, None, None]
        scores = scores.masked_fill(~valid[:, None, None, :] & ~empty, float("-inf"))
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32)
    weights = (weights if empty is None else weights.masked_fill(empty, 0.0)).to(v.dtype)
    return F.dropout(weights, dropout) @ v if dropout else weights @ v


class Attention(nn.Module):
    """Multi-head self-attention (`attention`: PyTorch's fused kernel, or the same product written out where that
    is faster); `valid` [B, T] bool (False: a padding token) keeps padding out of every token's keys, and `dropout`
    drops attention weights while training (BERT's 0.1, which SimCSE's views come from)."""

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
        out = attention(q, k, v, valid, self.dropout if self.training else 0.0)
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
