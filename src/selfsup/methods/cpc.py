"""CPC: van den Oord, Li and Vinyals 2018, "Representation Learning with Contrastive Predictive Coding".

    z = g_enc(x)                       # one vector per step (audio: per 10 ms frame), [B, T, D]
    c = g_ar(z)                        # an autoregressive summary of z_<=t: a one-layer GRU, 256 units
    for k in 1..K:                     # K = 12 future steps
        s_k(t, j) = z_j(t + k)^T W_k c(t)      # a bilinear score, one W_k per offset
        loss_k = InfoNCE: the clip's own z(t + k) among the candidates' z(t + k)
    loss = mean over k of loss_k

Candidates: the same step t + k of every clip of the (global) batch, the clip's own being the positive (the paper
draws negatives from the minibatch; taking all clips at the same step needs no sampling, and negatives from the
same clip at other steps are left out, as in its "mixed speakers" setting). Steps whose t or t + k lie past a
clip's end (padding) are left out of the loss, and padded steps of other clips are no candidates. The encoder must give every step an output of its own
(`FrameEncoder`: the waveform CNN, the dilated CNN): with a vector repeated over several steps, predicting a later
step would be copying. Paper defaults: K = 12, GRU of 256 units, Adam lr 2e-4 (AdamW without decay), one crop of each clip (the paper
cuts 20480-sample windows; here `geometric` crops of 80% of the stored clip). The downstream representation is the
encoder's (z pooled over time; the paper also probes c: the GRU is a training head here, not saved).
Under torchrun the candidates are gathered from every process with their gradients flowing back to each process's
own part (`Method.gather`, proved in collectives.py), as SimCLR's: the average of the processes' losses is the
global batch's loss when every process has as many valid steps (clips without padding; tested on shards), and a
mean of per-process means otherwise.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..encoders import FrameEncoder
from ..views import ViewRequest
from .base import Method, OptimizerDefaults, check_option, register_method
from .numerics import full_precision


@full_precision
def future_info_nce(predictions: torch.Tensor, z: torch.Tensor, valid: torch.Tensor, k: int,
                    all_z: torch.Tensor | None = None, offset: int = 0,
                    all_valid: torch.Tensor | None = None) -> torch.Tensor:
    """InfoNCE of predictions [B, T, D] (made at step t for step t + k) against z [B, T, D]: at each step the
    candidates are every clip's z(t + k) that is not padding (`all_z` [B_all, T, D] and `all_valid` across processes,
    this process's clips at `offset`), the positive the clip's own. Mean over the steps where `valid` [B, T] holds at
    t and t + k."""
    candidates = z if all_z is None else all_z
    if all_valid is not None:
        candidate_valid = all_valid
    else:  # without the other processes' validity every gathered step counts
        candidate_valid = valid if all_z is None else torch.ones(all_z.shape[:2], dtype=torch.bool, device=z.device)
    b, t = z.shape[:2]
    if t <= k:
        return z.new_zeros(())
    pred, target = predictions[:, :t - k], candidates[:, k:]  # B x T-k x D, B_all x T-k x D
    logits = torch.einsum("btd,ctd->btc", pred, target)  # each step's score of every clip's future
    logits = logits.masked_fill(~candidate_valid[:, k:].T.unsqueeze(0), float("-inf"))  # padding is no negative
    labels = (torch.arange(b, device=z.device) + offset)[:, None].expand(b, t - k)
    mask = valid[:, :t - k] & valid[:, k:]
    logits = logits.masked_fill(~mask.unsqueeze(-1), 0.0)  # steps left out: any finite row (no NaN from all -inf)
    losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="none")
    return torch.where(mask.reshape(-1), losses, 0.0).sum() / mask.sum().clamp(min=1)


@register_method("cpc", "Contrastive predictive coding: a GRU over per-step encodings predicts the next 12 steps' "
                 "encodings against other clips' (InfoNCE); needs a per-frame encoder.",
                 "van den Oord et al. 2018, arXiv:1807.03748")
class CPC(Method):
    encoder_kind = FrameEncoder
    requested_views = ViewRequest("geometric", global_views=1)
    optimizer = OptimizerDefaults("adamw", lr=2e-4, weight_decay=0.0, lr_scaling="none")

    def __init__(self, encoder, prediction_steps: int = 12, context_dim: int = 256) -> None:
        super().__init__(encoder)
        check_option("cpc", "prediction_steps", prediction_steps, 0)
        self.prediction_steps = int(prediction_steps)
        self.context = nn.GRU(self.feature_dim, context_dim, batch_first=True)
        self.predictors = nn.ModuleList(nn.Linear(context_dim, self.feature_dim, bias=False)
                                        for _ in range(self.prediction_steps))

    def loss_on_views(self, views, step):
        x = views.global_views[0]
        z = self.encoder.forward_sequence(x)  # B T D; steps past a clip's end are zeros
        valid = z.detach().ne(0).any(dim=-1)  # a FrameEncoder's padded steps are exact zeros
        c, _ = self.context(z)
        all_z, all_valid = (self.gather(z), self.gather(valid.float()) > 0) if self.distributed else (None, None)
        offset = self.rank * z.shape[0]
        losses = [future_info_nce(w(c), z, valid, k + 1, all_z, offset, all_valid)
                  for k, w in enumerate(self.predictors)]
        loss = torch.stack(losses).mean()
        return loss, {"loss_next_step": losses[0].detach(), "loss_last_step": losses[-1].detach()}
