"""The audio modality: clips stored as float32 rows [real length, sample rate, samples...] (reading.py), turned into
the encoder's input on the training device (views.AudioInput): a log-mel spectrogram z-scored per mel band with
statistics of the training clips, or the waveform scaled by their RMS; padding is NaN (the series convention), so a
clip's embedding does not depend on how far it is padded.

Sources: `audio:FOLDER?sr=16000&seconds=2&test=FOLDER2` (WAV, FLAC, OGG, ... read with soundfile; sub-folders are
labels, for evaluation only), `npy:WAVES.npy?sr=16000` with `--modality audio` ([N, samples] waveforms), and Python
arrays (a list of 1-D waveforms of any lengths, or [N, samples], at 16 kHz; other rates through `audio_clips`).

The raw-input baseline of evaluation is the field's classic one: per clip, the mean and standard deviation over time
of 20 MFCCs (frontend.mfcc).
"""
from __future__ import annotations

import base64
import io
import math
import warnings
from typing import Any

import numpy as np
import torch

from ...data import Dataset, SourceRequest, Split, encode_labels, load_npy_arrays, sources
from ...encoders import SequenceEncoder
from ...errors import ConfigError, DataError
from ...views import ViewRequest
from ..base import Modality, ViewMaker, batched, modalities
from ..exporting import ExportInputs
from ..npy import npy_readers
from ...html_parts import Raw, figure_uri, table
from ..presentation import Neighbours, Presentation
from ..sequences.augment import SPECIAL_VIEWS, check_extras
from .encoders import audio_encoders
from .frontend import clip_log_mel, front_end_of, mfcc
from .reading import HEADER, ReadPolicy, pack_clips, read_folder
from .views import AudioInput, AudioViewMaker, recipe

DEFAULT_RATE = 16_000
MFCC_COUNT = 20


def frontend_settings(rate: int) -> dict[str, Any]:
    """25 ms windows in the next power-of-two FFT, 10 ms hop, 64 mel bands from 60 Hz (16 kHz: 400/512/160)."""
    win = round(0.025 * rate)
    return {"n_fft": 1 << (win - 1).bit_length(), "win_length": win, "hop_length": rate // 100, "n_mels": 64,
            "f_min": 60.0}


def audio_clips(waves: Any, rate: int = DEFAULT_RATE, seconds: float | None = None, where: str = "audio") -> torch.Tensor:
    """Waveforms (a list of 1-D arrays of any lengths, or [N, samples]) at `rate` Hz -> audio storage, cut or padded
    to `seconds` (None: the longest clip)."""
    if isinstance(waves, torch.Tensor):
        waves = waves.detach().cpu().numpy()
    if isinstance(waves, np.ndarray) and waves.dtype != object:
        if waves.ndim == 1:
            waves = waves[None]
        if waves.ndim != 2:
            raise DataError(f"{where}: waveforms must be [clips, samples] or a list of 1-D arrays, got shape "
                            f"{tuple(waves.shape)}")
    items = [np.asarray(w) for w in waves]
    if not items:
        raise DataError(f"{where}: no clips")
    for i, w in enumerate(items):
        if w.ndim != 1 or w.dtype.kind not in "fiu":
            raise DataError(f"{where}: clip {i} is not a 1-D numeric waveform (shape {w.shape}, dtype {w.dtype})")
        if len(w) == 0:
            raise DataError(f"{where}: clip {i} has zero samples")
        if not np.isfinite(w).all():
            raise DataError(f"{where}: clip {i} has samples that are not finite numbers")
    samples = round(rate * seconds) if seconds else max(len(w) for w in items)
    return pack_clips([w.astype(np.float32) for w in items], ReadPolicy(int(rate), int(samples)))


class AudioPresentation(Presentation):
    """How audio samples appear in a report."""

    def thumbnails(self, x: torch.Tensor) -> np.ndarray:
        """Log-mel spectrograms as uint8 pictures [N, 1, mels, frames] (low frequencies at the bottom)."""
        spec = {"sample_rate": int(x[0, 1]), "frontend": frontend_settings(int(x[0, 1]))}
        fe = front_end_of(spec)
        out = []
        for sl in batched(len(x), 256):
            s = clip_log_mel(x[sl, HEADER:], x[sl, 0].long(), fe)
            lo = torch.nan_to_num(s, nan=float("inf")).amin(dim=(1, 2), keepdim=True)
            hi = torch.nan_to_num(s, nan=float("-inf")).amax(dim=(1, 2), keepdim=True)
            pic = torch.nan_to_num((s - lo) / (hi - lo).clamp(min=1e-6), nan=0.0)
            out.append((pic.flip(1) * 255).round().to(torch.uint8).unsqueeze(1))
        return torch.cat(out).numpy()

    def media(self, x: torch.Tensor) -> list[str]:
        """Each clip as an HTML audio player (16-bit WAV in a data URI)."""
        import soundfile as sf

        players = []
        for row in x:
            buf = io.BytesIO()
            sf.write(buf, row[HEADER:HEADER + int(row[0])].numpy(), int(row[1]), format="WAV", subtype="PCM_16")
            players.append('<audio controls preload="none" src="data:audio/wav;base64,'
                           f'{base64.b64encode(buf.getvalue()).decode()}"></audio>')
        return players

    neighbour_queries, neighbours_per_query = 4, 3

    def render_neighbours(self, x: torch.Tensor, neighbours: Neighbours) -> list[str]:
        """A table: each query clip (playable, with its log-mel spectrogram) beside its nearest clips."""
        import matplotlib.pyplot as plt

        chosen = sorted({i for row in neighbours.rows for i in row})
        players, pictures = self.media(x[chosen]), self.thumbnails(x[chosen])
        where = {i: j for j, i in enumerate(chosen)}

        def cell(i: int) -> Raw:
            fig, ax = plt.subplots(figsize=(1.6, 0.9))
            ax.imshow(pictures[where[i]][0], cmap="magma", aspect="auto")
            ax.axis("off")
            return Raw(f'<img alt="spectrogram" src="{figure_uri(fig)}"><br>{players[where[i]]}')

        k = len(neighbours.rows[0]) - 1
        head = (f"<h2>Listen: clips and their nearest neighbours</h2><p>{len(neighbours.rows)} clips (left) of "
                f"{neighbours.sample} and their {k} nearest by cosine similarity of the embeddings, with their "
                "log-mel spectrograms.</p>")
        return [head, table([[cell(i) for i in row] for row in neighbours.rows],
                            ["clip"] + [f"neighbour {i + 1}" for i in range(k)])]


class AudioExportInputs(ExportInputs):
    """Example storage and the prepared input in words, for exporting a audio encoder."""

    def example(self, spec: dict[str, Any], n: int, generator: torch.Generator) -> torch.Tensor | None:
        """Noise clips of the training length; the first ends halfway (padding takes its own path)."""
        samples = spec["samples"]
        x = torch.zeros(n, HEADER + samples)
        x[:, 0], x[:, 1] = samples, spec["sample_rate"]
        x[:, HEADER:] = torch.randn(n, samples, generator=generator) * spec["wave_rms"]
        x[0, 0] = max(1, samples // 2)
        x[0, HEADER + samples // 2:] = 0
        return x

    def described(self, spec: dict[str, Any]) -> str | None:
        if spec["input"] == "waveform":
            return (f"float32 [batch, 1, samples] waveforms at {spec['sample_rate']} Hz divided by the training RMS "
                    f"{spec['wave_rms']:.4g}; NaN after each clip's end")
        fe = spec["frontend"]
        return (f"float32 [batch, {fe['n_mels']}, frames] log-mel spectrograms (selfsup.modalities.audio.frontend: "
                f"{spec['sample_rate']} Hz, n_fft {fe['n_fft']}, window {fe['win_length']}, hop {fe['hop_length']}, "
                f"HTK mel from {fe['f_min']} Hz, natural log of energy + 1e-6), each band z-scored with the training "
                "mean and std in the run's data_spec; NaN on frames past each clip's end")


class AudioModality(Modality):
    """Recordings: speech, sounds, music (mono, one rate)."""

    name = "audio"
    presentation = AudioPresentation()
    summary = "recordings (a folder of WAV/FLAC/OGG, .npy or arrays of waveforms); log-mel or waveform encoders"
    encoders = audio_encoders
    export_inputs = AudioExportInputs()
    view_recipes = ("instance", "instance_light", "asymmetric", "geometric", "overlapping_crops", "masked_values")
    encoder_kind = SequenceEncoder
    # RankMe: on spoken digits view retrieval ranked CPC's waveform encoder first, whose embedding keeps what all of a
    # clip's views share (its noise level, its speaker's pitch) but not the words; RankMe never picked it
    # (benchmarks/selection.py, audio)
    search_criterion = "rankme"

    def claims(self, x: Any) -> bool:
        """Audio storage (`audio_clips`' rows) stays audio whatever modality its rank suggests."""
        return isinstance(x, torch.Tensor) and self._is_clips(x)

    def from_array(self, x: Any, where: str) -> torch.Tensor:
        if isinstance(x, torch.Tensor) and self._is_clips(x):
            return x
        return audio_clips(x, DEFAULT_RATE, None, where)

    def _is_clips(self, x: torch.Tensor) -> bool:
        """Storage rows: float32 [N, 2 + samples], whole lengths in 1..samples and one rate >= 1000 Hz."""
        if x.dtype != torch.float32 or x.dim() != 2 or x.shape[1] <= HEADER or len(x) == 0:
            return False
        lengths, rates = x[:, 0], x[:, 1]
        return bool((lengths == lengths.round()).all() and (lengths >= 1).all()
                    and (lengths <= x.shape[1] - HEADER).all() and (rates == rates[0]).all() and rates[0] >= 1000)

    def to_storage(self, x: Any, where: str, spec: dict[str, Any]) -> torch.Tensor:
        """New waveforms for a trained run, taken to be at the run's rate."""
        if isinstance(x, torch.Tensor) and self._is_clips(x):
            return x
        return audio_clips(x.numpy() if isinstance(x, torch.Tensor) else x, spec["sample_rate"], None, where)

    def fit_spec(self, x: torch.Tensor) -> dict[str, Any]:
        rates = x[:, 1].unique()
        if len(rates) != 1:
            raise DataError(f"audio clips at {len(rates)} different sample rates ({rates.tolist()[:4]}); read them "
                            "at one rate (audio:PATH?sr=16000)")
        rate = int(rates[0])
        samples = int(x.shape[1] - HEADER)
        spec: dict[str, Any] = {"sample_rate": rate, "samples": samples, "frontend": frontend_settings(rate)}
        fe = front_end_of(spec)
        sel = torch.linspace(0, len(x) - 1, min(len(x), 512)).round().long().unique()
        lengths, waves = x[sel, 0].long(), x[sel, HEADER:].float()
        sums, squares, count, energy = torch.zeros(fe.n_mels, dtype=torch.float64), \
            torch.zeros(fe.n_mels, dtype=torch.float64), 0, 0.0
        for sl in batched(len(sel), 64):
            spec_b = clip_log_mel(waves[sl], lengths[sl], fe)
            vals = torch.nan_to_num(spec_b.double(), nan=0.0)
            sums += vals.sum(dim=(0, 2))
            squares += (vals ** 2).sum(dim=(0, 2))
            count += int((~torch.isnan(spec_b[:, 0])).sum())  # frames on the clips
            energy += float((waves[sl].double() ** 2).sum())
        mean = sums / count
        std = (squares / count - mean ** 2).clamp(min=0).sqrt().clamp(min=1e-3)
        rms = max((energy / float(lengths.sum())) ** 0.5, 1e-6)
        seconds = x[:, 0].double() / rate
        return {**spec, "mel_mean": mean.tolist(), "mel_std": std.tolist(), "wave_rms": rms,
                "input": "log_mel", "channels": fe.n_mels, "length": fe.frames(samples), "hop": fe.hop_length,
                "clips": int(len(x)), "mean_seconds": float(seconds.mean()), "max_seconds": float(seconds.max()),
                "normalisation": "log-mel z-scored per band with training statistics (waveform input: divided by "
                                 "the training RMS)"}

    def spec_for_encoder(self, spec: dict[str, Any], encoder: str, options: dict[str, Any]) -> dict[str, Any]:
        """A waveform encoder reads samples (1 channel); the others the log-mel spectrogram."""
        if self.encoders.entry(encoder).extra.get("input") != "waveform":
            return spec
        return {**spec, "input": "waveform", "channels": 1, "length": spec["samples"]}

    def default_encoder(self, spec: dict[str, Any]) -> str:
        return "spectrogram_cnn"

    def view_maker(self, request: ViewRequest, spec: dict[str, Any], strength: float = 1.0,
                   options: dict[str, Any] | None = None) -> ViewMaker:
        check_extras(request, "audio")
        if request.recipe in SPECIAL_VIEWS and spec["input"] == "waveform":
            raise ConfigError(f"the {request.recipe!r} audio views are made on spectrograms; choose a spectrogram "
                              "encoder (spectrogram_cnn, dilated_cnn, transformer)")
        return AudioViewMaker(request, recipe(request.recipe, strength, options), spec)

    def prepare(self, x: torch.Tensor, spec: dict[str, Any]) -> torch.Tensor:
        return AudioInput(spec)(x[:, HEADER:], x[:, 0].long())

    def conform(self, x: torch.Tensor, spec: dict[str, Any], where: str, resize: bool = False,
                strict: bool = False) -> tuple[torch.Tensor, list[str]]:
        """Clips must be at the run's rate; any length is fine (padding never changes an embedding)."""
        other = x[:, 1] != spec["sample_rate"]
        if bool(other.any()):
            rate = int(x[int(other.nonzero()[0, 0]), 1])
            raise DataError(f"{where}: clips at {rate} Hz, but the run was trained at {spec['sample_rate']} Hz; read "
                            f"them with sr={spec['sample_rate']}")
        return x, []

    def toy_data(self, n: int, generator: np.random.Generator) -> list[np.ndarray]:
        """`n` clips of 0.15-0.25 s at 16 kHz: a few harmonics of a random pitch under a decaying envelope, with
        noise (clips of different lengths: padding is exercised)."""
        clips = []
        for _ in range(n):
            length = int(generator.integers(2400, 4001))
            t = np.arange(length) / DEFAULT_RATE
            f0 = generator.uniform(100, 1000)
            wave = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 4)) * np.exp(-t * generator.uniform(2, 12))
            clips.append((0.3 * wave + 0.01 * generator.standard_normal(length)).astype(np.float32))
        return clips

    def raw_features(self, x: torch.Tensor, spec: dict[str, Any], mask: torch.Tensor | None = None) -> np.ndarray:
        """The classic baseline: mean and standard deviation over each clip's frames of 20 MFCCs."""
        return mfcc_statistics(x, spec)



def mfcc_statistics(x: torch.Tensor, spec: dict[str, Any], count: int = MFCC_COUNT) -> np.ndarray:
    """[N, 2 * count]: per clip, the mean then the standard deviation over its frames of `count` MFCCs."""
    fe = front_end_of(spec)
    out = []
    for sl in batched(len(x), 128):
        logs = clip_log_mel(x[sl, HEADER:], x[sl, 0].long(), fe)
        valid = (~torch.isnan(logs[:, :1])).float()
        c = mfcc(torch.nan_to_num(logs, nan=0.0), count)
        n = valid.sum(-1).clamp(min=1)
        mean = (c * valid).sum(-1) / n
        std = (((c - mean.unsqueeze(-1)) ** 2 * valid).sum(-1) / n).sqrt()
        out.append(torch.cat([mean, std], dim=1))
    return torch.cat(out).numpy()


def equal_lengths(train: Split, test: Split | None) -> tuple[Split, Split | None]:
    """Pad the split with the shorter rows with zero samples so that both store clips of one length."""
    if test is None or train.x.shape[1] == test.x.shape[1]:
        return train, test
    width = max(train.x.shape[1], test.x.shape[1])
    pad = torch.nn.functional.pad
    return (Split(pad(train.x, (0, width - train.x.shape[1])), train.y),
            Split(pad(test.x, (0, width - test.x.shape[1])), test.y))


def _number_option(req: SourceRequest, name: str, default: float) -> float:
    text = req.options.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"--data {req.uri}: {name}={text!r} is not a positive number")
    return value


def _int_option(req: SourceRequest, name: str, default: int) -> int:
    value = _number_option(req, name, default)
    if value != int(value) or value < 1000:
        raise ConfigError(f"--data {req.uri}: {name}={value:g} must be a whole number of Hz, at least 1000")
    return int(value)


def state_reading(where: str, policy: ReadPolicy) -> None:
    """Say in one warning what reading changed: files mixed down to mono, resampled, cut."""
    done = [f"{policy.downmixed} file(s) with {'/'.join(str(c) for c in sorted(policy.channels) if c > 1)} channels "
            "mixed down to mono (the mean of the channels)"] if policy.downmixed else []
    if policy.resampled:
        done.append(f"{policy.resampled} file(s) resampled to {policy.rate} Hz")
    if policy.cut:
        done.append(f"{policy.cut} clip(s) longer than {policy.samples / policy.rate:g} s cut to their start")
    if done:
        warnings.warn(f"audio:{where}: {'; '.join(done)}", stacklevel=3)


@sources.register("audio", "a folder of recordings (WAV/FLAC/OGG...; sub-folders are labels): "
                           "audio:FOLDER[?sr=16000&seconds=2&test=FOLDER2]", modality="audio")
def load_audio(req: SourceRequest) -> Dataset:
    req.check_options({"sr", "seconds", "test"})
    if not req.path:
        raise ConfigError("audio: needs a folder, e.g. audio:recordings/?sr=16000&seconds=2")
    rate, seconds = _int_option(req, "sr", DEFAULT_RATE), _number_option(req, "seconds", 2.0)
    x, labels, policy = read_folder(req.path, rate, seconds)
    state_reading(req.path, policy)
    info: dict[str, Any] = {"reading": policy.to_dict()}
    test_x, test_labels = None, None
    if "test" in req.options:
        test_x, test_labels, test_policy = read_folder(req.options["test"], rate, seconds)
        state_reading(req.options["test"], test_policy)
        info["test_reading"] = test_policy.to_dict()
        if (labels is None) != (test_labels is None):
            raise DataError(f"--data {req.uri}: one of the folders has label sub-folders and the other not")
    if labels is not None:
        (y, y_test), classes = encode_labels(np.asarray(labels), None if test_labels is None else np.asarray(test_labels))
        info["classes"] = classes
    else:
        y = y_test = None
    test = None if test_x is None else Split(test_x, y_test)
    return Dataset(req.path.rstrip("/").split("/")[-1] or req.path, "audio", Split(x, y), test, info)


AUDIO = AudioModality()
modalities.add("audio", AUDIO, AudioModality.summary)


@npy_readers.register("audio", "waveforms N x samples at ?sr= Hz")
def read_npy(req: SourceRequest) -> Dataset:
    """npy:WAVES.npy?sr=16000[&labels=Y.npy&test=WT.npy&test_labels=YT.npy]: [N, samples] waveforms at sr Hz."""
    arrays = load_npy_arrays(req, "waveform array")
    rate = _int_option(req, "sr", DEFAULT_RATE)
    (y, y_test), classes = encode_labels(arrays.y, arrays.y_test)
    train = Split(audio_clips(arrays.x, rate, None, req.path), y)
    test = None if arrays.x_test is None else Split(audio_clips(arrays.x_test, rate, None, req.options["test"]),
                                                    y_test)
    return Dataset(req.uri, AUDIO.name, *equal_lengths(train, test), {"classes": classes})
