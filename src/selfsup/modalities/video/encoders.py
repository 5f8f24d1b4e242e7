"""Video encoders: clips [B, T, C, H, W] (any T) -> [B, out_dim].

- R(2+1)D (Tran et al. 2018): residual blocks whose 3-D convolutions are factored into a spatial 1 x 3 x 3
  convolution and a temporal 3 x 1 x 1 one with BatchNorm and ReLU between them, then global average pooling over
  time and space. Departures, for small clips on CPUs: three stages of one block each (widths 16, 32, 64; the
  paper's R(2+1)D-18 has four stages of two blocks, 64-512), a 1 x 3 x 3 stem of stride 2 (the paper's: 1 x 7 x 7)
  that halves the frame's side, and intermediate widths equal to the block's output instead of the paper's
  parameter-matched M.
- A video Vision Transformer on tube tokens (VideoMAE, Tong et al. 2022): tubes of `tube` frames x `patch_size`
  x `patch_size` pixels embedded by one linear map (a strided 3-D convolution), a fixed sine-cosine code of each
  tube's time and place, pre-norm blocks and a final LayerNorm; the embedding is the mean of the tokens. A token
  encoder: hidden tubes leave before the first block. Departures: 192 wide and 4 blocks by default (VideoMAE's
  ViT-S is 384 x 12), patches of 4 pixels up to 32-pixel frames (VideoMAE: 16 on 224); the position code is fixed,
  as VideoMAE's.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...encoders import Encoder, TokenEncoder
from ...errors import ConfigError
from ...layers import Block, init_transformer, sincos_1d, sincos_2d
from ...registry import Registry
from ..transformer import PatchTransformer

video_encoders: Registry = Registry("video encoder")


class SpatialConv(nn.Module):
    """A 1 x k x k convolution of [B, C, T, H, W] (stride in space): a 2-D convolution of every frame."""

    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        y = self.conv(x.transpose(1, 2).reshape(b * t, c, h, w))
        return y.view(b, t, *y.shape[1:]).transpose(1, 2)


class TemporalConv(nn.Module):
    """A k x 1 x 1 convolution of [B, C, T, H, W] (stride in time): a 2-D convolution over (time, place).

    Both factors are 2-D convolutions because oneDNN's bfloat16 Conv3d computes NaN weight gradients for some
    shapes on CPUs (torch 2.13: a 3 x 1 x 1 kernel on 2 frames of 4 x 4 with 32 channels); the values are those of
    the Conv3d."""

    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, (kernel, 1), (stride, 1), (kernel // 2, 0), bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        y = self.conv(x.reshape(b, c, t, h * w))
        return y.view(b, y.shape[1], y.shape[2], h, w)


def bn_relu(c: int) -> list[nn.Module]:
    return [nn.BatchNorm3d(c), nn.ReLU(inplace=True)]


class Factored(nn.Sequential):
    """A (2+1)-D convolution: spatial 1 x 3 x 3 (stride in space), BN, ReLU, temporal 3 x 1 x 1 (stride in time)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__(SpatialConv(c_in, c_out, stride), *bn_relu(c_out), TemporalConv(c_out, c_out, stride))


class Projection(nn.Module):
    """The shortcut where a block changes the shape: every `stride`-th frame, row and column, a 1 x 1 x 1 convolution
    and BatchNorm (a strided 1 x 1 x 1 Conv3d)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.norm = nn.BatchNorm3d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride
        x = x[:, :, ::s, ::s, ::s]
        b, c, t, h, w = x.shape
        return self.norm(self.conv(x.reshape(b, c, t, h * w)).view(b, -1, t, h, w))


class Residual(nn.Module):
    """Two (2+1)-D convolutions with BatchNorm, a projected shortcut where the shape changes, ReLU after the sum."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(Factored(c_in, c_out, stride), *bn_relu(c_out), Factored(c_out, c_out, 1),
                                  nn.BatchNorm3d(c_out))
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else Projection(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class R2Plus1D(Encoder):
    """Stem (spatial stride 2, then a temporal convolution), one residual (2+1)-D block per width (the first at
    stride 1, the others at stride 2 in time and space), global average pooling: [B, T, C, H, W] -> [B, widths[-1]]."""

    def __init__(self, channels: int, widths: tuple[int, ...] = (16, 32, 64)) -> None:
        super().__init__()
        if not widths:
            raise ConfigError("--encoder-option widths for r2plus1d: at least one width")
        widths = tuple(int(w) for w in widths)
        self.stem = nn.Sequential(SpatialConv(channels, widths[0], 2), *bn_relu(widths[0]),
                                  TemporalConv(widths[0], widths[0], 1), *bn_relu(widths[0]))
        self.stages = nn.Sequential(*(Residual(c_in, c_out, 1 if i == 0 else 2) for i, (c_in, c_out)
                                      in enumerate(zip(widths[:1] + widths[:-1], widths))))
        self.out_dim = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x.transpose(1, 2))).mean(dim=(2, 3, 4))


def sincos_3d(steps: int, height: int, width: int, dim: int) -> torch.Tensor:
    """[steps * height * width, dim] in (time, row, column) order: 4 x (dim // 16) values (a quarter of a width
    divisible by 16) code the time, the rest the place (sincos_2d)."""
    if dim % 4 or dim < 16:
        raise ConfigError(f"a video ViT's widths (its own, its decoder's or predictor's) must be multiples of 4 from "
                          f"16, got {dim}")
    time_dim = 4 * (dim // 16)
    place = sincos_2d(height, width, dim - time_dim)
    when = sincos_1d(torch.arange(steps), time_dim)
    return torch.cat([when.repeat_interleave(height * width, dim=0), place.repeat(steps, 1)], dim=1)


class VideoTransformer(PatchTransformer):
    """A ViT over tubes of `tube` frames x `patch_size`^2 pixels; token_grid (steps, rows, columns)."""

    time_axes = 1

    def __init__(self, channels: int, patch_size: int, tube: int, dim: int, depth: int, heads: int,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.patch_size, self.tube, self.channels = patch_size, tube, channels
        self.patch_dim = tube * patch_size * patch_size * channels
        self.patch_embed = nn.Linear(self.patch_dim, dim)  # a strided tube convolution, on the cut tubes
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.out_dim = self.token_dim = self.layer_dim = dim
        self._tables: dict[tuple[int, int, int, int, torch.device], torch.Tensor] = {}
        init_transformer(self)

    def token_grid(self, x: torch.Tensor) -> tuple[int, int, int]:
        t, h, w = x.shape[1], x.shape[-2], x.shape[-1]
        if t % self.tube or h % self.patch_size or w % self.patch_size:
            raise ConfigError(f"clips of {t} frames of {h}x{w} pixels do not divide into tubes of {self.tube} frames "
                              f"x {self.patch_size} pixels; choose --encoder-option tube=N,patch_size=P dividing the "
                              "views' frames and size")
        return t // self.tube, h // self.patch_size, w // self.patch_size

    def token_count(self, x: torch.Tensor) -> int:
        gt, gh, gw = self.token_grid(x)
        return gt * gh * gw

    def position_table(self, x: torch.Tensor, width: int) -> torch.Tensor:
        key = (*self.token_grid(x), width, x.device)
        if key not in self._tables:
            self._tables[key] = sincos_3d(*key[:3], width).to(x.device)[None]
        return self._tables[key]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch_embed(self.patches(x))  # [B, steps x rows x cols, width]
        return t + self.position_table(x, t.shape[-1]).to(t.dtype)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        gt, gh, gw = self.token_grid(x)
        b, c, k, p = x.shape[0], x.shape[2], self.tube, self.patch_size
        tubes = x.reshape(b, gt, k, c, gh, p, gw, p).permute(0, 1, 4, 6, 2, 5, 7, 3)
        return tubes.reshape(b, gt * gh * gw, k * p * p * c)

    def unpatch(self, patches: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        gt, gh, gw = self.token_grid(x)
        b, c, k, p = x.shape[0], x.shape[2], self.tube, self.patch_size
        tubes = patches.reshape(b, gt, gh, gw, k, p, p, c).permute(0, 1, 4, 7, 2, 5, 3, 6)
        return tubes.reshape(b, gt * k, c, gh * p, gw * p)


def default_patch(size: int) -> int:
    return 4 if size <= 32 else 8 if size <= 96 else 16


def vit_view_multiple(spec: dict[str, Any], options: dict[str, Any]) -> int:
    """The side a video ViT's views must be a multiple of: its patch."""
    return int(options.get("patch_size") or default_patch(min(spec["height"], spec["width"])))


@video_encoders.register("r2plus1d", "R(2+1)D: residual (2+1)-D convolution blocks 16-32-64, average pooled "
                         "(options: widths)", "Tran et al. 2018", small={"widths": [8, 8, 16]})
def r2plus1d(spec: dict[str, Any], **options: Any) -> Encoder:
    return R2Plus1D(spec["channels"], **options)


@video_encoders.register("video_vit", "video ViT on tube tokens (2 frames x P x P pixels; P 4 up to 32 px), 192 wide, "
                         "4 blocks, 3 heads (options: patch_size, tube, depth, dim, heads)", "Tong et al. 2022",
                         kind=TokenEncoder, view_multiple=vit_view_multiple,
                         small={"dim": 32, "depth": 2, "heads": 2})
def video_vit(spec: dict[str, Any], patch_size: int | None = None, tube: int = 2, depth: int = 4, dim: int = 192,
              heads: int = 3) -> Encoder:
    return VideoTransformer(spec["channels"], vit_view_multiple(spec, {"patch_size": patch_size}), int(tube), int(dim),
                            int(depth), int(heads))
