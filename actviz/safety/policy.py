"""What the parent process trusts: which checks a model file gets, and what a model's configuration
may name. The child processes only read and build (``scan``, ``child``); every decision about what
is allowed is made here, in the process that loads the model, with its refusal in words.

- ``isolation_level``: how much of an untrusted load runs in a child ("scan" or "vet").
- ``check_config``: the parsed configuration walked once. Each class it names is looked up the way
  Keras's loader will look it up (its registered name first, then its module and class name),
  among what Keras, and keras_hub when it is installed, have already imported; it is trusted
  when it is a layer, an operation, or an object layers are made with (initializer, regularizer,
  constraint, dtype policy) or trained with (loss, metric, optimizer, learning-rate schedule)
  that the package defines itself. Refused are: layers that carry or load code (``Lambda``,
  ``TFSMLayer``, ...), classes from outside those packages (also when a notebook registered
  them), parts of Keras a model file has no reason to name (``keras.config``, ``keras.utils``,
  ``keras.saving``, ...), functions other than Keras activations, losses and metrics (also
  when named by a plain string), layers reading a vocabulary from a path, and absurd layer sizes.

Nothing here imports a module because a file names it: Keras is imported to know what it ships;
keras_hub, a package of its own, only when the file refers to it and it is installed.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any, Iterator

from .. import keras_compat
from ..errors import ChoiceError, ModelFileError, UnsafeModelError

#: How much of an untrusted load runs in a child process (see ``loading``).
ISOLATION_LEVELS = ("scan", "vet")
#: Largest single size in a layer's configuration (units, filters, ...).
MAX_LAYER_SIZE = 1_000_000

#: Layers that carry or load code or files: never loaded from an untrusted file (also as a base class).
BLOCKED_LAYERS = {
    "Lambda": "it contains Python code",
    "TFSMLayer": "it loads a TensorFlow SavedModel from a path",
    "TorchModuleWrapper": "it contains a pickled PyTorch module",
    "JaxLayer": "it wraps Python functions",
    "FlaxLayer": "it wraps Python functions",
}
#: Packages whose own classes a model file may name -> where their code lives. keras_hub's
#: registered classes are code of an installed package, like Keras's own.
TRUSTED_PACKAGES = {"keras": keras_compat.SOURCE_PACKAGE, "keras_hub": "keras_hub.src"}
#: The optional package behind each trusted package but Keras, and how to install it.
_OPTIONAL = {"keras_hub": "pip install 'actviz[hub]', then on Linux pip install --no-deps 'keras-hub==0.32.*'"}
#: Layers (by a base class's name) that read a vocabulary, and the settings that may name a file for it.
_VOCABULARY_READERS = {"IndexLookup", "TextVectorization", "Tokenizer"}
_VOCABULARY_KEYS = ("vocabulary", "merges", "proto")
_SIZE_KEYS = ("units", "filters", "output_dim", "input_dim", "depth_multiplier", "num_heads", "key_dim")
_CONTAINERS = {"Functional", "Model", "Sequential"}
#: Markers Keras writes for values that are not classes (tensors, arrays, slices, ...).
_VALUE_MARKERS = {"__tensor__", "__numpy__", "__bytes__", "__slice__", "__ellipsis__", "__typespec__", "__keras_tensor__"}
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
    """Refuse a configuration that names code, classes from outside Keras (and keras_hub), or absurd sizes."""
    entries = [(str(config.get("class_name")), config), *_walk_config(config.get("config"), "")]
    _import_named_packages(entries)
    resolved: dict[tuple, Any] = {}  # a large model names the same few classes thousands of times
    for where, entry in entries:
        _check_entry(where, entry, resolved)
    _check_named_strings(config)


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


def _package(name: str) -> str:
    """The top package of a module name, or of a registered name (``keras_hub>ViTBackbone``)."""
    return name.split(">", 1)[0] if ">" in name else name.split(".", 1)[0]


def _import_named_packages(entries: list[tuple[str, dict]]) -> None:
    """Import each optional trusted package the configuration refers to (never the module it names),
    so that its classes are registered and loaded as they will be when Keras reads the file; one
    that is not installed is said in words."""
    named = {
        _package(value) for _, entry in entries for value in (entry.get("module"), entry.get("registered_name"))
        if isinstance(value, str) and _package(value) in _OPTIONAL
    }
    for package in sorted(named):
        if package in sys.modules:
            continue
        if importlib.util.find_spec(package) is None:
            raise ModelFileError(
                f"This model is made with {package}, which is not installed here, so it cannot be opened. "
                f"Install it ({_OPTIONAL[package]}) and try again."
            )
        importlib.import_module(package)


def _check_entry(where: str, entry: dict, resolved: dict[tuple, Any]) -> None:
    class_name = str(entry.get("class_name"))
    module = entry.get("module")
    registered = entry.get("registered_name")
    label = f"'{where.strip('/') or class_name}' ({class_name})"
    if class_name in BLOCKED_LAYERS:
        raise UnsafeModelError(_blocked(class_name, label))
    if class_name == "__lambda__" or (isinstance(module, str) and _package(module) not in TRUSTED_PACKAGES):
        raise UnsafeModelError(_outside(label, module))
    if class_name == "function":
        _check_function(module, entry.get("config"), label)
        return
    if class_name in ("TFOpLambda", "SlicingOpLambda"):
        raise ModelFileError(
            f"The model uses a TensorFlow operation written directly between its layers at {label} (a Keras 2 "
            "feature, e.g. x * 2 or tf.concat in a tf.keras model). Keras 3 cannot read these; save the model again "
            "with that step as a Keras layer."
        )
    found = None
    if class_name not in _VALUE_MARKERS:
        key = (class_name, module, registered)
        if key not in resolved:
            resolved[key] = _resolve(class_name, module, registered)
        found = resolved[key]
        _check_class(found, entry, label)
    _check_settings(found, entry, label)


def _check_function(module: Any, name: Any, label: str) -> None:
    """A function entry: a public Keras activation, loss or metric, or refused."""
    if isinstance(module, str) and not module.startswith(_FUNCTION_MODULES):
        raise UnsafeModelError(_no_reason(module, label))
    if not (isinstance(module, str) and isinstance(name, str) and _is_keras_function(module, name)):
        raise UnsafeModelError(
            f"The model refers to a function '{name}' from '{module}' at {label}; only Keras activations, losses "
            "and metrics may appear in a model file. Refused."
        )


def _resolve(class_name: str, module: Any, registered: Any) -> Any:
    """What Keras's loader will find for a class entry, looked up the same way without importing
    anything: its registered name (or, in a Keras 2 layout without a module, its class name)
    among the registered objects; else the class of that name in its module, if that module is
    loaded; else, for a Keras 2 layout, the Keras layer of that name. None when nothing is found."""
    import keras

    by_name = registered if isinstance(registered, str) else (class_name if module is None else None)
    if by_name is not None and (found := keras.saving.get_registered_object(by_name)) is not None:
        return found
    if isinstance(module, str):
        loaded = sys.modules.get(module)
        return None if loaded is None else vars(loaded).get(class_name)
    if module is None and class_name.isidentifier():
        return getattr(keras.layers, class_name, None)
    return None


def _check_class(found: Any, entry: dict, label: str) -> None:
    """Refuse a class Keras would load unless it is one of the trusted kinds, defined in a trusted package."""
    class_name, module = str(entry.get("class_name")), entry.get("module")
    if found is None:
        if module is None and not _looks_like_layer(entry):
            return  # a Keras 2 layout's initializer, regularizer, ...: Keras looks it up among its own of that kind
        if module is None and class_name in _CONTAINERS:
            return
        if module is not None and sys.modules.get(str(module)) is None:
            raise UnsafeModelError(_no_reason(module, label))
        raise UnsafeModelError(
            f"The model uses a layer type {label} that is not part of Keras (a custom layer). "
            "actviz cannot open it without its code; only if you trust the file, use --trust-model."
        )
    if not isinstance(found, type):
        raise UnsafeModelError(_no_reason(module or getattr(found, "__module__", "?"), label))
    home = str(getattr(found, "__module__", ""))
    if not any(home == source or home.startswith(source + ".") for source in TRUSTED_PACKAGES.values()):
        raise UnsafeModelError(_outside(label, home))
    blocked = next((base.__name__ for base in found.__mro__ if base.__name__ in BLOCKED_LAYERS), None)
    if blocked is not None:
        raise UnsafeModelError(_blocked(blocked, label))
    if not issubclass(found, _trusted_kinds()):
        raise UnsafeModelError(_no_reason(module or home, label))


def _looks_like_layer(entry: dict) -> bool:
    config = entry.get("config")
    return isinstance(config, dict) and ("layers" in config or "batch_input_shape" in config or "trainable" in config)


def _trusted_kinds() -> tuple[type, ...]:
    """The kinds of object a model's configuration holds: layers and operations, what layers are
    made with, and what a compiled model is trained with."""
    import keras

    return (
        keras.Operation, keras.Initializer, keras.Regularizer, keras.constraints.Constraint, keras.DTypePolicy,
        keras.Loss, keras.Metric, keras.Optimizer, keras.optimizers.schedules.LearningRateSchedule,
    )


def _check_settings(found: Any, entry: dict, label: str) -> None:
    """The entry's own settings: vocabularies from files, absurd sizes."""
    class_name = str(entry.get("class_name"))
    config = entry.get("config")
    if not isinstance(config, dict):
        return
    bases = {base.__name__ for base in found.__mro__} if isinstance(found, type) else {class_name}
    if bases & _VOCABULARY_READERS and any(isinstance(config.get(key), str) for key in _VOCABULARY_KEYS):
        raise UnsafeModelError(f"The layer {label} reads its vocabulary from a file or address; actviz does not open those.")
    for key in _SIZE_KEYS:
        value = config.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > MAX_LAYER_SIZE:
            raise UnsafeModelError(f"The layer {label} declares {key}={value}, an absurd size; refused to protect memory.")


def _check_named_strings(config: dict) -> None:
    """Refuse a plain string that names a registered object other than a trusted class: Keras's
    loader turns such a string (an activation, an initializer, ...) into the object it names."""
    import keras

    stack: list = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str) and (found := keras.saving.get_registered_object(node)) is not None:
            if isinstance(found, type):
                _check_class(found, {"class_name": node}, f"'{node}'")
            else:
                raise UnsafeModelError(
                    f"The model names the function '{node}'; only Keras activations, losses and metrics may appear "
                    "in a model file. Refused."
                )


def _blocked(class_name: str, label: str) -> str:
    return (
        f"The model contains a {class_name} layer {label}: refused because {BLOCKED_LAYERS[class_name]}, "
        "which would run when the file is opened. Only open it if you made it yourself (--trust-model)."
    )


def _outside(label: str, module: Any) -> str:
    return (
        f"The model refers to code from outside Keras at {label}" + (f" (module '{module}')" if module else "")
        + ": refused, because loading it would run that code. Only open it if you trust its author (--trust-model)."
    )


def _no_reason(module: Any, label: str) -> str:
    return (
        f"The model refers to '{module}' at {label}, a part of Keras that a model file has no reason to use "
        "(it could change settings or fetch files); refused."
    )


def _is_keras_function(module: str, name: str) -> bool:
    """True if ``name`` is a public function of keras.activations / losses / metrics."""
    import keras

    public = keras_compat.public_module(module).split(".")[1]
    return name.isidentifier() and callable(getattr(getattr(keras, public, None), name, None))
