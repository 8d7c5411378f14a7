"""What every explanation method is: made for a probe and its registry entry, called on a batch,
returning one ``Explanation``. The families' bases (``cam``, ``attributions``) and ``occlusion``
build on it; the registry entry says how the raw map is shown and what the method is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..core.batches import Progress
from ..core.layers import LayerInfo
from ..core.probe import Probe
from ..core.target import Target
from .result import Explanation, display_map

if TYPE_CHECKING:
    from .schema import MethodInfo


class Explainer:
    """One method, ready to explain batches through ``probe``.

    ``info``: its registry entry; ``layer``: the layer of a class activation
    map, one of the table's ``cam_layers`` (None for the others); methods that run the model many times
    stack ``batch_size`` inputs per pass (None: as many as memory allows) and
    call ``progress(done, total)`` after each (``False`` stops them with ``Cancelled``).
    """

    def __init__(
        self, probe: Probe, info: "MethodInfo", *, layer: LayerInfo | None = None, batch_size: int | None = None,
        progress: Progress | None = None,
    ):
        self.probe, self.info, self.layer = probe, info, layer
        self.batch_size, self.progress = batch_size, progress

    def explain(self, batch: np.ndarray, class_index: int | Sequence[int] | None = None, **settings: Any) -> Explanation:
        """Explain each image of ``batch`` float32 (N, H, W, C), preprocessed, for its class
        (``class_index``: one for all, one per image, or None for the predicted one), with the
        method's checked ``settings``."""
        raise NotImplementedError

    def result(
        self, batch: np.ndarray, target: Target, logits: np.ndarray, outputs: np.ndarray, raw: np.ndarray, *,
        settings: dict, attributions: np.ndarray | None = None, **fields: Any,
    ) -> Explanation:
        """The ``Explanation`` of a raw map float (N, h, w): shown by the entry's display rule, with the
        class score and probability of each image (``logits`` (N, K), the model's first output ``outputs``)."""
        return Explanation(
            method=self.info.name, family=self.info.family, layer=None if self.layer is None else self.layer.name,
            input_size=tuple(batch.shape[1:3]), class_index=np.asarray(target.classes, dtype=np.int64),
            probability=target.output_probability(outputs, logits), score=target.scores(logits).astype(np.float32),
            raw=raw.astype(np.float32), heatmap=display_map(raw, self.info.display, attributions),
            predictions=np.asarray(outputs), display=self.info.display, title=self.info.title,
            settings_words=self.info.words(settings), settings=settings,
            attributions=None if attributions is None else attributions.astype(np.float32), **fields,
        )
