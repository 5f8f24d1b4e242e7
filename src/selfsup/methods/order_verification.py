"""Temporal order verification: Misra, Zitnick & Hebert 2016, "Shuffle and Learn: Unsupervised Learning using
Temporal Order Verification".

    ordered = a clip's frames in order, shuffled = the same frames with two of them swapped   # `frame_order` views
    logits = head(encoder(ordered)), head(encoder(shuffled))
    loss = cross-entropy(logits, [in order, shuffled]), averaged over the 2B clips

Whether frames follow each other can only be told from how things move between them. Departures: the paper
samples three-frame tuples from high-motion windows and feeds each frame to a shared image network whose features
are concatenated; here the whole clip goes through the video encoder, and a negative swaps two frames at least two
apart (the paper's negatives put the middle frame outside its neighbours); a reversed clip is never a negative (it
is a valid clip of the opposite motion). The head is an MLP (512 hidden) on the pooled embedding. SGD with
momentum 0.9 and weight decay 5e-4 (the paper's Caffe solver), lr 0.05 x batch/256.
"""
from __future__ import annotations

from ..views import ViewRequest
from .base import OptimizerDefaults, register_method
from .pretext import ViewClassification


@register_method("order_verification", "Tell a clip in order from the same clip with two frames swapped "
                 "(video only).", "Misra et al. 2016, arXiv:1603.08561")
class OrderVerification(ViewClassification):
    requested_views = ViewRequest("frame_order", global_views=2)
    optimizer = OptimizerDefaults("sgd", lr=0.05, weight_decay=5e-4)
    accuracy_log = "order_acc"
