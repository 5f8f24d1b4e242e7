"""Reading recordings for the audio modality files decoded with `soundfile` (WAV, FLAC, OGG,
...), mixed down to mono (the mean of the channels; how many files had more than one channel is counted), resampled
to one rate (frontend.resample) and cut or zero-padded to one length, with each clip's real length kept so that
padding can be masked. A folder's sub-folders are the labels (for evaluation only).

Storage rows (`pack_clips`): column 0 the clip's real length in samples, column 1 the sample rate, then `samples`
samples (float32, zero after the length).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ...data import existing_file, labelled_files
from ...errors import ConfigError, DataError
from .frontend import resample

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".mp3"}


@dataclass
class ReadPolicy:
    """What reading did to the files, counted (kept in a dataset's info)."""

    rate: int
    samples: int
    downmixed: int = 0  # files with more than one channel, averaged to mono
    resampled: int = 0  # files at another rate
    cut: int = 0  # clips longer than `samples`, cut to their first `samples`
    channels: dict[int, int] = field(default_factory=dict)  # channel count -> files

    def to_dict(self) -> dict[str, object]:
        return {"rate": self.rate, "samples": self.samples, "downmixed": self.downmixed, "resampled": self.resampled,
                "cut": self.cut, "channels": {str(k): v for k, v in sorted(self.channels.items())}}


def read_clip(path_text: str | Path, policy: ReadPolicy) -> np.ndarray:
    """One file as a mono float32 waveform at `policy.rate` (not yet cut); a one-line DataError when it cannot be."""
    try:
        import soundfile as sf
    except ImportError:
        raise ConfigError("reading audio needs soundfile: pip install 'selfsup[audio]'") from None
    path = existing_file(str(path_text), "audio file")
    try:
        wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises its own error types (LibsndfileError, RuntimeError, TypeError)
        raise DataError(f"{path}: not a readable audio file ({str(exc).splitlines()[0]})") from None
    if wave.shape[0] == 0:
        raise DataError(f"{path}: an audio file with zero samples")
    channels = int(wave.shape[1])
    policy.channels[channels] = policy.channels.get(channels, 0) + 1
    if channels > 1:
        policy.downmixed += 1
    mono = wave.mean(axis=1)
    if not np.isfinite(mono).all():
        raise DataError(f"{path}: samples that are not finite numbers")
    if int(rate) != policy.rate:
        policy.resampled += 1
        mono = resample(mono, int(rate), policy.rate)
    return mono.astype(np.float32)


HEADER = 2  # storage columns before the samples: real length, sample rate


def pack_clips(waves: list[np.ndarray], policy: ReadPolicy) -> torch.Tensor:
    """Waveforms -> storage [N, 2 + samples]: each clip's real length and the rate, then its first `samples`
    samples, zero-padded."""
    out = np.zeros((len(waves), HEADER + policy.samples), dtype=np.float32)
    for row, wave in zip(out, waves):
        n = min(len(wave), policy.samples)
        policy.cut += int(len(wave) > policy.samples)
        row[0], row[1] = n, policy.rate
        row[HEADER:HEADER + n] = wave[:n]
    return torch.from_numpy(out)


def clip_lengths(x: torch.Tensor) -> torch.Tensor:
    """int64 [N]: the real length of each stored clip."""
    return x[:, 0].long()


def folder_files(path_text: str) -> tuple[list[Path], list[str] | None]:
    """The audio files under a folder (sorted) and their sub-folder labels (data.labelled_files)."""
    return labelled_files(path_text, AUDIO_SUFFIXES, "audio files")


def read_folder(path_text: str, rate: int = 16_000, seconds: float = 2.0) -> tuple[torch.Tensor, list[str] | None,
                                                                                     ReadPolicy]:
    """Every audio file under a folder as storage, the sub-folder labels (or None) and what reading did."""
    if rate < 1000 or seconds <= 0:
        raise ConfigError(f"audio: sr must be at least 1000 and seconds positive (got sr={rate}, seconds={seconds})")
    files, labels = folder_files(path_text)
    policy = ReadPolicy(int(rate), int(round(rate * seconds)))
    return pack_clips([read_clip(p, policy) for p in files], policy), labels, policy
