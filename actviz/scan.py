"""The safety scan: read a model file's configuration without running any of it, and refuse
what could run code, reach outside the file, or exhaust memory.

``scan_model_file`` inspects the archive (``.keras``) or HDF5 structure (``.h5``),
then every entry of the configuration: layers that carry code, classes from
outside Keras, functions other than Keras activations/losses/metrics, archive
entries that escape their folder, HDF5 links to other files, absurd sizes.
``check_declared_size`` then adds up the weights the layers declare, built
without memory. Only after both does ``loading`` hand the file to Keras.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any, Iterator

from .errors import ModelFileError, UnsafeModelError

#: Largest model accepted: declared weights and uncompressed archive contents, in bytes.
MAX_MODEL_BYTES = 2 * 1024**3
#: Largest configuration (config.json or the HDF5 model_config attribute), in bytes.
MAX_CONFIG_BYTES = 32 * 1024**2
#: Largest single size in a layer's configuration (units, filters, ...).
MAX_LAYER_SIZE = 1_000_000

_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

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
#: Keras modules a model's configuration may name; keras.config, keras.utils, keras.saving,
#: keras.ops and the like have no business in a model file (e.g. enable_unsafe_deserialization, get_file).
_ALLOWED_MODULES = (
    "keras", "keras.layers", "keras.initializers", "keras.regularizers", "keras.constraints", "keras.activations",
    "keras.models", "keras.optimizers", "keras.losses", "keras.metrics", "keras.dtype_policies",
    "keras.src.layers", "keras.src.initializers", "keras.src.regularizers", "keras.src.constraints",
    "keras.src.activations", "keras.src.models", "keras.src.optimizers", "keras.src.losses", "keras.src.metrics",
    "keras.src.dtype_policies",
)
#: Modules whose functions a configuration may name (activations, and losses/metrics of the training setup).
_FUNCTION_MODULES = ("keras.activations", "keras.losses", "keras.metrics", "keras.src.activations", "keras.src.losses", "keras.src.metrics")



def file_kind(data: bytes, label: str) -> str:
    if data.startswith(_ZIP_MAGIC):
        return "keras"
    if data.startswith(_HDF5_MAGIC):
        return "h5"
    if not data:
        raise ModelFileError(f"The model file '{label}' is empty.")
    raise ModelFileError(
        f"'{label}' is not a Keras model file. actviz opens models saved by Keras as .keras or .h5 files."
    )



def scan_model_file(data: bytes, *, label: str = "model") -> dict:
    """Check a model file without running any of it; return its configuration.

    Raises ``UnsafeModelError`` naming the refused layer or entry and why.
    """
    kind = file_kind(data, label)
    if kind == "keras":
        _check_archive(data)
    else:
        _check_hdf5(data)
    config = read_config(data, kind)
    _check_entry(str(config.get("class_name")), config)
    for where, entry in _walk_config(config.get("config"), ""):
        _check_entry(where, entry)
    return config


def _check_archive(data: bytes) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ModelFileError("The .keras file is damaged: it is not a readable archive.") from None
    total = 0
    for info in archive.infolist():
        member = info.filename
        if member.startswith(("/", "\\")) or ".." in Path(member.replace("\\", "/")).parts or ":" in member:
            raise UnsafeModelError(
                f"The .keras archive contains an entry '{member}' that points outside the archive; "
                "such files are made to overwrite files on the computer that opens them."
            )
        total += info.file_size
    if total > MAX_MODEL_BYTES:
        raise UnsafeModelError(
            f"The .keras archive unpacks to {total / 1e9:.1f} GB, more than actviz opens "
            f"({MAX_MODEL_BYTES / 1e9:.1f} GB)."
        )
    if "config.json" not in archive.namelist():
        raise ModelFileError("The .keras file has no config.json inside: it was not saved by Keras.")
    info = archive.getinfo("config.json")
    if info.file_size > MAX_CONFIG_BYTES:
        raise UnsafeModelError("The model's configuration inside the .keras file is unreasonably large.")


def _check_hdf5(data: bytes) -> None:
    import h5py

    try:
        handle = h5py.File(io.BytesIO(data), "r")
    except OSError:
        raise ModelFileError("The .h5 file is damaged and cannot be read.") from None
    with handle:
        declared = 0
        for path, link in _hdf5_links(handle):
            if isinstance(link, (h5py.ExternalLink, h5py.SoftLink)):
                kind = "another file" if isinstance(link, h5py.ExternalLink) else "another place in the file"
                raise UnsafeModelError(f"The .h5 file has an entry '{path}' that links to {kind}; actviz does not follow such links.")
            item = handle.get(path)
            if isinstance(item, h5py.Dataset):
                if item.external:
                    raise UnsafeModelError(f"The .h5 file stores '{path}' in an outside file; actviz does not read those.")
                declared += item.size * item.dtype.itemsize
        if declared > MAX_MODEL_BYTES:
            raise UnsafeModelError(
                f"The .h5 file declares {declared / 1e9:.1f} GB of weights, more than actviz opens "
                f"({MAX_MODEL_BYTES / 1e9:.1f} GB)."
            )


def _hdf5_links(group, prefix: str = "") -> Iterator[tuple[str, Any]]:
    import h5py

    for key in group.keys():
        link = group.get(key, getlink=True)
        path = f"{prefix}/{key}"
        yield path, link
        if isinstance(link, h5py.HardLink) and isinstance(group[key], h5py.Group):
            yield from _hdf5_links(group[key], path)


def read_config(data: bytes, kind: str) -> dict:
    try:
        if kind == "keras":
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                with archive.open("config.json") as member:
                    text = member.read(MAX_CONFIG_BYTES + 1)
        else:
            import h5py

            with h5py.File(io.BytesIO(data), "r") as handle:
                text = handle.attrs.get("model_config")
                if text is None:
                    raise ModelFileError(
                        "This .h5 file holds weights only, not a model. Save the whole model "
                        "(model.save('model.h5') or 'model.keras'), not model.save_weights()."
                    )
        if isinstance(text, bytes) and len(text) > MAX_CONFIG_BYTES:
            raise UnsafeModelError("The model's configuration is unreasonably large.")
        config = json.loads(text)
    except ModelFileError:
        raise
    except (KeyError, zipfile.BadZipFile, OSError):
        raise ModelFileError("The model file is damaged: its configuration cannot be read.") from None
    except (ValueError, TypeError):
        raise ModelFileError("The model file is damaged: its configuration is not valid.") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelFileError("The model file's configuration does not describe a Keras model.")
    return config




def _walk_config(node: Any, where: str) -> Iterator[tuple[str, dict]]:
    """Every dict in the configuration that names a class, with a readable location."""
    if isinstance(node, dict):
        if "class_name" in node:
            name = node.get("config", {}).get("name") if isinstance(node.get("config"), dict) else None
            where = f"{where}/{name}" if name else where
            yield where, node
        for value in node.values():
            yield from _walk_config(value, where)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_config(value, where)


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
        if class_name not in _CONTAINERS and not hasattr(keras.layers, class_name):
            raise UnsafeModelError(
                f"The model uses a layer type {label} that is not part of Keras (a custom layer). "
                "actviz cannot open it without its code; only if you trust the file, use --trust-model."
            )
    for key in _SIZE_KEYS:
        value = config.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > MAX_LAYER_SIZE:
            raise UnsafeModelError(f"The layer {label} declares {key}={value}, an absurd size; refused to protect memory.")


def check_declared_size(config: dict, kind: str, keras2: bool) -> None:
    """Refuse a model whose layers declare more weights than ``MAX_MODEL_BYTES``, before any is allocated.

    The layers are built inside Keras's StatelessScope, where variables get a
    shape but no memory; their sizes are added up, then the deferred variables
    are dropped instead of initialised. A file may declare weights it does not
    store (Keras would allocate them, then fail), so the stored weights alone
    prove nothing.
    """
    import numpy as np
    from keras.src.backend import StatelessScope
    from keras.src.backend.common import global_state

    try:
        with StatelessScope():
            try:
                model = _dry_build(config, kind, keras2)
                declared = sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.weights)
            finally:  # leave nothing for the scope to initialise on exit
                global_state.set_global_attribute("uninitialized_variables", [])
    except Exception:  # a layout Keras cannot build: the real load reports it in plain words
        return
    if declared > MAX_MODEL_BYTES:
        raise UnsafeModelError(
            f"The model's layers declare {declared / 1e9:.1f} GB of weights, more than actviz opens "
            f"({MAX_MODEL_BYTES / 1e9:.1f} GB); refused before any memory was taken."
        )


def _dry_build(config: dict, kind: str, keras2: bool) -> Any:
    """The model of ``config`` built the way its loader will build it (weights not read)."""
    import keras

    from . import legacy

    if keras2:
        return legacy.build(config)
    if kind == "h5":
        from keras.src.legacy.saving.saving_utils import model_from_config

        return model_from_config(json.loads(json.dumps(config)))
    return keras.models.model_from_json(json.dumps(config))


def _is_keras_function(module: str, name: str) -> bool:
    """True if ``name`` is a public function of keras.activations / losses / metrics."""
    import keras

    public = module.replace("keras.src.", "keras.").split(".")[1]
    return callable(getattr(getattr(keras, public, None), name, None))

