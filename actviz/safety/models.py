"""Opening a model to look inside: a file (path or bytes), the bundled demo, or a ``keras.Model``
already in memory, each with its probe and class names.

A model in memory gets one probe for its lifetime (a weak-keyed cache), so a
notebook that calls ``actviz.activations(model, ...)`` in a loop traces it once.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

from .. import demo
from .loading import LoadedModel, ModelSource, load_model
from ..core.probe import Probe

ModelLike = Union[ModelSource, Any, None]

_probes: "weakref.WeakKeyDictionary[Any, Probe]" = weakref.WeakKeyDictionary()
_probes_lock = threading.Lock()


@dataclass
class OpenModel:
    """A model ready to look inside: where it came from, its probe, and class names if known."""

    loaded: LoadedModel
    probe: Probe
    class_names: list | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def model(self) -> Any:
        return self.loaded.model


def open_model(
    source: ModelLike = None, *, trust: bool = False, name: str | None = None,
    class_names: Sequence[str] | None = None, isolate: str | None = None,
) -> OpenModel:
    """Open a model to look inside.

    ``source``: a path or bytes of a ``.keras`` / ``.h5`` file (scanned, then
    loaded in safe mode unless ``trust``), a ``keras.Model`` in memory, an
    ``OpenModel`` (returned as it is), or None for the bundled demo.
    ``class_names``: names of the model's outputs, in order (the demo knows its own).
    ``isolate``: how a file is checked in a child process before it is loaded
    ("scan" or "vet"; default: "vet" for bytes, "scan" for a path; see ``loading``).

    >>> opened = open_model()          # the bundled demo     # doctest: +SKIP
    >>> opened.probe.default_layers[0].name                   # doctest: +SKIP
    'block1_conv1'
    """
    if isinstance(source, OpenModel):
        return source
    if source is None or (isinstance(source, (str, Path)) and Path(source) == demo.MODEL):
        loaded = load_model(demo.MODEL, trust=trust, name=name or demo.NAME, isolate=isolate)
        return OpenModel(loaded, probe_for(loaded.model), list(class_names or demo.class_names()), list(loaded.notes))
    if _is_keras_model(source):
        loaded = LoadedModel(model=source, name=name or source.name, digest=f"memory:{id(source):x}")
        return OpenModel(loaded, probe_for(source), list(class_names) if class_names else None)
    loaded = load_model(source, trust=trust, name=name, isolate=isolate)
    notes = list(loaded.notes) + ([loaded.vetting.summary()] if getattr(loaded, "vetting", None) else [])
    return OpenModel(loaded, probe_for(loaded.model), list(class_names) if class_names else None, notes)


def probe_for(model: Any) -> Probe:
    """The probe of ``model``, traced once for the model's lifetime."""
    with _probes_lock:
        probe = _probes.get(model)
    if probe is None:
        probe = Probe(model)
        probe.hold_weakly()  # the cache's value must not keep its own key alive
        with _probes_lock:
            probe = _probes.setdefault(model, probe)
    return probe


def _is_keras_model(value: Any) -> bool:
    if isinstance(value, (bytes, bytearray, memoryview, str, Path)):
        return False
    try:
        import keras
    except ImportError:  # pragma: no cover - keras is a dependency
        return False
    return isinstance(value, keras.Model)
