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


#: What a layer of each Keras type does, in words for someone who has never trained a network.
_KIND_WORDS = {
    "InputLayer": "the image, as it enters the model",
    "Conv2D": "learned filters, each looking for one small pattern all over its input",
    "DepthwiseConv2D": "learned filters, one for each channel of the layer before",
    "SeparableConv2D": "learned filters, each looking for one small pattern, in two cheaper steps",
    "Conv2DTranspose": "learned filters that enlarge the maps",
    "MaxPooling2D": "shrinks the maps: keeps the strongest response in each small patch",
    "AveragePooling2D": "shrinks the maps: averages each small patch",
    "GlobalAveragePooling2D": "averages each map into one number",
    "GlobalMaxPooling2D": "keeps each map's strongest response, one number per map",
    "Flatten": "lays the maps out as one long row of numbers",
    "Dense": "weighs every number of the layer before into each of its outputs",
    "Dropout": "used in training only; changes nothing when the model answers",
    "BatchNormalization": "rescales the numbers to a steady range",
    "LayerNormalization": "rescales the numbers to a steady range",
    "ReLU": "keeps positive numbers and sets the others to zero",
    "Activation": "applies a fixed function to every number",
    "Softmax": "turns scores into chances that add up to 100%",
    "Rescaling": "scales the pixel values",
    "Resizing": "resizes the image",
    "ZeroPadding2D": "adds a border of zeros around the maps",
    "Add": "adds up the maps of two branches",
    "Concatenate": "puts the maps of several branches side by side",
    "Reshape": "rearranges the numbers into another shape",
}


@dataclass(frozen=True)
class LayerInfo:
    """One row of the model's layer table.

    ``name`` is the path through nested models (``vgg16/block1_conv1``);
    ``output_shape`` excludes the batch axis (None where the size is dynamic);
    ``spatial`` is True for an (H, W, C) output, which can be drawn as a grid;
    ``depth`` is how deeply the layer is nested (0 = top level); ``container``
    marks a nested model's own row (its layers follow it).

    ``leads_to_output``: its output reaches the model's first output (for a
    transformer's tokens: through an attention that still lets the class token
    read the patches), so a class activation map can be made from it;
    ``read_by``: the type of the layer that reads this map at the end of the
    network's grid (``GlobalAveragePooling2D``, ``Flatten``, ... or
    ``MultiHeadAttention`` for the query of a transformer's last attention), ""
    for every other layer; ``tokens``: for a transformer's tokens shown as their
    patch grid, how many tokens (the class token, ...) are kept apart, else None;
    ``block``: a transformer's token embedding or one of its blocks (shown
    without asking).
    """

    index: int
    name: str
    type: str
    output_shape: tuple
    params: int
    spatial: bool
    depth: int
    container: bool = False
    leads_to_output: bool = True
    read_by: str = ""
    tokens: int | None = None
    block: bool = False

    @property
    def convolution(self) -> bool:
        """A convolution layer with an (H, W, C) output (its kernels can be drawn)."""
        return self.spatial and self.type in CONV_TYPES

    @property
    def default_view(self) -> bool:
        """Shown without asking: a convolution or pooling layer with an (H, W, C) output, or a
        transformer's token embedding or block shown as its patch grid."""
        return self.spatial and (self.type in CONV_TYPES or self.type in POOL_TYPES or self.block)

    @property
    def cam(self) -> bool:
        """A class activation map can be made here: an image-like output that leads to the answer."""
        return self.spatial and self.leads_to_output and not self.container

    def map_words(self) -> str:
        """Its map in words: "a 4 x 4 map" or, for tokens, "a 4 x 4 grid of patches"."""
        size = " x ".join("?" if d is None else str(d) for d in self.output_shape[:2])
        return f"a {size} grid of patches" if self.tokens is not None else f"a {size} map"

    @property
    def channels(self) -> int | None:
        """Channels of a spatial output (the last axis)."""
        return self.output_shape[-1] if self.spatial else None

    def kind_words(self) -> str:
        """What the layer does, in plain words (for a type without words, its Keras type).

        >>> LayerInfo(1, "block1_pool", "MaxPooling2D", (28, 28, 16), 0, True, 0).kind_words()
        'shrinks the maps: keeps the strongest response in each small patch'
        """
        if self.container:
            return "a model inside this model: its layers follow, indented"
        return _KIND_WORDS.get(self.type, f"a {self.type} layer")

    @property
    def unit_words(self) -> str:
        """What its channels are called for people: "filters" for a convolution (each channel is one
        learned filter's answer), "channels" for any other layer."""
        return "filters" if self.convolution else "channels"


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

    @property
    def cam_layers(self) -> list[LayerInfo]:
        """The layers a class activation map can be made at, in network order: every layer with an
        image-like output that leads to the answer (convolutions, activations, normalisations,
        additions, concatenations, pooling before the global pooling, a transformer's token grids
        up to the query of its last attention)."""
        return [info for info in self.rows if info.cam]

    def default_cam_layer(self) -> tuple[LayerInfo, str]:
        """The layer class activation maps use unless told otherwise, and why, in words: the last map
        a global pooling or flattening reads (the block output that keras.io's and pytorch-grad-cam's
        recipes use); for a transformer whose class token alone reaches the classifier, the query of
        its last attention; else the last layer with a map that leads to the answer."""
        layers = self.cam_layers
        if not layers:
            raise LayerNotFoundError(
                "This model has no layer with an image-like output that leads to its answer, so there is no class activation map to show."
            )
        read = [info for info in layers if info.read_by]
        chosen = read[-1] if read else layers[-1]
        pooled = _pooled_map(layers, chosen) if read else None
        if pooled is not None:
            return pooled, _reason_before_pooling(pooled, chosen)
        return chosen, _reason(chosen, read=bool(read))

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


#: How the layer that reads the last map is said: its type -> what it does with the map.
_READERS = {
    "GlobalAveragePooling2D": "the global average pooling averages it into what the classifier reads",
    "GlobalMaxPooling2D": "the global max pooling takes its peaks as what the classifier reads",
    "Flatten": "it is flattened into what the classifier reads",
}


def _reason(info: LayerInfo, *, read: bool) -> str:
    """Why ``info`` is the default layer of class activation maps, in plain words."""
    if read and info.read_by == "MultiHeadAttention":
        return (
            f"{info.name} ({info.type}) is the input of the transformer's last attention, the last layer where the class "
            f"token still reads {info.map_words()}; after it only the class token reaches the classifier, so the patches' "
            "gradient there is zero (pytorch-grad-cam's advice for vision transformers)."
        )
    if read:
        reader = _READERS.get(info.read_by, f"{info.read_by} turns it into what the classifier reads")
        return (
            f"{info.name} ({info.type}) is the last layer that still has {info.map_words()} ({info.channels:,} channels): "
            f"{reader}, so its map holds the model's final evidence (the layer keras.io's and pytorch-grad-cam's Grad-CAM use)."
        )
    return f"{info.name} ({info.type}) is the last layer with {info.map_words()} that leads to the model's answer."


def _pooled_map(layers: Sequence[LayerInfo], chosen: LayerInfo) -> LayerInfo | None:
    """The map a last (not global) pooling layer ``chosen`` pools: the class activation map layer
    just before it, with the same channels and a larger grid; None when ``chosen`` is no such
    pooling layer. A pooling layer only keeps each square's largest (or mean) value, so the map
    it pools holds the same evidence in more detail: the layer the Grad-CAM paper uses for VGG16
    (its last convolution, 14 x 14, not the 7 x 7 pooling after it)."""
    if chosen.type not in POOL_TYPES:
        return None
    before = [info for info in layers if info.index < chosen.index]
    if not before:
        return None
    previous = before[-1]
    larger = all(a is not None and b is not None and a > b for a, b in zip(previous.output_shape[:2], chosen.output_shape[:2]))
    return previous if larger and previous.channels == chosen.channels else None


def _reason_before_pooling(info: LayerInfo, pooling: LayerInfo) -> str:
    size = " x ".join("?" if d is None else str(d) for d in pooling.output_shape[:2])
    reader = _READERS.get(pooling.read_by, f"{pooling.read_by} turns it into what the classifier reads")
    return (
        f"{info.name} ({info.type}) is the last layer before the final pooling: {pooling.name} only shrinks its map to "
        f"{size} before {reader}, so {info.name}'s "
        f"{info.map_words()[2:]} ({info.channels:,} channels) holds the model's final evidence in more detail (the layer "
        "the Grad-CAM paper uses for VGG16)."
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
    if rows and all(info.cam for info in rows) and len(rows) < len(table.spatial):
        return (
            "only layers whose map leads to the model's answer qualify (for a transformer's tokens: up to the input of "
            "its last attention, after which only the class token reaches the answer)"
        )
    return "only layers with an image-like output (height x width x channels) qualify"


def _choices(rows: Sequence[LayerInfo]) -> str:
    names = [info.name for info in rows]
    if len(names) > 40:
        names = names[:20] + ["..."] + names[-5:]
    return "Layers that can be used: " + ", ".join(names) + "." if names else "No layer qualifies."


def _shape_text(shape: tuple) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")" if shape else "-"
