"""actviz: see what a trained Keras convolutional network sees.

Arrays in, arrays out; nothing here imports Streamlit, and importing actviz
does not import TensorFlow (that happens when a model is first loaded).
"""

from .errors import (
    ActvizError, ImageError, LayerNotFoundError, ModelFileError, NothingToShowError, UnsafeModelError,
)
from .images import PREPROCESSING, fit_image, open_image, preprocess
from .render import FeatureGrid, channel_levels, feature_grid, png_bytes, save_png, tile
from .stats import LayerStats, depth_summary, layer_stats

__all__ = [
    "ActvizError", "ImageError", "LayerNotFoundError", "ModelFileError", "NothingToShowError", "UnsafeModelError",
    "PREPROCESSING", "fit_image", "open_image", "preprocess",
    "FeatureGrid", "channel_levels", "feature_grid", "png_bytes", "save_png", "tile",
    "LayerStats", "depth_summary", "layer_stats",
]
