"""Open a Keras model file: checked in a child process first (``isolation``), then loaded by
Keras in safe mode here.

``load_model(source, isolate=...)`` decides how much runs isolated:

- ``"scan"`` (the default for paths, as the command line gives them): the
  structure scan runs in a child; the configuration checks, the dry build (weights
  and loading memory counted before anything is allocated) and the load run here.
- ``"vet"`` (the default for bytes, i.e. uploads and downloads): the whole load and
  one forward pass run first in a child with memory, processor-time and
  wall-clock limits (``isolation.vet_file``); only then is the model loaded here.

There is no way to skip the checks except ``trust=True`` (a file its user made or
trusts: no checks, Keras's safe mode off). ``ACTVIZ_ISOLATE=vet`` makes every
untrusted load a full vet (a dashboard should set it). Keras 2 ``.h5`` files whose
nested models Keras 3 cannot rebuild are reassembled from their stored
configuration (see ``legacy``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from ..errors import ChoiceError, ModelFileError
from .scan import MAX_MODEL_BYTES, file_kind

ModelSource = Union[bytes, str, Path]
#: How much of an untrusted load runs in a child process (see the module docstring).
ISOLATION_LEVELS = ("scan", "vet")


@dataclass
class LoadedModel:
    """A model opened by ``load_model``.

    ``digest`` is the SHA-256 of the file's bytes: a cache key that never collides.
    ``notes`` are plain-words remarks for the user (e.g. "read as a Keras 2 file").
    ``vetting`` is the child's report when the load was vetted (``isolate="vet"``).
    """

    model: Any
    name: str
    digest: str
    notes: list[str] = field(default_factory=list)
    vetting: Any = None


def file_digest(data: bytes) -> str:
    """SHA-256 of ``data`` as hex: the identity of a model or image file."""
    return hashlib.sha256(data).hexdigest()


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


def load_model(source: ModelSource, *, trust: bool = False, name: str | None = None, isolate: str | None = None) -> LoadedModel:
    """Load a ``.keras`` or ``.h5`` model from bytes or a path, safely unless ``trust``.

    Without ``trust`` the file is checked in a child process first (``isolate``:
    "scan" or "vet"; see the module docstring), then loaded here by Keras in safe
    mode from the same private copy. With ``trust`` nothing is checked: only for
    files the user made or trusts. Raises ``ModelFileError`` and its subclasses
    (``UnsafeModelError``, ``ModelCheckError``), ``BudgetError``.
    """
    from . import isolation
    from .building import load_scanned
    from .scan import check_config, read_model_file

    data, label = _read_source(source, name)
    level = None if trust else isolation_level(source, isolate)
    with isolation.private_copy(data, label=label) as path:
        vetting = None
        if trust:
            scanned = read_model_file(path, label=label, check=False)
        elif level == "vet":
            vetting = isolation.vet_file(path, label=label)
            scanned = vetting.scanned
        else:
            scanned = isolation.scan_file(path, label=label)
        if not trust:
            check_config(scanned.config)
        model, notes, _ = load_scanned(path, scanned, trust=trust)
    return LoadedModel(model=model, name=label, digest=file_digest(data), notes=notes, vetting=vetting)


def _read_source(source: ModelSource, name: str | None) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > MAX_MODEL_BYTES:
            raise ModelFileError(f"The model file is {len(data) / 1e9:.1f} GB, more than actviz opens ({MAX_MODEL_BYTES / 1e9:.1f} GB).")
        label = name or "uploaded model"
        file_kind(data[:8], label)
        return data, label
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
    data = path.read_bytes()
    label = name or path.name
    file_kind(data[:8], label)
    return data, label
