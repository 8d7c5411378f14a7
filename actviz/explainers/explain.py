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

import dataclasses
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
    layer of a class activation map, any of ``probe.table.cam_layers`` (default:
    ``probe.table.default_cam_layer()``, the last map before the global pooling,
    or a transformer's last attention input; the result's ``layer_reason`` says
    why in words); pixel methods take none. ``settings``: the method's own options, e.g.
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
    at, reason = _layer(probe, info, layer)
    limits = Limits(side=min(batch.shape[1:3]), channels=None if at is None else at.channels)
    options = info.check(settings, limits)
    explainer = info.method(probe, info, layer=at, batch_size=batch_size, progress=progress)
    result = explainer.explain(batch, class_index, **options)
    return dataclasses.replace(result, layer_reason=reason) if reason else result


def _layer(probe: Probe, info: MethodInfo, layer: str | int | None) -> tuple[LayerInfo | None, str]:
    """The layer a method explains at, and why in words when it was chosen by default: ``layer``
    (name, suffix or number) among the table's ``cam_layers``, or its ``default_cam_layer``; None
    for a method of the input pixels (or of the whole model), which refuses a layer in words."""
    if not info.layer:
        if layer is not None:
            what = "every attention layer of the transformer" if info.family == "attention" else "the input pixels"
            raise ChoiceError(f"{info.title} explains {what}, not a layer; leave the layer out.")
        return None, ""
    table = probe.table
    if layer is None:
        return table.default_cam_layer()
    return table.resolve(layer, among=table.cam_layers), ""
