"""The child process that checks untrusted model files: a crash, a hang, a memory or processor
blow-up there is one plain refusal here, and nothing is left behind; the vetting report; the
budgets that refuse a model before its weights or feature maps take memory."""

import json
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from actviz import demo
from actviz.safety import isolation
from actviz.errors import (
    BudgetError, ChoiceError, ImageError, ModelCheckError, ModelFileError, ServerBusyError, UnsafeModelError,
)
from actviz.safety.loading import load_model, private_copy, read_model_source, vet_model
from actviz.safety.policy import isolation_level
from actviz.core.probe import Probe
from test_hardening import assert_plain


def _rss_mb() -> float:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) / 1024 for line in handle if line.startswith("VmRSS"))


def _children_reading(folder: Path) -> list[int]:
    """Processes whose command line names ``folder`` (a child still running on it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(folder).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.fixture()
def private_tmp(tmp_path, monkeypatch):
    """The system temporary folder redirected to an empty folder, to see what is left behind."""
    import tempfile

    folder = tmp_path / "private"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _hostile_startup(tmp_path, monkeypatch, body: str) -> None:
    """Make every child run ``body`` when it imports h5py, i.e. once its limits are set and it starts
    reading the file: a stand-in for a file that crashes, hangs or exhausts h5py."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import sys

        class _Hostile:
            def find_spec(self, name, path=None, target=None):
                if name == "h5py":
        {textwrap.indent(textwrap.dedent(body), " " * 12)}
                return None

        sys.meta_path.insert(0, _Hostile())
    """))
    monkeypatch.setenv("PYTHONPATH", str(folder))


def test_segfault_in_the_child_is_a_refusal(flat_model, tmp_path, monkeypatch, private_tmp):
    flat_model.save(tmp_path / "m.h5")
    _hostile_startup(tmp_path, monkeypatch, "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    with pytest.raises(ModelCheckError) as caught:
        load_model(tmp_path / "m.h5")
    assert "crash (a segmentation fault)" in assert_plain(caught.value)
    assert list(private_tmp.iterdir()) == []


def test_hang_in_the_child_is_stopped_and_nothing_left(flat_model, tmp_path, monkeypatch, private_tmp):
    flat_model.save(tmp_path / "m.keras")
    _hostile_startup(tmp_path, monkeypatch, "import time; time.sleep(3600)")
    monkeypatch.setenv("ACTVIZ_SCAN_TIMEOUT", "1.5")
    with pytest.raises(ModelCheckError) as caught:
        load_model(tmp_path / "m.keras")
    assert "took longer than 1.5 seconds" in assert_plain(caught.value)
    assert list(private_tmp.iterdir()) == []  # the model's copy is gone although its reader was killed
    assert _children_reading(private_tmp) == []


def test_memory_blowup_in_the_child_is_a_refusal(flat_model, tmp_path, monkeypatch):
    """2 GB asked for under a 512 MB data limit: refused (without the limit this machine would grant it)."""
    flat_model.save(tmp_path / "m.h5")
    _hostile_startup(tmp_path, monkeypatch, "hog = bytearray(2 * 1024**3)")
    monkeypatch.setenv("ACTVIZ_SCAN_MEMORY_MB", "512")
    with pytest.raises(ModelCheckError) as caught:
        load_model(tmp_path / "m.h5")
    assert "more than the 512 MB of memory allowed" in assert_plain(caught.value)


def test_processor_time_limit(flat_model, tmp_path, monkeypatch):
    flat_model.save(tmp_path / "m.h5")
    _hostile_startup(tmp_path, monkeypatch, "while True: pass")
    with private_copy(read_model_source(tmp_path / "m.h5")) as path:
        with pytest.raises(ModelCheckError) as caught:
            isolation.scan_file(path, kind="h5", limits=isolation.ChildLimits(seconds=60, memory_mb=1024, cpu_seconds=1))
    assert "more than 1 seconds of processor time" in assert_plain(caught.value)


def _keras3_h5(keras, path):
    inputs = keras.Input((8, 8, 3))
    keras.Model(inputs, keras.layers.Conv2D(2, 3, name="c")(inputs)).save(path)
    return bytearray(path.read_bytes())


def _reads_attribute_in_plain_h5py(path, name) -> int:
    """Exit status of a bare Python process reading one attribute of ``path`` with h5py."""
    import subprocess
    import sys

    code = f"import h5py; h5py.File({str(path)!r}, 'r').attrs[{name!r}]"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300).returncode


def test_corrupted_attribute_type_crashes_h5py_but_is_only_refused_here(keras, tmp_path):
    """One byte of a Keras 3 .h5 file: the type of its model_config attribute (neither string nor
    sequence). h5py segfaults reading it; here the reading runs in the child: a refusal."""
    data = _keras3_h5(keras, tmp_path / "m.h5")
    at = data.find(b"model_config\x00\x00\x00\x00\x19")  # the name, padded to 8 bytes, then a variable-length type
    assert at > 0
    data[at + 17] = 0x7F  # the type's class bits
    (tmp_path / "bad.h5").write_bytes(bytes(data))
    crashes = _reads_attribute_in_plain_h5py(tmp_path / "bad.h5", "model_config") < 0
    with pytest.raises(ModelFileError) as caught:
        load_model(tmp_path / "bad.h5")
    text = assert_plain(caught.value)
    if crashes:  # h5py 3.14 / HDF5 1.14: a segmentation fault, survived
        assert isinstance(caught.value, ModelCheckError) and "crash" in text


def _global_heap_free_space(data: bytearray) -> int:
    """Offset of the size field of the first global heap collection's free-space record."""
    import struct

    start = data.find(b"GCOL")
    position = start + 16
    while True:
        index, _, _, size = struct.unpack("<HHIQ", data[position:position + 16])
        if index == 0:
            return position + 8
        position += 16 + (size + 7) // 8 * 8


def test_corrupted_heap_that_hangs_hdf5_is_stopped(keras, tmp_path, monkeypatch, private_tmp):
    """One byte of the global heap's free-space record: HDF5 loops for ever reading any text attribute."""
    import time

    data = _keras3_h5(keras, tmp_path / "m.h5")
    data[_global_heap_free_space(data)] ^= 0xFF
    monkeypatch.setenv("ACTVIZ_SCAN_TIMEOUT", "5")
    started = time.monotonic()
    with pytest.raises(ModelFileError) as caught:
        load_model(bytes(data), isolate="scan")
    assert time.monotonic() - started < 30
    assert_plain(caught.value)
    assert list(private_tmp.iterdir()) == [] and _children_reading(private_tmp) == []


def test_attribute_claiming_four_gigabytes_is_refused(keras, tmp_path, monkeypatch):
    """The 'backend' attribute's length raised to 4 billion: h5py takes 4 GB to read it (measured);
    the child has 512 MB."""
    import struct

    data = _keras3_h5(keras, tmp_path / "m.h5")
    at = data.find(struct.pack("<IQ", len("tensorflow"), data.find(b"GCOL")))
    assert at > 0
    data[at + 3] = 0xFF
    monkeypatch.setenv("ACTVIZ_SCAN_MEMORY_MB", "512")
    with pytest.raises(ModelFileError) as caught:
        load_model(bytes(data), isolate="scan")
    assert_plain(caught.value)


def test_busy_server_says_so(flat_model, tmp_path, monkeypatch):
    flat_model.save(tmp_path / "m.h5")
    slots = threading.BoundedSemaphore(1)
    monkeypatch.setattr(isolation, "_slots", slots)
    slots.acquire()
    try:
        with private_copy(read_model_source(tmp_path / "m.h5")) as path:
            with pytest.raises(ServerBusyError) as caught:
                isolation.scan_file(path, kind="h5", limits=isolation.ChildLimits(seconds=0.2, memory_mb=1024, cpu_seconds=5))
    finally:
        slots.release()
    assert "busy" in assert_plain(caught.value)


def test_isolation_levels(monkeypatch, tmp_path):
    monkeypatch.delenv("ACTVIZ_ISOLATE", raising=False)
    assert isolation_level(b"PK\x03\x04", None) == "vet"  # uploads and downloads
    assert isolation_level(tmp_path / "m.keras", None) == "scan"  # the command line's own files
    monkeypatch.setenv("ACTVIZ_ISOLATE", "vet")
    assert isolation_level(tmp_path / "m.keras", None) == "vet"
    assert isolation_level(b"PK", "scan") == "scan"
    with pytest.raises(ChoiceError):
        isolation_level(b"PK", "none")  # there is no level without checks, only trust=True


def test_vet_report_of_the_demo(keras):
    """Compared with the same figures worked out here, in this process, from the model itself."""
    data = Path(demo.MODEL).read_bytes()
    report = vet_model(data, name="digits.keras")
    model = keras.saving.load_model(demo.MODEL, compile=False)
    probe = Probe(model)
    names = [info.name for info in probe.default_layers]
    assert report.ok and report.kind == "keras" and report.name == "digits.keras"
    assert report.input_shape == (56, 56, 1) and report.checked_size == (56, 56)
    assert report.layer_count == len(probe.table.rows)
    assert report.spatial_layer_count == len(probe.spatial_layers)
    assert report.declared_weight_bytes == sum(int(np.prod(w.shape)) * 4 for w in model.weights)
    assert report.forward_bytes == probe.forward_bytes((1, 56, 56, 1), names)
    assert 100 < report.peak_memory_mb < isolation.vet_limits().memory_mb
    assert report.seconds >= report.load_seconds + report.forward_seconds
    assert "12 layers" in report.summary() and "56 x 56" in report.summary()
    loaded = load_model(data, name="digits.keras")  # bytes: vetted by default, then loaded here
    assert loaded.vetting is not None and loaded.vetting.declared_weight_bytes == report.declared_weight_bytes
    x = np.random.default_rng(0).random((1, 56, 56, 1), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(loaded.model(x)), np.asarray(model(x)), rtol=1e-6)


def test_vet_memory_limit(flat_model, tmp_path):
    """TensorFlow alone needs about 600 MB of data memory: a 300 MB limit stops the check in words."""
    flat_model.save(tmp_path / "m.keras")
    with pytest.raises(ModelCheckError) as caught:
        vet_model((tmp_path / "m.keras").read_bytes(), memory_mb=300)
    assert "more than the 300 MB of memory allowed" in assert_plain(caught.value)


def _upsampling_bomb(keras):
    """Under 100 KB on disk: 300x300 input, UpSampling2D(16), a 1x1 convolution with 16 filters."""
    inputs = keras.Input((300, 300, 3))
    x = keras.layers.UpSampling2D(16, name="up")(inputs)
    x = keras.layers.Conv2D(16, 1, name="wide")(x)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


#: The bomb's pass, by hand: the 4800x4800x16 float32 map kept, and held twice while it is made, plus 16 outputs.
_BOMB_BYTES = 3 * 4800 * 4800 * 16 * 4 + 16 * 4


def test_vet_refuses_a_feature_map_bomb_before_running_it(keras, tmp_path):
    _upsampling_bomb(keras).save(tmp_path / "bomb.keras")
    assert (tmp_path / "bomb.keras").stat().st_size < 100_000
    with pytest.raises(BudgetError) as caught:
        vet_model((tmp_path / "bomb.keras").read_bytes(), name="bomb.keras")
    assert f"would take about {_BOMB_BYTES / 1e9:.1f} GB of memory" in assert_plain(caught.value)


def test_upsampling_bomb_refused_before_allocation(keras):
    probe = Probe(_upsampling_bomb(keras))
    assert probe.forward_bytes((1, 300, 300, 3), ["wide"]) == _BOMB_BYTES
    before = _rss_mb()
    with pytest.raises(BudgetError) as caught:
        probe.run(np.zeros((1, 300, 300, 3), np.float32))
    assert _rss_mb() < before + 300
    assert "GB of memory" in assert_plain(caught.value)


def test_transposed_convolution_with_a_large_stride_refused_before_allocation(keras):
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Conv2DTranspose(8, 64, strides=64, name="spread")(inputs)  # 4096 x 4096 x 8
    probe = Probe(keras.Model(inputs, keras.layers.Conv2D(8, 1, name="c")(x)))
    assert probe.layer("spread").output_shape == (4096, 4096, 8)
    before = _rss_mb()
    with pytest.raises(BudgetError) as caught:
        probe.run(np.zeros((1, 64, 64, 3), np.float32))
    assert _rss_mb() < before + 300
    assert_plain(caught.value)


def test_huge_declared_input_refused_in_words(keras):
    """20000 x 20000: the image is refused before it is resized, the pass before it runs."""
    from PIL import Image

    from actviz.inputs.images import fit_image

    inputs = keras.Input((20000, 20000, 3))
    probe = Probe(keras.Model(inputs, keras.layers.Conv2D(4, 3, name="c")(inputs)))
    with pytest.raises(ImageError) as caught:
        fit_image(Image.new("RGB", (10, 10)), probe.input_shape)
    assert "20,000 x 20,000 pixels" in assert_plain(caught.value)
    with pytest.raises(BudgetError) as caught:
        probe.check_budget((1, 20000, 20000, 3), ["c"])
    assert "GB of memory" in assert_plain(caught.value)


def test_compressed_zero_weights_refused_by_the_loading_budget(keras, tmp_path, monkeypatch):
    """The issue's attack at a small scale: 40 MB of zero weights deflate to a few hundred KB, and loading
    would take 5 times the weights. With a 100 MB budget: refused before any weight is read."""
    import zipfile

    model = keras.Sequential([keras.Input((1000,)), keras.layers.Dense(10_000, use_bias=False, kernel_initializer="zeros")])
    model.save(tmp_path / "plain.keras")
    with zipfile.ZipFile(tmp_path / "plain.keras") as source, zipfile.ZipFile(tmp_path / "zeros.keras", "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            out.writestr(info.filename, source.read(info.filename))
    assert (tmp_path / "zeros.keras").stat().st_size < 1_000_000
    monkeypatch.setenv("ACTVIZ_MAX_MODEL_MB", "100")
    with pytest.raises(UnsafeModelError) as caught:
        load_model(tmp_path / "zeros.keras")
    assert "declare 0.04 GB of weights; loading them takes about 5 times that (0.2 GB)" in assert_plain(caught.value)
    monkeypatch.setenv("ACTVIZ_MAX_MODEL_MB", "400")
    assert load_model(tmp_path / "zeros.keras").model.count_params() == 10_000_000


def test_declared_weights_under_the_cap_but_over_the_loading_budget(flat_model, tmp_path, rewrite_config, keras):
    """1.76 GB declared (under the 2 GB cap), 8.8 GB to load: refused at the default 4 GB budget, memory untouched."""
    small = keras.Sequential([keras.Input((1024,)), keras.layers.Dense(10, name="head")])
    small.save(tmp_path / "small.keras")

    def inflate(config):
        config["config"]["layers"][-1]["config"]["units"] = 430_000

    data = rewrite_config(tmp_path / "small.keras", inflate)
    before = _rss_mb()
    with pytest.raises(UnsafeModelError) as caught:
        load_model(data, isolate="scan")
    assert "declare 1.76 GB of weights; loading them takes about 5 times that (8.8 GB)" in assert_plain(caught.value)
    assert _rss_mb() < before + 200


def test_keras3_file_labelled_keras2_cannot_skip_the_weight_check(keras, tmp_path):
    """actviz's Keras 2 rebuild cannot build a Keras 3 layout; Keras's own dry build counts it instead."""
    import h5py

    keras.Sequential([keras.Input((1024,)), keras.layers.Dense(10, name="head")]).save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "a") as handle:
        config = json.loads(handle.attrs["model_config"])
        config["config"]["layers"][-1]["config"]["units"] = 1_000_000
        handle.attrs["model_config"] = json.dumps(config)
        handle.attrs["keras_version"] = "2.15.0"
    before = _rss_mb()
    with pytest.raises(UnsafeModelError) as caught:
        load_model(tmp_path / "m.h5")
    assert "declare 4.1 GB of weights" in assert_plain(caught.value)
    assert _rss_mb() < before + 200


def test_layout_no_builder_can_build_is_refused(flat_model, tmp_path, rewrite_config):
    def break_it(config):
        config["config"]["layers"][1]["config"]["kernel_size"] = "wide"

    flat_model.save(tmp_path / "m.keras")
    with pytest.raises(ModelFileError) as caught:
        load_model(rewrite_config(tmp_path / "m.keras", break_it), isolate="scan")
    assert "could not rebuild the model" in assert_plain(caught.value)


def test_attention_over_a_huge_grid_refused_before_allocation(keras):
    """Scores worked out by hand: 2 heads x (300*300 positions)^2 x 4 bytes = 64.8 GB, three times over."""
    inputs = keras.Input((300, 300, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c")(inputs)
    x = keras.layers.MultiHeadAttention(2, 8, name="attend")(x, x)
    probe = Probe(keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="gap")(x)))
    scores = 2 * (300 * 300) ** 2 * 4
    kept = 300 * 300 * 8 * 4 + 8 * 4  # the convolution's map (the default layer) and the output
    assert probe.forward_bytes((1, 300, 300, 3), ["c"]) == kept + 3 * scores
    before = _rss_mb()
    with pytest.raises(BudgetError) as caught:
        probe.run(np.zeros((1, 300, 300, 3), np.float32))
    assert _rss_mb() < before + 300
    assert f"about {(kept + 3 * scores) / 1e9:.1f} GB" in assert_plain(caught.value)
