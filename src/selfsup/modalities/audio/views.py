"""Batched audio views, made on the training device from stored clips (`reading.pack_clips` rows).

A view is cut and changed on the waveform (crop, gain, mixing with another clip of the batch), then turned into the
encoder's input by the front end (`AudioInput`): a log-mel spectrogram z-scored per band with the training statistics,
on which the spectrogram augmentations act (BYOL-A's random resized crop, SpecAugment's masks), or the waveform
itself scaled by the training RMS. Frames (or samples) past a clip's end are NaN, the series convention, so encoders
leave padding out.

- crop: one window of `crop` x the stored length for the whole batch (views must share a shape), placed uniformly
  inside each clip's real samples (a clip shorter than the window is taken whole and padded);
- gain: x 10^(g / 20), g uniform in +-`gain_db` (a shift of the log-mel, nearly removed by its normalisation);
- mixup (BYOL-A): (1 - l) x + l x', l uniform in [0, `mixup`], x' another clip of the batch (rolled by a random
  offset), cut to x's length. BYOL-A mixes exp(log-mel) with clips from a memory of past batches; mixing waveforms of
  the batch is the same in expectation over phases and needs no memory;
- random resized crop (BYOL-A): a region of 0.6-1.5 x the frames and 0.6-1.5 x the bands, resized back bilinearly (a
  cheap tempo and pitch change; bands outside the spectrogram: 0, the normalised mean; frames outside the clip: NaN,
  not observed);
- SpecAugment (Park et al. 2019): `freq_masks` bands of up to `freq_width` mel bands and `time_masks` spans of up to
  `time_width` x the frames set to 0; on waveforms, the time masks zero spans of samples.

Recipes: `instance` and `asymmetric` all of the above (BYOL-A applies the same distribution to both views, so the
audio `asymmetric` is `instance`); `instance_light` crop and gain only (COLA's views: segments of the same clip);
`geometric` a crop with values untouched (CPC, HuBERT, masked modelling); `overlapping_crops` and `masked_values`
the series modality's views (TS2Vec's crops, Zerveas et al.'s masks) of the whole spectrogram.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import ConfigError
from ...views import ViewRequest, Views, with_options
from ..sequences.augment import SPECIAL_VIEWS, left_align, take_windows
from .frontend import clip_log_mel, front_end_of, on_device


@dataclass(frozen=True)
class AudioAugmentation:
    crop: float = 0.8  # window length, fraction of the stored clip length
    gain_db: float = 0.0
    mixup: float = 0.0  # largest mixing ratio
    resize: tuple[float, float] | None = None  # random resized crop scale range on both axes (None: off)
    freq_masks: int = 0
    freq_width: int = 8
    time_masks: int = 0
    time_width: float = 0.1

    def scaled(self, strength: float) -> AudioAugmentation:
        """Every change `strength` times as strong (clamped: a region of at least 0.1, mixing at most 0.9)."""
        r, k = self.resize, max(0.0, strength)
        return replace(self, gain_db=self.gain_db * k, mixup=min(0.9, self.mixup * k),
                       resize=None if r is None else (max(0.1, 1 - (1 - r[0]) * k), 1 + (r[1] - 1) * k),
                       freq_width=round(self.freq_width * k), time_width=min(1.0, self.time_width * k))


_FULL = AudioAugmentation(gain_db=6.0, mixup=0.4, resize=(0.6, 1.5), freq_masks=2, freq_width=8, time_masks=2,
                          time_width=0.1)
RECIPES: dict[str, AudioAugmentation | None] = {
    "instance": _FULL, "asymmetric": _FULL,
    "instance_light": AudioAugmentation(gain_db=6.0),
    "geometric": AudioAugmentation(),
    "overlapping_crops": None, "masked_values": None,
}


def recipe(name: str, strength: float, options: dict[str, Any] | None) -> AudioAugmentation | None:
    if name not in RECIPES:
        raise ConfigError(f"view recipe {name!r} has no audio version; known: {', '.join(sorted(RECIPES))}")
    aug = RECIPES[name]
    if aug is None:
        if options:
            raise ConfigError(f"the {name!r} audio views take no augmentation options")
        return None
    aug = aug.scaled(strength) if strength != 1.0 else aug
    if options:
        aug = with_options(aug, options, "audio")
    if not 0 < aug.crop <= 1:
        raise ConfigError(f"audio augmentation crop={aug.crop}: must be in (0, 1]")
    return aug


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=gen_device).to(device)


class AudioInput:
    """Stored clips -> the encoder's input (log-mel or waveform), normalised with the run's statistics."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.fe = front_end_of(spec)
        self.waveform = spec["input"] == "waveform"
        self.mean = np.asarray(spec["mel_mean"], dtype=np.float32).reshape(1, -1, 1)
        self.std = np.asarray(spec["mel_std"], dtype=np.float32).reshape(1, -1, 1)
        self.key = ("statistics", *spec["mel_mean"], *spec["mel_std"])  # copied to the device once
        self.rms = float(spec["wave_rms"])

    def spectrogram(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[B, samples] zero past `lengths` -> [B, n_mels, frames] normalised log-mel, NaN past the end."""
        spec = clip_log_mel(wave, lengths, self.fe)
        return (spec - on_device(self.key + ("mean",), self.mean, spec.device)) / \
            on_device(self.key + ("std",), self.std, spec.device)

    def __call__(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Waveforms [B, samples] (anything past `lengths` is ignored) -> encoder input."""
        inside = torch.arange(wave.shape[-1], device=wave.device)[None] < lengths[:, None]
        wave = wave.float().masked_fill(~inside, 0.0)
        if self.waveform:
            return (wave / self.rms).masked_fill(~inside, float("nan")).unsqueeze(1)
        return self.spectrogram(wave, lengths)


class AudioViewMaker:
    """Answers a ViewRequest for a batch of stored clips [B, 2 + samples] (see the module docstring)."""

    def __init__(self, request: ViewRequest, aug: AudioAugmentation | None, spec: dict[str, Any]) -> None:
        self.request, self.aug = request, aug
        self.input = AudioInput(spec)
        if request.local_views and aug is None:
            raise ConfigError(f"the {request.recipe!r} audio views take no local crops")

    def _view(self, wave: torch.Tensor, lengths: torch.Tensor, window: int, aug: AudioAugmentation,
              generator: torch.Generator | None) -> torch.Tensor:
        b, dev = wave.shape[0], wave.device
        window = min(max(self.input.fe.hop_length * 8, window), wave.shape[-1])  # at least 9 frames if it can
        room = (lengths - window).clamp(min=0)
        start = (_uniform((b,), generator, dev) * (room + 1)).long().clamp(max=room)
        view = take_windows(wave, start, window)
        view_len = (lengths - start).clamp(min=1, max=window)
        inside = torch.arange(window, device=dev)[None] < view_len[:, None]
        view = view.masked_fill(~inside, 0.0)
        if aug.gain_db:
            gain = (_uniform((b, 1), generator, dev) * 2 - 1) * aug.gain_db
            view = view * torch.pow(10.0, gain / 20)
        if aug.mixup and b > 1:
            shift = 1 + (_uniform((1,), generator, dev) * (b - 1)).long().clamp(max=b - 2)  # never the clip itself
            partner = (torch.arange(b, device=dev) + shift) % b
            ratio = _uniform((b, 1), generator, dev) * aug.mixup
            view = ((1 - ratio) * view + ratio * view[partner]).masked_fill(~inside, 0.0)
        out = self.input(view, view_len)
        if self.input.waveform:
            return self._time_masks(out, aug, generator)
        if aug.resize is not None:
            out = self._resized_crop(out, aug.resize, generator)
        out = self._freq_masks(out, aug, generator)
        return self._time_masks(out, aug, generator)

    def _resized_crop(self, x: torch.Tensor, scale: tuple[float, float], generator: torch.Generator | None
                      ) -> torch.Tensor:
        """BYOL-A's random resized crop of [B, F, T]: a region of `scale` x each axis, resized back (bilinear)."""
        b, dev = x.shape[0], x.device
        lo, hi = scale
        s = lo + (hi - lo) * _uniform((b, 2), generator, dev)  # (time, frequency) scale of the region
        offset = (_uniform((b, 2), generator, dev) * 2 - 1) * (1 - s).abs()
        theta = torch.zeros(b, 2, 3, device=dev)
        theta[:, 0, 0], theta[:, 1, 1] = s[:, 0], s[:, 1]
        theta[:, :, 2] = offset
        grid = F.affine_grid(theta, [b, 1, *x.shape[1:]], align_corners=False)
        observed = ~torch.isnan(x[:, :1])  # B 1 T: the clip's frames
        values = F.grid_sample(torch.nan_to_num(x, nan=0.0).unsqueeze(1), grid, align_corners=False)[:, 0]
        kept = F.grid_sample(observed.float().expand(-1, x.shape[1], -1).unsqueeze(1), grid, mode="nearest",
                             align_corners=False)[:, 0, :1] > 0.5
        kept[:, :, 0] |= ~kept.any(dim=-1)  # never an empty view
        return values.masked_fill(~kept, float("nan"))

    def _freq_masks(self, x: torch.Tensor, aug: AudioAugmentation, generator: torch.Generator | None) -> torch.Tensor:
        b, bands, dev = x.shape[0], x.shape[1], x.device
        band = torch.arange(bands, device=dev)[None]
        for _ in range(aug.freq_masks):
            width = (_uniform((b, 1), generator, dev) * (min(aug.freq_width, bands - 1) + 1)).long()
            first = (_uniform((b, 1), generator, dev) * (bands - width + 1)).long()
            hit = (band >= first) & (band < first + width)
            x = x.masked_fill(hit.unsqueeze(-1) & ~torch.isnan(x), 0.0)
        return x

    def _time_masks(self, x: torch.Tensor, aug: AudioAugmentation, generator: torch.Generator | None) -> torch.Tensor:
        b, steps, dev = x.shape[0], x.shape[-1], x.device
        step = torch.arange(steps, device=dev)[None]
        longest = max(0, int(aug.time_width * steps))
        for _ in range(aug.time_masks if longest else 0):
            width = (_uniform((b, 1), generator, dev) * (longest + 1)).long()
            first = (_uniform((b, 1), generator, dev) * (steps - width + 1)).long()
            hit = (step >= first) & (step < first + width)
            x = x.masked_fill(hit.unsqueeze(1) & ~torch.isnan(x), 0.0)
        return x

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> Views:
        req = self.request
        lengths, wave = x[:, 0].long(), x[:, 2:].float()
        if self.aug is None:  # the series views of the whole clip
            whole, _ = left_align(self.input(wave, lengths))
            return SPECIAL_VIEWS[req.recipe].make(whole, generator, **req.options)
        window = round(self.aug.crop * wave.shape[-1])
        views = Views([self._view(wave, lengths, window, self.aug, generator) for _ in range(req.global_views)])
        if req.local_views:
            local = round(window * req.local_size)
            views.local_views = [self._view(wave, lengths, local, self.aug, generator) for _ in range(req.local_views)]
        if req.clean:
            views.clean = self.input(wave, lengths)
        return views
