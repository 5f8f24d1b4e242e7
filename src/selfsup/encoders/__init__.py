"""Encoder protocols, declared by base classes rather than probed with `hasattr`, one file each:
`Encoder` (base.py: one vector per sample), `SequenceEncoder` (sequence.py: also one per step), `FrameEncoder`
(frame.py: a distinct output per step), `VocabularyEncoder` (vocabulary.py: over vocabulary ids), `TokenEncoder`
(token.py: patch tokens that can be dropped) and `GraphEncoder` (graph.py: per-node outputs); each file's docstring
states its protocol.

A method states which kind it needs (`Method.encoder_kind`); the trainer checks it with `isinstance`
before building the method and names the encoders that qualify when it does not hold.
"""
from __future__ import annotations

from .base import Encoder, FineTuning
from .frame import FrameEncoder
from .graph import GraphEncoder, NodeOutputs
from .sequence import SequenceEncoder
from .token import TokenEncoder
from .vocabulary import VocabularyEncoder

__all__ = ["Encoder", "FineTuning", "FrameEncoder", "GraphEncoder", "NodeOutputs", "SequenceEncoder", "TokenEncoder",
           "VocabularyEncoder", "encoder_kind_name"]


def encoder_kind_name(kind: type[Encoder]) -> str:
    """'a sequence encoder' / 'a token encoder' / 'an encoder', for error messages."""
    if issubclass(kind, TokenEncoder):
        return "a token encoder (patch tokens that can be dropped, e.g. vit_tiny)"
    if issubclass(kind, GraphEncoder):
        return "a graph encoder (per-node outputs, e.g. gin)"
    if issubclass(kind, VocabularyEncoder):
        return "an encoder over vocabulary ids (text)"
    return "a sequence encoder (per-step outputs)" if issubclass(kind, SequenceEncoder) else "an encoder"
