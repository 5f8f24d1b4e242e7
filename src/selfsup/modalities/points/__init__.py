"""3-D point clouds (see modality.py); importing registers the modality, its `npy:` reader, `meshes:` and
`shapes`."""
from . import modality  # noqa: F401
from . import sources  # noqa: F401
from . import shapes  # noqa: F401
