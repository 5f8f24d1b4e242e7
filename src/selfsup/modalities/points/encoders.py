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
- A point Transformer on patches (Point-BERT, Yu et al. 2022; Point-MAE, Pang et al. 2022): `groups` centres by
  farthest point sampling, each centre's `group_size` nearest points as its patch (coordinates relative to the
  centre, then any features), a mini-PointNet per patch (shared MLP, max pool, the pooled vector concatenated back
  to every point, a second shared MLP, max pool) as the token, an MLP of the centre's coordinates as its position,
  pre-norm blocks and a final LayerNorm; the embedding is the mean of the tokens (`pool="mean_max"`: their mean
  and their max concatenated, 2 x dim wide; Point-MAE's classifier reads a class token and the tokens' max). A token
  encoder: hidden patches leave before the first block, and a patch is an unordered set of points (`patch_points`),
  so masked reconstruction compares sets (Chamfer distance). Farthest point sampling starts at the point farthest
  from the centroid, so the tokens do not depend on the order of the points. Departures: 192 wide with 4 blocks and
  3 heads by default (Point-MAE: 384 x 12 x 6), 32 patches of 16 points for the 256-point clouds of `shapes`
  (Point-MAE: 64 of 32 on 1,024 points), the mini-PointNet 64-128 / 256-width (Point-MAE: 128-256 / 512-384), the
  position added once before the blocks (Point-MAE adds it before every block), and the fixed position code that
  decoders and predictors use (`position_table`) a sine-cosine code of the centres' coordinates.
"""
from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import nn

from ...encoders import Encoder, TokenEncoder
from ...errors import ConfigError
from ...layers import Block, init_transformer, sincos_1d
from ...registry import Registry
from ..transformer import PatchTransformer

point_encoders: Registry = Registry("point-cloud encoder")


def shared_mlp(widths: tuple[int, ...], c_in: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for w in widths:
        layers += [nn.Conv1d(c_in, w, 1, bias=False), nn.BatchNorm1d(w), nn.ReLU(inplace=True)]
        c_in = w
    return nn.Sequential(*layers)


def principal_axes(xyz: torch.Tensor) -> torch.Tensor:
    """[B, P, 3] clouds in their own principal axes: centred on their centroid, the coordinates along the eigenvectors
    of their covariance in decreasing order of variance, each axis pointing where the cloud's third moment along it is
    positive. The same cloud turned by any rotation comes out the same, up to the ambiguities of such poses (an axis
    whose third moment is about zero keeps an arbitrary sign, axes of about equal variance an arbitrary order; Li et
    al. 2021, "A Closer Look at Rotation-invariant Deep Point Cloud Analysis"); the pose may be a mirror image.
    Computed in float64 outside autocast (3 x 3 eigenproblems); no gradient flows through it (inputs only)."""
    return in_frame(xyz, *principal_frame(xyz))


def principal_frame(xyz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(centroid [B, 1, 3], axes [B, 3, 3] float64, one a column) of clouds xyz [B, P, 3]: the frame of
    `principal_axes`, to put other points (a whole cloud beside its part) in the same pose with `in_frame`."""
    with torch.autocast(xyz.device.type, enabled=False):
        centroid = xyz.mean(dim=1, keepdim=True)
        centred = (xyz - centroid).double()
        _, vectors = torch.linalg.eigh(centred.transpose(1, 2) @ centred)  # eigenvalues ascending
        vectors = vectors.flip(-1)
        sign = torch.where(((centred @ vectors) ** 3).sum(dim=1, keepdim=True) < 0, -1.0, 1.0)
        return centroid, vectors * sign


def in_frame(xyz: torch.Tensor, centroid: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    """Points xyz [B, P, 3] in the frame (centroid, axes) of `principal_frame`, in xyz's dtype."""
    with torch.autocast(xyz.device.type, enabled=False):
        return ((xyz - centroid).double() @ axes).to(xyz.dtype)


ALIGNMENTS = ("", "pca")


def check_alignment(encoder: str, align: str) -> str:
    if align not in ALIGNMENTS:
        raise ConfigError(f"{encoder} option align={align!r}: give align=pca, or leave it out for the coordinates as "
                          "they come")
    return align


def aligned(x: torch.Tensor, align: str) -> torch.Tensor:
    """Clouds [B, P, C] with their coordinates in their principal axes (align="pca"), features as they are; or x."""
    return torch.cat([principal_axes(x[..., :3]), x[..., 3:]], dim=2) if align else x


class PointNet(Encoder):
    """Shared MLP over the points (`widths`) and a global max pool: [B, P, C] -> [B, widths[-1]]. With
    `align="pca"` the coordinates are first put in each cloud's principal axes (`principal_axes`), a canonical pose
    that does not depend on how the cloud was turned."""

    def __init__(self, channels: int = 3, widths: tuple[int, ...] = (64, 64, 64, 128, 1024), align: str = "") -> None:
        super().__init__()
        self.align = check_alignment("pointnet", align)
        self.mlp = shared_mlp(tuple(widths), channels)
        self.out_dim = int(widths[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(aligned(x, self.align).transpose(1, 2)).amax(dim=2)


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
                         "(options: widths, align=pca: each cloud in its principal axes first)", "Qi et al. 2017",
                         small={"widths": [16, 16, 16, 32, 256]})
def pointnet(spec: dict[str, Any], **options: Any) -> Encoder:
    return PointNet(spec["channels"], **options)


@point_encoders.register("dgcnn", "DGCNN: four EdgeConv layers (k=20) on dynamic kNN graphs, max+avg pooled "
                         "2 x 512 (options: k, widths, embed)", "Wang et al. 2019",
                         small={"k": 8, "widths": [16, 16, 32, 32], "embed": 64})
def dgcnn(spec: dict[str, Any], **options: Any) -> Encoder:
    return DGCNN(spec["channels"], **options)


def farthest_points(xyz: torch.Tensor, m: int) -> torch.Tensor:
    """Indices [B, m] of m points of each cloud xyz [B, P, 3] by farthest point sampling, starting at the point
    farthest from the cloud's centroid (so the choice does not depend on the points' order, ties aside)."""
    b = xyz.shape[0]
    rows = torch.arange(b, device=xyz.device)
    distance = (xyz - xyz.mean(dim=1, keepdim=True)).square().sum(dim=2)
    picked = torch.empty(b, m, dtype=torch.long, device=xyz.device)
    nearest = torch.full_like(distance, float("inf"))
    for i in range(m):
        picked[:, i] = (distance if i == 0 else nearest).argmax(dim=1)
        chosen = xyz[rows, picked[:, i]]  # [B, 3]
        nearest = torch.minimum(nearest, (xyz - chosen[:, None]).square().sum(dim=2))
    return picked


def point_groups(x: torch.Tensor, groups: int, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(centres [B, G, 3], patches [B, G, k, C], their points' indices in x [B, G, k]): G farthest-point centres of
    clouds x [B, P, C] and each one's k nearest points (nearest first), coordinates relative to the centre, features
    as they are."""
    xyz = x[..., :3].float()
    g, k = min(groups, x.shape[1]), min(size, x.shape[1])
    centres = torch.gather(xyz, 1, farthest_points(xyz, g)[..., None].expand(-1, -1, 3))
    near = torch.cdist(centres, xyz).topk(k, dim=2, largest=False).indices  # [B, G, k]
    b, c = x.shape[0], x.shape[2]
    patches = torch.gather(x, 1, near.reshape(b, -1, 1).expand(-1, -1, c)).view(b, g, k, c)
    return centres, torch.cat([patches[..., :3] - centres[:, :, None].to(x.dtype), patches[..., 3:]], dim=3), near


def centre_code(centres: torch.Tensor, width: int) -> torch.Tensor:
    """[B, G, width]: a sine-cosine code of each centre's coordinates in the unit ball (2 x (width // 6) values an
    axis, frequencies from 64 down; zeros pad the rest)."""
    if width < 6:
        raise ConfigError(f"a point Transformer's position code needs a width of at least 6, got {width}")
    per_axis = 2 * (width // 6)
    b, g, _ = centres.shape
    code = sincos_1d(64 * centres.reshape(-1), per_axis).view(b, g, 3 * per_axis)
    return nn.functional.pad(code, (0, width - 3 * per_axis)).to(centres.device)


class PatchEmbed(nn.Module):
    """Point-MAE's patch embedding: a mini-PointNet over each patch's points and an MLP of its centre."""

    def __init__(self, channels: int, dim: int, widths: tuple[int, int] = (64, 128), fuse: int = 256) -> None:
        super().__init__()
        self.first = nn.Sequential(nn.Conv1d(channels, widths[0], 1, bias=False), nn.BatchNorm1d(widths[0]),
                                   nn.ReLU(inplace=True), nn.Conv1d(widths[0], widths[1], 1))
        self.second = nn.Sequential(nn.Conv1d(2 * widths[1], fuse, 1, bias=False), nn.BatchNorm1d(fuse),
                                    nn.ReLU(inplace=True), nn.Conv1d(fuse, dim, 1))
        self.position = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))

    def forward(self, centres: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        b, g, k, c = patches.shape
        h = self.first(patches.reshape(b * g, k, c).transpose(1, 2))  # [B G, w, k]
        h = torch.cat([h.amax(dim=2, keepdim=True).expand_as(h), h], dim=1)
        tokens = self.second(h).amax(dim=2).view(b, g, -1)
        return tokens + self.position(centres.to(tokens.dtype))


POOLS = ("mean", "mean_max")


class PointTransformer(PatchTransformer):
    """A Transformer over `groups` patches of `group_size` points; token_grid (groups,)."""

    patch_points = 3  # a patch is a set of points: masked reconstruction compares their xyz as sets

    def __init__(self, channels: int, groups: int = 32, group_size: int = 16, dim: int = 192, depth: int = 4,
                 heads: int = 3, mlp_ratio: float = 4.0, align: str = "", pool: str = "mean") -> None:
        super().__init__()
        self.align = check_alignment("point_transformer", align)
        if pool not in POOLS:
            raise ConfigError(f"point_transformer: pool={pool!r}; choose one of {', '.join(POOLS)}")
        self.pool = pool
        if groups < 1 or group_size < 1:
            raise ConfigError(f"a point Transformer needs groups and group_size of at least 1, got {groups} and "
                              f"{group_size}")
        self.groups, self.group_size = int(groups), int(group_size)
        self.patch_dim = self.group_size * 3
        self.patch_embed = PatchEmbed(channels, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.token_dim = self.layer_dim = dim
        self.out_dim = dim * (2 if pool == "mean_max" else 1)
        self._last_grouping: tuple[weakref.ref, int, tuple[torch.Tensor, ...]] | None = None
        init_transformer(self)

    def grouped(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """point_groups of x, computed once for a batch: a masked method's step asks for the patches, the tokens
        and the positions of the same x, and farthest point sampling is the costly part. The last result is kept
        while that very tensor lives unchanged (a weak reference and its version counter: a new or modified batch
        is grouped anew)."""
        if x.shape[1] < self.group_size:
            raise ConfigError(f"clouds of {x.shape[1]} points are smaller than a patch of {self.group_size}; choose "
                              "--encoder-option group_size=N of at most the clouds' (and views') points")
        last = self._last_grouping
        if last is not None and last[0]() is x and last[1] == x._version:
            return last[2]
        groups = point_groups(aligned(x, self.align), self.groups, self.group_size)
        self._last_grouping = (weakref.ref(x), x._version, groups)
        return groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.tokens(x)
        if self.pool == "mean":
            return tokens.mean(dim=1)
        return torch.cat([tokens.mean(dim=1), tokens.amax(dim=1)], dim=1)

    def token_grid(self, x: torch.Tensor) -> tuple[int]:
        return (min(self.groups, x.shape[1]),)

    def token_count(self, x: torch.Tensor) -> int:
        return self.token_grid(x)[0]

    def position_table(self, x: torch.Tensor, width: int) -> torch.Tensor:
        return centre_code(self.grouped(x)[0], width)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(*self.grouped(x)[:2])

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.grouped(x)[1][..., :3]
        return patches.reshape(x.shape[0], patches.shape[1], -1)

    def unpatch(self, patches: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """x-shaped: each patch's points put back around its centre, at the places of the points it was cut from
        (a point in several patches takes one of them; a point in none, and every feature, is NaN). With align="pca"
        the patches were cut in the cloud's principal axes, and the points come back in that pose."""
        centres, _, near = self.grouped(x)
        b, g, k = near.shape
        points = patches.reshape(b, g, k, 3) + centres[:, :, None].to(patches.dtype)
        out = torch.full(x.shape, float("nan"), dtype=patches.dtype, device=x.device)
        out[..., :3] = out[..., :3].scatter(1, near.reshape(b, -1, 1).expand(-1, -1, 3), points.reshape(b, -1, 3))
        return out

    def covered(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The points (all their values) of the patches of `tokens` [B, G] bool."""
        near = self.grouped(x)[2]
        b, g, k = near.shape
        hits = tokens[..., None].expand(-1, -1, k).reshape(b, -1).to(torch.uint8)
        cover = torch.zeros(b, x.shape[1], dtype=torch.uint8, device=x.device).scatter_reduce(
            1, near.reshape(b, -1), hits, "amax")
        return cover.bool()[..., None].expand_as(x)


@point_encoders.register("point_transformer", "point Transformer on patches (Point-MAE): 32 farthest-point centres x "
                         "16 nearest points, mini-PointNet tokens, 192 wide, 4 blocks, 3 heads (options: groups, "
                         "group_size, dim, depth, heads, align=pca: each cloud in its principal axes first, "
                         "pool=mean_max: the tokens' mean and max concatenated)",
                         "Pang et al. 2022", kind=TokenEncoder,
                         small={"groups": 8, "group_size": 8, "dim": 32, "depth": 2, "heads": 2})
def point_transformer(spec: dict[str, Any], groups: int = 32, group_size: int = 16, dim: int = 192, depth: int = 4,
                      heads: int = 3, align: str = "", pool: str = "mean") -> Encoder:
    return PointTransformer(spec["channels"], int(groups), int(group_size), int(dim), int(depth), int(heads),
                            align=align, pool=pool)
