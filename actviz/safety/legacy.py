"""Rebuild Keras 2 ``.h5`` models that Keras 3's own loader cannot.

Keras 3 fails on Keras 2 files in which a model is used as a layer (a VGG16 or
MobileNetV2 base inside a Sequential or Functional model): node numbering and
per-layer config conversions differ between the two. Here each layer is built
from its stored config with Keras 3's legacy converter, the graph is wired
from the stored ``inbound_nodes``, and the weights are assigned by
(layer name, variable name), never by position, so the order in which Keras 2
listed them cannot matter. Only called after the file passed the safety scan.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

import numpy as np

from .. import keras_compat
from ..errors import ModelFileError


def rebuild_keras2_model(path: str, config: dict) -> Any:
    """Build the model described by a Keras 2 config and load its weights from ``path``."""
    import h5py

    model = build(config)
    with h5py.File(path, "r") as handle:
        if "model_weights" not in handle:
            raise ModelFileError("The .h5 file has a model layout but no weights.")
        _assign_weights(model, handle["model_weights"])
    return model


def build(layer_config: dict) -> Any:
    """The model (or layer) described by a Keras 2 config, without weights."""
    class_name = layer_config["class_name"]
    if class_name == "Sequential":
        return _build_sequential(layer_config["config"])
    if class_name in ("Functional", "Model"):
        return _build_functional(layer_config["config"])
    config = copy.deepcopy(layer_config["config"])
    config.pop("batch_input_shape", None)  # the input comes from the wiring, not the layer
    _drop_keras2_only_arguments(class_name, config)
    return keras_compat.legacy_model_from_config({"class_name": class_name, "config": config})


def _drop_keras2_only_arguments(class_name: str, config: dict) -> None:
    """Remove arguments Keras 2 stored that the Keras 3 layer no longer takes.

    For example ``groups`` on DepthwiseConv2D, or ``fused`` on BatchNormalization;
    Keras 3 raises on unknown arguments instead of ignoring them.
    """
    import inspect

    import keras

    layer_class = getattr(keras.layers, class_name, None)
    if layer_class is None:
        return
    accepted = set(inspect.signature(layer_class.__init__).parameters)
    accepted |= set(inspect.signature(keras.layers.Layer.__init__).parameters)
    accepted |= {"name", "dtype", "trainable", "input_shape", "input_dim"}
    for key in [key for key in config if key not in accepted]:
        del config[key]


def _build_sequential(config: dict) -> Any:
    import keras

    batch_shape, layers = None, []
    for entry in config["layers"]:
        batch_shape = batch_shape or entry["config"].get("batch_input_shape")
        if entry["class_name"] != "InputLayer":
            layers.append(build(entry))
    if batch_shape is None:
        raise ModelFileError("The Sequential model in this file was never given an input shape, so it cannot be rebuilt.")
    return keras.Sequential([keras.Input(batch_shape=tuple(batch_shape)), *layers], name=config.get("name"))


def _build_functional(config: dict) -> Any:
    import keras

    entries = config["layers"]
    calls: dict[str, list] = defaultdict(list)  # layer name -> outputs of each call, in order
    layers = {}
    for entry in entries:
        if entry["class_name"] == "InputLayer":
            cfg = entry["config"]
            calls[entry["name"]].append(
                keras.Input(batch_shape=tuple(cfg["batch_input_shape"]), dtype=cfg.get("dtype"), name=entry["name"])
            )
        else:
            layers[entry["name"]] = build(entry)
    position = _node_positions(entries, config)

    def resolve(spec: list) -> Any:
        name, node_index, tensor_index = spec[0], spec[1], spec[2]
        produced = calls[name][position[name][node_index]]
        flat = produced if isinstance(produced, (list, tuple)) else [produced]
        return flat[tensor_index]

    pending = [(entry["name"], node) for entry in entries if entry["class_name"] != "InputLayer" for node in entry["inbound_nodes"]]
    while pending:
        remaining = []
        for name, node in pending:
            if all(spec[0] in calls and position[spec[0]][spec[1]] < len(calls[spec[0]]) for spec in node):
                inputs = [resolve(spec) for spec in node]
                kwargs = node[0][3] if len(node[0]) > 3 and isinstance(node[0][3], dict) else {}
                calls[name].append(layers[name](inputs[0] if len(inputs) == 1 else inputs, **kwargs))
            else:
                remaining.append((name, node))
        if len(remaining) == len(pending):
            raise ModelFileError("The model layout in this file is inconsistent: some layers are never connected.")
        pending = remaining
    inputs = [resolve(spec) for spec in config["input_layers"]]
    outputs = [resolve(spec) for spec in config["output_layers"]]
    return keras.Model(inputs, outputs[0] if len(outputs) == 1 else outputs, name=config.get("name"))


def _node_positions(entries: list, config: dict) -> dict[str, dict[int, int]]:
    """Map each layer's Keras 2 node index to the order of its calls here.

    Keras 2 numbers a nested model's calls from 1 (node 0 is the model's own
    construction); only the relative order of the referenced indices is kept.
    """
    referenced: dict[str, set] = defaultdict(set)
    for entry in entries:
        for node in entry.get("inbound_nodes", []):
            for spec in node:
                referenced[spec[0]].add(spec[1])
    for spec in list(config["input_layers"]) + list(config["output_layers"]):
        referenced[spec[0]].add(spec[1])
    return {name: {index: rank for rank, index in enumerate(sorted(indices))} for name, indices in referenced.items()}


#: Keras 3 variable names that Keras 2 stored under another name (DepthwiseConv2D's kernel).
_ALIASES = {"kernel": ("kernel", "depthwise_kernel")}


def _leaf_layers(layer: Any) -> list:
    inner = getattr(layer, "layers", None)
    if inner is None:
        return [layer]
    return [leaf for sub in inner for leaf in _leaf_layers(sub)]


def _assign_weights(model: Any, weights_group: Any) -> None:
    stored_names = [_text(n) for n in weights_group.attrs.get("layer_names", [])]
    for top in model.layers:
        if not top.weights:
            continue
        if top.name not in stored_names:
            raise ModelFileError(f"The file has no weights for layer '{top.name}'.")
        group = weights_group[top.name]
        stored = {}
        for weight_name in (_text(n) for n in group.attrs.get("weight_names", [])):
            parts = weight_name.split("/")
            stored[(parts[-2] if len(parts) > 1 else top.name, parts[-1].split(":")[0])] = group[weight_name]
        for leaf in _leaf_layers(top):
            values = []
            for variable in leaf.weights:
                key = next(
                    ((leaf.name, alias) for alias in _ALIASES.get(variable.name, (variable.name,)) if (leaf.name, alias) in stored),
                    (leaf.name, variable.name),
                )
                if key not in stored:
                    raise ModelFileError(f"The file has no stored value for '{leaf.name}/{variable.name}'.")
                if tuple(stored[key].shape) != tuple(variable.shape):  # checked before reading: a wrong one may be huge
                    raise ModelFileError(
                        f"The stored weight '{leaf.name}/{variable.name}' has shape {stored[key].shape}, "
                        f"but the layer expects {tuple(variable.shape)}."
                    )
                values.append(np.asarray(stored[key]))
            if values:
                leaf.set_weights(values)


def _text(value: Any) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)
