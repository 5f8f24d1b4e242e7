"""Image encoders: the protocol's ConvNet-4, a CIFAR-style ResNet-18, Vision Transformers (vit.py) and any timm model."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...encoders import Encoder, TokenEncoder
from ...errors import ConfigError
from ...registry import Registry
from .vit import default_patch, vit

image_encoders: Registry = Registry("image encoder")


def conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


CONVNET4_WIDTHS = (64, 128, 256, 512)


class ConvNet4(Encoder):
    """Four Conv3x3(no bias)-BN-ReLU blocks (64,128,256,512), MaxPool2d(2) after the first three, global average pool.

    out_norm=True standardises the pooled feature with a BatchNorm without affine parameters (running
    statistics at evaluation), so the representation is centred instead of all-positive after the ReLU.
    pool chooses the global pooling of the last block's map: "avg" (the protocol's), "max", or "avgmax" (both,
    concatenated: twice the width).
    """

    POOLS = ("avg", "max", "avgmax")

    def __init__(self, in_channels: int = 1, widths: tuple[int, ...] = CONVNET4_WIDTHS,
                 out_norm: bool = False, pool: str = "avg") -> None:
        super().__init__()
        if pool not in self.POOLS:
            raise ConfigError(f"encoder option pool={pool!r}: choose one of {', '.join(self.POOLS)}")
        layers: list[nn.Module] = []
        c = in_channels
        for i, w in enumerate(widths):
            conv, bn, relu = conv_bn_relu(c, w)
            # max-pool before the ReLU: max(relu(z)) == relu(max(z)) and the gradients are the same (ReLU is
            # monotone), so this is the block as published, with the ReLU on a quarter of the values
            layers += [conv, bn, nn.MaxPool2d(2), relu] if i < len(widths) - 1 else [conv, bn, relu]
            c = w
        self.features, self.pool = nn.Sequential(*layers), pool
        self.out_dim = 2 * c if pool == "avgmax" else c
        self.out_norm = nn.BatchNorm1d(self.out_dim, affine=False) if out_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        if self.pool == "avg":
            pooled = spatial_mean(h)
        elif self.pool == "max":
            pooled = h.amax(dim=(2, 3))
        else:
            pooled = torch.cat([spatial_mean(h), h.amax(dim=(2, 3))], dim=1)
        return self.out_norm(pooled)


def spatial_mean(h: torch.Tensor) -> torch.Tensor:
    """The mean over a map's height and width, as a sum divided by their product: the sum's gradient reaches the
    last ReLU as a broadcast view it reads in any layout, where mean's gradient is a new NCHW tensor that a
    channels_last ReLU's backward reads along strides (measured on ConvNet-4's SimCLR step at batch 256, bf16:
    9 ms less per step)."""
    return h.sum(dim=(2, 3)) / (h.shape[2] * h.shape[3])


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(Encoder):
    """CIFAR-style ResNet-18: 3x3 stem with stride 1 and no max-pool, four stages of two basic blocks."""

    def __init__(self, in_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(*conv_bn_relu(in_channels, width))
        stages, c = [], width
        for i, w in enumerate((width, 2 * width, 4 * width, 8 * width)):
            stride = 1 if i == 0 else 2
            stages += [BasicBlock(c, w, stride), BasicBlock(w, w, 1)]
            c = w
        self.stages = nn.Sequential(*stages)
        self.out_dim = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return spatial_mean(self.stages(self.stem(x)))


class TimmEncoder(Encoder):
    """A timm model with its classifier removed (pooled features)."""

    def __init__(self, name: str, in_channels: int, pretrained: bool = False) -> None:
        super().__init__()
        try:
            import timm
        except ImportError:
            raise ConfigError(f"encoder 'timm:{name}' needs timm: pip install 'selfsup[timm]'") from None
        try:
            self.model = timm.create_model(name, pretrained=pretrained, num_classes=0, in_chans=in_channels)
        except Exception as exc:  # unknown model name, ...
            raise ConfigError(f"--encoder timm:{name}: {exc}") from None
        self.out_dim, self.pretrained_start = int(self.model.num_features), pretrained

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def view_geometry(name: str, spec: dict[str, Any], options: dict[str, Any]) -> tuple[int, int]:
    """(smallest side, side multiple) of the square views the named image encoder (with its options) takes, as its
    registration declares (`view_geometry=`); an encoder that declares none takes any side >= 1 here (the CIFAR
    ResNet-18's padded stride-2 convolutions, timm models), and a view it cannot take is found by the plan's trial
    forward pass."""
    declared = image_encoders.entry(name).extra.get("view_geometry")
    return (1, 1) if declared is None else declared(spec, options)


def convnet4_geometry(spec: dict[str, Any], options: dict[str, Any]) -> tuple[int, int]:
    """ConvNet-4 halves its input before each block after the first (3 max-pools: 8 px for the default widths)."""
    return 2 ** (len(options.get("widths", CONVNET4_WIDTHS)) - 1), 1


def vit_geometry(spec: dict[str, Any], options: dict[str, Any]) -> tuple[int, int]:
    """A ViT cuts its input into whole patches: at least one, and a side that is a multiple of the patch's."""
    patch = int(options.get("patch_size") or default_patch(spec["size"]))
    return patch, patch


@image_encoders.register("convnet4", "4-block ConvNet (64-128-256-512), the benchmark protocol's reference backbone "
                         "(options: widths, pool=avg|max|avgmax, out_norm)",
                         view_geometry=convnet4_geometry, small={"widths": [8, 16, 16, 16]})
def convnet4(spec: dict[str, Any], **options: Any) -> Encoder:
    return ConvNet4(spec["channels"], **options)


@image_encoders.register("resnet18", "CIFAR-style ResNet-18 (3x3 stem, no max-pool), 512-d", "He et al. 2016",
                         small={"width": 8})
def resnet18(spec: dict[str, Any], **options: Any) -> Encoder:
    return ResNet18(spec["channels"], **options)


@image_encoders.register("timm", "any timm model by name: --encoder timm:NAME (optional extra 'timm')")
def timm_encoder(spec: dict[str, Any], name: str = "resnet18", **options: Any) -> Encoder:
    return TimmEncoder(name, spec["channels"], **options)


@image_encoders.register("vit_tiny", "Vision Transformer, Tiny: 192 wide, 12 blocks, 3 heads; a token encoder (masked "
                         "patches dropped); patch side from the image size (options: patch_size, depth)",
                         "Dosovitskiy et al. 2021; Touvron et al. 2021", kind=TokenEncoder, preferred=True,
                         view_geometry=vit_geometry, small={"depth": 2, "mlp_ratio": 1.0})
def vit_tiny(spec: dict[str, Any], **options: Any) -> Encoder:
    return vit("vit_tiny", spec, **options)


@image_encoders.register("vit_small", "Vision Transformer, Small: 384 wide, 12 blocks, 6 heads; a token encoder "
                         "(options: patch_size, depth)", "Dosovitskiy et al. 2021; Touvron et al. 2021",
                         kind=TokenEncoder, view_geometry=vit_geometry,
                         small={"depth": 2, "mlp_ratio": 1.0})
def vit_small(spec: dict[str, Any], **options: Any) -> Encoder:
    return vit("vit_small", spec, **options)
