"""Sequence encoders: a dilated convolutional network (TS2Vec / T-Loss family) and a patch Transformer, registered
by the time-series modality (timeseries/encoders.py) and built on by the audio modality's.

Input: float [B, C, T] z-scored series in which NaN marks "no observation" (selfsup's convention
for padding and missing values), optionally with a validity `mask` [B, T] (False = no observation,
as if every channel were NaN). Every encoder offers

- ``forward_sequence(x, mask=None, step_mask=None) -> [B, T, out_dim]``: one vector per time step;
  ``step_mask`` [B, T] (False = hide this step's input, as TS2Vec's timestamp masking) is used by
  methods during training;
- ``forward(x, mask=None) -> [B, out_dim]``: the per-step vectors max-pooled over the series (TS2Vec's
  instance-level representation).

How masks are respected: a step with no observation has its input zeroed after the input projection
(TS2Vec); partially observed steps have their missing channels zeroed before it. Steps before the
first or after the last observation (padding) are additionally re-zeroed after every block, which is
exactly what the convolution's own zero padding would see at a series' border, and are excluded from
max-pooling and attention. Hence padding a series further with NaN (or with any values under
mask=False) leaves its embedding unchanged, and so does where the series sits inside the padding.
Padded steps come out of `forward_sequence` as zeros.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...encoders import FrameEncoder, SequenceEncoder, TokenEncoder
from ...errors import DataError
from ...layers import sincos_1d
from .augment import span_mask


def encoder_inputs(x: torch.Tensor, mask: torch.Tensor | None, channels: int
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(values with NaN -> 0, per-value observed [B,C,T], per-step observed [B,T], inside span [B,T])."""
    if x.dim() == 2 and channels == 1:
        x = x.unsqueeze(1)
    if x.dim() != 3 or x.shape[1] != channels:
        raise DataError(f"series batch of shape {tuple(x.shape)} does not match the encoder's input of "
                        f"{channels} channel(s) (expected [batch, {channels}, length])")
    x = x.float()
    value_obs = ~torch.isnan(x)
    if mask is not None:
        value_obs = value_obs & mask.to(x.device).bool().unsqueeze(1)
    step_obs = value_obs.any(dim=1)
    return x.masked_fill(~value_obs, 0.0), value_obs, step_obs, span_mask(step_obs)


def masked_max(h: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Max over time of h [B, T, D] restricted to keep [B, T]; rows with nothing kept give zeros."""
    pooled = h.masked_fill(~keep.unsqueeze(-1), float("-inf")).amax(dim=1)
    return torch.where(keep.any(dim=1, keepdim=True), pooled, torch.zeros_like(pooled))


def shift_steps(x: torch.Tensor, offset: int) -> torch.Tensor:
    """[B, T, C] -> out[:, t] = x[:, t + offset], zeros where t + offset falls outside 0..T-1."""
    if offset == 0:
        return x
    if offset > 0:
        return F.pad(x[:, offset:], (0, 0, 0, offset))
    return F.pad(x[:, :offset], (0, 0, -offset, 0))


class DilatedConv(nn.Module):
    """Conv1d with zero padding, 'same' (centred, TS2Vec) or causal (left only, T-Loss), on channels-last [B, T, C].

    Computed as one matrix product: the input shifted by each tap's offset (zeros past the ends, as the
    convolution's own padding) is concatenated along channels, [B, T, k C_in], and multiplied by the kernel
    reshaped to [C_out, k C_in]. Taps whose offset reaches beyond the series only see padding and are skipped.
    On a CPU this beats nn.Conv1d several times at TS2Vec's sizes (small batches of short series, 32-64
    channels), whose dilated and bf16 cases fall back to im2col loops; the weights keep nn.Conv1d's layout
    ([C_out, C_in, k], same names), so checkpoints are unchanged.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, dilation: int, causal: bool) -> None:
        super().__init__()
        field = (kernel_size - 1) * dilation
        self.pad_left = field if causal else field // 2
        self.conv = nn.Conv1d(c_in, c_out, kernel_size, dilation=dilation)

    def offsets(self) -> list[int]:
        """Where each tap reads, relative to the output step."""
        return [j * self.conv.dilation[0] - self.pad_left for j in range(self.conv.kernel_size[0])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        taps = [(j, o) for j, o in enumerate(self.offsets()) if abs(o) < length]
        if not taps:  # an even kernel whose every tap lands in the padding: the bias alone
            return self.conv.bias.expand(*x.shape[:2], -1)
        weight = self.conv.weight
        if len(taps) < weight.shape[-1]:
            weight = weight[:, :, [j for j, _ in taps]]
        cols = [shift_steps(x, o) for _, o in taps]
        stacked = cols[0] if len(cols) == 1 else torch.cat(cols, dim=-1)
        return F.linear(stacked, weight.permute(0, 2, 1).reshape(weight.shape[0], -1), self.conv.bias)


class ConvBlock(nn.Module):
    """Residual block of TS2Vec: GELU -> dilated conv -> GELU -> dilated conv, plus a (1x1-projected) skip.
    Channels-last: x [B, T, C]."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, dilation: int, final: bool, causal: bool) -> None:
        super().__init__()
        self.conv1 = DilatedConv(c_in, c_out, kernel_size, dilation, causal)
        self.conv2 = DilatedConv(c_out, c_out, kernel_size, dilation, causal)
        self.projector = nn.Conv1d(c_in, c_out, 1) if c_in != c_out or final else None

    def forward(self, x: torch.Tensor, outside: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, T, C]; `outside` [B, T, 1] (True = padding) is zeroed after each convolution, as a border is."""
        residual = x if self.projector is None else F.linear(x, self.projector.weight[..., 0], self.projector.bias)
        h = F.gelu(self.conv1(F.gelu(x)))
        if outside is not None:
            h = h.masked_fill(outside, 0.0)
        out = self.conv2(h) + residual
        return out.masked_fill(outside, 0.0) if outside is not None else out


class DilatedConvEncoder(FrameEncoder):
    """TS2Vec's encoder (Yue et al. 2022): linear input projection, `depth` residual blocks of dilated
    convolutions (dilation 2^i, GELU) plus a final block to `out_dim`, dropout 0.1 on the output.
    With causal=True the convolutions only look back, as T-Loss's causal CNN (Franceschi et al. 2019).
    Runs channels-last ([B, T, C] between blocks), so no transposes are needed around the per-step outputs."""

    def __init__(self, in_channels: int, hidden: int = 64, depth: int = 10, out_dim: int = 320,
                 kernel_size: int = 3, causal: bool = False, dropout: float = 0.1) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.input_width = in_channels
        self.input_fc = nn.Linear(in_channels, hidden)
        widths = [hidden] * depth + [out_dim]
        self.blocks = nn.ModuleList(
            ConvBlock(widths[i - 1] if i > 0 else hidden, w, kernel_size, 2 ** i, i == len(widths) - 1, causal)
            for i, w in enumerate(widths))
        self.repr_dropout = nn.Dropout(dropout)
        self.out_dim = out_dim

    def _sequence(self, x: torch.Tensor, mask: torch.Tensor | None, step_mask: torch.Tensor | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        values, _, step_obs, inside = encoder_inputs(x, mask, self.in_channels)
        keep = step_obs if step_mask is None else step_obs & step_mask.to(step_obs.device).bool()
        h = self.input_fc(values.transpose(1, 2)).masked_fill(~keep.unsqueeze(-1), 0.0)
        outside = ~inside.unsqueeze(-1) if not bool(inside.all()) else None  # None: no padding in this batch
        for block in self.blocks:
            h = block(h, outside)
        return self.repr_dropout(h), inside

    def forward_sequence(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                         step_mask: torch.Tensor | None = None) -> torch.Tensor:
        """[B, C, T] -> [B, T, out_dim]; padded steps are zeros."""
        return self._sequence(x, mask, step_mask)[0]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """[B, C, T] -> [B, out_dim]: max over the series' steps (padding excluded)."""
        h, inside = self._sequence(x, mask, None)
        return masked_max(h, inside)


class PatchTransformerEncoder(SequenceEncoder, TokenEncoder):
    """A small Transformer over non-overlapping patches (PatchTST, Nie et al. 2023): each patch of
    `patch_len` steps (all channels, plus their observed-indicators) is linearly embedded, sine/cosine
    positions added, pre-norm Transformer layers, linear head to `out_dim`. Per-step outputs repeat
    their patch's vector; patches entirely in the padding are masked out of attention and pooling.

    `pool`: how a sample's vector is made from its patches' outputs, "max" (TS2Vec's instance representation) or
    "mean" (HuBERT's and SUPERB's utterance-level pooling).

    It is also a token encoder (one token per patch, on a 1-D grid): `tokens(x, keep)` runs the Transformer on the
    kept patches only, so MAE, data2vec and I-JEPA train it as they train a ViT (masked series modelling)."""

    def __init__(self, in_channels: int, patch_len: int = 8, d_model: int = 128, depth: int = 3, heads: int = 4,
                 out_dim: int = 320, dropout: float = 0.1, ff_mult: int = 2, pool: str = "max") -> None:
        super().__init__()
        if pool not in ("max", "mean"):
            raise ValueError(f"pool must be 'max' or 'mean', got {pool!r}")
        self.in_channels = in_channels
        self.input_width = in_channels
        self.patch_len = patch_len
        self.pool = pool
        self.embed = nn.Linear(2 * in_channels * patch_len, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, ff_mult * d_model, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, out_dim)
        self.out_dim = self.token_dim = out_dim
        self.patch_dim = in_channels * patch_len
        self.layer_dim = d_model
        self._tables: dict[tuple[int, int, torch.device], torch.Tensor] = {}

    def token_count(self, x: torch.Tensor) -> int:
        return (x.shape[-1] + self.patch_len - 1) // self.patch_len  # no negative floor division: ONNX truncates

    def token_grid(self, x: torch.Tensor) -> tuple[int]:
        return (self.token_count(x),)

    def position_table(self, x: torch.Tensor, width: int) -> torch.Tensor:
        n = self.token_count(x)
        key = (n, width, x.device)  # made once per device and length: no host-to-device copy per step
        if key not in self._tables:
            self._tables[key] = sincos_1d(torch.arange(n), width).to(x.device)[None]
        return self._tables[key]

    def _cut(self, t: torch.Tensor) -> torch.Tensor:
        """[B, C', L] -> [B, n, C' x patch_len] (the end padded with zeros to whole patches)."""
        b, c, length = t.shape
        n, p = self.token_count(t), self.patch_len
        return F.pad(t, (0, n * p - length)).view(b, c, n, p).permute(0, 2, 1, 3).reshape(b, n, c * p)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        values, value_obs, _, _ = encoder_inputs(x, None, self.in_channels)
        return self._cut(values).masked_fill(~self._cut(value_obs.float()).bool(), float("nan"))

    def unpatch(self, patches: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = patches.shape
        c, p = self.in_channels, self.patch_len
        return patches.reshape(b, n, c, p).permute(0, 2, 1, 3).reshape(b, c, n * p)[..., : x.shape[-1]]

    def _blocks(self, x: torch.Tensor, mask: torch.Tensor | None, step_mask: torch.Tensor | None,
                keep: torch.Tensor | None = None) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """(every layer's output [B, K, d_model] for the kept patches, kept patches holding observations [B, K],
        inside span [B, L])."""
        values, value_obs, _, inside = encoder_inputs(x, mask, self.in_channels)
        if step_mask is not None:
            value_obs = value_obs & step_mask.to(values.device).bool().unsqueeze(1)
            values = values.masked_fill(~value_obs, 0.0)
        patch_in = self._cut(inside[:, None].float()).bool().any(dim=-1)
        h = self.embed(self._cut(torch.cat([values, value_obs.float()], dim=1)))
        # made here rather than taken from position_table's cache, so an exported graph follows any series length
        h = h + sincos_1d(torch.arange(h.shape[1], device=h.device), h.shape[-1]).to(h.dtype)
        if keep is not None:  # hidden patches leave here: attention sees the kept ones only
            h = h[keep].view(h.shape[0], -1, h.shape[-1])
            patch_in = patch_in[keep].view(h.shape[0], -1)
        # a row with no observed patch would attend to nothing (NaN); let it attend freely, its output is dropped
        key_mask = ~patch_in & patch_in.any(dim=1, keepdim=True)
        outputs = []
        for layer in self.transformer.layers:
            h = layer(h, src_key_padding_mask=key_mask)
            outputs.append(h)
        return outputs, patch_in, inside

    def _out(self, h: torch.Tensor, patch_in: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(h)).masked_fill(~patch_in.unsqueeze(-1), 0.0)

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self._blocks(x, None, None)[0]

    def tokens(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """[B, K, out_dim]: the kept patches' outputs (patches wholly in the padding give zeros)."""
        outputs, patch_in, _ = self._blocks(x, None, None, keep)
        return self._out(outputs[-1], patch_in)

    def forward_sequence(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                         step_mask: torch.Tensor | None = None) -> torch.Tensor:
        """[B, C, T] -> [B, T, out_dim] (each step gets its patch's vector; padded steps are zeros)."""
        outputs, patch_in, inside = self._blocks(x, mask, step_mask)
        seq = self._out(outputs[-1], patch_in).repeat_interleave(self.patch_len, dim=1)[:, : inside.shape[1]]
        return seq.masked_fill(~inside.unsqueeze(-1), 0.0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        outputs, patch_in, _ = self._blocks(x, mask, None)
        out = self._out(outputs[-1], patch_in)
        if self.pool == "mean":
            weights = patch_in.unsqueeze(-1).to(out.dtype)
            return (out * weights).sum(1) / weights.sum(1).clamp(min=1)
        return masked_max(out, patch_in)
