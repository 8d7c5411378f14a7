"""Open a Keras model file: scanned first (``scan``), then loaded by Keras in safe mode.

Keras 2 ``.h5`` files whose nested models Keras 3 cannot rebuild are reassembled
from their stored configuration, with the weights matched by layer and variable
name (see ``legacy``).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from .errors import ModelFileError
from .scan import MAX_MODEL_BYTES, check_declared_size, file_kind, read_config, scan_model_file

ModelSource = Union[bytes, str, Path]


@dataclass
class LoadedModel:
    """A model opened by ``load_model``.

    ``digest`` is the SHA-256 of the file's bytes: a cache key that never collides.
    ``notes`` are plain-words remarks for the user (e.g. "read as a Keras 2 file").
    """

    model: Any
    name: str
    digest: str
    notes: list[str] = field(default_factory=list)


def file_digest(data: bytes) -> str:
    """SHA-256 of ``data`` as hex: the identity of a model or image file."""
    return hashlib.sha256(data).hexdigest()



def load_model(source: ModelSource, *, trust: bool = False, name: str | None = None) -> LoadedModel:
    """Load a ``.keras`` or ``.h5`` model from bytes or a path, safely unless ``trust``.

    Without ``trust`` the file is scanned first (``scan_model_file``) and Keras
    loads it in safe mode. With ``trust`` both are skipped: only for files the
    user made or trusts. Raises ``ModelFileError`` / ``UnsafeModelError``.
    """
    from . import legacy

    data, label = _read_source(source, name)
    kind = file_kind(data, label)
    config = scan_model_file(data, label=label) if not trust else read_config(data, kind)
    keras2 = kind == "h5" and legacy.is_keras2_file(io.BytesIO(data))
    if not trust:
        check_declared_size(config, kind, keras2)
    with tempfile.TemporaryDirectory(prefix="actviz-") as folder:
        path = os.path.join(folder, "model" + (".keras" if kind == "keras" else ".h5"))
        with open(path, "wb") as handle:
            handle.write(data)
        model, notes = _load_path(path, config, keras2=keras2, trust=trust)
    return LoadedModel(model=model, name=label, digest=file_digest(data), notes=notes)


def _read_source(source: ModelSource, name: str | None) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name or "uploaded model"
    path = Path(source)
    if path.is_dir():
        raise ModelFileError(
            f"'{path}' is a folder. actviz opens Keras model files ending in .keras or .h5; "
            "a TensorFlow SavedModel folder must first be saved again as .keras."
        )
    if not path.is_file():
        raise ModelFileError(f"There is no model file at '{path}'.")
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise ModelFileError(f"The model file is {size / 1e9:.1f} GB, more than actviz opens ({MAX_MODEL_BYTES / 1e9:.1f} GB).")
    return path.read_bytes(), name or path.name



def _load_path(path: str, config: dict, *, keras2: bool, trust: bool) -> tuple[Any, list[str]]:
    import keras

    from . import legacy

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not trust), []
    except Exception as exc:  # Keras raises many types for a file it cannot rebuild
        first_error = exc
    if keras2:
        try:
            model = legacy.rebuild_keras2_model(path, config)
        except ModelFileError:
            raise
        except Exception as exc:
            raise ModelFileError(_plain_load_error(exc)) from None
        return model, ["Read as an older Keras 2 file: the model was rebuilt from its stored layout and weights."]
    raise ModelFileError(_plain_load_error(first_error)) from None


def _plain_load_error(exc: Exception) -> str:
    detail = " ".join(str(exc).split())
    if len(detail) > 300:
        detail = detail[:300] + "..."
    return f"Keras could not rebuild the model from this file. The file may be damaged or made by an incompatible program. (Details: {detail})"

