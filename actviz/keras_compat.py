"""Every use of a private Keras name in actviz, each behind one small function, and the check that
they all still exist.

actviz traces nested models, reads Keras 2 files and counts weights without allocating them
through a few Keras internals that the public API does not offer. Keras may rename any of them in
a release. Rather than fail late and misleadingly (nested models no longer traced, so a model has
"no layer whose output is an image-like grid"), the first use of a function here checks every
private name at once (``check``: a few attribute look-ups, one empty model and one variable
without memory, about a millisecond), and a Keras without one of them is refused with
``KerasVersionError`` naming it and the version actviz is tested with.

Nothing here runs at import time, and importing this module does not import Keras.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
from typing import Any, Callable, Iterator

from .errors import KerasVersionError

#: The Keras minor version the tests run on, and the requirement that pins it (as pyproject.toml has it).
TESTED_KERAS = "3.15"
KERAS_REQUIREMENT = "keras>=3.15.1,<3.16"
#: The package holding Keras's code; the public ``keras.layers`` and the like re-export from it.
SOURCE_PACKAGE = "keras.src"
#: Keras's private list of variables made in a StatelessScope and not yet given memory.
_UNINITIALISED = "uninitialized_variables"

_checked = False
_checked_lock = threading.Lock()


# --- the private names, each behind one function --------------------------------------


def runs_a_graph(model: Any) -> bool:
    """True for a model that is a graph of layers (Functional, and models built like one).

    ``Model._run_through_graph`` is what ``run_through_graph`` needs; Keras has no public
    way to tell a functional model from a subclassed one.
    """
    require()
    return hasattr(model, "_run_through_graph")


def run_through_graph(model: Any, inputs: list, operation_fn: Callable[[Any], Callable]) -> Any:
    """Run a functional ``model``'s graph on symbolic ``inputs``, calling ``operation_fn(op)(*args, **kwargs)``
    in place of each operation; returns the graph's outputs.

    How actviz traces nested models: every layer of an inner model is called again in
    one outer graph. The public API only calls a model as one opaque layer.
    """
    require()
    return model._run_through_graph(inputs, operation_fn=operation_fn)


def all_layers(model: Any) -> list:
    """Every layer a model tracks, its ``InputLayer`` included (``Model._layers``).

    ``Sequential.layers`` leaves the ``InputLayer`` out, and it holds the only record of
    the input shape of a Sequential model that was never called.
    """
    require()
    return list(getattr(model, "_layers", []))


def legacy_model_from_config(config: dict, *, custom_objects: dict | None = None) -> Any:
    """A model or layer from a Keras 2 (``.h5``) configuration, converted by Keras's own legacy reader.

    ``keras.models.model_from_json`` reads only Keras 3 configurations; the converter for
    Keras 2 ones (``keras.src.legacy.saving.saving_utils.model_from_config``) is private.
    """
    require()
    from keras.src.legacy.saving import saving_utils

    return saving_utils.model_from_config(config, custom_objects=custom_objects)


@contextlib.contextmanager
def weightless_scope() -> Iterator[None]:
    """A scope in which Keras variables get a shape but no memory, and are forgotten on exit.

    ``keras.StatelessScope`` gives variables no memory, but it files each one on Keras's
    private list of uninitialised variables, and the next StatelessScope to close allocates
    them all (a dry build of a 44 GB model would then take 44 GB). The public API has no
    way to drop them, so the list is emptied here.
    """
    require()
    import keras
    from keras.src.backend.common import global_state

    with keras.StatelessScope(initialize_variables=False):
        try:
            yield
        finally:
            global_state.set_global_attribute(_UNINITIALISED, [])


def object_sharing() -> Any:
    """Keras's scope for objects shared between layers, entered as ``keras.saving.load_model`` does
    around building a model from its configuration (``serialization_lib.ObjectSharingScope``).

    actviz builds models from a configuration it checked itself, so it calls the same
    deserialiser inside the same scope; the scope is not public.
    """
    require()
    from keras.src.saving.serialization_lib import ObjectSharingScope

    return ObjectSharingScope()


def source_module(public: str) -> str:
    """The module under ``keras.src`` behind a public one: ``keras.layers`` -> ``keras.src.layers``.

    Keras writes some module names in model files as these private paths (a Functional
    model as ``keras.src.models.functional``), so a policy naming public modules must
    also know their private twins.
    """
    return public.replace("keras", SOURCE_PACKAGE, 1) if public.startswith("keras.") else public


def public_module(module: str) -> str:
    """The public module a ``keras.src`` module name stands for: ``keras.src.activations`` -> ``keras.activations``."""
    return module.replace(SOURCE_PACKAGE + ".", "keras.", 1) if module.startswith(SOURCE_PACKAGE + ".") else module


# --- the check ---------------------------------------------------------------------------


def _functional_graphs() -> bool:
    from keras.src.models.functional import Functional

    return callable(getattr(Functional, "_run_through_graph", None))


def _tracked_layers() -> bool:
    import keras

    return isinstance(getattr(keras.Sequential(name="actviz_keras_check"), "_layers", None), list)


def _legacy_converter() -> bool:
    from keras.src.legacy.saving import saving_utils

    return callable(getattr(saving_utils, "model_from_config", None))


def _uninitialised_list() -> bool:
    """A variable made in a StatelessScope is filed on the list ``weightless_scope`` empties."""
    import keras
    from keras.src.backend.common import global_state

    with keras.StatelessScope(initialize_variables=False):
        try:
            variable = keras.Variable(initializer="zeros", shape=(1,), name="actviz_keras_check")
            return any(item is variable for item in global_state.get_global_attribute(_UNINITIALISED) or [])
        finally:
            global_state.set_global_attribute(_UNINITIALISED, [])


def _sharing_scope() -> bool:
    from keras.src.saving import serialization_lib

    return isinstance(getattr(serialization_lib, "ObjectSharingScope", None), type)


def _source_modules() -> bool:
    import keras

    inside = all(cls.__module__.startswith(SOURCE_PACKAGE + ".") for cls in (keras.layers.Layer, keras.Model, keras.Sequential))
    return inside and importlib.util.find_spec(source_module("keras.models.functional")) is not None


#: (private name as the message says it, what actviz uses it for, a test that it is there).
PRIVATE_NAMES: tuple[tuple[str, str, Callable[[], bool]], ...] = (
    ("Model._run_through_graph", "to trace nested models", _functional_graphs),
    ("Model._layers", "to find the input of a Sequential model that was never called", _tracked_layers),
    ("keras.src.legacy.saving.saving_utils.model_from_config", "to read Keras 2 .h5 files", _legacy_converter),
    ("its list of uninitialized_variables", "to count a model's weights without allocating them", _uninitialised_list),
    ("keras.src.saving.serialization_lib.ObjectSharingScope", "to build a model from its configuration", _sharing_scope),
    ("its code under keras.src (keras.src.models.functional)", "to recognise the modules Keras names in model files", _source_modules),
)


def check() -> None:
    """Raise ``KerasVersionError`` unless every private name in ``PRIVATE_NAMES`` still exists."""
    for name, purpose, present in PRIVATE_NAMES:
        try:
            found = present()
        except (ImportError, AttributeError, TypeError, ValueError):
            found = False
        if not found:
            raise KerasVersionError(version_message(name, purpose))


def require() -> None:
    """``check()`` once per process, on the first use of a function here."""
    global _checked
    if _checked:
        return
    with _checked_lock:
        if not _checked:
            check()
            _checked = True


def version_message(name: str, purpose: str) -> str:
    """Plain words for a Keras that lacks ``name``, which actviz uses for ``purpose``."""
    import keras

    from .version import __version__

    actviz_minor = ".".join(__version__.split(".")[:2])
    return (
        f"This version of Keras ({keras.__version__}) no longer has {name}, which actviz {actviz_minor} uses {purpose}; "
        f"actviz is tested with Keras {TESTED_KERAS}. Install keras {TESTED_KERAS} (pip install '{KERAS_REQUIREMENT}')."
    )
