"""Hostile inputs: concurrency on one cached model, fuzzed images and model files, bombs."""

import io
import json
import threading
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from actviz.errors import ActvizError, ImageError, ModelFileError, UnsafeModelError
from actviz.probe import Probe
from actviz.images import open_image
from actviz.loading import load_model
from actviz.scan import MAX_CONFIG_BYTES, scan_model_file


def test_concurrent_forward_passes_on_one_model(nested_model):
    """Eight threads share one Probe (as sessions share the cached model); each gets its own answer."""
    probe = Probe(nested_model)
    rng = np.random.default_rng(0)
    batches = [rng.random((1, 32, 32, 3), dtype=np.float32) for _ in range(8)]
    expected = [probe.run(b).maps["vgg_base/block2_conv2"] for b in batches]
    results, errors = [None] * 8, []

    def work(i):
        try:
            for _ in range(3):
                results[i] = probe.run(batches[i]).maps["vgg_base/block2_conv2"]
        except Exception as exc:  # noqa: BLE001 -- collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    for got, want in zip(results, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _image_bytes(width, height, mode, fmt):
    rng = np.random.default_rng(width * 31 + height)
    pixels = (rng.random((height, width, 4)) * 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGBA").convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


FORMATS = [("PNG", "RGB"), ("PNG", "L"), ("PNG", "RGBA"), ("PNG", "P"), ("JPEG", "RGB"), ("JPEG", "CMYK"),
           ("GIF", "P"), ("BMP", "RGB"), ("TIFF", "RGB"), ("WEBP", "RGB"), ("TIFF", "I;16")]


@settings(max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    width=st.integers(1, 64), height=st.integers(1, 64), kind=st.sampled_from(FORMATS),
    cut=st.one_of(st.none(), st.floats(0.0, 1.0)), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=4),
)
def test_fuzz_images_read_or_refused_plainly(width, height, kind, cut, flips):
    fmt, mode = kind
    if mode == "I;16":
        data = io.BytesIO()
        Image.fromarray(np.full((height, width), 40000, np.uint16)).save(data, format=fmt)
        data = data.getvalue()
    else:
        data = _image_bytes(width, height, mode, fmt)
    data = bytearray(data if cut is None else data[: int(len(data) * cut)])
    for where, value in flips:
        if data:
            data[min(int(where * len(data)), len(data) - 1)] = value
    try:
        image = open_image(bytes(data))
    except ImageError as exc:
        assert str(exc)
    else:
        assert image.mode in ("RGB", "L") and image.size[0] >= 1


def _keras_archive(config, extra=None):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", json.dumps(config) if not isinstance(config, (bytes, str)) else config)
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        for name, value in (extra or {}).items():
            archive.writestr(name, value)
    return buffer.getvalue()


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10, 10**7), st.text(max_size=12)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)),
    max_leaves=12,
)
layer_names = st.sampled_from(["Conv2D", "Dense", "Lambda", "InputLayer", "Functional", "Sequential", "TFSMLayer", "Nope", "MaxPooling2D"])


@settings(max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    class_name=layer_names, module=st.sampled_from([None, "keras.layers", "keras", "os", "builtins", "keras.src.models.functional"]),
    inner=st.lists(st.fixed_dictionaries({"class_name": layer_names, "config": json_values}), max_size=3),
    noise=json_values,
)
def test_fuzz_model_configs_loaded_or_refused_plainly(class_name, module, inner, noise):
    config = {"class_name": class_name, "config": {"name": "m", "layers": inner, "noise": noise}}
    if module:
        config["module"] = module
    try:
        load_model(_keras_archive(config))
    except ActvizError as exc:
        assert str(exc)


def test_config_zip_bomb_is_not_inflated():
    bomb = b'{"class_name": "Functional", "config": {"name": "' + b"a" * (MAX_CONFIG_BYTES + 10) + b'"}}'
    data = _keras_archive(bomb)
    assert len(data) < 200_000  # compresses to almost nothing
    with pytest.raises(UnsafeModelError, match="unreasonably large"):
        scan_model_file(data)


def test_absolute_archive_member_refused(flat_model, tmp_path):
    flat_model.save(tmp_path / "m.keras")
    buffer = io.BytesIO((tmp_path / "m.keras").read_bytes())
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("/etc/cron.d/evil", "* * * * * root true")
    with pytest.raises(UnsafeModelError, match="outside the archive"):
        load_model(buffer.getvalue())


def test_hdf5_soft_link_and_huge_declared_dataset_refused(flat_model, tmp_path):
    import h5py

    import actviz.loading as loading

    path = tmp_path / "m.h5"
    flat_model.save(path)
    with h5py.File(path, "a") as handle:
        handle["model_weights/alias"] = h5py.SoftLink("/model_weights")
    with pytest.raises(UnsafeModelError, match="another place in the file"):
        load_model(path)

    flat_model.save(path)
    with h5py.File(path, "a") as handle:  # 4 GB declared, chunked and compressed: a few KB on disk
        handle.create_dataset("model_weights/huge", shape=(1024, 1024, 1024), dtype="float32", chunks=(64, 64, 64), compression="gzip")
    assert path.stat().st_size < 5_000_000
    with pytest.raises(UnsafeModelError, match="declares 4.3 GB of weights"):
        load_model(path)
    assert loading.MAX_MODEL_BYTES < 4.3e9


def test_no_file_left_behind(flat_model, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "private"))
    (tmp_path / "private").mkdir()
    flat_model.save(tmp_path / "m.keras")
    load_model((tmp_path / "m.keras").read_bytes())
    with pytest.raises(ModelFileError):
        load_model(b"PK\x03\x04" + b"\0" * 50)
    assert list((tmp_path / "private").iterdir()) == []


def _rss_mb():
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) / 1024 for line in handle if line.startswith("VmRSS"))


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_declared_giant_layer_refused_before_allocation(keras, tmp_path, suffix, rewrite_config):
    """A Dense layer just under Keras's own checks but 44 GB in all: refused, memory untouched."""
    small = keras.Sequential([keras.Input((64, 64, 3)), keras.layers.Flatten(), keras.layers.Dense(10, name="head")])
    small.save(tmp_path / f"small{suffix}")
    if suffix == ".keras":
        def inflate(config):
            config["config"]["layers"][-1]["config"]["units"] = 900_000
        data = rewrite_config(tmp_path / "small.keras", inflate)
    else:
        import h5py

        with h5py.File(tmp_path / "small.h5", "a") as handle:
            config = json.loads(handle.attrs["model_config"])
            config["config"]["layers"][-1]["config"]["units"] = 900_000
            handle.attrs["model_config"] = json.dumps(config)
        data = (tmp_path / "small.h5").read_bytes()
    before = _rss_mb()
    with pytest.raises(UnsafeModelError, match="declare 44.2 GB of weights"):
        load_model(data)
    assert _rss_mb() < before + 200


def _h5_file(config):
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        handle.attrs["model_config"] = config if isinstance(config, str) else json.dumps(config)
        handle.attrs["keras_version"] = "2.21.0"
        handle.create_group("model_weights").attrs["layer_names"] = []
    return buffer.getvalue()


@settings(max_examples=30, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    class_name=layer_names,
    inner=st.lists(st.fixed_dictionaries({"class_name": layer_names, "config": json_values, "name": st.text(max_size=6),
                                          "inbound_nodes": st.just([])}), max_size=3),
    raw=st.one_of(st.none(), st.text(max_size=30)),
)
def test_fuzz_keras2_h5_configs_loaded_or_refused_plainly(class_name, inner, raw):
    config = raw if raw is not None else {"class_name": class_name, "config": {"name": "m", "layers": inner, "input_layers": [], "output_layers": []}}
    try:
        load_model(_h5_file(config))
    except ActvizError as exc:
        assert str(exc)
