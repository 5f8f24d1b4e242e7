"""Video clips (see modality.py); importing registers the modality, its `npy:` reader, `clips:` and `sprites`."""
from . import modality  # noqa: F401
from . import sources  # noqa: F401
from . import sprites  # noqa: F401
