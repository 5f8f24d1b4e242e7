"""Graphs: graph-level and node-level data (see modality.py); importing registers the modality, its sources and
the embedded `motifs`."""
from . import modality  # noqa: F401
from . import sources  # noqa: F401
from . import nodes  # noqa: F401
from . import motifs  # noqa: F401
