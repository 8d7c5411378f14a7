"""Why the model answered as it did: one call for every explanation method, dispatched by the
registry.

``explain(probe, batch, method=...)`` runs any method of ``registry.METHOD_INFO`` the same way:
batch-first, for one class, one per image, or each image's predicted class, returning an
``Explanation``. The gradients flow through the same traced graph the feature maps come from, so
this works for Sequential models, layers inside a nested base and Keras 2 files, where the usual
recipe ``keras.Model(model.inputs, [conv.output, model.output])`` gives no gradient or fails to
build.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..core.batches import Progress
from ..core.layers import LayerInfo
from ..core.probe import Probe
from ..errors import ChoiceError
from . import registry
from .result import Explanation, check_batch
from .schema import Limits, MethodInfo


def explain(
    probe: Probe, batch: np.ndarray, *, method: str = "gradcam", class_index: int | Sequence[int] | None = None,
    layer: str | int | None = None, batch_size: int | None = None, progress: Progress | None = None, **settings: Any,
) -> Explanation:
    """Explain each image's class by one method: float32 (N, H, W, C), preprocessed -> ``Explanation``.

    ``method``: a name of ``registry.METHOD_NAMES`` (``registry.method_table()`` lists them by
    family, with a sentence each); ``class_index``: one class for all images,
    one per image, or None for each image's predicted class; ``layer``: the
    convolution layer of a class activation map (default: the last one; pixel
    methods take none). ``settings``: the method's own options, e.g.
    ``channels`` (Score-CAM), ``samples``/``noise``/``seed`` (SmoothGrad),
    ``steps``/``baseline``/``black`` (Integrated Gradients), ``patch``/
    ``stride``/``fill`` (occlusion); see ``method_info(name).schema``. Every
    setting is checked before the model runs. Methods that run the model many
    times stack ``batch_size`` inputs per pass (default: as many as memory
    allows) and call ``progress(done, total)`` after each pass; ``False`` stops
    them with ``Cancelled``.

    >>> result = explain(probe, batch, method="scorecam", class_index=1)   # doctest: +SKIP
    >>> result.raw.shape, result.heatmap.max()                              # doctest: +SKIP
    ((1, 18, 18), 1.0)
    """
    info = registry.method_info(method)
    info.check(settings)  # a setting the method lacks is said before anything else
    batch = check_batch(batch)
    at = _layer(probe, info, layer)
    limits = Limits(side=min(batch.shape[1:3]), channels=None if at is None else at.channels)
    options = info.check(settings, limits)
    explainer = info.method(probe, info, layer=at, batch_size=batch_size, progress=progress)
    return explainer.explain(batch, class_index, **options)


def _layer(probe: Probe, info: MethodInfo, layer: str | int | None) -> LayerInfo | None:
    """The convolution layer a method explains at: ``layer`` (name, suffix or number) or the last one;
    None for a method of the input pixels, which refuses a layer in words."""
    if not info.layer:
        if layer is not None:
            raise ChoiceError(f"{info.title} explains the input pixels, not a layer; leave the layer out.")
        return None
    table = probe.table
    return table.last_convolution() if layer is None else table.resolve(layer, among=table.convolutions)
