"""RotNet: Gidaris, Singh & Komodakis 2018, "Unsupervised Representation Learning by Predicting Image Rotations".

    views = one crop of x turned by 0, 90, 180 and 270 degrees      # the `rotations` recipe
    logits_k = head(encoder(view_k))                                 # one forward over the four views
    loss = cross-entropy(logits_k, k), averaged over the 4B views

The task only makes sense for images (the image modality alone makes `rotations` views; others refuse them in one
line). The paper's SGD (momentum 0.9, weight decay 5e-4, lr 0.1 for 128 images, i.e. 0.2 x batch/256, all four
rotations of every image in the batch). Departures: the rotation classifier is an MLP (512 hidden, BatchNorm, ReLU)
on the pooled embedding, not the paper's convolutional blocks on a mid-level feature map, so the encoder is
whatever the modality supplies; views are `geometric` crops (20-100% of the area, horizontal flip) before turning.
"""
from __future__ import annotations

import torch

from ..views import ViewRequest
from .base import OptimizerDefaults, register_method
from .pretext import ViewClassification, view_labels

ROTATIONS = 4


def rotation_labels(batch: int, device: torch.device | None = None) -> torch.Tensor:
    """[4 x batch]: the rotation index k of each view when the four views' batches are concatenated in order."""
    return view_labels(ROTATIONS, batch, device)



@register_method("rotnet", "Predict which of four rotations (0/90/180/270 degrees) an image was turned by "
                 "(images only).", "Gidaris et al. 2018, arXiv:1803.07728")
class RotNet(ViewClassification):
    requested_views = ViewRequest("rotations", global_views=ROTATIONS)
    optimizer = OptimizerDefaults("sgd", lr=0.2, weight_decay=5e-4)
    accuracy_log = "rotation_acc"
