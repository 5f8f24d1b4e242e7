"""selfsup: self-supervised representation learning with one API across modalities and built-in evaluation."""
__version__ = "0.1.0"

from .api import SelfSupervisedEmbedder, dataset_from_array, load, train  # noqa: E402
from .errors import SelfSupError  # noqa: E402
from .run import Run  # noqa: E402

__all__ = ["train", "load", "Run", "SelfSupervisedEmbedder", "SelfSupError", "dataset_from_array", "__version__"]
