"""The model's class scores before its final softmax or sigmoid, in the traced graph.

Explanations differentiate the class *score* (the logit): the gradient of a
probability vanishes when the model is sure. The last step that makes
probabilities can be a layer's own activation (``Dense(2, activation="softmax")``),
an ``Activation("softmax")`` layer, a ``Softmax()`` layer, or a plain
``keras.ops.softmax`` / ``sigmoid`` node; each is undone here.
"""

from __future__ import annotations

from typing import Any

from .tracing import Trace

#: Final steps recognised, by the class name of the layer or operation that made the output.
_PROBABILITY_STEPS = {"Softmax": "softmax", "Sigmoid": "sigmoid"}


def output_activation(trace: Trace) -> str:
    """'softmax', 'sigmoid' or 'linear': how the first output turns scores into probabilities."""
    layer, _ = trace.producers.get(id(trace.outputs[0]), (None, ()))
    if layer is None:
        return "linear"
    step = _PROBABILITY_STEPS.get(type(layer).__name__)
    if step:
        return step
    name = getattr(getattr(layer, "activation", None), "__name__", "linear")
    return name if name in ("softmax", "sigmoid") else "linear"


def logits_tensor(trace: Trace) -> Any:
    """The first output before its final softmax/sigmoid, as a tensor of the traced graph.

    Where the activation is part of a layer with weights (a Dense layer's
    ``activation="softmax"``), a twin of that layer without the activation is
    called on the same input, sharing nothing but copied weights.
    """
    output = trace.outputs[0]
    if output_activation(trace) == "linear":
        return output
    layer, args = trace.producers[id(output)]
    if type(layer).__name__ in _PROBABILITY_STEPS or not layer.weights:
        return args[0]  # Softmax/Activation layer or keras.ops node: its input is the score
    config = {**layer.get_config(), "activation": "linear", "name": layer.name + "_logits"}
    twin = type(layer).from_config(config)
    logits = twin(*args)
    twin.set_weights(layer.get_weights())
    return logits
