"""selfsup: self-supervised representation learning with one API across modalities and built-in evaluation."""
from .version import __version__
from .api import SelfSupervisedEmbedder, dataset_from_array, load, train
from .errors import SelfSupError
from .loading import load_dataset
from .run import Run

__all__ = ["train", "load", "Run", "SelfSupervisedEmbedder", "SelfSupError", "dataset_from_array", "load_dataset", "__version__"]
