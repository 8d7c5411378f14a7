"""What the parent process trusts: which checks a model file gets, and what a model's configuration
may name. The child processes only read and build (``scan``, ``child``); every decision about what
is allowed is made here, in the process that loads the model, with its refusal in words.

- ``isolation_level``: how much of an untrusted load runs in a child ("scan" or "vet").
- ``check_config``: the parsed configuration walked once; refused are layers that carry or
  load code (``Lambda``, ``TFSMLayer``, ...), classes from outside Keras, parts of Keras a model
  file has no reason to name, functions other than Keras activations, losses and metrics,
  lookup layers reading a vocabulary from a path, and absurd layer sizes. It imports Keras (to
  know its layer names).
"""

from __future__ import annotations

from typing import Any, Iterator

from .. import keras_compat
from ..errors import ChoiceError, ModelFileError, UnsafeModelError

#: How much of an untrusted load runs in a child process (see ``loading``).
ISOLATION_LEVELS = ("scan", "vet")
#: Largest single size in a layer's configuration (units, filters, ...).
MAX_LAYER_SIZE = 1_000_000

#: Layers that carry or load code or files: never loaded from an untrusted file.
BLOCKED_LAYERS = {
    "Lambda": "it contains Python code",
    "TFSMLayer": "it loads a TensorFlow SavedModel from a path",
    "TorchModuleWrapper": "it contains a pickled PyTorch module",
    "JaxLayer": "it wraps Python functions",
    "FlaxLayer": "it wraps Python functions",
}
_LOOKUP_LAYERS = {"StringLookup", "IntegerLookup", "TextVectorization", "Hashing"}
_SIZE_KEYS = ("units", "filters", "output_dim", "input_dim", "depth_multiplier", "num_heads", "key_dim")
_CONTAINERS = {"Functional", "Model", "Sequential"}
#: Keras modules a model's configuration may name, and their twins under keras.src (which Keras
#: writes for some classes); keras.config, keras.utils, keras.saving, keras.ops and the like have no
#: business in a model file (e.g. enable_unsafe_deserialization, get_file).
_PUBLIC_MODULES = (
    "keras.layers", "keras.initializers", "keras.regularizers", "keras.constraints", "keras.activations",
    "keras.models", "keras.optimizers", "keras.losses", "keras.metrics", "keras.dtype_policies",
)
_ALLOWED_MODULES = ("keras", *_PUBLIC_MODULES, *(keras_compat.source_module(m) for m in _PUBLIC_MODULES))
#: Modules whose functions a configuration may name (activations, and losses/metrics of the training setup).
_FUNCTION_MODULES = tuple(
    name for public in ("keras.activations", "keras.losses", "keras.metrics") for name in (public, keras_compat.source_module(public))
)


def isolation_level(source: Any, isolate: str | None) -> str:
    """The isolation a load gets: ``isolate`` if given, else ``ACTVIZ_ISOLATE``, else "vet" for
    bytes and "scan" for a path; never less than "scan"."""
    if isolate is None:
        from ..settings import value

        isolate = value("ACTVIZ_ISOLATE")
    if isolate is None:
        isolate = "vet" if isinstance(source, (bytes, bytearray, memoryview)) else "scan"
    if isolate not in ISOLATION_LEVELS:
        raise ChoiceError(f"Unknown isolation '{isolate}': use one of {', '.join(ISOLATION_LEVELS)}.")
    return isolate


def check_config(config: dict) -> None:
    """Refuse a configuration that names code, classes from outside Keras, or absurd sizes."""
    _check_entry(str(config.get("class_name")), config)
    for where, entry in _walk_config(config.get("config"), ""):
        _check_entry(where, entry)


def _walk_config(node: Any, where: str) -> Iterator[tuple[str, dict]]:
    """Every dict in the configuration that names a class, with a readable location (no recursion)."""
    stack = [(node, where)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            if "class_name" in node:
                name = node.get("config", {}).get("name") if isinstance(node.get("config"), dict) else None
                where = f"{where}/{name}" if isinstance(name, str) and name else where
                yield where, node
            stack.extend((value, where) for value in reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend((value, where) for value in reversed(node))


def _check_entry(where: str, entry: dict) -> None:
    import keras

    class_name = str(entry.get("class_name"))
    module = entry.get("module")
    label = f"'{where.strip('/') or class_name}' ({class_name})"
    if class_name in BLOCKED_LAYERS:
        raise UnsafeModelError(
            f"The model contains a {class_name} layer {label}: refused because {BLOCKED_LAYERS[class_name]}, "
            "which would run when the file is opened. Only open it if you made it yourself (--trust-model)."
        )
    if class_name == "__lambda__" or (isinstance(module, str) and not (module == "keras" or module.startswith("keras."))):
        raise UnsafeModelError(
            f"The model refers to code from outside Keras at {label}"
            + (f" (module '{module}')" if module else "")
            + ": refused, because loading it would run that code. Only open it if you trust its author (--trust-model)."
        )
    if isinstance(module, str) and not any(module == m or (m != "keras" and module.startswith(m + ".")) for m in _ALLOWED_MODULES):
        raise UnsafeModelError(
            f"The model refers to '{module}' at {label}, a part of Keras that a model file has no reason to use "
            "(it could change settings or fetch files); refused."
        )
    if class_name == "function":
        name = entry.get("config")
        if not (isinstance(module, str) and module.startswith(_FUNCTION_MODULES) and isinstance(name, str) and _is_keras_function(module, name)):
            raise UnsafeModelError(
                f"The model refers to a function '{name}' from '{module}' at {label}; only Keras activations, losses "
                "and metrics may appear in a model file. Refused."
            )
    config = entry.get("config")
    if not isinstance(config, dict):
        return
    if class_name in _LOOKUP_LAYERS and isinstance(config.get("vocabulary"), str):
        raise UnsafeModelError(f"The layer {label} reads its vocabulary from a file or address; actviz does not open those.")
    if class_name in ("TFOpLambda", "SlicingOpLambda"):
        raise ModelFileError(
            f"The model uses a TensorFlow operation written directly between its layers at {label} (a Keras 2 "
            "feature, e.g. x * 2 or tf.concat in a tf.keras model). Keras 3 cannot read these; save the model again "
            "with that step as a Keras layer."
        )
    if "layers" in config or "batch_input_shape" in config or "trainable" in config:
        if class_name not in _CONTAINERS and not _is_keras_layer(keras, class_name):
            raise UnsafeModelError(
                f"The model uses a layer type {label} that is not part of Keras (a custom layer). "
                "actviz cannot open it without its code; only if you trust the file, use --trust-model."
            )
    for key in _SIZE_KEYS:
        value = config.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > MAX_LAYER_SIZE:
            raise UnsafeModelError(f"The layer {label} declares {key}={value}, an absurd size; refused to protect memory.")


def _is_keras_layer(keras: Any, class_name: str) -> bool:
    return class_name.isidentifier() and isinstance(getattr(keras.layers, class_name, None), type)


def _is_keras_function(module: str, name: str) -> bool:
    """True if ``name`` is a public function of keras.activations / losses / metrics."""
    import keras

    public = keras_compat.public_module(module).split(".")[1]
    return name.isidentifier() and callable(getattr(getattr(keras, public, None), name, None))
