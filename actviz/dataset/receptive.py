"""Which input pixels a position of a layer's grid can see: its receptive field.

Worked out from the model's layers, not from its weights: walking the traced graph back from
the layer to the input, each convolution or pooling layer widens the field by (kernel - 1)
times the current jump (the distance in input pixels between neighbouring positions) and
multiplies the jump by its stride; ``same`` padding shifts where position 0 sits. This is the
theoretical field (every pixel that can change the value), the same for every image; the test
checks it against the gradient of a position with respect to the input.

Layers that keep the grid size (activations, normalisation, additions, concatenations) keep the
widest field of their inputs. Anything that mixes the whole image (a global pooling feeding a
multiplication, as in squeeze-and-excitation blocks) or changes the grid in a way not listed
here (upsampling, resizing, transposed convolutions) gives the whole image: never too small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

_CONVOLUTIONS = {"Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Convolution2D"}
_POOLING = {"MaxPooling2D", "AveragePooling2D", "MaxPool2D", "AvgPool2D"}


@dataclass(frozen=True)
class Axis:
    """One axis of a field: ``size`` in input pixels (None: the whole image), ``jump`` between
    neighbouring positions, ``start``: centre of position 0 in input pixels, ``length`` of the grid."""

    size: float | None
    jump: float
    start: float
    length: int


@dataclass(frozen=True)
class ReceptiveField:
    """The field of every position of a layer's grid, for an input of ``image_hw`` (H, W)."""

    layer: str
    rows: Axis
    cols: Axis
    image_hw: tuple

    def box(self, y: int, x: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) in input pixels, bottom/right exclusive, inside the image,
        of the pixels that position (y, x) sees."""
        top, bottom = _span(self.rows, y, self.image_hw[0])
        left, right = _span(self.cols, x, self.image_hw[1])
        return top, left, bottom, right

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the field in pixels, capped at the image."""
        return (min(self.image_hw[0], int(self.rows.size or self.image_hw[0])), min(self.image_hw[1], int(self.cols.size or self.image_hw[1])))


def receptive_field(probe: Any, layer: str | int, image_hw: tuple[int, int]) -> ReceptiveField:
    """The receptive field of ``layer`` for images of ``image_hw`` (H, W) pixels."""
    info = probe.layer(layer)
    start = (Axis(1.0, 1.0, 0.0, int(image_hw[0])), Axis(1.0, 1.0, 0.0, int(image_hw[1])))
    memo: dict[int, tuple[Axis, Axis] | None] = {id(probe.symbolic_input): start}
    found = _walk(probe, probe.symbolic_output(info.name), memo)
    rows, cols = found if found is not None else _whole(image_hw)
    return ReceptiveField(info.name, rows, cols, (int(image_hw[0]), int(image_hw[1])))


def _walk(probe: Any, tensor: Any, memo: dict) -> tuple[Axis, Axis] | None:
    """(rows, cols) of a traced tensor; None when its field is the whole image."""
    key = id(tensor)
    if key in memo:
        return memo[key]
    stack = [tensor]
    while stack:  # iterative, so a deep network does not hit Python's recursion limit
        current = stack[-1]
        layer, inputs = probe.symbolic_producer(current)
        pending = [t for t in inputs if id(t) not in memo]
        if pending and layer is not None:
            stack.extend(pending)
            continue
        stack.pop()
        memo[id(current)] = None if layer is None else _through(layer, [memo[id(t)] for t in inputs], inputs, current)
    return memo[key]


def _through(layer: Any, fields: list, inputs: list, output: Any) -> tuple[Axis, Axis] | None:
    """The field after ``layer``, from the fields of its inputs."""
    if not fields or any(f is None for f in fields) or any(len(t.shape) != 4 for t in inputs) or len(output.shape) != 4:
        return None
    widest = max(fields, key=lambda f: ((f[0].size or 0) * (f[1].size or 0)))
    kind = type(layer).__name__
    config = layer.get_config() if hasattr(layer, "get_config") else {}
    if kind in _CONVOLUTIONS or kind in _POOLING:
        kernel = config.get("kernel_size") or config.get("pool_size")
        strides = config.get("strides") or kernel
        dilation = config.get("dilation_rate", 1) if kind in _CONVOLUTIONS else 1
        padding = str(config.get("padding", "valid")).lower()
        return tuple(_window(axis, k, s, d, padding) for axis, k, s, d in zip(widest, _pair(kernel), _pair(strides), _pair(dilation)))
    if kind == "ZeroPadding2D":
        (top, bottom), (left, right) = config["padding"]
        return (_shift(widest[0], -top, top + bottom), _shift(widest[1], -left, left + right))
    if kind == "Cropping2D":
        (top, bottom), (left, right) = config["cropping"]
        return (_shift(widest[0], top, -(top + bottom)), _shift(widest[1], left, -(left + right)))
    same_grid = all(tuple(t.shape[1:3]) == tuple(output.shape[1:3]) for t in inputs)
    return widest if same_grid else None


def _window(axis: Axis, kernel: int, stride: int, dilation: int, padding: str) -> Axis:
    """A sliding window of ``kernel`` (dilated) every ``stride`` positions over ``axis``."""
    reach = (kernel - 1) * dilation + 1
    if padding == "same":
        length = math.ceil(axis.length / stride)
        before = max((length - 1) * stride + reach - axis.length, 0) // 2
    else:
        length = (axis.length - reach) // stride + 1
        before = 0
    size = None if axis.size is None else axis.size + (reach - 1) * axis.jump
    start = axis.start + ((reach - 1) / 2 - before) * axis.jump
    return Axis(size, axis.jump * stride, start, max(length, 0))


def _shift(axis: Axis, positions: int, grow: int) -> Axis:
    return Axis(axis.size, axis.jump, axis.start + positions * axis.jump, axis.length + grow)


def _span(axis: Axis, position: int, limit: int) -> tuple[int, int]:
    if axis.size is None:
        return 0, limit
    centre = axis.start + position * axis.jump
    half = (axis.size - 1) / 2
    low = min(max(0, math.floor(centre - half + 1e-9)), limit - 1)  # a field over padding only: the nearest pixel
    return low, max(low + 1, min(limit, math.floor(centre + half + 1e-9) + 1))


def _pair(value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _whole(image_hw: tuple) -> tuple[Axis, Axis]:
    return Axis(None, 1.0, 0.0, int(image_hw[0])), Axis(None, 1.0, 0.0, int(image_hw[1]))
