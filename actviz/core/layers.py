"""The layer table: which layers a model has, which can be drawn, and finding one by name.

Plain data, no TensorFlow: a table can be built, searched and shown without a
model in memory (the tests build tables by hand).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

from ..errors import LayerNotFoundError

#: Layer types shown by default: what the notebook shows (convolution and pooling).
CONV_TYPES = frozenset({"Conv2D", "Conv2DTranspose", "DepthwiseConv2D", "SeparableConv2D"})
POOL_TYPES = frozenset({"MaxPooling2D", "AveragePooling2D"})


@dataclass(frozen=True)
class LayerInfo:
    """One row of the model's layer table.

    ``name`` is the path through nested models (``vgg16/block1_conv1``);
    ``output_shape`` excludes the batch axis (None where the size is dynamic);
    ``spatial`` is True for an (H, W, C) output, which can be drawn as a grid;
    ``depth`` is how deeply the layer is nested (0 = top level); ``container``
    marks a nested model's own row (its layers follow it).
    """

    index: int
    name: str
    type: str
    output_shape: tuple
    params: int
    spatial: bool
    depth: int
    container: bool = False

    @property
    def convolution(self) -> bool:
        """A convolution layer with an (H, W, C) output: the layers class activation maps use."""
        return self.spatial and self.type in CONV_TYPES

    @property
    def default_view(self) -> bool:
        """Shown without asking: a convolution or pooling layer with an (H, W, C) output."""
        return self.spatial and (self.type in CONV_TYPES or self.type in POOL_TYPES)

    @property
    def channels(self) -> int | None:
        """Channels of a spatial output (the last axis)."""
        return self.output_shape[-1] if self.spatial else None


class LayerTable(Sequence[LayerInfo]):
    """Every traced layer in network order, with the queries the front ends need."""

    def __init__(self, rows: Iterable[LayerInfo]):
        self.rows = tuple(rows)

    def __getitem__(self, index):  # type: ignore[override]
        return self.rows[index]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[LayerInfo]:
        return iter(self.rows)

    @property
    def spatial(self) -> list[LayerInfo]:
        """Every layer with an (H, W, C) output, in network order."""
        return [info for info in self.rows if info.spatial]

    @property
    def default(self) -> list[LayerInfo]:
        """Convolution and pooling layers, as the notebook shows (all spatial layers if none)."""
        return [info for info in self.spatial if info.default_view] or self.spatial

    @property
    def convolutions(self) -> list[LayerInfo]:
        """Convolution layers with an (H, W, C) output, in network order (nested ones too)."""
        return [info for info in self.rows if info.convolution]

    def last_convolution(self) -> LayerInfo:
        """The last convolution layer: the usual layer for class activation maps."""
        convs = self.convolutions
        if not convs:
            raise LayerNotFoundError("This model has no convolution layer, so there is no class activation map to show.")
        return convs[-1]

    def resolve(self, key: str | int, *, among: Sequence[LayerInfo] | None = None) -> LayerInfo:
        """The layer named ``key``: a full name, a unique last part (``block1_conv1`` for
        ``vgg16/block1_conv1``), or a table number (int or digits).

        ``among``: the layers that qualify (default: the spatial ones). Raises
        ``LayerNotFoundError`` naming the closest names when there is no such layer.
        """
        rows = self.spatial if among is None else list(among)
        if isinstance(key, int) or (isinstance(key, str) and key.strip().lstrip("-").isdigit()):
            return self._by_number(int(key), rows)
        if not isinstance(key, str):
            raise LayerNotFoundError(f"A layer is given by its name or its number in the table, not by {type(key).__name__}.")
        exact = [info for info in rows if info.name == key]
        suffix = [info for info in rows if info.name.endswith("/" + key)]
        if exact or len(suffix) == 1:
            return (exact or suffix)[0]
        if len(suffix) > 1:
            raise LayerNotFoundError(f"'{key}' is ambiguous; it could be any of: {', '.join(i.name for i in suffix)}.")
        known = [info for info in self.rows if info.name == key or info.name.endswith("/" + key)]
        if known:  # the layer exists but does not qualify (e.g. a Dense layer for a grid)
            raise LayerNotFoundError(
                f"The layer '{known[0].name}' ({known[0].type}, output {_shape_text(known[0].output_shape)}) cannot be used "
                f"here: {_what(rows, self)}. {_choices(rows)}"
            )
        close = _close_matches(key, rows)
        hint = f" Did you mean {' or '.join(repr(n) for n in close)}?" if close else ""
        raise LayerNotFoundError(f"There is no layer named '{key}' with an image-like output.{hint} {_choices(rows)}")

    def _by_number(self, index: int, rows: Sequence[LayerInfo]) -> LayerInfo:
        for info in rows:
            if info.index == index:
                return info
        if 0 <= index < len(self.rows):
            info = self.rows[index]
            raise LayerNotFoundError(
                f"Layer number {index} ({info.name}, {info.type}) cannot be used here: {_what(rows, self)}. "
                f"Numbers that can: {', '.join(str(i.index) for i in rows)}."
            )
        raise LayerNotFoundError(
            f"There is no layer number {index}: the table has layers 0 to {len(self.rows) - 1}. "
            f"Numbers that can be used: {', '.join(str(i.index) for i in rows)}."
        )


def _close_matches(key: str, rows: Sequence[LayerInfo]) -> list[str]:
    """Up to three names like ``key``, comparing full names and their last parts."""
    by_tail = {info.name.rsplit("/", 1)[-1]: info.name for info in rows}
    names = [info.name for info in rows]
    found = difflib.get_close_matches(key, names, n=3, cutoff=0.6)
    found += [by_tail[t] for t in difflib.get_close_matches(key.rsplit("/", 1)[-1], list(by_tail), n=3, cutoff=0.6)]
    return list(dict.fromkeys(found))[:3]


def _what(rows: Sequence[LayerInfo], table: LayerTable) -> str:
    if rows and all(info.convolution for info in rows) and len(rows) < len(table.spatial):
        return "only convolution layers qualify"
    return "only layers with an image-like output (height x width x channels) qualify"


def _choices(rows: Sequence[LayerInfo]) -> str:
    names = [info.name for info in rows]
    if len(names) > 40:
        names = names[:20] + ["..."] + names[-5:]
    return "Layers that can be used: " + ", ".join(names) + "." if names else "No layer qualifies."


def _shape_text(shape: tuple) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")" if shape else "-"
