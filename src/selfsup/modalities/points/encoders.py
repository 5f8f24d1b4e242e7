"""Point-cloud encoders: [B, P, C] clouds (xyz first, then any per-point features) -> [B, out_dim], the same for
any order of the points and any P.

- PointNet (Qi et al. 2017): a shared per-point MLP (1x1 convolutions with BatchNorm and ReLU) and a global max
  pool. Departure: no input or feature transform networks (T-Nets): the self-supervised point-cloud papers that
  use PointNet as a backbone (OcCo, Wang et al. 2021; CrossPoint, Afham et al. 2022) report it with and without,
  and the views already turn the clouds.
- DGCNN (Wang et al. 2019): four EdgeConv layers on a k-nearest-neighbour graph recomputed in each layer's feature
  space (edge features [x_j - x_i, x_i], a 1x1 convolution, BatchNorm, LeakyReLU 0.2, max over the k neighbours),
  their outputs concatenated, a shared layer to `embed` channels, then max and average pooling concatenated.
  Departure: `embed` 512 by default instead of the paper's 1024 (2-core CPUs; an option).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...encoders import Encoder
from ...registry import Registry

point_encoders: Registry = Registry("point-cloud encoder")


def shared_mlp(widths: tuple[int, ...], c_in: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for w in widths:
        layers += [nn.Conv1d(c_in, w, 1, bias=False), nn.BatchNorm1d(w), nn.ReLU(inplace=True)]
        c_in = w
    return nn.Sequential(*layers)


class PointNet(Encoder):
    """Shared MLP over the points (`widths`) and a global max pool: [B, P, C] -> [B, widths[-1]]."""

    def __init__(self, channels: int = 3, widths: tuple[int, ...] = (64, 64, 64, 128, 1024)) -> None:
        super().__init__()
        self.mlp = shared_mlp(tuple(widths), channels)
        self.out_dim = int(widths[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x.transpose(1, 2)).amax(dim=2)


def knn(x: torch.Tensor, k: int) -> torch.Tensor:
    """Indices [B, P, k] of each point's k nearest points (itself included) by the features x [B, C, P]."""
    inner = x.transpose(1, 2) @ x
    square = (x * x).sum(dim=1)
    distance = square[:, :, None] - 2 * inner + square[:, None, :]
    return distance.topk(min(k, x.shape[2]), dim=-1, largest=False).indices


def edge_features(x: torch.Tensor, k: int) -> torch.Tensor:
    """[B, C, P] -> [B, 2C, P, k]: for each point i and neighbour j, (x_j - x_i, x_i)."""
    b, c, p = x.shape
    idx = knn(x, k)
    points = x.transpose(1, 2)  # [B, P, C]
    neighbours = torch.gather(points, 1, idx.reshape(b, -1, 1).expand(-1, -1, c)).view(b, p, -1, c)
    centre = points[:, :, None, :].expand_as(neighbours)
    return torch.cat([neighbours - centre, centre], dim=3).permute(0, 3, 1, 2)


class DGCNN(Encoder):
    """EdgeConv layers (`widths`) on dynamic kNN graphs, then `embed` channels max- and average-pooled."""

    def __init__(self, channels: int = 3, k: int = 20, widths: tuple[int, ...] = (64, 64, 128, 256),
                 embed: int = 512) -> None:
        super().__init__()
        self.k, c_in = int(k), channels
        self.edge_convs = nn.ModuleList()
        for w in widths:
            self.edge_convs.append(nn.Sequential(nn.Conv2d(2 * c_in, w, 1, bias=False), nn.BatchNorm2d(w),
                                                 nn.LeakyReLU(0.2, inplace=True)))
            c_in = w
        self.embed = nn.Sequential(nn.Conv1d(sum(widths), embed, 1, bias=False), nn.BatchNorm1d(embed),
                                   nn.LeakyReLU(0.2, inplace=True))
        self.out_dim = 2 * int(embed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, outputs = x.transpose(1, 2), []
        for conv in self.edge_convs:
            h = conv(edge_features(h, self.k)).amax(dim=3)
            outputs.append(h)
        e = self.embed(torch.cat(outputs, dim=1))
        return torch.cat([e.amax(dim=2), e.mean(dim=2)], dim=1)


@point_encoders.register("pointnet", "PointNet: shared per-point MLP 64-64-64-128-1024 and max pooling, no T-Nets "
                         "(options: widths)", "Qi et al. 2017")
def pointnet(spec: dict[str, Any], **options: Any) -> Encoder:
    return PointNet(spec["channels"], **options)


@point_encoders.register("dgcnn", "DGCNN: four EdgeConv layers (k=20) on dynamic kNN graphs, max+avg pooled "
                         "2 x 512 (options: k, widths, embed)", "Wang et al. 2019")
def dgcnn(spec: dict[str, Any], **options: Any) -> Encoder:
    return DGCNN(spec["channels"], **options)
