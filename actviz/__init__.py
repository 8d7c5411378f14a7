"""actviz: see what a trained Keras convolutional network sees.

    >>> import actviz
    >>> maps = actviz.activations(model, "xray.jpg")   # a keras.Model, or a .keras / .h5 file  # doctest: +SKIP
    >>> maps.grid("block1_conv1")                      # every channel of a layer, as a picture  # doctest: +SKIP
    >>> actviz.grad_cam(model, "xray.jpg")             # where the model looked                  # doctest: +SKIP
    >>> actviz.explain(model, "xray.jpg", method="occlusion", checks=True)   # any of 13 methods, checked  # doctest: +SKIP
    >>> actviz.summarize(model, "chest_xray/test")     # one pass over a data set                # doctest: +SKIP
    >>> actviz.feature_patterns(model, "block3_conv1", [0, 1, 2])  # what filters look for       # doctest: +SKIP
    >>> actviz.discover_concepts(model, "chest_xray/test", "pneumonia")  # what the model sees, in concepts  # doctest: +SKIP

Arrays in, arrays out; nothing here imports Streamlit, and importing actviz
does not import TensorFlow (that happens when a model is first loaded).

``actviz.explain`` is the function of ``actviz.api``; the methods behind it live in
``actviz.explainers`` (their ``explain`` takes a ``Probe`` and a preprocessed batch).
"""

from .version import __version__

from .api import activations, explain, feature_patterns, grad_cam
from .dataset import Source, Summary, open_source, summarize
from .errors import (
    ActvizError, BudgetError, Cancelled, ChannelNotFoundError, ChoiceError, ClassNotFoundError, ImageError,
    LayerNotFoundError, ModelFileError, NothingToShowError, UnsafeModelError,
)
from .inputs.images import fit_image, open_image
from .inputs.batch import Batch, to_batch
from .explainers.registry import FAMILIES, METHOD_INFO, METHOD_NAMES, method_table
from .safety.models import OpenModel, open_model, probe_for
from .inputs.preprocessing import PREPROCESSING, choose_preprocessing, preprocess
from .core.probe import Activations, Probe
from .results import ExplanationMaps, FeatureMaps, HeatMaps
from .draw.grids import FeatureGrid, channel_levels, feature_grid, png_bytes, save_png, tile
from .draw.stats import LayerStats, depth_summary, layer_stats
from .concepts import Concepts, Tcav, discover_concepts
from .concepts.tcav import tcav

__all__ = [
    "__version__", "activations", "grad_cam", "explain", "summarize", "open_source", "Source", "Summary", "feature_patterns",
    "FeatureMaps", "HeatMaps", "ExplanationMaps", "Batch", "to_batch", "FAMILIES", "METHOD_INFO", "METHOD_NAMES", "method_table",
    "ActvizError", "BudgetError", "Cancelled", "ChannelNotFoundError", "ChoiceError", "ClassNotFoundError",
    "ImageError", "LayerNotFoundError", "ModelFileError", "NothingToShowError", "UnsafeModelError",
    "fit_image", "open_image", "OpenModel", "open_model", "probe_for",
    "PREPROCESSING", "choose_preprocessing", "preprocess", "Activations", "Probe",
    "FeatureGrid", "channel_levels", "feature_grid", "png_bytes", "save_png", "tile",
    "LayerStats", "depth_summary", "layer_stats",
    "discover_concepts", "tcav", "Concepts", "Tcav",
]
