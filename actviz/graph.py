"""Which layers of a model can be drawn, and one forward pass that returns them all.

``Probe`` re-traces a model layer by layer on a fresh input, stepping *into*
nested models (a VGG16 base used as one layer), so that every inner layer's
output lives in one graph with the model's predictions. That graph is one
``keras.Model``: a single forward pass yields the predictions and every
selected feature map, and gradients (Grad-CAM) can flow through the same pass.
The naive ``keras.Model(model.inputs, inner_layer.output)`` fails for nested
and file-loaded Sequential models; this does not.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import LayerNotFoundError, NothingToShowError

#: Layer types shown by default: what the notebook shows (convolution and pooling).
CONV_TYPES = {
    "Conv2D", "Conv2DTranspose", "DepthwiseConv2D", "SeparableConv2D",
}
POOL_TYPES = {"MaxPooling2D", "AveragePooling2D"}
_RESCALING_TYPES = {"Rescaling", "Normalization"}


@dataclass(frozen=True)
class LayerInfo:
    """One row of the model's layer table.

    ``name`` is the path through nested models (``vgg16/block1_conv1``);
    ``output_shape`` excludes the batch axis (None where the size is dynamic);
    ``spatial`` is True for an (H, W, C) output, which can be drawn as a grid;
    ``depth`` is how deeply the layer is nested (0 = top level).
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
    def default_view(self) -> bool:
        """Shown without asking: a convolution or pooling layer with an (H, W, C) output."""
        return self.spatial and (self.type in CONV_TYPES or self.type in POOL_TYPES)


@dataclass
class Activations:
    """The result of one forward pass.

    ``predictions``: one float32 array per model output, batch axis removed.
    ``maps``: layer name -> float32 (H, W, C) feature map, in network order.
    """

    predictions: list
    maps: dict


class Probe:
    """A model opened for looking inside: its layer table and one-pass extraction."""

    def __init__(self, model: Any):
        import keras

        self.model = model
        self.input_shape = _input_shape(model)
        inputs = keras.Input(shape=self.input_shape, name="actviz_input")
        self._trace: list[tuple[LayerInfo, Any]] = []
        self._producers: dict[int, tuple[Any, tuple]] = {}  # id(output tensor) -> (layer, call args)
        self._objects: list[Any] = []  # the layer object of each table row
        outputs = self._call(model, inputs, prefix="", depth=-1)
        self._inputs = inputs
        self._outputs = [outputs] if not isinstance(outputs, (list, tuple)) else list(outputs)
        self.table = [info for info, _ in self._trace]
        self._tensors = {info.name: tensor for info, tensor in self._trace if info.spatial}
        self._layers = {info.name: layer for (info, _), layer in zip(self._trace, self._objects)}
        if not self._tensors:
            raise NothingToShowError(
                "This model has no layer whose output is an image-like grid (height x width x channels), "
                "so there are no feature maps to show. actviz needs a convolutional image model."
            )
        self._extractors: dict[tuple, Any] = {}  # built on first use, shared by threads: see _memo
        self._lock = threading.RLock()

    # --- what there is to see ----------------------------------------------------------

    @property
    def spatial_layers(self) -> list[LayerInfo]:
        """Every layer with an (H, W, C) output, in network order."""
        return [info for info in self.table if info.spatial]

    @property
    def default_layers(self) -> list[LayerInfo]:
        """Convolution and pooling layers, as the notebook shows (all spatial layers if none)."""
        return [info for info in self.spatial_layers if info.default_view] or self.spatial_layers

    @property
    def rescales_inputs(self) -> bool:
        """True when the model begins with its own Rescaling or Normalization layer."""
        for info in self.table:
            if info.type in _RESCALING_TYPES:
                return True
            if info.type in CONV_TYPES or info.type == "Dense":
                return False
        return False

    def layer(self, key: str | int) -> LayerInfo:
        """The spatial layer with this name (or unique suffix, like ``block1_conv1``) or table index."""
        spatial = self.spatial_layers
        if isinstance(key, int) or (isinstance(key, str) and key.lstrip("-").isdigit()):
            index = int(key)
            for info in spatial:
                if info.index == index:
                    return info
            raise LayerNotFoundError(
                f"Layer number {index} has no image-like output. Layers that can be shown: "
                + ", ".join(str(info.index) for info in spatial)
            )
        exact = [info for info in spatial if info.name == key]
        suffix = [info for info in spatial if info.name.endswith("/" + key)]
        if exact or len(suffix) == 1:
            return (exact or suffix)[0]
        names = ", ".join(info.name for info in spatial)
        if len(suffix) > 1:
            raise LayerNotFoundError(f"'{key}' is ambiguous; it could be any of: {', '.join(i.name for i in suffix)}.")
        raise LayerNotFoundError(f"There is no layer named '{key}' with an image-like output. Layers that can be shown: {names}")

    # --- the forward pass --------------------------------------------------------------

    def run(self, batch: np.ndarray, layers: Iterable[str] | None = None) -> Activations:
        """One forward pass: predictions and the feature maps of ``layers`` (default: default_layers).

        ``batch``: float32 (1, H, W, C), already preprocessed. Returns float32 arrays.
        """
        names = tuple(info.name for info in self.default_layers) if layers is None else tuple(layers)
        for name in names:
            if name not in self._tensors:
                self.layer(name)  # raises a helpful error
        extractor = self.extractor(names)
        results = extractor(batch, training=False)
        results = [np.asarray(r, dtype=np.float32) for r in (results if isinstance(results, (list, tuple)) else [results])]
        count = len(self._outputs)
        return Activations(
            predictions=[r[0] for r in results[:count]],
            maps={name: r[0] for name, r in zip(names, results[count:])},
        )

    def extractor(self, names: Sequence[str]) -> Any:
        """The keras.Model mapping the input to [*model outputs, *feature maps of ``names``]."""
        import keras

        key = tuple(names)
        return self._memo(key, lambda: keras.Model(self._inputs, self._outputs + [self._tensors[n] for n in key], name="actviz_extractor"))

    def layer_object(self, name: str) -> Any:
        """The Keras layer behind a table row (for its weights)."""
        return self._layers[name]

    def feature_model(self, name: str) -> Any:
        """keras.Model: input -> the feature map of ``name`` only (computes nothing past it)."""
        import keras

        key = ("feature", self.layer(name).name)
        return self._memo(key, lambda: keras.Model(self._inputs, self._tensors[key[1]]))

    def score_model(self, name: str) -> Any:
        """keras.Model: input -> [feature map of ``name``, class scores, probabilities], one graph.

        The class scores are the first output's logits: the values before a final
        softmax or sigmoid (gradients of probabilities vanish when the model is sure).
        Gradients flow from the scores to the feature map through this one pass.
        """
        import keras

        key = ("score", self.layer(name).name)
        logits = self._memo(("logits",), self._logits)  # one twin layer however many score models
        return self._memo(key, lambda: keras.Model(self._inputs, [self._tensors[key[1]], logits, self._outputs[0]]))

    def _memo(self, key: tuple, build) -> Any:
        """The model for ``key``, built once even when sessions ask for it at the same time."""
        with self._lock:
            if key not in self._extractors:
                self._extractors[key] = build()
            return self._extractors[key]

    @property
    def output_activation(self) -> str:
        """'softmax', 'sigmoid' or 'linear': how the first output turns scores into probabilities."""
        layer, _ = self._producers.get(id(self._outputs[0]), (None, ()))
        name = getattr(getattr(layer, "activation", None), "__name__", "linear")
        return name if name in ("softmax", "sigmoid") else "linear"

    def _logits(self) -> Any:
        """The first output before its final softmax/sigmoid, as a tensor in the traced graph."""
        import keras

        output = self._outputs[0]
        layer, args = self._producers.get(id(output), (None, ()))
        if self.output_activation == "linear":
            return output
        if isinstance(layer, keras.layers.Activation):
            return args[0]
        # The same layer without its activation: a twin with copied weights, called on the same input.
        config = {**layer.get_config(), "activation": "linear", "name": layer.name + "_logits"}
        twin = type(layer).from_config(config)
        logits = twin(*args)
        twin.set_weights(layer.get_weights())
        return logits

    # --- tracing -----------------------------------------------------------------------

    def _call(self, layer: Any, inputs: Any, *, prefix: str, depth: int) -> Any:
        """Call ``layer`` on symbolic ``inputs``, stepping into nested models; record outputs."""
        import keras

        if isinstance(layer, keras.Sequential):
            self._record_container(layer, prefix, depth)
            inner = prefix + layer.name + "/" if depth >= 0 else prefix
            x = inputs
            for sub in layer.layers:
                x = self._call(sub, x, prefix=inner, depth=depth + 1)
            return x
        if isinstance(layer, keras.Model) and hasattr(layer, "_run_through_graph"):
            self._record_container(layer, prefix, depth)
            inner = prefix + layer.name + "/" if depth >= 0 else prefix

            def operation_fn(operation):
                return lambda *args, **kwargs: self._call_with_args(operation, args, kwargs, inner, depth + 1)

            flat = inputs if isinstance(inputs, (list, tuple)) else [inputs]
            return layer._run_through_graph(flat, operation_fn=operation_fn)
        if isinstance(layer, keras.layers.InputLayer):
            return inputs
        outputs = layer(inputs)
        self._record(layer, outputs, prefix, depth)
        self._producers[id(outputs)] = (layer, (inputs,))
        return outputs

    def _call_with_args(self, operation: Any, args: tuple, kwargs: dict, prefix: str, depth: int) -> Any:
        import keras

        if isinstance(operation, keras.Model):
            return self._call(operation, args[0] if len(args) == 1 else list(args), prefix=prefix, depth=depth)
        kwargs = {key: value for key, value in kwargs.items() if key != "training"}
        outputs = operation(*args, **kwargs)
        self._record(operation, outputs, prefix, depth)
        self._producers[id(outputs)] = (operation, args)
        return outputs

    def _record(self, layer: Any, outputs: Any, prefix: str, depth: int) -> None:
        name = self._unique(prefix + layer.name)
        shape = tuple(outputs.shape[1:]) if hasattr(outputs, "shape") else ()
        spatial = hasattr(outputs, "shape") and len(outputs.shape) == 4
        info = LayerInfo(
            index=len(self._trace), name=name, type=type(layer).__name__, output_shape=shape,
            params=_params(layer), spatial=spatial, depth=max(depth, 0),
        )
        self._trace.append((info, outputs))
        self._objects.append(layer)

    def _record_container(self, model: Any, prefix: str, depth: int) -> None:
        if depth < 0:
            return
        info = LayerInfo(
            index=len(self._trace), name=self._unique(prefix + model.name), type=type(model).__name__,
            output_shape=(), params=int(model.count_params()), spatial=False, depth=depth, container=True,
        )
        self._trace.append((info, None))
        self._objects.append(model)

    def _unique(self, name: str) -> str:
        taken = {info.name for info, _ in self._trace}
        if name not in taken:
            return name
        count = 2
        while f"{name}#{count}" in taken:
            count += 1
        return f"{name}#{count}"


def _params(layer: Any) -> int:
    """Weights of a layer; 0 for an unbuilt layer or a plain operation (keras.ops in a functional graph)."""
    if not getattr(layer, "built", False) or not hasattr(layer, "count_params"):
        return 0
    return int(layer.count_params())


def _input_shape(model: Any) -> tuple:
    """The model's single image input as (H, W, C) without the batch axis."""
    import keras

    try:
        inputs = list(model.inputs)
        shapes = [tuple(x.shape) for x in inputs]
    except (AttributeError, ValueError, TypeError):
        shapes = []
        first = next((layer for layer in getattr(model, "_layers", []) if isinstance(layer, keras.layers.InputLayer)), None)
        if first is not None:
            shapes = [tuple(first.batch_shape)]
        elif model.layers and getattr(model.layers[0], "_build_shapes_dict", None):
            shapes = [tuple(next(iter(model.layers[0]._build_shapes_dict.values())))]
    if not shapes:
        raise NothingToShowError("This model was never given an input shape, so actviz cannot tell what images it takes.")
    if len(shapes) > 1:
        raise NothingToShowError(
            f"This model takes {len(shapes)} inputs; actviz shows models that take a single image."
        )
    shape = shapes[0][1:]
    if len(shape) != 3:
        raise NothingToShowError(
            f"This model's input has shape {shape}; actviz needs an image input of height x width x channels."
        )
    return tuple(None if dim is None else int(dim) for dim in shape)
