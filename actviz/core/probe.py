"""A model opened for looking inside: its layer table, and one forward pass over a batch that
returns the predictions and any layers' feature maps.

``Probe`` holds the traced graph (``tracing``), the table (``layers``) and the
small ``keras.Model`` views built on that graph (one per set of layers asked
for, kept in a ``BoundedStore``: shared by threads, each view built once even
when sessions ask for it at the same time). Before a forward pass, the memory
the pass will take is worked out from the traced shapes for the actual input,
and a pass over the budget is refused in words instead of tried.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..bounded import BoundedStore
from ..errors import ActvizError, BudgetError, ImageError, LayerNotFoundError, NothingToShowError
from .layers import LayerInfo, LayerTable
from .logits import logits_tensor, output_activation
from .tracing import trace

#: Views of the traced graph kept per probe (one per set of layers asked for).
MAX_VIEWS = 32
#: Layer shapes kept per probe of a model that takes any size (one entry per input size).
MAX_SIZES = 64


@dataclass
class Activations:
    """The result of one forward pass over N images, batch axis first.

    ``predictions``: one float32 array (N, ...) per model output;
    ``maps``: layer name -> float32 (N, H, W, C) feature maps, in network order.
    """

    predictions: list
    maps: dict

    def __len__(self) -> int:
        return int(self.predictions[0].shape[0]) if self.predictions else 0


def forward_budget() -> int:
    """The memory budget of one forward pass in bytes (``ACTVIZ_MAX_FORWARD_MB`` or 2 GB)."""
    from ..settings import megabytes

    return megabytes("ACTVIZ_MAX_FORWARD_MB")


class Probe:
    """A model opened for looking inside: its layer table and one-pass extraction.

    >>> probe = Probe(model)                      # doctest: +SKIP
    >>> result = probe.run(batch, ["block1_conv1"])  # batch: float32 (N, H, W, C), preprocessed
    >>> result.maps["block1_conv1"].shape         # doctest: +SKIP
    (N, 300, 300, 64)
    """

    def __init__(self, model: Any, *, max_bytes: int | None = None):
        self._model: Any = model
        self.max_bytes = forward_budget() if max_bytes is None else int(max_bytes)
        self._trace = trace(model)
        self.input_shape = tuple(self._trace.inputs.shape[1:])
        self.table = LayerTable(self._trace.rows)
        if not self.table.spatial:
            raise NothingToShowError(
                "This model has no layer whose output is an image-like grid (height x width x channels), "
                "so there are no feature maps to show. actviz needs a convolutional image model or a vision transformer."
            )
        self._views = BoundedStore(max_entries=MAX_VIEWS)
        # the scores' tensor is never let go: every score model is built on the same one
        self._logits = BoundedStore(max_entries=1)
        self._shapes = BoundedStore(max_entries=MAX_SIZES)

    @property
    def model(self) -> Any:
        """The model looked into (None once a weakly held model is gone: see ``hold_weakly``)."""
        return self._model() if isinstance(self._model, weakref.ref) else self._model

    def hold_weakly(self) -> None:
        """Keep only a weak reference to the model, so a cache of probes keyed by model can let both go.

        The traced graph holds the model's layers, not the model, so the probe keeps working.
        """
        self._model = weakref.ref(self.model)

    # --- what there is to see ----------------------------------------------------------

    @property
    def spatial_layers(self) -> list[LayerInfo]:
        """Every layer with an (H, W, C) output, in network order."""
        return self.table.spatial

    @property
    def default_layers(self) -> list[LayerInfo]:
        """Convolution and pooling layers, as the notebook shows (all spatial layers if none)."""
        return self.table.default

    @property
    def attention_layers(self) -> list[LayerInfo]:
        """The attention layers whose probabilities the trace keeps (a transformer's), in network order."""
        return [info for info in self.table if info.name in self._trace.attention]

    def layer(self, key: str | int) -> LayerInfo:
        """The spatial layer with this name (or unique suffix, like ``block1_conv1``) or table number."""
        return self.table.resolve(key)

    def layer_object(self, key: str | int) -> Any:
        """The Keras layer behind a table row (for its weights and configuration)."""
        if isinstance(key, str) and key in self._trace.layers:
            return self._trace.layers[key]
        return self._trace.layers[self.table.resolve(key, among=self.table.rows).name]

    @property
    def output_activation(self) -> str:
        """'softmax', 'sigmoid' or 'linear': how the first output turns scores into probabilities."""
        return output_activation(self._trace)

    # --- the forward pass --------------------------------------------------------------

    def run(self, batch: np.ndarray, layers: Iterable[str | int] | None = None) -> Activations:
        """One forward pass over a batch: predictions and the feature maps of ``layers``.

        ``batch``: float32 (N, H, W, C), already preprocessed; ``layers``: names,
        suffixes or table numbers (default: ``default_layers``). Returns float32
        arrays with the batch axis first. Refuses a pass whose memory, worked out
        from the traced shapes for this input, is over ``max_bytes``.
        """
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4:
            raise ActvizError(f"Probe.run takes a batch of images, float32 (N, H, W, C); got an array of shape {batch.shape}.")
        infos = self.default_layers if layers is None else [self.layer(key) for key in layers]
        names = tuple(dict.fromkeys(info.name for info in infos))
        self.check_budget(batch.shape, names)
        results = self.view(names)(batch, training=False)
        results = [np.asarray(r, dtype=np.float32) for r in (results if isinstance(results, (list, tuple)) else [results])]
        count = len(self._trace.outputs)
        return Activations(predictions=results[:count], maps=dict(zip(names, results[count:])))

    def view(self, names: Sequence[str]) -> Any:
        """keras.Model: input -> [*model outputs, *feature maps of ``names``], one graph."""
        import keras

        key = ("maps", *names)
        return self._views.get(key, lambda: keras.Model(self._trace.inputs, self._trace.outputs + [self._trace.tensors[n] for n in names], name="actviz_view"))

    def feature_model(self, key: str | int) -> Any:
        """keras.Model: input -> the feature map of one layer only (computes nothing past it)."""
        import keras

        name = self.layer(key).name
        return self._views.get(("feature", name), lambda: keras.Model(self._trace.inputs, self._trace.tensors[name]))

    def score_model(self, key: str | int) -> Any:
        """keras.Model: input -> [feature map of the layer, class scores, probabilities], one graph.

        The class scores are the first output's logits: the values before a final
        softmax or sigmoid (see ``logits``). Gradients flow from the scores to the
        feature map through this one pass.
        """
        import keras

        name = self.layer(key).name
        logits = self.symbolic_logits()  # one twin however many score models
        return self._views.get(("score", name), lambda: keras.Model(self._trace.inputs, [self._trace.tensors[name], logits, self._trace.outputs[0]]))

    def attention_model(self) -> Any:
        """keras.Model: input -> [class scores, probabilities, *each attention layer's probabilities
        (N, heads, T, T), in ``attention_layers`` order] (for attention rollout)."""
        import keras

        logits = self.symbolic_logits()
        scores = list(self._trace.attention.values())
        return self._views.get(("attention",), lambda: keras.Model(self._trace.inputs, [logits, self._trace.outputs[0], *scores]))

    def logits_model(self) -> Any:
        """keras.Model: input -> [class scores, probabilities] (for pixel attributions)."""
        import keras

        logits = self.symbolic_logits()
        return self._views.get(("scores",), lambda: keras.Model(self._trace.inputs, [logits, self._trace.outputs[0]]))

    def head_model(self, key: str | int) -> tuple[Any, bool]:
        """The part of the network after a layer, fed a feature map of that layer: (model, takes_image).

        model: feature map (N, h, w, C) -> [class scores, probabilities]; when the
        rest of the network also reads earlier layers (a skip connection around
        the layer), it takes [image batch, feature map] and ``takes_image`` is
        True. Whatever value is fed replaces the layer's output (for Ablation-CAM,
        which switches channels off, and for gradients with respect to the map
        that do not keep the layers below it alive).
        """
        import keras

        name = self.layer(key).name

        def build() -> tuple[Any, bool]:
            logits, probabilities = self.symbolic_logits(), self._trace.outputs[0]
            if probabilities is logits:  # a model without a final softmax: Keras 3.15 cannot build a model
                # of two inputs that gives one tensor twice ("not connected"), so the second is a copy
                probabilities = self._views.get(("copy",), lambda: keras.layers.Identity(name="actviz_probabilities")(logits))
            outputs = [logits, probabilities]
            feature = self._trace.tensors[name]
            try:
                return keras.Model(feature, outputs, name="actviz_head"), False
            except ValueError:  # "not connected to inputs": the rest reads earlier layers too
                return keras.Model([self._trace.inputs, feature], outputs, name="actviz_head"), True

        return self._views.get(("head", name), build)

    # --- the traced graph, for methods that build their own views on it ------------------

    @property
    def symbolic_input(self) -> Any:
        """The traced graph's input (a KerasTensor (None, H, W, C))."""
        return self._trace.inputs

    @property
    def symbolic_predictions(self) -> list:
        """The traced model outputs (KerasTensors), in the model's order."""
        return list(self._trace.outputs)

    def symbolic_output(self, key: str | int) -> Any:
        """The traced output (a KerasTensor) of any layer in the table, spatial or not."""
        name = key if isinstance(key, str) and key in self._trace.tensors else self.table.resolve(key, among=self.table.rows).name
        tensor = self._trace.tensors[name]
        if tensor is None:
            raise LayerNotFoundError(f"'{name}' is a nested model, not a layer with an output of its own.")
        return tensor

    def symbolic_logits(self) -> Any:
        """The first output before its final softmax/sigmoid, in the traced graph (see ``logits``)."""
        return self._logits.get("logits", lambda: logits_tensor(self._trace))

    def symbolic_producer(self, tensor: Any) -> tuple[Any, list]:
        """The layer (or keras.ops operation) that made a traced tensor, and the traced tensors it
        was called on; (None, []) for the graph's input. For walking the graph backwards (e.g. to
        work out a receptive field)."""
        import keras

        layer, args = self._trace.producers.get(id(tensor), (None, ()))
        if layer is None:
            return None, []
        return layer, [t for t in keras.tree.flatten(args) if isinstance(t, keras.KerasTensor)]

    def cached_model(self, key: tuple, build: Callable[[], Any]) -> Any:
        """A view built once by ``build()`` (e.g. a keras.Model on the symbolic tensors above) and
        kept in this probe's bounded cache under ``key`` (thread-safe)."""
        return self._views.get(("custom", *key), build)

    # --- memory, before any work -------------------------------------------------------

    def layer_shapes(self, height: int, width: int) -> dict[str, tuple]:
        """Each traced layer's output shape (without batch) for an input of ``height`` x ``width``.

        For a fixed-size model these are the table's shapes; for one that takes
        any size they are worked out symbolically (no computation, no memory).
        """
        if None not in self.input_shape[:2]:
            return {info.name: info.output_shape for info in self.table if not info.container}
        return self._shapes.get((int(height), int(width)), lambda: self._symbolic_shapes(int(height), int(width)))

    def _symbolic_shapes(self, height: int, width: int) -> dict[str, tuple]:
        shapes = self._try_shapes(height, width)
        if shapes is None:  # the model cannot take this size (e.g. smaller than its kernels)
            raise ImageError(self._too_small(height, width))
        return shapes

    def _try_shapes(self, height: int, width: int) -> dict[str, tuple] | None:
        """Each layer's output shape for one image of ``height`` x ``width``, or None when some
        layer cannot take it (worked out symbolically: no computation, no memory)."""
        import keras

        names = [info.name for info in self.table if not info.container and hasattr(self._trace.tensors[info.name], "shape")]
        everything = self._views.get(("all",), lambda: keras.Model(self._trace.inputs, [self._trace.tensors[n] for n in names]))
        spec = keras.KerasTensor((1, height, width, self.input_shape[2]))
        try:
            outputs = everything.compute_output_spec(spec)
        except Exception:  # noqa: BLE001 -- Keras raises ValueError and others for a size its layers cannot take
            return None
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        shapes = {name: tuple(out.shape[1:]) for name, out in zip(names, outputs)}
        if any(d is not None and d <= 0 for shape in shapes.values() for d in shape):
            return None
        return shapes

    def _too_small(self, height: int, width: int) -> str:
        """Plain words for an image the model's layers shrink to nothing, with the smallest square size that works."""
        def fits(side: int) -> bool:
            return self._try_shapes(max(side, height), max(side, width)) is not None

        low, high = max(height, width), max(height, width, 2)
        while high <= 8192 and not fits(high):
            low, high = high, high * 2
        if high > 8192:
            return f"The model cannot take an image of {height} x {width} pixels: its layers shrink it to nothing. Use a larger image."
        while high - low > 1:  # smallest side that fits, between the last failing and the first fitting one
            middle = (low + high) // 2
            low, high = (low, middle) if fits(middle) else (middle, high)
        return (
            f"The model cannot take an image of {height} x {width} pixels: its layers shrink it to nothing. "
            f"This model needs images of at least {high} x {high} pixels; use a larger image."
        )

    def forward_bytes(self, batch_shape: tuple, names: Sequence[str]) -> int:
        """Memory of one forward pass in bytes: the feature maps kept plus the largest layer
        output twice (its input and output live at the same time), or an attention layer's
        score tensor three times (scores, softmax and a temporary: measured 1.96 GB for
        0.68 GB of scores), whichever is larger; float32, for a batch of ``batch_shape`` (N, H, W, C)."""
        count, height, width = int(batch_shape[0]), int(batch_shape[1]), int(batch_shape[2])
        shapes = self.layer_shapes(height, width)
        size = {name: 4 * math.prod(d or 1 for d in shape) for name, shape in shapes.items()}
        kept = sum(size.get(name, 0) for name in names) + sum(4 * math.prod(o.shape[1:] or (1,)) for o in self._trace.outputs if None not in o.shape[1:])
        return count * (kept + max(2 * max(size.values(), default=0), 3 * self._attention_bytes(shapes)))

    def _attention_bytes(self, shapes: dict[str, tuple]) -> int:
        """The largest attention score tensor of one image, float32: heads x positions x positions
        attended (a MultiHeadAttention over a whole 300 x 300 grid relates 90,000 positions to
        90,000: 32 GB per head). Self-attention is assumed (keys as many as queries)."""
        worst = 0
        for info in self.table:
            if info.type != "MultiHeadAttention" or info.name not in shapes:
                continue
            config = self._trace.layers[info.name].get_config()
            positions = shapes[info.name][:-1]  # every axis of the query but batch and features
            attended = positions
            axes = config.get("attention_axes")
            if axes is not None:  # numbered on the whole query: (batch, positions..., features)
                axes = [axes] if isinstance(axes, int) else list(axes)
                count = len(positions)
                attended = tuple(positions[a - 1] if a > 0 else positions[a + 1] for a in axes if 0 < a <= count or -count - 1 <= a <= -2)
            total = math.prod(d or 1 for d in positions) * math.prod(d or 1 for d in attended)
            worst = max(worst, 4 * int(config.get("num_heads", 1)) * total)
        return worst

    def check_budget(self, batch_shape: tuple, names: Sequence[str]) -> None:
        """Raise ``BudgetError`` when a forward pass would take more than ``max_bytes``."""
        need = self.forward_bytes(batch_shape, names)
        if need > self.max_bytes:
            count = int(batch_shape[0])
            raise BudgetError(
                f"Running {'this image' if count == 1 else f'these {count} images'} of {batch_shape[1]} x {batch_shape[2]} "
                f"pixels through the model would take about {need / 1e9:.1f} GB of memory, more than the "
                f"{self.max_bytes / 1e9:.1f} GB allowed here. Use a smaller image"
                + (", fewer images at once" if count > 1 else "") + " or fewer layers."
            )
