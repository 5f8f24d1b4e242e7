"""Audio: recordings read into clip rows, log-mel or waveform inputs made on the device (see modality.py); importing
registers the modality and its `audio:` source."""
from . import modality  # noqa: F401
from .modality import audio_clips

__all__ = ["audio_clips"]
