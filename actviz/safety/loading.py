"""Open a Keras model file: every step once, in order, as much of it in a child process as the
source calls for.

1. ``read_model_source``: the bytes read once (their size capped first), their kind
   ("keras" or "h5") known from their first bytes; their SHA-256 taken once, when asked for.
2. ``private_copy``: the bytes written once to a private folder, which every later step reads.
3. The structure scanned once (``scan.read_model_file``), in a child (``isolation.scan_file``).
4. The configuration checked once against the policy (``policy.check_config``), here.
5. Level "vet" only: in a second child, the model built from that checked configuration,
   loaded, traced and run once under limits (``isolation.vet_file``).
6. Here: the dry build (weights counted without memory) and the loading budget, then the load
   by Keras in safe mode (``building.load_scanned``), from the same private copy.

One function per level (``load_model(source, isolate=...)`` picks it):

- "scan" (the default for paths, as the command line gives them): steps 1-4 and 6.
- "vet" (the default for bytes, i.e. uploads and downloads): steps 1-6. Loading again here
  after the child is deliberate: the parent never trusts the child's model object, nor its
  numbers (so it dry-builds again before loading).
- trusted (``trust=True``: a file its user made or trusts): steps 1, 2, the configuration read
  without checks, and the load with Keras's safe mode off.

There is no way to skip the checks but ``trust=True``. ``ACTVIZ_ISOLATE=vet`` makes every
untrusted load a full vet (a dashboard should set it). Keras 2 ``.h5`` files whose nested models
Keras 3 cannot rebuild are reassembled from their stored configuration (see ``legacy``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterator, Union

from ..errors import ModelFileError
from . import isolation
from .building import load_scanned
from .isolation import VetReport, vet_limits
from .policy import check_config, isolation_level
from .scan import MAX_MODEL_BYTES, FileScan, file_kind, read_model_file

ModelSource = Union[bytes, str, Path]


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


@dataclass(frozen=True)
class ModelFile:
    """A model file's bytes as read once: ``label`` names it for the user, ``kind`` is
    "keras" or "h5" (from its first bytes)."""

    data: bytes = field(repr=False)
    label: str
    kind: str

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the bytes as hex, worked out on first use."""
        return file_digest(self.data)


def file_digest(data: bytes) -> str:
    """SHA-256 of ``data`` as hex: the identity of a model or image file."""
    return hashlib.sha256(data).hexdigest()


def load_model(source: ModelSource, *, trust: bool = False, name: str | None = None, isolate: str | None = None) -> LoadedModel:
    """Load a ``.keras`` or ``.h5`` model from bytes or a path, safely unless ``trust``.

    Without ``trust`` the file is checked in a child process first (``isolate``:
    "scan" or "vet"; see the module docstring), then loaded here by Keras in safe
    mode from the same private copy. With ``trust`` nothing is checked: only for
    files the user made or trusts. Raises ``ModelFileError`` and its subclasses
    (``UnsafeModelError``, ``ModelCheckError``), ``BudgetError``.
    """
    file = read_model_source(source, name=name)
    opener = _open_trusted if trust else _LEVELS[isolation_level(source, isolate)]
    with private_copy(file) as path:
        return opener(file, path)


def _open_trusted(file: ModelFile, path: str) -> LoadedModel:
    """A file its user trusts: its configuration read here without checks, Keras's safe mode off."""
    scanned = read_model_file(path, kind=file.kind, check=False)
    model, notes, _ = load_scanned(path, scanned, trust=True)
    return LoadedModel(model=model, name=file.label, digest=file.digest, notes=notes)


def _open_scanned(file: ModelFile, path: str) -> LoadedModel:
    """Level "scan": the structure scanned in a child, the configuration checked, the model loaded here."""
    model, notes, _ = load_scanned(path, checked_scan(file, path))
    return LoadedModel(model=model, name=file.label, digest=file.digest, notes=notes)


def _open_vetted(file: ModelFile, path: str) -> LoadedModel:
    """Level "vet": as "scan", with the model built, traced and run once in a second child before it is loaded here."""
    vetting = vet(file, path)
    model, notes, _ = load_scanned(path, vetting.scanned)
    return LoadedModel(model=model, name=file.label, digest=file.digest, notes=notes, vetting=vetting)


_LEVELS: dict[str, Callable[[ModelFile, str], LoadedModel]] = {"scan": _open_scanned, "vet": _open_vetted}


def checked_scan(file: ModelFile, path: str, *, isolated: bool = True) -> FileScan:
    """The file's structure scanned (in a child process unless ``isolated`` is False) and its
    configuration checked against the policy; each once."""
    if isolated:
        scanned = isolation.scan_file(path, kind=file.kind, label=file.label)
    else:
        scanned = read_model_file(path, kind=file.kind)
    check_config(scanned.config)
    return scanned


def vet(file: ModelFile, path: str, *, limits: isolation.ChildLimits | None = None) -> VetReport:
    """The scan and the policy (``checked_scan``), then the trial in a child (``isolation.vet_file``):
    a ``VetReport`` whose ``seconds`` count both children, as the caller waited for them.

    The quick scan child runs first, so a file refused for its structure or for what it
    names costs half a second, not TensorFlow's start-up.
    """
    started = time.monotonic()
    report = isolation.vet_file(path, checked_scan(file, path), label=file.label, limits=limits)
    return dataclasses.replace(report, seconds=time.monotonic() - started)


def vet_model(data: bytes, *, name: str = "uploaded model", timeout: float | None = None, memory_mb: int | None = None) -> VetReport:
    """Vet an untrusted model file's bytes (level "vet" without the final load here); return what it found.

    Raises ``ModelFileError`` / ``UnsafeModelError`` (refused, with the reason),
    ``ModelCheckError`` (the file crashed the check, or broke its time or memory
    limit), ``BudgetError`` (a forward pass would take too much memory) or
    ``ServerBusyError``. ``timeout`` (seconds) and ``memory_mb`` override
    ``ACTVIZ_VET_TIMEOUT`` / ``ACTVIZ_VET_MEMORY_MB``.

    >>> report = vet_model(upload_bytes, name="my_model.keras")   # doctest: +SKIP
    >>> report.summary()                                           # doctest: +SKIP
    'Checked in a separate process in 9.8 s: 23 layers, 58.9 MB of weights; ...'
    """
    file = read_model_source(data, name=name)
    with private_copy(file) as path:
        return vet(file, path, limits=vet_limits(timeout=timeout, memory_mb=memory_mb))


def scan_model_file(data: bytes, *, label: str = "model") -> dict:
    """Check a model file without running any of it, all in this process (for tests and notebooks);
    return its configuration.

    Raises ``UnsafeModelError`` naming the refused layer or entry and why, or
    ``ModelFileError`` for a damaged file: the same refusals as ``load_model``'s
    scan, whose reading runs in a child process.
    """
    file = read_model_source(data, name=label)
    with private_copy(file) as path:
        return checked_scan(file, path, isolated=False).config


# --- the bytes, read once ------------------------------------------------------------------


def read_model_source(source: ModelSource, *, name: str | None = None) -> ModelFile:
    """The bytes of a model file given as bytes or a path, read once with their size capped first.

    ``name`` labels it in messages (default: the file's name, or "uploaded model" for bytes).
    Raises ``ModelFileError`` for a missing file, a folder, a file too large, or bytes that
    are not a Keras model file.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, label = bytes(source), name or "uploaded model"
        _check_size(len(data))
    else:
        path = Path(source)
        if path.is_dir():
            raise ModelFileError(
                f"'{path}' is a folder. actviz opens Keras model files ending in .keras or .h5; "
                "a TensorFlow SavedModel folder must first be saved again as .keras."
            )
        if not path.is_file():
            raise ModelFileError(f"There is no model file at '{path}'.")
        _check_size(path.stat().st_size)
        data, label = path.read_bytes(), name or path.name
    return ModelFile(data=data, label=label, kind=file_kind(data[:8], label))


def _check_size(size: int) -> None:
    if size > MAX_MODEL_BYTES:
        raise ModelFileError(f"The model file is {size / 1e9:.1f} GB, more than actviz opens ({MAX_MODEL_BYTES / 1e9:.1f} GB).")


@contextlib.contextmanager
def private_copy(file: ModelFile) -> Iterator[str]:
    """A copy of a model file's bytes in a new private folder (mode 0700), removed on exit whatever happens.

    Yields the file's path, named ``model.keras`` or ``model.h5`` after its kind. The
    children write there too (their job, answer and log), and the parent removes it all.
    """
    folder = tempfile.mkdtemp(prefix="actviz-")
    try:
        path = os.path.join(folder, "model." + file.kind)
        with open(path, "wb") as handle:
            handle.write(file.data)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)
