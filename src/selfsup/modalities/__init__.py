"""Built-in modalities; importing this package registers them and their data sources."""
from .base import Modality, get_modality, modalities
from . import image  # noqa: F401
from . import timeseries  # noqa: F401
from . import tabular  # noqa: F401
from . import text  # noqa: F401
from . import graph  # noqa: F401
from . import audio  # noqa: F401
from . import npy  # noqa: F401
from . import prepared  # noqa: F401

__all__ = ["Modality", "get_modality", "modalities"]
