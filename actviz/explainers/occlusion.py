"""Occlusion sensitivity: hide one square patch of the image at a time and measure how much the
class score drops (Zeiler & Fergus 2014), the occluded copies stacked into batches.

Each pixel's value is the mean drop of the class score (the logit, see
``core.target``) over the patches that cover it, as Captum's ``Occlusion`` does:
positive where hiding the pixel lowers the score (evidence for the class),
negative where it raises it. Patches are placed every ``stride`` pixels, and
a last row and column are added so that every pixel is covered.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.batches import batch_size as fitting_batch
from ..core.batches import report, slices
from ..core.passes import class_logits, logits_and_outputs
from ..core.target import Target
from .attributions import blurred
from .base import Explainer
from .result import Explanation
from .schema import Limits, eighth_of_side


def default_patch(height: int, width: int) -> int:
    """The side of the hidden square when none is given: an eighth of the shorter side.

    >>> default_patch(300, 300), default_patch(56, 80), default_patch(4, 4)
    (38, 7, 1)
    """
    return eighth_of_side(Limits(min(height, width)))


def patch_positions(size: int, patch: int, stride: int) -> list[int]:
    """Where patches of ``patch`` pixels start along an edge of ``size`` pixels, every ``stride``,
    with a last one flush with the far edge so every pixel is covered."""
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


class Occlusion(Explainer):
    """Occlusion sensitivity of each image: maps float32 (N, H, W) at the input's size."""

    def explain(
        self, batch: np.ndarray, class_index: int | Sequence[int] | None = None, *, patch: int | None = None,
        stride: int | None = None, fill: str | float = "black", black: float | np.ndarray = 0.0,
    ) -> Explanation:
        """``patch``: side of the hidden square in pixels (default an eighth of the
        shorter side); ``stride``: pixels between patches (default the patch: no
        overlap); ``fill``: "black" (``black``: the model input of a black pixel),
        "mean", "blur", or a number in the model's input units.
        """
        count, height, width, _ = batch.shape
        patch = default_patch(height, width) if patch is None else patch
        stride = patch if stride is None else stride
        logits, outputs = logits_and_outputs(self.probe, batch)
        target = Target.choose(outputs, class_index)
        filler = _filler(batch, fill, black)
        windows = [(top, left) for top in patch_positions(height, patch, stride) for left in patch_positions(width, patch, stride)]
        jobs = [(n, w) for n in range(count) for w in range(len(windows))]
        size = fitting_batch(self.probe, batch.shape[1:], requested=self.batch_size, extra_bytes=batch[0].nbytes)
        drops = np.zeros((count, len(windows)))
        base = target.scores(logits)
        for part in slices(len(jobs), size):
            images = np.array([n for n, _ in jobs[part]])
            hidden = batch[images].copy()
            for row, (n, w) in enumerate(jobs[part]):
                top, left = windows[w]
                hidden[row, top:top + patch, left:left + patch] = filler[n, top:top + patch, left:left + patch]
            drops[images, [w for _, w in jobs[part]]] = base[images] - target[images].scores(class_logits(self.probe, hidden))
            report(self.progress, part.stop, len(jobs))
        settings = {"patch": patch, "stride": stride, "fill": fill, "black": black}
        return self.result(batch, target, logits, outputs, _spread(drops, windows, patch, (height, width)), settings=settings,
                           details={"windows": len(windows)})


def _spread(drops: np.ndarray, windows: list[tuple[int, int]], patch: int, size: tuple[int, int]) -> np.ndarray:
    """float64 (N, H, W): each pixel's mean score drop over the windows covering it."""
    total = np.zeros((len(drops), *size))
    covered = np.zeros(size)
    for w, (top, left) in enumerate(windows):
        total[:, top:top + patch, left:left + patch] += drops[:, w, None, None]
        covered[top:top + patch, left:left + patch] += 1
    return total / covered


def _filler(batch: np.ndarray, fill: str | float, black: float | np.ndarray) -> np.ndarray:
    """float32 (N, H, W, C): what each pixel becomes when hidden (a fill the registry's schema took)."""
    if fill == "black":
        return np.broadcast_to(np.asarray(black, np.float32), batch.shape)
    if fill == "mean":
        return np.broadcast_to(batch.mean(axis=(1, 2), keepdims=True), batch.shape)
    if fill == "blur":
        return blurred(batch)
    return np.full(batch.shape, float(fill), dtype=np.float32)
