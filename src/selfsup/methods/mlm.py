"""Masked language modelling: Devlin, Chang, Lee & Toutanova 2019, "BERT: Pre-training of Deep Bidirectional
Transformers for Language Understanding" (the masked-LM objective, for pre-training a text encoder from scratch).

    x_tilde, chosen = mask(x)                      # the `masked_tokens` views: 15% chosen, 80/10/10
    h = f.forward_sequence(x_tilde)                # one vector per token
    loss = CE(head(h)[chosen], x[chosen])          # mlm_loss: the chosen positions only

Paper defaults kept: 15% of the tokens, replaced by [MASK] 80% of the time, by a random token 10%, left 10%; the
prediction head Linear-GELU-LayerNorm-Linear over the vocabulary. Departures: no next-sentence prediction (RoBERTa
showed it does not help), an output layer of its own (BERT ties it to the input embeddings), AdamW at lr 5e-4 x
batch/256 with weight decay 0.01 and the trainer's warm-up + cosine (BERT: Adam 1e-4, batch 256, linear decay).
MLM alone is known to give poor sentence embeddings without a sentence objective after it (SimCSE, TSDAE on top).
"""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from ..encoders import VocabularyEncoder
from ..views import ViewRequest
from .base import Method, OptimizerDefaults, register_method
from .numerics import full_precision


@full_precision
def mlm_loss(logits: torch.Tensor, target: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Cross entropy of the logits [B, T, V] against the original ids [B, T] at the chosen positions only (the others
    ignored by index, so no boolean selection syncs the device)."""
    return F.cross_entropy(logits.flatten(0, 1), target.masked_fill(~chosen, -100).flatten(), ignore_index=-100)


@register_method("mlm", "Masked language modelling: predict the original ids of 15% corrupted tokens (BERT's "
                 "80/10/10), from scratch (text).", "Devlin et al. 2019, arXiv:1810.04805")
class MaskedLanguageModel(Method):
    optimizer = OptimizerDefaults("adamw", lr=5e-4, weight_decay=0.01)
    requested_views = ViewRequest("masked_tokens", global_views=1, clean=True, corruption_mask=True)
    encoder_kind = VocabularyEncoder

    def __init__(self, encoder, ratio: float = 0.15) -> None:
        super().__init__(encoder)
        if not 0 < ratio < 1:
            raise ValueError(f"ratio must be in (0, 1), got {ratio}")
        self.ratio = ratio
        width = self.feature_dim
        self.head = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.LayerNorm(width),
                                  nn.Linear(width, encoder.vocab_size))

    def view_request(self) -> ViewRequest:
        return replace(self.requested_views, options={"ratio": self.ratio})

    def loss_on_views(self, views, step):
        tokens = self.encoder.forward_sequence(views.global_views[0])
        return mlm_loss(self.head(tokens), views.clean, views.corruption_mask), {}
