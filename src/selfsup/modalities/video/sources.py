"""The `clips:` source: a folder of video files (.mp4, .webm, .mkv, .avi, .mov, .gif), decoded by PyAV (FFmpeg; the
'video' extra), each cut to T frames; sub-folders are labels.

A file gives its first `frames` frames taken every `stride` decoded frames (a clip too short for that repeats its
last frame), each centre-cropped to a square and resized to `size` x `size` (bilinear, antialiased), in RGB or grey
(`channels=1`). Decoding is the same at every reading, so reading again gives the same clips.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...data import Dataset, SourceRequest, labelled_files, sources
from ...errors import ConfigError, DataError
from ..base import get_modality

VIDEO_SUFFIXES = frozenset({".mp4", ".webm", ".mkv", ".avi", ".mov", ".gif"})


def decoded_frames(path: Path, frames: int, stride: int, grey: bool) -> list[np.ndarray]:
    """Up to `frames` frames [H, W, C] of the file, every `stride`-th decoded one; a one-line DataError naming the
    file when it cannot be decoded or holds no frame."""
    try:
        import av
    except ImportError:
        raise ConfigError("clips: needs PyAV: pip install 'selfsup[video]'") from None
    kept: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i % stride == 0:
                    kept.append(frame.to_ndarray(format="gray" if grey else "rgb24"))
                    if len(kept) == frames:
                        break
    except (av.FFmpegError, ValueError, IndexError) as exc:  # no video stream: IndexError / ValueError
        raise DataError(f"{path}: cannot decode a video ({type(exc).__name__}: {exc})") from None
    if not kept:
        raise DataError(f"{path}: no video frames")
    return kept


def clip_of(path: Path, frames: int, stride: int, size: int, grey: bool) -> np.ndarray:
    """One file as uint8 [frames, C, size, size]."""
    kept = decoded_frames(path, frames, stride, grey)
    kept += [kept[-1]] * (frames - len(kept))
    x = torch.from_numpy(np.stack([f if f.ndim == 3 else f[..., None] for f in kept])).permute(0, 3, 1, 2).float()
    h, w = x.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = F.interpolate(x[..., top:top + side, left:left + side], size=(size, size), mode="bilinear",
                      align_corners=False, antialias=side > size)
    return x.round().clamp(0, 255).to(torch.uint8).numpy()


def read_clips(folder: str, frames: int, stride: int, size: int, grey: bool) -> tuple[np.ndarray, list[str] | None]:
    files, labels = labelled_files(folder, VIDEO_SUFFIXES, "video files")
    return np.stack([clip_of(f, frames, stride, size, grey) for f in files]), labels


@sources.register("clips", "a folder of videos (.mp4/.webm/.mkv/.avi/.mov/.gif, decoded by PyAV; sub-folders are "
                  "labels), each cut to T frames: clips:FOLDER[?frames=16&stride=1&size=64&channels=3&test=FOLDER2]",
                  modality="video")
def load_clips(req: SourceRequest) -> Dataset:
    req.check_options({"frames", "stride", "size", "channels", "test"})
    if not req.path:
        raise ConfigError("clips: needs a folder, e.g. clips:videos/?frames=16")
    frames, stride = req.whole("frames", 16, 2, 4096), req.whole("stride", 1, 1, 1000)
    size, channels = req.whole("size", 64, 4, 4096), req.whole("channels", 3, 1, 3)
    if channels == 2:
        raise ConfigError(f"--data {req.uri}: channels=2; choose 1 (grey) or 3 (RGB)")
    x, labels = read_clips(req.path, frames, stride, size, channels == 1)
    x_test, test_labels = (read_clips(req.options["test"], frames, stride, size, channels == 1)
                           if "test" in req.options else (None, None))
    if "test" in req.options and (labels is None) != (test_labels is None):
        raise DataError(f"--data {req.uri}: one of the folders has label sub-folders and the other not")
    name = req.path.rstrip("/").split("/")[-1] or req.path
    return get_modality("video").dataset_from_arrays(x, labels, name, x_test, test_labels)
