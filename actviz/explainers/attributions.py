"""The base of pixel attributions (after captum's gradient methods): the gradient of the class
score with respect to the pixels, through the probe's traced graph, and what every pixel method
shares: one pass for the class and (for the methods that read it) the gradient at the image, the
gradient averaged over stacks of made inputs, and the result. Also what a black pixel is under a
preprocessing, and blurring, which baselines, occlusion and the checks share.

A method is a subclass in a file of its own that overrides ``local`` (how the gradient at an
input becomes its attribution: Saliency keeps the gradient, Gradient x Input multiplies by the
input) or ``attribute`` (methods that run the model on many made inputs). Attributions are
float64 (N, H, W, C), one value per colour channel; the raw map (N, H, W) is their sum over
colour channels, signed and not rescaled. The score is the class logit (see ``core.target``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..core.batches import batch_size, report, slices
from ..core.passes import gradient_pass, input_gradients, logits_and_outputs
from ..core.probe import Probe
from ..core.target import Target
from .base import Explainer
from .result import Explanation

#: ``local(inputs, gradients)``: float (M, H, W, C) twice -> the attributions of those inputs.
Local = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class InputPass:
    """What a pixel attribution starts from, for N images: ``batch`` float32 (N, H, W, C), the
    model inputs; ``gradients`` float64 (N, H, W, C), dS/dx at them (None for a method that does
    not read it); ``logits`` (N, K); ``target``: the class score; ``details``: numbers a method
    keeps beside its map."""

    batch: np.ndarray
    gradients: np.ndarray | None
    logits: np.ndarray
    target: Target
    details: dict = field(default_factory=dict)


class Attribution(Explainer):
    """A pixel attribution: by default the gradient itself (override ``local`` or ``attribute``)."""

    #: Whether the method reads the gradient at the image itself: then the first pass is a forward
    #: and backward pass, in which the predicted class is found too.
    gradient_at_image = True

    def explain(self, batch: np.ndarray, class_index: int | Sequence[int] | None = None, **settings: Any) -> Explanation:
        """Maps float32 (N, H, W) at the input's size, with ``attributions`` (N, H, W, C)."""
        if self.gradient_at_image:
            gradients, logits, outputs, classes = one_pass_gradients(self.probe, batch, class_index, requested=self.batch_size)
            target = Target(classes)
        else:
            logits, outputs = logits_and_outputs(self.probe, batch)
            target, gradients = Target.choose(outputs, class_index), None
        found = InputPass(batch, gradients, logits, target)
        attributions = self.attribute(found, **settings)
        return self.result(batch, target, logits, outputs, attributions.sum(axis=-1), settings=settings,
                           attributions=attributions, details=found.details)

    def attribute(self, found: InputPass, **settings: Any) -> np.ndarray:
        """float64 (N, H, W, C): the attributions of the batch."""
        return self.local(found.batch, found.gradients)

    @staticmethod
    def local(inputs: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        """The attributions of ``inputs`` from the gradient at them, both (M, H, W, C): the gradient."""
        return gradients

    def average(
        self, batch: np.ndarray, target: Target, copies: int, make: Callable[[np.ndarray, np.ndarray], np.ndarray], *,
        local: Local | None = None,
    ) -> np.ndarray:
        """float64 (N, H, W, C): the mean over ``copies`` of ``local`` (default: the gradient) at
        ``make(images, copy numbers)``.

        The N x copies inputs are made and differentiated a memory-sized stack at a
        time; ``make`` returns float32 (B, H, W, C) for B (image, copy) pairs.
        """
        local = local or Attribution.local
        count = len(batch)
        jobs = np.array([(n, j) for n in range(count) for j in range(copies)], dtype=np.int64)
        size = batch_size(self.probe, batch.shape[1:], backward=True, requested=self.batch_size)
        total = np.zeros(batch.shape, dtype=np.float64)
        for part in slices(len(jobs), size):
            images, numbers = jobs[part, 0], jobs[part, 1]
            inputs = make(images, numbers)
            gradients = input_gradients(self.probe, inputs, target[images]).astype(np.float64)
            np.add.at(total, images, local(inputs, gradients))
            report(self.progress, part.stop, len(jobs))
        return total / copies


def one_pass_gradients(
    probe: Probe, batch: np.ndarray, class_index: int | Sequence[int] | None, *, requested: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The gradient of each image's class score with respect to its pixels, float64 (N, H, W, C),
    with the logits (N, K), the model's first output (N, ...) and the classes int64 (N,), from one
    pass (the predicted class, when ``class_index`` is None, is found in the same pass)."""
    shape = probe.symbolic_predictions[0].shape[1:]
    if class_index is None:
        wanted = np.full(len(batch), -1)
    elif None in shape:  # an output of unknown width: ask the model first, then check the class
        wanted = Target.choose(logits_and_outputs(probe, batch)[1], class_index).classes
    else:  # the class checked against the output's width before any pass
        wanted = Target.choose(np.zeros((len(batch), int(np.prod(shape)))), class_index).classes
    size = batch_size(probe, batch.shape[1:], backward=True, requested=requested or len(batch))
    parts = [gradient_pass(probe, batch[part], wanted[part]) for part in slices(len(batch), size)]
    gradients, logits, outputs, chosen = (np.concatenate([p[i] for p in parts]) for i in range(4))
    return gradients.astype(np.float64), logits, outputs, chosen.astype(np.int64)


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
