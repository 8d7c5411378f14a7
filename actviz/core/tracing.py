"""Re-trace a model layer by layer, stepping into nested models, so that every layer's output
lives in one graph with the model's predictions.

The naive ``keras.Model(model.inputs, inner_layer.output)`` fails for nested
bases (a VGG16 used as one layer) and for Sequential models loaded from a file.
Calling each layer again on a fresh symbolic input gives one graph in which
any set of layer outputs, the predictions and their gradients come from one
forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import keras_compat
from ..errors import NothingToShowError
from .layers import LayerInfo


@dataclass
class Trace:
    """A model re-traced on a fresh input.

    ``rows``: the layer table, in call order; ``tensors``: name -> the symbolic
    output of that layer (None for a container row); ``layers``: name -> the
    Keras layer object; ``producers``: id(output tensor) -> (layer, its call
    arguments), to find what made the model's output (see ``logits``).
    """

    inputs: Any
    outputs: list
    rows: list[LayerInfo] = field(default_factory=list)
    tensors: dict[str, Any] = field(default_factory=dict)
    layers: dict[str, Any] = field(default_factory=dict)
    producers: dict[int, tuple[Any, tuple]] = field(default_factory=dict)


def trace(model: Any) -> Trace:
    """Call every layer of ``model`` again on a fresh ``keras.Input``; record each output."""
    import keras

    shape = input_shape(model)
    tracer = _Tracer(keras.Input(shape=shape, name="actviz_input"))
    outputs = tracer.call(model, tracer.result.inputs, prefix="", depth=-1)
    tracer.result.outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    return tracer.result


class _Tracer:
    def __init__(self, inputs: Any):
        self.result = Trace(inputs=inputs, outputs=[])
        self._taken: set[str] = set()

    def call(self, layer: Any, inputs: Any, *, prefix: str, depth: int) -> Any:
        """Call ``layer`` on symbolic ``inputs``, stepping into nested models; record outputs."""
        import keras

        if isinstance(layer, keras.Sequential):
            self._container(layer, prefix, depth)
            inner = prefix + layer.name + "/" if depth >= 0 else prefix
            x = inputs
            for sub in layer.layers:
                x = self.call(sub, x, prefix=inner, depth=depth + 1)
            return x
        if isinstance(layer, keras.Model) and keras_compat.runs_a_graph(layer):
            self._container(layer, prefix, depth)
            inner = prefix + layer.name + "/" if depth >= 0 else prefix

            def operation_fn(operation):
                return lambda *args, **kwargs: self._call_node(operation, args, kwargs, inner, depth + 1)

            flat = inputs if isinstance(inputs, (list, tuple)) else [inputs]
            return keras_compat.run_through_graph(layer, flat, operation_fn)
        if isinstance(layer, keras.layers.InputLayer):
            return inputs
        outputs = layer(inputs)
        self._record(layer, outputs, (inputs,), prefix, depth)
        return outputs

    def _call_node(self, operation: Any, args: tuple, kwargs: dict, prefix: str, depth: int) -> Any:
        """One node of a functional graph: a layer, a nested model, or a plain keras.ops operation."""
        import keras

        if isinstance(operation, keras.Model):
            return self.call(operation, args[0] if len(args) == 1 else list(args), prefix=prefix, depth=depth)
        kwargs = {key: value for key, value in kwargs.items() if key != "training"}
        outputs = operation(*args, **kwargs)
        self._record(operation, outputs, args, prefix, depth)
        return outputs

    def _record(self, layer: Any, outputs: Any, args: tuple, prefix: str, depth: int) -> None:
        shape = tuple(outputs.shape[1:]) if hasattr(outputs, "shape") else ()
        info = LayerInfo(
            index=len(self.result.rows), name=self._unique(prefix + layer.name), type=type(layer).__name__,
            output_shape=shape, params=_params(layer), spatial=hasattr(outputs, "shape") and len(outputs.shape) == 4,
            depth=max(depth, 0),
        )
        self._add(info, outputs, layer)
        self.result.producers[id(outputs)] = (layer, args)

    def _container(self, model: Any, prefix: str, depth: int) -> None:
        if depth < 0:
            return
        info = LayerInfo(
            index=len(self.result.rows), name=self._unique(prefix + model.name), type=type(model).__name__,
            output_shape=(), params=int(model.count_params()), spatial=False, depth=depth, container=True,
        )
        self._add(info, None, model)

    def _add(self, info: LayerInfo, outputs: Any, layer: Any) -> None:
        self.result.rows.append(info)
        self.result.tensors[info.name] = outputs
        self.result.layers[info.name] = layer

    def _unique(self, name: str) -> str:
        """The name, or ``name#2``, ``name#3`` ... when a layer is called more than once."""
        unique, count = name, 2
        while unique in self._taken:
            unique, count = f"{name}#{count}", count + 1
        self._taken.add(unique)
        return unique


def _params(layer: Any) -> int:
    """Weights of a layer; 0 for an unbuilt layer or a plain operation (keras.ops in a functional graph)."""
    if not getattr(layer, "built", False) or not hasattr(layer, "count_params"):
        return 0
    return int(layer.count_params())


def input_shape(model: Any) -> tuple:
    """The model's single image input as (H, W, C) without the batch axis (None: any size)."""
    import keras

    try:
        shapes = [tuple(x.shape) for x in model.inputs]
    except (AttributeError, ValueError, TypeError):
        shapes = []
        first = next((layer for layer in keras_compat.all_layers(model) if isinstance(layer, keras.layers.InputLayer)), None)
        if first is not None:
            shapes = [tuple(first.batch_shape)]
        elif model.layers and (built := _built_shape(model.layers[0])):
            shapes = [built]
    if not shapes:
        raise NothingToShowError("This model was never given an input shape, so actviz cannot tell what images it takes.")
    if len(shapes) > 1:
        raise NothingToShowError(f"This model takes {len(shapes)} inputs; actviz shows models that take a single image.")
    shape = shapes[0][1:]
    if len(shape) != 3:
        raise NothingToShowError(
            f"This model's input has shape {shape}; actviz needs an image input of height x width x channels."
        )
    return tuple(None if dim is None else int(dim) for dim in shape)


def _built_shape(layer: Any) -> tuple | None:
    """The input shape ``layer`` was built for (its first, if it took several), from its public build config."""
    config = layer.get_build_config() or {}
    shape = config.get("input_shape", next(iter((config.get("shapes_dict") or {}).values()), None))
    return tuple(shape) if shape else None
