"""What a model file may name (``actviz.safety.policy``): a class is trusted when Keras (or keras_hub)
ships it and has loaded it, and it is a layer, an operation or what layers are made and trained
with; everything hostile inside an otherwise standard architecture is still refused."""

from __future__ import annotations

import sys

import keras_hub
import pytest

from actviz.errors import ModelFileError, UnsafeModelError
from actviz.safety import policy
from actviz.safety.loading import load_model, scan_model_file


@pytest.fixture(scope="module")
def mobilenet_v3(keras, tmp_path_factory):
    """MobileNetV3Small fine-tuned as users do: its file names Keras's own operations (keras.src.ops.numpy)."""
    keras.utils.set_random_seed(3)
    base = keras.applications.MobileNetV3Small(weights=None, include_top=False, input_shape=(32, 32, 3))
    model = keras.Model(base.input, keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(base.output)))
    path = tmp_path_factory.mktemp("policy") / "mobilenet_v3.keras"
    model.save(path)
    return path


def _first(config: dict, **match) -> dict:
    """The first entry of a configuration with these keys and values."""
    return next(entry for _, entry in policy._walk_config(config, "") if all(entry.get(k) == v for k, v in match.items()))


def test_keras_operations_in_an_application_are_trusted(mobilenet_v3):
    config = scan_model_file(mobilenet_v3.read_bytes())
    assert _first(config, module="keras.src.ops.numpy", class_name="Add")
    assert load_model(mobilenet_v3).model.name


@pytest.mark.parametrize("change, message", [
    ({"module": "keras.layers", "class_name": "Lambda"}, "Lambda layer .* it contains Python code"),
    ({"module": "keras_contrib.layers", "class_name": "Add"}, "code from outside Keras .*module 'keras_contrib.layers'"),
    ({"module": "keras.src.saving.saving_lib", "class_name": "load_model"}, "'keras.src.saving.saving_lib' .* no reason to use"),
    ({"module": "keras.src.utils.progbar", "class_name": "Progbar"}, "'keras.src.utils.progbar' .* no reason to use"),
    ({"module": "keras.src.ops.numpy", "class_name": "NotAnOperation"}, "not part of Keras"),
    ({"module": "keras.src.export.tfsm_layer", "class_name": "TFSMLayer"}, "TFSMLayer layer .* SavedModel"),
    ({"module": "keras_hub.src.utils.preset_utils", "class_name": "upload_preset", "registered_name": "keras_hub>upload_preset"},
     "no reason to use"),
])
def test_hostile_entries_inside_an_application_are_refused(mobilenet_v3, rewrite_config, change, message):
    def inject(config):
        _first(config, module="keras.src.ops.numpy", class_name="Add").update(change)

    with pytest.raises(UnsafeModelError, match=message):
        load_model(rewrite_config(mobilenet_v3, inject))


def test_classes_and_functions_a_notebook_registered_are_refused(keras, mobilenet_v3, rewrite_config):
    @keras.saving.register_keras_serializable(package="notebook")
    class Sneaky(keras.layers.Layer):
        pass

    @keras.saving.register_keras_serializable(package="notebook")
    def sneaky(x):
        return x

    def by_registered_name(config):
        _first(config, module="keras.src.ops.numpy", class_name="Add")["registered_name"] = "notebook>Sneaky"

    def by_string(config):
        _first(config, module="keras.layers", class_name="Activation")["config"]["activation"] = "notebook>sneaky"

    try:
        with pytest.raises(UnsafeModelError, match="code from outside Keras .*module '.*test_policy'"):
            load_model(rewrite_config(mobilenet_v3, by_registered_name))
        with pytest.raises(UnsafeModelError, match="names the function 'notebook>sneaky'"):
            load_model(rewrite_config(mobilenet_v3, by_string))
    finally:
        for name in ("notebook>Sneaky", "notebook>sneaky"):
            keras.saving.get_custom_objects().pop(name, None)


def test_keras_hub_vocabulary_from_a_path_is_refused():
    tokenizer = {"module": "keras_hub.src.tokenizers.word_piece_tokenizer", "class_name": "WordPieceTokenizer",
                 "registered_name": "keras_hub>WordPieceTokenizer", "config": {"name": "words", "vocabulary": "/etc/passwd"}}
    with pytest.raises(UnsafeModelError, match="reads its vocabulary from a file"):
        policy.check_config({"class_name": "Sequential", "module": "keras", "config": {"name": "m", "layers": [tokenizer]}})


def test_a_package_that_is_not_installed_is_said(monkeypatch):
    monkeypatch.setitem(policy.TRUSTED_PACKAGES, "keras_absent", "keras_absent.src")
    monkeypatch.setitem(policy._OPTIONAL, "keras_absent", "pip install keras_absent")
    entry = {"module": "keras_absent.layers", "class_name": "Block", "config": {"name": "b"}}
    with pytest.raises(ModelFileError, match="made with keras_absent, which is not installed here.*pip install keras_absent"):
        policy.check_config({"class_name": "Sequential", "module": "keras", "config": {"name": "m", "layers": [entry]}})


def test_every_class_the_rule_admits_and_refuses(keras):
    """Every class of a trusted kind that Keras and keras_hub define and have loaded, named in a file:
    all are admitted but the ones that carry or load code."""
    assert keras_hub.__name__ in sys.modules
    kinds = policy._trusted_kinds()
    found = {
        (value.__module__, value.__name__): value
        for name, module in list(sys.modules.items()) if name.split(".")[0] in policy.TRUSTED_PACKAGES and module is not None
        for value in list(vars(module).values())
        if isinstance(value, type) and issubclass(value, kinds) and value.__module__ == name
    }
    assert len(found) > 1000
    refused = set()
    for (module, class_name), value in found.items():
        entry = {"module": module, "class_name": class_name, "config": {"name": "x"}}
        try:
            policy.check_config({"class_name": "Sequential", "module": "keras", "config": {"name": "m", "layers": [entry]}})
        except UnsafeModelError as exc:
            assert "refused because" in str(exc), (module, class_name, str(exc))
            refused.add(class_name)
    blocked = {name for name, value in ((n, v) for (_, n), v in found.items()) if set(policy.BLOCKED_LAYERS) & {b.__name__ for b in value.__mro__}}
    assert refused == blocked and set(policy.BLOCKED_LAYERS) <= refused
