"""`VocabularyEncoder`: a SequenceEncoder over discrete ids (int64 [B, T], 0 = padding) from a vocabulary of
`vocab_size` ids: a method that predicts ids (TSDAE's decoder, masked language modelling) sizes its output by it.
"""
from __future__ import annotations

from .sequence import SequenceEncoder


class VocabularyEncoder(SequenceEncoder):
    """A SequenceEncoder whose inputs are ids from a vocabulary (0 = padding; the model never predicts it)."""

    vocab_size: int
