"""Audio front ends as tensor operations on the training device (no torchaudio): log-mel spectrograms, MFCCs, the
frame mask of padded clips, and resampling to one rate.

- `mel_filterbank`: triangular filters equally spaced on the HTK mel scale (mel = 2595 log10(1 + f / 700)), each
  peaking at 1 (torchaudio's `melscale_fbanks(mel_scale="htk", norm=None)`, Kaldi's and HTK's convention);
- `log_mel`: a centred short-time Fourier transform (reflect padding, periodic Hann window), power spectrum, mel
  filters, natural log of (energy + `floor`): BYOL-A's and COLA's input (64 mels, 25 ms windows, 10 ms hop at 16 kHz);
- `mfcc`: the orthonormal DCT-II of the log-mel frames, the first `count` coefficients (the classic speech features
  whose per-clip mean and standard deviation are the baseline of the audio benchmark);
- `clip_log_mel`: the log-mel of stored clips as every part of selfsup sees it (encoder input, statistics, MFCC
  baseline, pictures): zero-padded so that padding never changes a frame, NaN past each clip's end;
- `frame_mask`: which frames of a centred STFT lie on the clip, for a clip of `length` samples padded to the batch's
  longest (a frame counts when its centre is a real sample);
- `resample`: polyphase resampling (scipy.signal.resample_poly, a Kaiser-windowed low-pass) from one rate to another,
  done once when the data is read.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch


@dataclass(frozen=True)
class FrontEnd:
    """Spectrogram settings (defaults: 16 kHz, 25 ms window in a 512-point FFT, 10 ms hop, 64 mels, 60 Hz-8 kHz)."""

    sample_rate: int = 16_000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 64
    f_min: float = 60.0
    f_max: float | None = None  # None: the Nyquist frequency
    floor: float = 1e-6  # added to the mel energies before the log

    def frames(self, samples: int) -> int:
        """Frames of a centred STFT of `samples` samples."""
        return 1 + samples // self.hop_length


def front_end_of(spec: dict) -> FrontEnd:
    """The FrontEnd a run's data spec describes (its `sample_rate` and `frontend` settings)."""
    fe = spec["frontend"]
    return FrontEnd(sample_rate=spec["sample_rate"], n_fft=fe["n_fft"], win_length=fe["win_length"],
                    hop_length=fe["hop_length"], n_mels=fe["n_mels"], f_min=fe["f_min"])


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=16)
def _filterbank(n_fft: int, n_mels: int, sample_rate: int, f_min: float, f_max: float) -> np.ndarray:
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None] - lower) / (centre - lower)
    falling = (upper - freqs[None]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)  # [n_mels, n_fft // 2 + 1]


_ON_DEVICE: dict[tuple, torch.Tensor] = {}  # tables copied to a device once, not at every step


def on_device(key: tuple, table: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """`table` as a float32 tensor on `device`, copied there once per process and key."""
    dev = torch.device(device)
    full_key = (*key, str(dev))
    if full_key not in _ON_DEVICE:
        _ON_DEVICE[full_key] = torch.from_numpy(np.ascontiguousarray(table, dtype=np.float32)).to(dev)
    return _ON_DEVICE[full_key]


def mel_filterbank(fe: FrontEnd, device: torch.device | str = "cpu") -> torch.Tensor:
    """[n_mels, n_fft // 2 + 1] triangular HTK-mel filters."""
    f_max = fe.f_max if fe.f_max is not None else fe.sample_rate / 2
    key = ("mel", fe.n_fft, fe.n_mels, fe.sample_rate, fe.f_min, f_max)
    return on_device(key, _filterbank(fe.n_fft, fe.n_mels, fe.sample_rate, fe.f_min, f_max), device)


def power_spectrogram(wave: torch.Tensor, fe: FrontEnd) -> torch.Tensor:
    """[B, samples] -> [B, n_fft // 2 + 1, frames] power of a centred STFT (reflect padding, periodic Hann window)."""
    window = torch.hann_window(fe.win_length, periodic=True, device=wave.device, dtype=torch.float32)
    spec = torch.stft(wave.float(), fe.n_fft, fe.hop_length, fe.win_length, window, center=True, pad_mode="reflect",
                      return_complex=True)
    return spec.real.square() + spec.imag.square()


def log_mel(wave: torch.Tensor, fe: FrontEnd) -> torch.Tensor:
    """[B, samples] -> [B, n_mels, frames] log mel energies."""
    mel = torch.matmul(mel_filterbank(fe, wave.device), power_spectrogram(wave, fe))
    return torch.log(mel + fe.floor)


@lru_cache(maxsize=16)
def _dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None]
    basis = np.cos(math.pi / n_in * (n + 0.5) * k) * math.sqrt(2.0 / n_in)
    basis[0] /= math.sqrt(2.0)
    return basis.astype(np.float32)  # [n_out, n_in], orthonormal rows


def mfcc(log_mels: torch.Tensor, count: int = 20) -> torch.Tensor:
    """[B, n_mels, frames] log mel energies -> [B, count, frames] cepstral coefficients (orthonormal DCT-II)."""
    basis = on_device(("dct", log_mels.shape[1], count), _dct_matrix(log_mels.shape[1], count), log_mels.device)
    return torch.matmul(basis.to(log_mels.dtype), log_mels)


def clip_log_mel(wave: torch.Tensor, lengths: torch.Tensor, fe: FrontEnd) -> torch.Tensor:
    """Stored clips [B, samples] (zero past `lengths`) -> [B, n_mels, 1 + samples // hop] log mel energies, NaN on
    the frames past each clip's end. The wave is zero-padded by n_fft / 2 first, so that frames near a clip's end see
    its samples and zeros however far it is padded (the STFT's reflect padding then reflects zeros)."""
    frames = fe.frames(wave.shape[-1])
    spec = log_mel(torch.nn.functional.pad(wave.float(), (0, fe.n_fft // 2)), fe)[..., :frames]
    return spec.masked_fill(~frame_mask(lengths, fe, frames).unsqueeze(1), float("nan"))


def frame_mask(lengths: torch.Tensor, fe: FrontEnd, frames: int) -> torch.Tensor:
    """bool [B, frames]: frames of a centred STFT whose centre is one of the clip's `lengths` real samples."""
    centres = torch.arange(frames, device=lengths.device) * fe.hop_length
    return centres[None] < lengths[:, None]


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """A 1-D float waveform at `rate` Hz resampled to `target` Hz (polyphase, scipy)."""
    if rate == target:
        return wave
    from scipy.signal import resample_poly

    g = math.gcd(int(rate), int(target))
    return resample_poly(wave, target // g, rate // g).astype(np.float32)
