"""Context prediction: Doersch, Gupta & Efros 2015, "Unsupervised Visual Representation Learning by Context
Prediction".

    tiles = the 9 tiles of a 3 x 3 grid (the `tiles` recipe: gaps between tiles, so no edge continues)
    j ~ uniform over the 8 neighbours of the centre tile
    logits = classifier(concat(head(encoder(centre)), head(encoder(tile_j))))
    loss = cross-entropy(logits, position of j among the 8)

Paper: pairs of 96-px patches with gaps and jitter, a late-fusion AlexNet pair (fc6 per patch, fc7-fc8 after the
concatenation), SGD. Departures: the pair comes from the shared `tiles` views (random 64/75 of each cell), heads of
128 per tile and 512 after the concatenation, SGD lr 0.01 x batch/256, momentum 0.9, weight decay 5e-4; the
neighbour is drawn per sample from torch's global generator (checkpointed); no colour-dropping or chromatic
aberration handling. Images only (only the image modality makes tiles).

BatchNorm statistics: the encoder trains on tiles (a ninth of a crop that small images enlarge, 8 x 8 digits to 27
px), whose running averages misdescribe the whole images `embed` is given, so they are re-estimated on the training
inputs when training ends (`norm_statistics = "inputs"`; the paper's network had no BatchNorm), and the
untrained-encoder baseline gets the same (benchmarks/results/digits_methods_validation.json compares both ways).
"""
from __future__ import annotations

import torch
from torch import nn

from ..views import ViewRequest, Views
from .base import Method, OptimizerDefaults, StepInfo, StepLogs, register_method
from .pretext import pretext_loss, task_accuracy

CENTRE, NEIGHBOURS = 4, (0, 1, 2, 3, 5, 6, 7, 8)  # row-major tiles of a 3 x 3 grid



@register_method("relative_position", "Context prediction: where, among its 8 neighbours, a tile lies relative to "
                 "the centre tile (images only).", "Doersch et al. 2015, arXiv:1505.05192")
class RelativePosition(Method):
    requested_views = ViewRequest("tiles", global_views=9)
    optimizer = OptimizerDefaults("sgd", lr=0.01, weight_decay=5e-4)
    norm_statistics = "inputs"  # the tiles are fragments of an enlarged crop: see the docstring

    def __init__(self, encoder, tile_dim: int = 128, hidden_dim: int = 512) -> None:
        super().__init__(encoder)
        self.tile_head = nn.Sequential(nn.Linear(self.feature_dim, tile_dim), nn.ReLU(inplace=True))
        self.classifier = nn.Sequential(nn.Linear(2 * tile_dim, hidden_dim), nn.ReLU(inplace=True),
                                        nn.Linear(hidden_dim, len(NEIGHBOURS)))

    def loss_on_views(self, views: Views, step: StepInfo) -> tuple[torch.Tensor, StepLogs]:
        f = torch.stack([self.tile_head(h) for h in self.encode(views.global_views)], dim=1)  # [B, 9, tile_dim]
        labels = torch.randint(0, len(NEIGHBOURS), (f.shape[0],), device=f.device)
        tile = torch.tensor(NEIGHBOURS, device=f.device)[labels]
        neighbour = torch.gather(f, 1, tile[:, None, None].expand(-1, 1, f.shape[-1]))[:, 0]
        logits = self.classifier(torch.cat([f[:, CENTRE], neighbour], dim=1))
        return pretext_loss(logits, labels), {"position_acc": task_accuracy(logits, labels)}
