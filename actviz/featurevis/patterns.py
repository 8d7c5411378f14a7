"""What each filter responds to: input patterns that excite it, and the first layer's kernels.

Two ways to make a pattern (``find_patterns(method=...)``, the one call for both):

- ``"robust"`` (the default): feature visualisation as Lucid does it: a smooth
  Fourier-parameterised image kept in the valid pixel range (``param``), shifted, scaled and
  turned a little at every step (``transforms``). Readable pictures.
- ``"plain"``: gradient ascent on pixels (the second half of the book chapter the
  notebook comes from): start from a grey image with a little noise and change
  it, step by step, to make the objective (``objectives``) as large as possible; pixels are kept
  inside the model's input range. Shown stretched in contrast, as in the book.

All requested patterns are optimised together as one batch (``render``), so a step costs one
forward and one backward pass whatever their number. Either way, a target whose
objective has no gradient at any step (a dead filter) is reported in
``Patterns.dead`` and drawn flat grey instead of as noise.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..core.probe import Probe
from ..errors import ChoiceError, LayerNotFoundError
from .render import PLAIN_STEPS, ROBUST_STEPS, plain_patterns, robust_patterns
from .result import Patterns

__all__ = ["PATTERN_METHODS", "Patterns", "find_patterns", "first_layer_kernels"]

#: How a pattern is made: plain pixel ascent, or robust feature visualisation.
PATTERN_METHODS = ("plain", "robust")


def find_patterns(
    probe: Probe, layer: str | None, targets: Sequence[int], *, method: str = "robust", objective: str = "channel",
    steps: int | None = None, seed: int = 0, preprocessing: str | None = None,
    value_range: tuple[float, float] | None = None, class_names: Sequence[str] | None = None,
    progress: Callable[[int, int], bool | None] | None = None, **options,
) -> Patterns:
    """Patterns that excite ``targets`` (channels of ``layer``, or classes), made by ``method``.

    ``method``: "robust" or "plain"; ``objective``: "channel", "neuron" or
    "class"; ``steps``: default 128 (robust) or 30 (plain); ``preprocessing``:
    the model's pixel scaling (a key of ``PREPROCESSING``, preferred) or
    ``value_range``: its input range (default 0..1). ``options`` go to
    ``render.robust_patterns`` (shift, scale, rotate, total_variation, l2,
    ...) or ``plain_patterns`` (step_size). ``progress(step, steps)`` after each
    step; False stops with ``Cancelled``. Deterministic for ``seed``.

    >>> patterns = find_patterns(probe, "block2_conv1", [0, 1, 2], preprocessing="rescale")  # doctest: +SKIP
    >>> patterns.images.shape, patterns.dead, patterns.captions()                          # doctest: +SKIP
    """
    if method not in PATTERN_METHODS:
        raise ChoiceError(f"Unknown method '{method}'. Choose one of: {', '.join(PATTERN_METHODS)}.")
    make = robust_patterns if method == "robust" else plain_patterns
    return make(
        probe, layer, targets, objective=objective,
        steps=steps if steps is not None else (ROBUST_STEPS if method == "robust" else PLAIN_STEPS),
        seed=seed, preprocessing=preprocessing, value_range=value_range, class_names=class_names, progress=progress, **options,
    )


def first_layer_kernels(probe: Probe) -> tuple[str, np.ndarray]:
    """The first convolution layer's filters as small images: (layer name, uint8 (N, kh, kw, C)).

    C is 3 (RGB) for a three-channel input, 1 otherwise (the mean over input
    channels). Each filter is stretched to 0..255 on its own, mid-grey = 0 weight
    when the filter has weights of both signs.
    """
    convs = probe.table.convolutions
    if not convs:
        raise LayerNotFoundError("This model has no convolution layer, so there are no filters to show.")
    info = convs[0]
    kernel = np.asarray(probe.layer_object(info.name).get_weights()[0], dtype=np.float32)  # (kh, kw, in, out)
    if kernel.ndim != 4:
        raise LayerNotFoundError(f"The first convolution layer '{info.name}' has no 2-D kernels to draw.")
    filters = np.moveaxis(kernel, -1, 0)  # (out, kh, kw, in)
    if filters.shape[-1] != 3:
        filters = filters.mean(axis=-1, keepdims=True)
    reach = np.abs(filters).max(axis=(1, 2, 3), keepdims=True)
    reach[reach == 0] = 1.0
    return info.name, ((filters / reach) * 127.5 + 127.5).round().clip(0, 255).astype(np.uint8)


def kernel_picture(kernels: np.ndarray, *, side: int = 48, per_row: int = 16) -> np.ndarray:
    """First-layer kernels (uint8 (N, kh, kw, C), from ``first_layer_kernels``) tiled and enlarged
    to about ``side`` pixels each, whole pixels per weight: -> uint8 RGB."""
    from ..draw.figures import tile_images

    return tile_images(kernels, per_row=per_row, gap=2, zoom=max(1, side // kernels.shape[1]))
