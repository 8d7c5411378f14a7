"""Build a model from its configuration the way its loader will: first dry (weights counted,
no memory taken), then for real, in time linear in the number of layers.

Three things here guard loading an untrusted file:

- ``dry_weight_bytes``: the layers are built inside Keras's StatelessScope
  (``keras_compat.weightless_scope``), where variables get a shape but no memory,
  and their sizes are added up. It cannot skip itself: a configuration that no
  builder can build is refused.
- ``check_load_memory``: loading takes several times the weights' size at its
  peak (measured with Keras 3.15: ``keras.saving.load_model`` peaks at 5x the
  weights for a ``.keras`` file, which it reads whole into memory, 4x for an
  ``.h5`` file; actviz's Keras 2 rebuild 4x). A model whose estimate is over
  ``ACTVIZ_MAX_MODEL_MB`` (default 4096) is refused before any weight is read.
  So a 1.7 MB ``.keras`` holding 1.76 GB of compressible zeros is refused in
  words instead of taking 9 GB.
- Linear Sequential models: Keras's ``Sequential.from_config`` adds layers one at
  a time and rebuilds the whole graph after each (quadratic: 300 layers took
  124 s). ``LinearSequential.from_config`` builds the same ``keras.Sequential``
  from the whole list at once, through the public constructor. It reaches
  Keras's loaders through ``custom_objects``: by class name for ``.h5`` files,
  by ``registered_name`` for ``.keras`` files (``linear_config`` sets it; the
  archive Keras reads is rewritten with the scanned configuration, see
  ``linear_archive``).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import zipfile
from typing import Any, Callable

from .. import keras_compat
from ..errors import ActvizError, ModelFileError, UnsafeModelError
from .scan import MAX_MODEL_BYTES, FileScan

#: Peak memory while loading, as a multiple of the weights' bytes (measured: see the module docstring).
LOAD_FACTORS = {"keras": 5.0, "h5": 4.0, "legacy": 4.0}
#: The ``registered_name`` that sends a Sequential entry of a .keras configuration to ``LinearSequential``.
LINEAR_SEQUENTIAL = "actviz>LinearSequential"
#: The modules a .keras configuration names for ``keras.Sequential``.
_SEQUENTIAL_MODULES = ("keras", "keras.models", keras_compat.source_module("keras.models.sequential"))


class LinearSequential:
    """Builds ``keras.Sequential`` from its configuration with all layers at once (one graph build).

    Only ``from_config`` exists: Keras's loaders call it in place of
    ``keras.Sequential.from_config``, which does the same work with one graph
    rebuild per layer. The result is a plain ``keras.Sequential``.
    """

    @staticmethod
    def from_config(config: dict, custom_objects: dict | None = None) -> Any:
        import keras

        if not isinstance(config, dict) or "name" not in config or not isinstance(config.get("layers"), list):
            raise ValueError("A Sequential model configuration must be a dictionary with 'name' and 'layers'.")
        layers = []
        for entry in config["layers"]:
            if isinstance(entry, dict) and "module" not in entry:  # Keras 2 / .h5 layer configs, as Keras does
                layers.append(keras_compat.legacy_model_from_config(entry, custom_objects=custom_objects))
            else:
                layers.append(keras.saving.deserialize_keras_object(entry, custom_objects=custom_objects))
        model = keras.Sequential(layers, name=config["name"])
        shape = config.get("build_input_shape")
        if not model.built and shape and isinstance(shape, (tuple, list)):
            model.build(shape)
        return model


def custom_objects() -> dict:
    """The ``custom_objects`` given to Keras's loaders: the linear Sequential builder, under both names."""
    return {"Sequential": LinearSequential, LINEAR_SEQUENTIAL: LinearSequential}


def linear_config(config: dict) -> dict:
    """A copy of a .keras configuration whose Sequential entries name ``LinearSequential``."""
    config = copy.deepcopy(config)
    stack: list = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("class_name") == "Sequential" and node.get("module") in _SEQUENTIAL_MODULES:
                node["registered_name"] = LINEAR_SEQUENTIAL
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return config


def linear_archive(path: str, config: dict) -> str:
    """Write next to ``path`` a .keras archive with the scanned configuration (as ``linear_config``)
    and the other entries copied unchanged; return its path.

    Keras then reads exactly the configuration that was checked, not the file's own copy.
    """
    target = os.path.join(os.path.dirname(path), "linear-" + os.path.basename(path))
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED, allowZip64=True) as out:
        for info in source.infolist():
            if info.filename == "config.json":
                out.writestr("config.json", json.dumps(linear_config(config)))
            elif not info.is_dir():
                with source.open(info) as reader, out.open(info.filename, "w", force_zip64=info.file_size > 2**31) as writer:
                    shutil.copyfileobj(reader, writer, 1024**2)
    return target


# --- building: dry, then for real ------------------------------------------------------


def keras_builder(config: dict, kind: str) -> Callable[[], Any]:
    """The model of ``config`` as Keras's own loader builds it (weights not read)."""
    def build() -> Any:
        import keras

        plain = json.loads(json.dumps(config))
        if kind == "h5":
            return keras_compat.legacy_model_from_config(plain, custom_objects=custom_objects())
        plain["compile_config"] = None  # as load_model(compile=False)
        _without_default_compile(plain)
        with keras_compat.object_sharing():
            return keras.saving.deserialize_keras_object(linear_config(plain), custom_objects=custom_objects(), safe_mode=True)

    return build


def _without_default_compile(config: dict) -> None:
    """A keras_hub task (``ViTImageClassifier``, ...) compiles itself when it is made, and its
    optimizer's step counter is a variable with a value, which a dry build cannot make: it is made
    with ``compile=False`` (what it is compiled with plays no part in its weights)."""
    import sys

    hub = sys.modules.get("keras_hub")
    registered = config.get("registered_name")
    if hub is None or not isinstance(registered, str) or not isinstance(config.get("config"), dict):
        return
    import keras

    found = keras.saving.get_registered_object(registered)
    if isinstance(found, type) and issubclass(found, hub.models.Task):
        config["config"]["compile"] = False


def legacy_builder(config: dict) -> Callable[[], Any]:
    """The model of a Keras 2 ``config`` as ``legacy`` rebuilds it (weights not read)."""
    def build() -> Any:
        from . import legacy

        return legacy.build(json.loads(json.dumps(config)))

    return build


def dry_weight_bytes(build: Callable[[], Any]) -> int:
    """Bytes of the weights the model made by ``build()`` declares, counted without allocating them.

    Raises whatever the builder raises for a layout it cannot build.
    """
    import numpy as np

    with keras_compat.weightless_scope():
        model = build()
        return sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.weights)


def load_budget() -> int:
    """The memory budget of loading one model, in bytes (``ACTVIZ_MAX_MODEL_MB``, default 4096 MB)."""
    from ..settings import megabytes

    return megabytes("ACTVIZ_MAX_MODEL_MB")


def check_load_memory(declared: int, how: str) -> None:
    """Refuse weights over ``MAX_MODEL_BYTES``, or whose loading by ``how`` ('keras', 'h5', 'legacy')
    would peak over ``load_budget()``."""
    if declared > MAX_MODEL_BYTES:
        raise UnsafeModelError(
            f"The model's layers declare {declared / 1e9:.1f} GB of weights, more than actviz opens "
            f"({MAX_MODEL_BYTES / 1e9:.1f} GB); refused before any memory was taken."
        )
    peak, budget = declared * LOAD_FACTORS[how], load_budget()
    if peak > budget:
        raise UnsafeModelError(
            f"The model's layers declare {declared / 1e9:.2f} GB of weights; loading them takes about "
            f"{LOAD_FACTORS[how]:.0f} times that ({peak / 1e9:.1f} GB) at its peak, more than the "
            f"{budget / 1e9:.1f} GB allowed here (ACTVIZ_MAX_MODEL_MB). Refused before any memory was taken."
        )


def load_scanned(path: str, scanned: FileScan, *, trust: bool = False) -> tuple[Any, list[str], int]:
    """Load the model file at ``path`` (already scanned) with Keras, or actviz's Keras 2 rebuild.

    Each way of building is dry-built and its weights checked against the
    budgets just before it is tried for real, so no builder allocates unchecked;
    if none can build the layout, the file is refused. Returns (model, notes,
    declared weight bytes). ``trust`` loads with Keras's safe mode off and skips
    the dry build (it would run the file's code; declared bytes are then 0).
    """
    import keras

    from . import legacy

    how = "keras" if scanned.kind == "keras" else "h5"
    attempts: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = []
    if scanned.kind == "keras":
        source = linear_archive(path, scanned.config)
        attempts.append((how, keras_builder(scanned.config, how), lambda: keras.saving.load_model(
            source, compile=False, safe_mode=not trust, custom_objects=custom_objects())))
    else:
        attempts.append((how, keras_builder(scanned.config, how), lambda: keras.saving.load_model(
            path, compile=False, safe_mode=not trust, custom_objects=custom_objects())))
    if scanned.keras2:
        attempts.append(("legacy", legacy_builder(scanned.config), lambda: legacy.rebuild_keras2_model(path, scanned.config)))
    first_error: Exception | None = None
    for index, (how, dry, real) in enumerate(attempts):
        try:
            declared = 0 if trust else dry_weight_bytes(dry)
        except ActvizError:  # a refusal, or a Keras without what actviz needs (keras_compat): not a layout to skip
            raise
        except Exception as exc:  # noqa: BLE001 -- Keras raises many types for a layout it cannot build
            first_error = first_error or exc
            continue
        if not trust:
            check_load_memory(declared, how)
        try:
            model = real()
        except ActvizError:
            raise
        except Exception as exc:  # noqa: BLE001 -- a file Keras cannot read: try the next way, then explain
            first_error = first_error or exc
            continue
        notes = ["Read as an older Keras 2 file: the model was rebuilt from its stored layout and weights."] if index else []
        return model, notes, declared
    raise ModelFileError(plain_load_error(first_error))


def plain_load_error(exc: BaseException | None) -> str:
    detail = " ".join(str(exc).split()) if exc is not None else ""
    if len(detail) > 300:
        detail = detail[:300] + "..."
    return (
        "Keras could not rebuild the model from this file, so it cannot be opened. The file may be damaged or made "
        "by an incompatible program." + (f" (Details: {detail})" if detail else "")
    )
