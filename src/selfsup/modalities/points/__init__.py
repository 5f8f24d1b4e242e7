"""3-D point clouds (see modality.py); importing registers the modality, its `npy:` reader and `meshes:`."""
from . import modality  # noqa: F401
from . import sources  # noqa: F401
