"""Audio encoders. Every one is a `SequenceEncoder` whose steps are the front end's 10 ms frames (one per hop of 160
samples at 16 kHz), so per-step outputs line up whatever the input: `forward_sequence(x) -> [B, frames, out_dim]`.

Inputs follow the series convention (NaN = not observed): a log-mel spectrogram [B, n_mels, frames] z-scored per mel
band with NaN on the frames past a clip's end, or a waveform [B, 1, samples] scaled by the training RMS with NaN past
the end. Padding never changes an embedding (tested): the waveform CNN's frames see only real samples and the zeros
after them, which are the same however far a clip is padded; the spectrogram CNN zeroes the positions past the end
after every block (as its convolution's own zero padding would) and marks a pooled frame valid only when both of its
frames are; pooling skips invalid frames.

- `spectrogram_cnn` (BYOL-A's encoder, Niizumi et al. 2021, after Koizumi et al.'s AudioNTT2020): three blocks of 3x3
  convolution (64 channels), batch norm, ReLU and 2x2 max-pooling, then per frame two fully connected layers (ReLU,
  dropout 0.3) to `out_dim` (BYOL-A: 512 or 2048; 512 here), pooled as max over time plus mean over time;
- `wave_cnn` (CPC's encoder, van den Oord et al. 2018; wav2vec's feature encoder is the same idea): five strided 1-D
  convolutions (kernels 10, 8, 4, 4, 4; strides 5, 4, 2, 2, 2: one frame per 160 samples, 465 samples of receptive
  field centred on the frame), each followed by a per-frame layer norm (wav2vec 2.0's layer-norm variant; CPC used
  none, and a norm over time would let padding in) and ReLU; width 256 (CPC: 512), mean-pooled;
- `dilated_cnn`: TS2Vec's dilated CNN over the mel bands (a series of n_mels channels; hidden width 64);
- `transformer`: the PatchTransformer of the series modality over patches of 2 frames (20 ms, HuBERT's frame rate) of
  all mel bands, 4 layers of width 192 (HuBERT Base: 12 of 768), mean-pooled (HuBERT's utterance-level pooling in
  SUPERB): a token encoder, so masked modelling (MAE, data2vec, I-JEPA) trains it, and `hubert_lite`'s encoder.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...encoders import FrameEncoder, SequenceEncoder
from ...errors import DataError
from ...registry import Registry
from ..sequences.encoders import DilatedConvEncoder, PatchTransformerEncoder

audio_encoders: Registry = Registry("audio encoder")

#: CPC's encoder: (kernel, stride) of each strided convolution
WAVE_LAYERS = ((10, 5), (8, 4), (4, 2), (4, 2), (4, 2))


def _receptive_field(layers: tuple[tuple[int, int], ...]) -> tuple[int, int]:
    """(receptive field, total stride) of a stack of valid convolutions."""
    field, jump = 1, 1
    for kernel, stride in layers:
        field += (kernel - 1) * jump
        jump *= stride
    return field, jump


def valid_frames(x: torch.Tensor) -> torch.Tensor:
    """bool [B, T]: the steps of [B, C, T] inputs where any channel is observed (not NaN)."""
    return ~torch.isnan(x).all(dim=1)


def check_input(x: torch.Tensor, channels: int, what: str) -> None:
    if x.dim() != 3 or x.shape[1] != channels:
        raise DataError(f"{what} batch of shape {tuple(x.shape)} does not match the encoder's input "
                        f"[batch, {channels}, steps]")


def pooled_validity(valid: torch.Tensor) -> torch.Tensor:
    """[B, T] -> [B, T // 2]: a pooled frame is valid when both of its frames are."""
    t = valid.shape[1] // 2
    return valid[:, :2 * t].view(valid.shape[0], t, 2).all(dim=2)


def masked_mean(h: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over the valid steps of h [B, T, D] (rows with none: zeros)."""
    w = valid.unsqueeze(-1).to(h.dtype)
    return (h * w).sum(1) / w.sum(1).clamp(min=1)


def masked_max(h: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    pooled = h.masked_fill(~valid.unsqueeze(-1), float("-inf")).amax(dim=1)
    return torch.where(valid.any(dim=1, keepdim=True), pooled, torch.zeros_like(pooled))


def to_steps(h: torch.Tensor, factor: int, steps: int, valid: torch.Tensor) -> torch.Tensor:
    """Per-frame outputs at 1/`factor` of the input rate [B, T', D] -> one per input step [B, steps, D] (each step
    its frame's vector; steps past the end of the clip or past the last whole frame: zeros)."""
    out = h.repeat_interleave(factor, dim=1)[:, :steps]
    if out.shape[1] < steps:
        out = F.pad(out, (0, 0, 0, steps - out.shape[1]))
    return out.masked_fill(~valid.unsqueeze(-1), 0.0)


class SpectrogramCNN(SequenceEncoder):
    """BYOL-A's convolutional encoder over [B, n_mels, frames] log-mel spectrograms (see the module docstring)."""

    def __init__(self, n_mels: int, out_dim: int = 512, channels: int = 64, blocks: int = 3,
                 dropout: float = 0.3) -> None:
        super().__init__()
        self.n_mels, self.input_width, self.out_dim = n_mels, n_mels, out_dim
        self.factor = 2 ** blocks
        if n_mels < self.factor:
            raise ValueError(f"spectrogram_cnn needs at least {self.factor} mel bands for {blocks} blocks")
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(1 if i == 0 else channels, channels, 3, padding=1), nn.BatchNorm2d(channels),
                          nn.ReLU()) for i in range(blocks))
        self.fc = nn.Sequential(nn.Linear(channels * (n_mels // self.factor), out_dim), nn.ReLU(), nn.Dropout(dropout),
                                nn.Linear(out_dim, out_dim), nn.ReLU())

    def _frames(self, x: torch.Tensor, step_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor,
                                                                                   torch.Tensor]:
        """(per-frame outputs [B, T / 8, D], their validity, the input steps' validity [B, T])."""
        check_input(x, self.n_mels, "log-mel spectrogram")
        steps_valid = valid_frames(x)
        hidden = steps_valid if step_mask is None else steps_valid & step_mask.to(x.device).bool()
        h = torch.nan_to_num(x.float(), nan=0.0).masked_fill(~hidden.unsqueeze(1), 0.0).unsqueeze(1)  # B 1 F T
        extra = -x.shape[-1] % self.factor  # whole pooled frames: the end padded with invalid zeros
        h, valid = F.pad(h, (0, extra)), F.pad(steps_valid, (0, extra), value=False)
        short = (valid.sum(dim=1) < self.factor)[:, None]  # no whole pooled frame: keep its partial first one
        for block in self.blocks:
            h = block(h)
            h = F.max_pool2d(h, 2)
            whole, partial = pooled_validity(valid), valid[:, :2 * (valid.shape[1] // 2)].view(len(valid), -1, 2).any(2)
            valid = torch.where(short, partial, whole)
            h = h.masked_fill(~valid[:, None, None, :], 0.0)  # past the end: what zero padding would show
        b, c, f, t = h.shape
        out = self.fc(h.permute(0, 3, 1, 2).reshape(b, t, c * f))
        return out, valid, steps_valid

    def forward_sequence(self, x: torch.Tensor, step_mask: torch.Tensor | None = None) -> torch.Tensor:
        out, valid, steps_valid = self._frames(x, step_mask)
        return to_steps(out, self.factor, x.shape[-1], steps_valid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, valid, _ = self._frames(x, None)
        return masked_max(out, valid) + masked_mean(out, valid)


class WaveCNN(FrameEncoder):
    """CPC's strided convolutional encoder over [B, 1, samples] waveforms (see the module docstring)."""

    def __init__(self, hop: int, width: int = 256, layers: tuple[tuple[int, int], ...] = WAVE_LAYERS) -> None:
        super().__init__()
        field, stride = _receptive_field(tuple(tuple(layer) for layer in layers))
        if stride != hop:
            raise ValueError(f"wave_cnn's strides multiply to {stride} samples a frame, but the front end's hop is "
                             f"{hop}")
        self.hop, self.input_width, self.out_dim = hop, 1, width
        self.pad = (field // 2, field - field // 2)  # frame k is centred on sample k * hop, as an STFT frame
        self.convs = nn.ModuleList(nn.Conv1d(1 if i == 0 else width, width, k, s) for i, (k, s) in enumerate(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in layers)

    def _frames(self, x: torch.Tensor, step_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        check_input(x, 1, "waveform")
        observed = ~torch.isnan(x[:, 0])
        lengths = observed.sum(dim=1)
        h = F.pad(torch.nan_to_num(x.float(), nan=0.0), self.pad)
        for conv, norm in zip(self.convs, self.norms):
            h = F.relu(norm(conv(h).transpose(1, 2)).transpose(1, 2))
        h = h.transpose(1, 2)  # B frames D, frames = 1 + samples // hop
        valid = torch.arange(h.shape[1], device=x.device)[None] * self.hop < lengths[:, None]
        if step_mask is not None:
            h = h.masked_fill(~step_mask.to(x.device).bool().unsqueeze(-1), 0.0)
        return h.masked_fill(~valid.unsqueeze(-1), 0.0), valid

    def forward_sequence(self, x: torch.Tensor, step_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self._frames(x, step_mask)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, valid = self._frames(x, None)
        return masked_mean(h, valid)


@audio_encoders.register("spectrogram_cnn", "BYOL-A's CNN over log-mel spectrograms: 3 conv blocks (64 channels, "
                         "2x2 max-pooling), 2 fully connected layers per frame, 512-d, max + mean over time",
                         "Niizumi et al. 2021, arXiv:2103.06695", small={"channels": 16, "out_dim": 64})
def spectrogram_cnn(spec: dict[str, Any], **options: Any) -> SequenceEncoder:
    return SpectrogramCNN(spec["channels"], **options)


@audio_encoders.register("wave_cnn", "CPC's strided CNN on the raw waveform: 5 convolutions (one 256-d frame per "
                         "10 ms), per-frame layer norm, ReLU, mean over time", "van den Oord et al. 2018, "
                         "arXiv:1807.03748", input="waveform", kind=WaveCNN, preferred=True,
                         small={"width": 32})
def wave_cnn(spec: dict[str, Any], **options: Any) -> SequenceEncoder:
    return WaveCNN(spec["hop"], **options)


@audio_encoders.register("dilated_cnn", "TS2Vec's dilated CNN over the mel bands as channels (width 64, 320-d per "
                         "frame, max-pooled)", "Yue et al. 2022, arXiv:2106.10466", kind=DilatedConvEncoder,
                         small={"hidden": 16, "depth": 3, "out_dim": 32})
def dilated_cnn(spec: dict[str, Any], **options: Any) -> SequenceEncoder:
    return DilatedConvEncoder(spec["channels"], **{"hidden": 64, **options})


@audio_encoders.register("transformer", "Transformer over 20 ms patches of the log-mel spectrogram (4 layers, "
                         "d_model 192, 256-d, mean-pooled); a token encoder (mae, data2vec2, ijepa) and hubert_lite's",
                         "Hsu et al. 2021 (HuBERT), arXiv:2106.07447", kind=PatchTransformerEncoder, preferred=True,
                         small={"d_model": 32, "depth": 2, "heads": 2, "out_dim": 32})
def transformer(spec: dict[str, Any], **options: Any) -> SequenceEncoder:
    return PatchTransformerEncoder(spec["channels"], **{"patch_len": 2, "d_model": 192, "depth": 4, "heads": 4,
                                                        "out_dim": 256, "pool": "mean", **options})
