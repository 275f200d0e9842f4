"""x2face: animate a face photo with another face's video, a head pose or a voice (X2Face, ECCV 2018)."""
from .config import X2FaceConfig, get_config
from .model import X2Face

__version__ = "0.1.0"
__all__ = ["X2Face", "X2FaceConfig", "get_config", "__version__"]
