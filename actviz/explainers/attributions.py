"""Pixel attributions at the input's resolution: Saliency (vanilla gradients), SmoothGrad,
Integrated Gradients and Gradient x Input, through the probe's traced graph.

Each takes a preprocessed batch float32 (N, H, W, C) and returns an
``Explanation`` whose ``attributions`` are (N, H, W, C), one value per colour
channel, and whose ``raw`` map (N, H, W) is their sum over colour channels,
signed and not rescaled. The score is the class logit (see ``scores``):

- Saliency: dS/dx
- SmoothGrad: the mean of dS/dx over x + noise, noise ~ N(0, (noise * (max x - min x))^2)
- Integrated Gradients: (x - x') * mean_k dS/dx at x' + a_k (x - x'), a_k = (k + 1/2) / steps
  (the midpoint rule); the attributions add up to about S(x) - S(x')
- Gradient x Input: x * dS/dx

Stacks of inputs (noisy copies, points on the path) go through the model as
many per pass as the memory budget allows, with ``progress`` told after each.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..core.batches import Progress, batch_size, report, slices
from ..errors import ChoiceError
from .result import Explanation, check_batch, display_map
from .registry import BASELINES
from ..core.passes import logits_and_outputs
from ..core.probe import Probe
from ..core.target import choose_classes, class_probability, score_values

ATTRIBUTIONS = ("saliency", "smoothgrad", "integrated-gradients", "gradient-x-input")


def black_input(preprocessing: str, channels: int) -> np.ndarray:
    """float32 (C,): the model input of a black pixel under a preprocessing (0 for pixels / 255,
    -1 for 'tf', minus the ImageNet mean for 'caffe'); the fill for "black" baselines and patches."""
    from ..inputs.preprocessing import preprocess

    return preprocess(np.zeros((1, 1, channels), dtype=np.uint8), preprocessing)[0, 0, 0]


def blurred(batch: np.ndarray, *, sigma: float | None = None) -> np.ndarray:
    """A Gaussian blur of each image: float32 (N, H, W, C) -> same shape. ``sigma`` in pixels;
    default an eighth of the longer side, which blurs an image beyond recognition (the fixed
    5 pixels the insertion metric's paper used on 224-pixel photographs leave a small image,
    such as a 56-pixel digit, perfectly readable, so its curve would start at the answer)."""
    from ..draw.resample import blur_matrix

    images = np.asarray(batch, dtype=np.float32)
    spread = max(images.shape[1:3]) / 8.0 if sigma is None else float(sigma)
    rows, cols = blur_matrix(images.shape[1], spread), blur_matrix(images.shape[2], spread)
    return np.einsum("Hh,nhwc,Ww->nHWc", rows, images.astype(np.float64), cols, optimize=True).astype(np.float32)


def pixel_attribution(
    probe: Probe, batch: np.ndarray, *, method: str = "saliency", class_index: int | Sequence[int] | None = None,
    samples: int = 20, noise: float = 0.2, steps: int = 50, baseline: str | np.ndarray = "black",
    black: float | np.ndarray = 0.0, seed: int = 0, batch_size: int | None = None, progress: Progress | None = None,
) -> Explanation:
    """A pixel attribution of each image of a batch: float32 (N, H, W, C) -> ``Explanation`` (N, H, W).

    ``method``: one of ``ATTRIBUTIONS``; ``class_index``: one class, one per
    image, or None for each image's predicted class. SmoothGrad: ``samples``
    noisy copies, ``noise`` the noise's spread as a share of each image's range
    of values, ``seed``. Integrated Gradients: ``steps`` points on the path
    from ``baseline`` ("black", "blur", "noise", or an array (H, W, C) or
    (N, H, W, C) in the model's input units); ``black`` is the model input of
    a black pixel (see ``black_input``).
    """
    if method not in ATTRIBUTIONS:
        raise ChoiceError(f"Unknown pixel attribution '{method}'. Choose one of: {', '.join(ATTRIBUTIONS)}.")
    batch = check_batch(batch)
    details: dict = {}
    settings: dict = {}
    if method in ("saliency", "gradient-x-input"):  # one pass: the predicted class is found in it
        gradients, logits, probabilities, chosen = one_pass_gradients(probe, batch, class_index, requested=batch_size)
        attributions = gradients if method == "saliency" else gradients * batch
    else:
        logits, probabilities = logits_and_outputs(probe, batch)
        chosen = choose_classes(probabilities, class_index)
    if method == "smoothgrad":
        settings = {"samples": _whole(samples, "samples", 1, 10_000), "noise": _share(noise), "seed": int(seed)}
        attributions = smooth_gradients(probe, batch, chosen, **settings, requested=batch_size, progress=progress)
    elif method == "integrated-gradients":
        steps = _whole(steps, "steps", 1, 10_000)
        start = baseline_images(batch, baseline, black=black, seed=seed)
        settings = {"steps": steps, "baseline": baseline, "black": black, "seed": int(seed)}
        attributions = integrated_gradients(probe, batch, start, chosen, steps=steps, requested=batch_size, progress=progress)
        start_logits, _ = logits_and_outputs(probe, start)
        details = completeness_details(attributions, score_values(logits, chosen), score_values(start_logits, chosen))
    raw = attributions.sum(axis=-1)
    display = "gradient" if method in ("saliency", "smoothgrad") else "magnitude"
    return Explanation(
        method=method, family="gradient", layer=None, input_size=tuple(batch.shape[1:3]), class_index=chosen,
        probability=class_probability(probabilities, chosen), score=score_values(logits, chosen).astype(np.float32),
        raw=raw.astype(np.float32), heatmap=display_map(raw, display, attributions), predictions=np.asarray(probabilities),
        display=display, attributions=attributions.astype(np.float32), settings=settings, details=details,
    )


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


# --- baselines -----------------------------------------------------------------------------


def baseline_images(
    batch: np.ndarray, baseline: str | np.ndarray, *, black: float | np.ndarray = 0.0, seed: int = 0,
) -> np.ndarray:
    """The starting images of Integrated Gradients, float32 (N, H, W, C), for a batch (N, H, W, C)."""
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
    if baseline == "noise":
        images = []
        for n, image in enumerate(batch):
            rng = np.random.default_rng((int(seed), n))
            images.append(rng.uniform(image.min(), image.max(), size=image.shape))
        return np.asarray(images, dtype=np.float32)
    raise ChoiceError(f"Unknown baseline '{baseline}'. Choose one of: {', '.join(BASELINES)}.")


# --- the gradient passes ---------------------------------------------------------------------


def _gradient(probe: Probe, inputs: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """float64 (M, H, W, C): d(class score)/d(input) for a stack of inputs, one backward pass."""
    from ..core.passes import input_gradients as compiled_gradients

    return compiled_gradients(probe, inputs, chosen).astype(np.float64)


def one_pass_gradients(
    probe: Probe, batch: np.ndarray, class_index: int | Sequence[int] | None, *, requested: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The gradient of each image's class score with respect to its pixels, float64 (N, H, W, C),
    with the logits (N, K), the model's first output (N, ...) and the classes int64 (N,), from one
    pass (the predicted class, when ``class_index`` is None, is found in the same pass)."""
    from ..core.passes import gradient_pass

    shape = probe.symbolic_predictions[0].shape[1:]
    if class_index is None:
        wanted = np.full(len(batch), -1)
    elif None in shape:  # an output of unknown width: ask the model first, then check the class
        wanted = choose_classes(logits_and_outputs(probe, batch)[1], class_index)
    else:  # the class checked against the output's width before any pass
        wanted = choose_classes(np.zeros((len(batch), int(np.prod(shape)))), class_index)
    size = batch_size(probe, batch.shape[1:], backward=True, requested=requested or len(batch))
    parts = [gradient_pass(probe, batch[part], wanted[part]) for part in slices(len(batch), size)]
    gradients, logits, outputs, chosen = (np.concatenate([p[i] for p in parts]) for i in range(4))
    return gradients.astype(np.float64), logits, outputs, chosen.astype(np.int64)


def gradient_average(
    probe: Probe, batch: np.ndarray, chosen: np.ndarray, copies: int, make: Callable[[np.ndarray, np.ndarray], np.ndarray], *,
    requested: int | None = None, progress: Progress | None = None,
) -> np.ndarray:
    """float64 (N, H, W, C): the mean over ``copies`` of the gradient at ``make(images, copy numbers)``.

    The N x copies inputs are made and differentiated a memory-sized stack at a
    time; ``make`` returns float32 (B, H, W, C) for B (image, copy) pairs.
    """
    count = len(batch)
    jobs = np.array([(n, j) for n in range(count) for j in range(copies)], dtype=np.int64)
    size = batch_size(probe, batch.shape[1:], backward=True, requested=requested)
    total = np.zeros(batch.shape, dtype=np.float64)
    for part in slices(len(jobs), size):
        images, numbers = jobs[part, 0], jobs[part, 1]
        np.add.at(total, images, _gradient(probe, make(images, numbers), chosen[images]))
        report(progress, part.stop, len(jobs))
    return total / copies


def smooth_gradients(
    probe: Probe, batch: np.ndarray, chosen: np.ndarray, *, samples: int, noise: float, seed: int,
    requested: int | None = None, progress: Progress | None = None,
) -> np.ndarray:
    """SmoothGrad, float64 (N, H, W, C): the mean gradient over ``samples`` noisy copies of each image.

    The noise of copy j of image n comes from ``default_rng((seed, n, j))``, so
    the result does not depend on how the copies are stacked.
    """
    spread = noise * (batch.max(axis=(1, 2, 3)) - batch.min(axis=(1, 2, 3)))

    def make(images: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        return np.stack([
            batch[n] + np.random.default_rng((seed, int(n), int(j))).normal(0.0, spread[n], batch.shape[1:]).astype(np.float32)
            for n, j in zip(images, numbers)
        ])

    return gradient_average(probe, batch, chosen, samples, make, requested=requested, progress=progress)


def integrated_gradients(
    probe: Probe, batch: np.ndarray, start: np.ndarray, chosen: np.ndarray, *, steps: int,
    requested: int | None = None, progress: Progress | None = None,
) -> np.ndarray:
    """Integrated Gradients, float64 (N, H, W, C): (x - x') times the mean gradient at the midpoints
    of ``steps`` equal pieces of the straight path from ``start`` x' to the image x."""
    difference = batch.astype(np.float64) - start

    def make(images: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        alphas = ((numbers + 0.5) / steps)[:, None, None, None]
        return (start[images] + alphas * difference[images]).astype(np.float32)

    return difference * gradient_average(probe, batch, chosen, steps, make, requested=requested, progress=progress)


def _whole(value: int, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= int(value) <= high:
        raise ChoiceError(f"The number of {name} must be a whole number from {low} to {high} (got {value}).")
    return int(value)


def _share(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0.0 <= float(value) <= 1.0:
        raise ChoiceError(f"The noise level is a share of the image's range of values, from 0 to 1 (got {value}).")
    return float(value)
