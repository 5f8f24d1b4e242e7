"""`FrameEncoder`: a SequenceEncoder whose steps each have an output of their own, computed by the same network at
every step (convolutions without pooling in time): no step shares its vector with a neighbour, so predicting a
later step's output is never copying an earlier one (CPC's future prediction needs this; a CNN that pools time or
a Transformer over patches repeats one vector for several steps). Steps past the end of a sample (padding) come
out as exact zeros, so a loss can leave them out.
"""
from __future__ import annotations

from .sequence import SequenceEncoder


class FrameEncoder(SequenceEncoder):
    """A SequenceEncoder with a distinct output at every step (no pooling in time)."""
