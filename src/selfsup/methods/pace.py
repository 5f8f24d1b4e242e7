"""Pace prediction: Wang, Jiao & Liu 2020, "Self-supervised Video Representation Learning by Pace Prediction".

    views_k = the clip played at pace k + 1 (every (k+1)-th frame), k = 0 .. paces - 1   # the `paces` recipe
    logits_k = head(encoder(view_k))                                                   # one forward per view
    loss = cross-entropy(logits_k, k), averaged over the paces x B views

Telling a clip played at its own pace from one sped up needs the motion, not the look of a frame (SpeedNet, Benaim
et al. 2020, asks the binary version). Departures: 3 paces by default (the paper: 5, on 64-frame videos; a clip
of T frames fits paces up to about T / 2 with two frames each), no slow-motion paces (frame repetition), no
contrastive term; the head is an MLP (512 hidden) on the pooled embedding, the encoder whatever the modality
supplies. SGD with momentum 0.9 and weight decay 5e-4 as the paper; lr 0.05 x batch/256.
"""
from __future__ import annotations

from ..views import ViewRequest
from .base import OptimizerDefaults, register_method
from .pretext import ViewClassification

PACES = 3


@register_method("pace", "Predict the pace (1x, 2x, 3x) a clip is played at (video only).",
                 "Wang et al. 2020, arXiv:2008.05861")
class PacePrediction(ViewClassification):
    requested_views = ViewRequest("paces", global_views=PACES)
    optimizer = OptimizerDefaults("sgd", lr=0.05, weight_decay=5e-4)
    accuracy_log = "pace_acc"
