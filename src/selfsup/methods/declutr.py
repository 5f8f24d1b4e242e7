"""DeCLUTR: Giorgi, Nitski, Wang & Bader 2021, "DeCLUTR: Deep Contrastive Learning for Unsupervised Textual
Representations".

An anchor span and a positive span drawn from the same item (overlapping it, beside it or inside it) must find each
other among the batch's spans: InfoNCE with in-batch negatives on the encoder's mean-pooled embeddings, no
projection head.

    a, p = span(x, ~Beta(4, 2)), span(x, ~Beta(2, 4))   # the `spans` views
    loss = NT-Xent(f(a), f(p), tau)                     # simclr.nt_xent_loss, both directions

Paper defaults kept: anchor lengths from Beta(4, 2) and positive lengths from Beta(2, 4) (as fractions of the item
here, where the paper draws 32-512 tokens from documents of at least 2,048), no projection head, temperature 0.05.
Departures: one positive per anchor (the paper: 2, averaged), no masked-language-modelling loss beside the
contrastive one (the paper adds it for a pretrained encoder; `mlm` is a method of its own), AdamW at lr 5e-4 x
batch/256 for encoders trained from scratch (the paper fine-tunes at 5e-5: pass `--lr 5e-5` for an `hf:` encoder).
Best on paragraphs and documents; on single sentences the spans are short.
"""
from __future__ import annotations

from ..views import ViewRequest
from .base import Method, OptimizerDefaults, check_option, register_method
from .simclr import nt_xent_loss


@register_method("declutr", "Contrastive: an anchor span and a positive span of the same item find each other "
                 "among the batch's spans (text).", "Giorgi et al. 2021, arXiv:2006.03659")
class DeCLUTR(Method):
    optimizer = OptimizerDefaults("adamw", lr=5e-4, weight_decay=0.0)
    requested_views = ViewRequest("spans")

    def __init__(self, encoder, temperature: float = 0.05) -> None:
        super().__init__(encoder)
        check_option("declutr", "temperature", temperature, 0.0)
        self.temperature = temperature

    def loss_on_views(self, views, step):
        anchors, positives = self.encode(views.global_views)
        if self.distributed:
            return nt_xent_loss(anchors, positives, self.temperature, self.gather(anchors), self.gather(positives),
                                self.rank * len(anchors)), {}
        return nt_xent_loss(anchors, positives, self.temperature), {}
