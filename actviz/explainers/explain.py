"""Why the model answered as it did: one call for every explanation method, and Grad-CAM as it
always was.

``explain(probe, batch, method=...)`` runs any method of ``methods.METHOD_INFO``
(class activation maps in ``cams``, pixel attributions in ``attributions``,
occlusion in ``occlusion``) the same way: batch-first, for one class, one per
image, or each image's predicted class, returning an ``Explanation``. The
gradients flow through the same traced graph the feature maps come from, so
this works for Sequential models, layers inside a nested base and Keras 2
files, where the usual recipe ``keras.Model(model.inputs, [conv.output,
model.output])`` gives no gradient or fails to build.

``grad_cam`` keeps its own result type, ``ClassActivationMap``, for the
``gradcam`` command and the callers written for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..core.batches import Progress
from ..errors import ChoiceError
from .result import Explanation
from .registry import METHOD_INFO, METHOD_NAMES, check_settings, method_info, method_table
from ..core.probe import Probe
from ..core.target import choose_classes, class_probability, score_tensor

#: The methods of the ``gradcam`` command and of ``grad_cam``.
METHODS = {
    "gradcam": "Grad-CAM: each channel weighted by its average gradient",
    "gradcam++": "Grad-CAM++: weights that favour every region supporting the class, not only the strongest",
}

__all__ = [
    "METHODS", "METHOD_INFO", "METHOD_NAMES", "ClassActivationMap", "Explanation", "class_scores", "explain",
    "grad_cam", "method_info", "method_table",
]


def explain(
    probe: Probe, batch: np.ndarray, *, method: str = "gradcam", class_index: int | Sequence[int] | None = None,
    layer: str | int | None = None, batch_size: int | None = None, progress: Progress | None = None, **settings: Any,
) -> Explanation:
    """Explain each image's class by one method: float32 (N, H, W, C), preprocessed -> ``Explanation``.

    ``method``: a name of ``METHOD_NAMES`` (``method_table()`` lists them by
    family, with a sentence each); ``class_index``: one class for all images,
    one per image, or None for each image's predicted class; ``layer``: the
    convolution layer of a class activation map (default: the last one; pixel
    methods take none). ``settings``: the method's own options, e.g.
    ``channels`` (Score-CAM), ``samples``/``noise``/``seed`` (SmoothGrad),
    ``steps``/``baseline``/``black`` (Integrated Gradients), ``patch``/
    ``stride``/``fill`` (occlusion); see ``method_info(name).settings``.
    Methods that run the model many times stack ``batch_size`` inputs per pass
    (default: as many as memory allows) and call ``progress(done, total)``
    after each pass; ``False`` stops them with ``Cancelled``.

    >>> result = explain(probe, batch, method="scorecam", class_index=1)   # doctest: +SKIP
    >>> result.raw.shape, result.heatmap.max()                              # doctest: +SKIP
    ((1, 18, 18), 1.0)
    """
    info = method_info(method)
    options = check_settings(method, settings)
    if info.family == "cam":
        from .cams import class_activation_map

        return class_activation_map(probe, batch, method=method, layer=layer, class_index=class_index,
                                    batch_size=batch_size, progress=progress, **options)
    if layer is not None:
        raise ChoiceError(f"{info.title} explains the input pixels, not a layer; leave the layer out.")
    if method == "occlusion":
        from .occlusion import occlusion

        return occlusion(probe, batch, class_index=class_index, batch_size=batch_size, progress=progress, **options)
    from .attributions import pixel_attribution

    return pixel_attribution(probe, batch, method=method, class_index=class_index, batch_size=batch_size,
                             progress=progress, **options)


@dataclass(frozen=True)
class ClassActivationMap:
    """Where in each image a layer found evidence for a class; batch axis first.

    ``heatmap``: float32 (N, h, w) in 0..1, the layer's height and width (each
    image's map divided by its own maximum); ``raw``: float32 (N, h, w), the
    map before that scaling; ``weights``: float32 (N, C), each channel's
    importance; ``ranking``: int (N, C), channels by weight, highest first;
    ``class_index``: int (N,); ``probability``: float32 (N,), the model's
    probability for that class; ``predictions``: the model's first output (N, ...).
    """

    layer: str
    method: str
    class_index: np.ndarray
    probability: np.ndarray
    heatmap: np.ndarray
    raw: np.ndarray
    weights: np.ndarray
    ranking: np.ndarray
    predictions: np.ndarray

    def __len__(self) -> int:
        return int(self.heatmap.shape[0])


def grad_cam(
    probe: Probe, batch: np.ndarray, *, layer: str | int | None = None,
    class_index: int | Sequence[int] | None = None, method: str = "gradcam",
) -> ClassActivationMap:
    """Grad-CAM (or Grad-CAM++) of a class at a layer, for each image of a batch, in one pass.

    ``batch``: float32 (N, H, W, C), preprocessed; ``layer``: a convolution layer
    (default: the last one); ``class_index``: one class for all images, one per
    image, or None for each image's predicted class. The class score is the
    logit (before softmax/sigmoid); for a single sigmoid output, class 1 is the
    logit and class 0 its negative (the logit of ``1 - p``).
    """
    from .cams import class_activation_map

    if method not in METHODS:
        raise ChoiceError(f"Unknown method '{method}'. Choose one of: {', '.join(METHODS)}.")
    result = class_activation_map(probe, batch, method=method, layer=layer, class_index=class_index)
    return ClassActivationMap(
        layer=result.layer, method=method, class_index=result.class_index, probability=result.probability,
        heatmap=result.heatmap, raw=np.maximum(result.raw, 0.0), weights=result.weights,
        ranking=np.argsort(-result.weights, axis=1, kind="stable"), predictions=result.predictions,
    )


def class_scores(scores, probabilities, class_index: int | Sequence[int] | None):
    """For each image: (class indices int (N,), the summed score tensor to differentiate, float32 (N,) probabilities).

    Each image's score depends on that image only, so the gradient of the sum
    gives every image its own gradient in one backward pass.
    """
    import tensorflow as tf

    chosen = choose_classes(probabilities, class_index)
    return chosen, tf.reduce_sum(score_tensor(scores, chosen)), class_probability(probabilities, chosen)
