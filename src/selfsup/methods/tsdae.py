"""TSDAE: Wang, Reimers & Gurevych 2021, "TSDAE: Using Transformer-based Sequential Denoising Auto-Encoder for
Unsupervised Sentence Embedding Learning".

Delete tokens, encode what is left into one sentence vector, and reconstruct the whole original sentence from that
vector alone: the decoder's cross-attention sees only the sentence vector (a bottleneck), so it must hold the
sentence's content.

    x_tilde = delete(x, p=0.6)                    # the `instance` text views with deletion 0.6, plus the clean ids
    s = f(x_tilde)                                # the encoder's pooled embedding
    logits = decoder(x_shifted_right, memory=[s]) # causal self-attention + cross-attention to s only
    loss = CE(logits, x) over the real tokens     # tsdae_loss

Paper defaults kept: deletion ratio 0.6, reconstruction of every token, cross-attention to the sentence vector only.
Departures: the decoder is a light Transformer (1 block, the encoder's width, 4 heads) with its own token embeddings
and output layer (the paper's decoder is a full BERT copy with embeddings tied to the encoder, for a pretrained
encoder); a learned start vector begins the shifted target instead of [CLS]; AdamW at lr 5e-4 x batch/256, no
weight decay, for encoders trained from scratch (the paper fine-tunes BERT at 3e-5 with batch 8: pass `--lr 3e-5`
for a pretrained `hf:` encoder); the encoder's own pooling (mean by default; the paper found [CLS] and mean close).
"""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from ..encoders import VocabularyEncoder
from ..layers import sincos_1d
from ..views import ViewRequest
from .base import Method, OptimizerDefaults, check_option, register_method
from .numerics import full_precision

PAD = 0  # the padding id of every VocabularyEncoder


@full_precision
def tsdae_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross entropy of the decoder's logits [B, T, V] against the original ids [B, T], over the real (non-padding)
    tokens only."""
    return F.cross_entropy(logits.flatten(0, 1), target.masked_fill(target == PAD, -100).flatten(), ignore_index=-100)


@register_method("tsdae", "Denoising auto-encoder: reconstruct a sentence from the embedding of its 40% kept tokens "
                 "(a decoder that attends only to the sentence vector).", "Wang et al. 2021, arXiv:2104.06979")
class TSDAE(Method):
    optimizer = OptimizerDefaults("adamw", lr=5e-4, weight_decay=0.0)
    requested_views = ViewRequest("instance", global_views=1, clean=True, options={"deletion": 0.6})
    encoder_kind = VocabularyEncoder

    def __init__(self, encoder, deletion: float = 0.6, decoder_depth: int = 1, decoder_heads: int = 4) -> None:
        super().__init__(encoder)
        check_option("tsdae", "deletion", deletion, 0.0)
        self.deletion = deletion
        width = self.feature_dim
        if width % decoder_heads:
            raise ValueError(f"decoder_heads={decoder_heads} does not divide the embedding width {width}")
        self.token_embedding = nn.Embedding(encoder.vocab_size, width, padding_idx=PAD)
        self.start = nn.Parameter(torch.zeros(width))
        layer = nn.TransformerDecoderLayer(width, decoder_heads, 4 * width, dropout=0.1, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, decoder_depth)
        self.norm = nn.LayerNorm(width)
        self.output = nn.Linear(width, encoder.vocab_size)
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    def view_request(self) -> ViewRequest:
        return replace(self.requested_views, options={"deletion": self.deletion})

    def logits(self, sentence: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """[B, T, V]: the decoder's prediction of each target id from the ones before it and the sentence vector."""
        b, t = target.shape
        shifted = torch.cat([self.start.expand(b, 1, -1).to(sentence.dtype),
                             self.token_embedding(target[:, :-1]).to(sentence.dtype)], dim=1)
        shifted = shifted + sincos_1d(torch.arange(t), shifted.shape[-1]).to(shifted)
        causal = torch.triu(torch.full((t, t), float("-inf"), device=target.device), diagonal=1)
        out = self.decoder(shifted, sentence.unsqueeze(1), tgt_mask=causal, tgt_is_causal=True)
        return self.output(self.norm(out))

    def loss_on_views(self, views, step):
        sentence = self.encoder(views.global_views[0])
        return tsdae_loss(self.logits(sentence, views.clean), views.clean), {}
