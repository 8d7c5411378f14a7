import io
import zipfile

import numpy as np
import pytest

from actviz.errors import ModelFileError, UnsafeModelError
from actviz.core.probe import Probe
from actviz.safety.loading import load_model, scan_model_file


def _save(model, path):
    model.save(path)
    return path


def test_keras_file_round_trip(flat_model, tmp_path, rng):
    loaded = load_model(_save(flat_model, tmp_path / "m.keras"))
    x = rng.random((1, 8, 8, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(loaded.model(x)), np.asarray(flat_model(x)), rtol=1e-6)
    assert loaded.name == "m.keras" and len(loaded.digest) == 64


def test_keras3_h5_and_bytes_source(nested_model, tmp_path, rng):
    path = _save(nested_model, tmp_path / "nested.h5")
    loaded = load_model(path.read_bytes(), name="upload.h5")
    x = rng.random((1, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(loaded.model(x)), np.asarray(nested_model(x)), rtol=1e-5)
    assert loaded.name == "upload.h5"


@pytest.mark.parametrize("key", ["flat_vgg16", "nested_vgg16", "seq_mobilenetv2", "seq_input_shape"])
def test_keras2_files_predict_like_tf_keras(keras2_files, key):
    import tf_keras

    path = keras2_files[key]
    reference = tf_keras.models.load_model(path, compile=False)
    loaded = load_model(path)
    probe = Probe(loaded.model)
    shape = (1, *reference.input_shape[1:])
    x = np.random.default_rng(1).random(shape, dtype=np.float32)
    result = probe.run(x)
    np.testing.assert_allclose(result.predictions[0][0], reference.predict(x, verbose=0)[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("key,inner", [
    ("nested_vgg16", ["block1_conv1", "block3_pool", "block5_conv3"]),
    ("seq_mobilenetv2", ["Conv1", "bn_Conv1", "block_3_depthwise", "out_relu"]),
])
def test_keras2_nested_inner_activations_match_tf_keras(keras2_files, key, inner):
    """Independent computation: tf_keras's own sub-model over the nested base's layers."""
    import tf_keras

    reference = tf_keras.models.load_model(keras2_files[key], compile=False)
    base = reference.layers[1] if key == "nested_vgg16" else reference.layers[0]
    sub = tf_keras.Model(base.input, [base.get_layer(n).output for n in inner])
    probe = Probe(load_model(keras2_files[key]).model)
    names = [f"{base.name}/{n}" for n in inner]
    x = np.random.default_rng(2).random((1, 32, 32, 3), dtype=np.float32)
    maps = probe.run(x, names).maps
    for name, want in zip(names, sub.predict(x, verbose=0)):
        np.testing.assert_allclose(maps[name][0], want[0], rtol=1e-4, atol=1e-4)


def test_keras2_nested_file_needs_the_rebuild(keras2_files):
    import keras

    with pytest.raises(ValueError, match="Functional model"):  # Keras 3 alone cannot read it: the reason for actviz.safety.legacy
        keras.saving.load_model(keras2_files["nested_vgg16"], compile=False)
    assert "Keras 2" in load_model(keras2_files["nested_vgg16"]).notes[0]


def _lambda_model(keras):
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Lambda(lambda t: t * 2, name="doubler")(inputs)
    return keras.Model(inputs, keras.layers.Conv2D(1, 2)(x))


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_layer_refused_and_trust_opt_in(keras, tmp_path, suffix):
    path = _save(_lambda_model(keras), tmp_path / f"lambda{suffix}")
    with pytest.raises(UnsafeModelError, match="Lambda layer 'doubler'"):
        load_model(path)
    if suffix == ".keras":
        doubler = load_model(path, trust=True).model.get_layer("doubler")  # the trusted file's own code runs
        np.testing.assert_allclose(np.asarray(doubler(np.full((1, 4, 4, 1), 3.0, np.float32))), 6.0)


def test_keras2_lambda_refused(tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    inputs = tf_keras.Input((4, 4, 1))
    x = tf_keras.layers.Lambda(lambda t: t + 1, name="plus_one")(inputs)
    tf_keras.Model(inputs, tf_keras.layers.Conv2D(1, 2)(x)).save(tmp_path / "k2_lambda.h5")
    with pytest.raises(UnsafeModelError, match="Lambda"):
        load_model(tmp_path / "k2_lambda.h5")


def test_module_outside_keras_refused(flat_model, tmp_path, rewrite_config):
    path = _save(flat_model, tmp_path / "m.keras")

    def inject(config):
        layer = config["config"]["layers"][1]
        layer["config"]["activation"] = {"module": "os", "class_name": "function", "config": "system", "registered_name": "function"}

    with pytest.raises(UnsafeModelError, match="module 'os'"):
        load_model(rewrite_config(path, inject))


def test_custom_layer_class_refused(flat_model, tmp_path, rewrite_config):
    path = _save(flat_model, tmp_path / "m.keras")

    def rename(config):
        config["config"]["layers"][1]["class_name"] = "MyFancyConv"
        config["config"]["layers"][1].pop("module", None)

    with pytest.raises(UnsafeModelError, match="not part of Keras"):
        load_model(rewrite_config(path, rename))


def test_absurd_layer_size_refused(flat_model, tmp_path, rewrite_config):
    path = _save(flat_model, tmp_path / "m.keras")

    def inflate(config):
        config["config"]["layers"][-1]["config"]["units"] = 10**9

    with pytest.raises(UnsafeModelError, match="absurd"):
        load_model(rewrite_config(path, inflate))


def test_archive_member_escaping_folder_refused(flat_model, tmp_path):
    data = (_save(flat_model, tmp_path / "m.keras")).read_bytes()
    buffer = io.BytesIO(data)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("../../evil.sh", "echo owned")
    with pytest.raises(UnsafeModelError, match="outside the archive"):
        scan_model_file(buffer.getvalue())


def test_hdf5_external_link_refused(flat_model, tmp_path):
    import h5py

    path = _save(flat_model, tmp_path / "m.h5")
    with h5py.File(path, "a") as handle:
        handle["sneaky"] = h5py.ExternalLink("/etc/passwd", "/")
    with pytest.raises(UnsafeModelError, match="links to another file"):
        load_model(path)


@pytest.mark.parametrize("content,message", [
    (b"", "empty"),
    (b"hello, not a model", "not a Keras model file"),
    (b"PK\x03\x04broken zip", "damaged"),
    (b"\x89HDF\r\n\x1a\nbroken", "damaged"),
])
def test_broken_files_give_plain_errors(content, message):
    with pytest.raises(ModelFileError, match=message):
        load_model(content)


def test_weights_only_h5_explained(flat_model, tmp_path):
    flat_model.save_weights(tmp_path / "only.weights.h5")
    with pytest.raises(ModelFileError, match="weights only"):
        load_model(tmp_path / "only.weights.h5")


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(ModelFileError, match="no model file"):
        load_model(tmp_path / "missing.h5")
    with pytest.raises(ModelFileError, match="folder"):
        load_model(tmp_path)


@pytest.mark.parametrize("module,function,message", [
    ("keras.config", "enable_unsafe_deserialization", "no reason to use"),
    ("keras.utils", "get_file", "no reason to use"),
    ("keras.activations", "not_an_activation", "only Keras activations"),
])
def test_injected_keras_functions_refused(flat_model, tmp_path, rewrite_config, module, function, message):
    path = _save(flat_model, tmp_path / "m.keras")

    def inject(config):
        config["config"]["layers"][1]["config"]["activation"] = {"module": module, "class_name": "function", "config": function, "registered_name": "function"}

    with pytest.raises(UnsafeModelError, match=message):
        load_model(rewrite_config(path, inject))


def test_keras_activation_function_objects_allowed(flat_model, tmp_path, rewrite_config):
    path = _save(flat_model, tmp_path / "m.keras")

    def as_object(config):
        config["config"]["layers"][1]["config"]["activation"] = {"module": "keras.activations", "class_name": "function", "config": "relu", "registered_name": "function"}

    loaded = load_model(rewrite_config(path, as_object)).model
    assert loaded.get_layer("conv_1").activation.__name__ == "relu"
    x = np.random.default_rng(0).random((1, *flat_model.input_shape[1:]), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), flat_model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_keras2_tensorflow_operation_explained(tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    inputs = tf_keras.Input((8, 8, 3))
    tf_keras.Model(inputs, tf_keras.layers.Conv2D(2, 3)(inputs * 2.0)).save(tmp_path / "op.h5")
    with pytest.raises(ModelFileError, match="TensorFlow operation written directly"):
        load_model(tmp_path / "op.h5")


@pytest.mark.parametrize("class_name,message", [
    ("TFSMLayer", "loads a TensorFlow SavedModel"),
    ("TorchModuleWrapper", "pickled PyTorch module"),
])
def test_code_carrying_layers_refused(flat_model, tmp_path, rewrite_config, class_name, message):
    path = _save(flat_model, tmp_path / "m.keras")

    def swap(config):
        config["config"]["layers"][1]["class_name"] = class_name

    with pytest.raises(UnsafeModelError, match=message):
        load_model(rewrite_config(path, swap))


def test_lookup_vocabulary_from_a_path_refused(keras, tmp_path):
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(1, 2)(inputs)
    model = keras.Model(inputs, x)
    model.save(tmp_path / "m.keras")
    import io
    import json
    import zipfile

    source = zipfile.ZipFile(tmp_path / "m.keras")
    config = json.loads(source.read("config.json"))
    config["config"]["layers"].append({
        "module": "keras.layers", "class_name": "StringLookup", "registered_name": None,
        "config": {"name": "lookup", "vocabulary": "/etc/passwd", "trainable": False},
    })
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, json.dumps(config) if info.filename == "config.json" else source.read(info.filename))
    with pytest.raises(UnsafeModelError, match="vocabulary from a file"):
        load_model(buffer.getvalue())


def _long_sequential(keras, count=60):
    keras.utils.set_random_seed(5)
    return keras.Sequential(
        [keras.Input((8, 8, 3))] + [keras.layers.Conv2D(3, 1, name=f"c{i}") for i in range(count)]
        + [keras.layers.GlobalAveragePooling2D(name="gap"), keras.layers.Dense(2, activation="softmax", name="probs")],
        name="long",
    )


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_long_sequential_built_once_not_once_per_layer(keras, tmp_path, monkeypatch, rng, suffix):
    """Keras's own Sequential.from_config rebuilds the graph after every layer (quadratic: 300 layers
    took 124 s); actviz's loader builds it once. Counted by wrapping Sequential.build (it still runs)."""
    from keras.src.models.sequential import Sequential

    model = _long_sequential(keras)
    path = tmp_path / f"long{suffix}"
    model.save(path)
    builds = []
    real_build = Sequential.build

    def counting_build(self, *args, **kwargs):
        builds.append(self.name)
        return real_build(self, *args, **kwargs)

    monkeypatch.setattr(Sequential, "build", counting_build)
    reference = keras.saving.load_model(path, compile=False)
    keras_builds, builds[:] = len(builds), []
    loaded = load_model(path).model
    assert keras_builds > 60 and len(builds) <= 2
    assert type(loaded) is Sequential and [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    x = rng.random((2, 8, 8, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(reference(x)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-6)


def test_nested_sequential_in_a_keras_file_built_once(keras, tmp_path, monkeypatch, rng):
    from keras.src.models.sequential import Sequential

    inner = _long_sequential(keras, 30)
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Dense(1, name="out")(inner(inputs)), name="outer")
    model.save(tmp_path / "nested.keras")
    builds = []
    real_build = Sequential.build
    monkeypatch.setattr(Sequential, "build", lambda self, *a, **k: (builds.append(self.name), real_build(self, *a, **k))[1])
    loaded = load_model(tmp_path / "nested.keras").model
    assert len(builds) <= 2
    x = rng.random((1, 8, 8, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-6)



@pytest.mark.parametrize("level,steps", [
    ("scan", ["file_kind", "child scan", "check_config", "dry_weight_bytes", "file_digest"]),
    ("vet", ["file_kind", "child scan", "check_config", "child vet", "dry_weight_bytes", "file_digest"]),
])
def test_each_step_runs_once_in_order(flat_model, tmp_path, monkeypatch, rng, level, steps):
    """Counted in this process by wrapping each step (they still run); the structure is read in the
    scan child only, and the vet child builds from the configuration checked here."""
    from actviz.safety import building, isolation, loading

    calls = []

    def count(module, name, label=None):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *args, **kwargs: (calls.append(label or name), real(*args, **kwargs))[1])

    for module, name in [(loading, "file_kind"), (loading, "read_model_file"), (loading, "check_config"),
                         (loading, "file_digest"), (building, "dry_weight_bytes")]:
        count(module, name)
    real_child = isolation._run_child
    monkeypatch.setattr(isolation, "_run_child", lambda task, *args, **kwargs: (calls.append(f"child {task}"), real_child(task, *args, **kwargs))[1])
    loaded = load_model(_save(flat_model, tmp_path / "m.keras").read_bytes(), isolate=level)
    assert calls == steps
    x = rng.random((1, 8, 8, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(loaded.model(x)), np.asarray(flat_model(x)), rtol=1e-6)
