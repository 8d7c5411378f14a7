"""Every private Keras name actviz uses is in actviz.keras_compat, still exists in the installed Keras,
and a Keras without one is refused in plain words on first use, not with a late, misleading error."""

import ast
import re
from pathlib import Path

import pytest

from actviz import keras_compat
from actviz.errors import KerasVersionError

ROOT = Path(__file__).resolve().parents[1]
#: Private Keras attributes the package reaches (and a few it might): only keras_compat may name them.
KERAS_PRIVATE_ATTRIBUTES = {"_run_through_graph", "_layers", "_build_shapes_dict", "_keras_history", "_inbound_nodes", "_outbound_nodes"}


def test_every_private_name_exists_in_the_keras_actviz_is_tested_with(keras):
    assert keras.__version__.startswith(keras_compat.TESTED_KERAS + ".")
    keras_compat.check()


def test_the_tested_version_is_the_one_actviz_requires():
    """The message tells people to install what pyproject.toml and requirements.txt pin."""
    assert f'"{keras_compat.KERAS_REQUIREMENT}"' in (ROOT / "pyproject.toml").read_text()
    assert keras_compat.KERAS_REQUIREMENT in (ROOT / "requirements.txt").read_text().splitlines()
    low, high = re.fullmatch(r"keras>=(\d+\.\d+)\.\d+,<(\d+\.\d+)", keras_compat.KERAS_REQUIREMENT).groups()
    assert low == keras_compat.TESTED_KERAS and high == f"3.{int(low.split('.')[1]) + 1}"


def test_a_missing_private_name_is_a_plain_version_message(keras, monkeypatch):
    from keras.src.ops.function import Function

    monkeypatch.delattr(Function, "_run_through_graph")
    monkeypatch.setattr(keras, "__version__", "3.16.0")
    with pytest.raises(KerasVersionError) as caught:
        keras_compat.check()
    assert str(caught.value) == (
        "This version of Keras (3.16.0) no longer has Model._run_through_graph, which actviz 0.3 uses to trace nested "
        "models; actviz is tested with Keras 3.15. Install keras 3.15 (pip install 'keras>=3.15.1,<3.16')."
    )


def _without_layer_list(monkeypatch, keras):
    real = keras.Sequential.__init__

    def init(self, *args, **kwargs):
        real(self, *args, **kwargs)
        object.__delattr__(self, "_layers")

    monkeypatch.setattr(keras.Sequential, "__init__", init)


def _filed_elsewhere(monkeypatch, keras):
    """Keras filing variables made in a StatelessScope under another name than actviz empties."""
    from keras.src.backend.common import global_state, variables

    monkeypatch.setattr(variables, "register_uninitialized_variable", lambda v: global_state.set_global_attribute("elsewhere", [v]))


@pytest.mark.parametrize("name,take_away", [
    ("Model._run_through_graph", lambda mp, keras: mp.delattr(__import__("keras.src.ops.function", fromlist=["Function"]).Function, "_run_through_graph")),
    ("Model._layers", _without_layer_list),
    ("keras.src.legacy.saving.saving_utils.model_from_config",
     lambda mp, keras: mp.delattr(__import__("keras.src.legacy.saving.saving_utils", fromlist=["x"]), "model_from_config")),
    ("its list of uninitialized_variables", _filed_elsewhere),
    ("keras.src.saving.serialization_lib.ObjectSharingScope",
     lambda mp, keras: mp.delattr(__import__("keras.src.saving.serialization_lib", fromlist=["x"]), "ObjectSharingScope")),
    ("its code under keras.src", lambda mp, keras: mp.setattr(keras_compat, "SOURCE_PACKAGE", "keras._src")),
])
def test_each_private_name_is_checked(keras, monkeypatch, name, take_away):
    take_away(monkeypatch, keras)
    with pytest.raises(KerasVersionError) as caught:
        keras_compat.check()
    text = str(caught.value)
    assert f"no longer has {name}" in text and f"pip install '{keras_compat.KERAS_REQUIREMENT}'" in text


def test_the_first_use_checks_before_a_late_misleading_error(keras, monkeypatch, flat_model):
    """Without the check, a Keras that renamed _run_through_graph gave 'no layer whose output is an image-like grid'."""
    from keras.src.ops.function import Function

    from actviz.core.probe import Probe

    inputs = keras.Input((8, 8, 3))
    nested = keras.Model(inputs, flat_model(inputs))
    monkeypatch.setattr(keras_compat, "_checked", False)
    monkeypatch.delattr(Function, "_run_through_graph")
    with pytest.raises(KerasVersionError, match="to trace nested models"):
        Probe(nested)


def test_weightless_scope_allocates_nothing_then_or_later(keras):
    """A 4 GB variable made in the scope has no value, and the next StatelessScope to close does not give it one."""
    from keras.src.backend.common import global_state

    with keras_compat.weightless_scope():
        huge = keras.Variable(initializer="zeros", shape=(1024, 1024, 1024), dtype="float32", name="huge")
    with keras.StatelessScope():
        pass
    assert huge._value is None
    assert not global_state.get_global_attribute("uninitialized_variables")


def test_module_names_map_both_ways():
    assert keras_compat.source_module("keras.layers") == "keras.src.layers"
    assert keras_compat.source_module("keras") == "keras"
    assert keras_compat.public_module("keras.src.activations") == "keras.activations"
    assert keras_compat.public_module("keras.activations") == "keras.activations"


def _private_touches(path: Path) -> list[str]:
    """Imports of keras.src, strings naming it, and the private attributes above, in one source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras.src"):
            found.append(f"from {node.module} import")
        elif isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.startswith("keras.src")]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(("keras.src", "_run_through_graph", "_layers")):
            found.append(repr(node.value))
        elif isinstance(node, ast.Attribute) and node.attr in KERAS_PRIVATE_ATTRIBUTES | {"global_state"}:
            found.append("." + node.attr)
    return found


def test_private_keras_names_are_used_only_in_keras_compat():
    touches = {
        str(path.relative_to(ROOT)): found
        for path in (ROOT / "actviz").rglob("*.py")
        if path.name != "keras_compat.py" and (found := _private_touches(path))
    }
    assert touches == {}
    assert _private_touches(ROOT / "actviz" / "keras_compat.py")  # the scan sees them where they are
