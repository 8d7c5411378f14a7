"""Integrated Gradients (Sundararajan et al. 2017): (x - x') * mean_k dS/dx at x' + a_k (x - x'),
a_k = (k + 1/2) / steps (the midpoint rule), from a baseline x' ("black", "blur", "noise" or a
given image); the attributions add up to about S(x) - S(x'), and the result's ``details`` say
how closely (the completeness check).
"""

from __future__ import annotations

import numpy as np

from ..core.passes import logits_and_outputs
from ..errors import ChoiceError
from .attributions import Attribution, InputPass, blurred


class IntegratedGradients(Attribution):
    gradient_at_image = False

    def attribute(self, found: InputPass, *, steps: int, baseline: str | np.ndarray, black: float | np.ndarray, seed: int) -> np.ndarray:
        batch, target = found.batch, found.target
        start = baseline_images(batch, baseline, black=black, seed=seed)
        difference = batch.astype(np.float64) - start

        def make(images: np.ndarray, numbers: np.ndarray) -> np.ndarray:
            alphas = ((numbers + 0.5) / steps)[:, None, None, None]
            return (start[images] + alphas * difference[images]).astype(np.float32)

        attributions = difference * self.average(batch, target, steps, make)
        start_logits, _ = logits_and_outputs(self.probe, start)
        found.details.update(completeness_details(attributions, target.scores(found.logits), target.scores(start_logits)))
        return attributions


def baseline_images(
    batch: np.ndarray, baseline: str | np.ndarray, *, black: float | np.ndarray = 0.0, seed: int = 0,
) -> np.ndarray:
    """The starting images of Integrated Gradients, float32 (N, H, W, C), for a batch (N, H, W, C):
    black pixels (``black``: the model input of one), the image blurred, uniform noise over each
    image's range of values, or a given image (H, W, C) or batch (N, H, W, C)."""
    if not isinstance(baseline, str):
        start = np.asarray(baseline, dtype=np.float32)
        try:
            return np.ascontiguousarray(np.broadcast_to(start, batch.shape), dtype=np.float32)
        except ValueError:
            raise ChoiceError(f"A baseline image must have the batch's shape {batch.shape[1:]} (got {start.shape}).") from None
    if baseline == "black":
        return np.broadcast_to(np.asarray(black, np.float32), batch.shape).astype(np.float32)
    if baseline == "blur":
        return blurred(batch)
    images = []
    for n, image in enumerate(batch):  # "noise", the last choice the registry's schema lets through
        rng = np.random.default_rng((int(seed), n))
        images.append(rng.uniform(image.min(), image.max(), size=image.shape))
    return np.asarray(images, dtype=np.float32)


def completeness_details(attributions: np.ndarray, score: np.ndarray, baseline_score: np.ndarray) -> dict:
    """Integrated Gradients' account: the attributions' sum against the change of the score, per image.

    Returns float64 arrays (N,): ``score`` S(x), ``baseline_score`` S(x'),
    ``attribution_sum``, ``completeness_gap`` = |sum - (S(x) - S(x'))| / |S(x) - S(x')|.
    """
    total = np.asarray(attributions, dtype=np.float64).reshape(len(attributions), -1).sum(axis=1)
    change = np.asarray(score, dtype=np.float64) - np.asarray(baseline_score, dtype=np.float64)
    gap = np.abs(total - change) / np.where(np.abs(change) > 1e-12, np.abs(change), 1.0)
    return {"score": np.asarray(score, np.float64), "baseline_score": np.asarray(baseline_score, np.float64),
            "attribution_sum": total, "completeness_gap": gap}
