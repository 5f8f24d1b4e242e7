"""Training: configuration, optimisers, the loop and run directories."""
from ..config import TrainConfig

__all__ = ["TrainConfig"]
