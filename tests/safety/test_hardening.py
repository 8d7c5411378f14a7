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
from actviz.core.probe import Probe
from actviz.inputs.images import open_image
from actviz.safety.loading import load_model, scan_model_file
from actviz.safety.scan import MAX_ARCHIVE_ENTRIES, MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH, MAX_HDF5_DEPTH, MAX_HDF5_LINKS


def assert_plain(exc: BaseException) -> str:
    """An ActvizError whose message is a sentence for a person: no traceback, colour codes or 'bug'."""
    assert isinstance(exc, ActvizError), f"{type(exc).__name__}: {exc}"
    text = str(exc)
    assert text and (text[0].isupper() or text[0] in "'\""), text
    assert "\x1b" not in text and "Traceback" not in text and "bug" not in text.lower(), text
    assert len(text) < 1500
    return text


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
    except Exception as exc:  # noqa: BLE001 -- the type is what is checked
        assert isinstance(exc, ImageError)
        assert_plain(exc)
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
        load_model(_keras_archive(config), isolate="scan")
    except Exception as exc:  # noqa: BLE001 -- the type is what is checked
        assert_plain(exc)


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

    import actviz.safety.loading as loading

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
        load_model(_h5_file(config), isolate="scan")
    except Exception as exc:  # noqa: BLE001 -- the type is what is checked
        assert_plain(exc)


# --- bounds before work: configurations, HDF5 walks, archives ---------------------------


def _h5_with_config(tmp_path, flat_model, name="m.h5"):
    path = tmp_path / name
    flat_model.save(path)
    return path


def test_str_config_over_the_cap_refused(flat_model, tmp_path):
    """h5py returns a variable-length attribute as str: the cap holds for str as for bytes."""
    import h5py

    path = _h5_with_config(tmp_path, flat_model)
    with h5py.File(path, "a") as handle:
        config = json.loads(handle.attrs["model_config"])
        config["config"]["padding"] = "x" * (MAX_CONFIG_BYTES + 10)
        handle.attrs["model_config"] = json.dumps(config)
        assert isinstance(handle.attrs["model_config"], str)
    with pytest.raises(UnsafeModelError) as caught:
        load_model(path)
    assert "unreasonably large" in assert_plain(caught.value)


def test_fixed_length_config_over_the_cap_refused_before_reading(flat_model, tmp_path):
    import h5py

    path = tmp_path / "fixed.h5"
    with h5py.File(path, "w", libver="latest") as handle:  # dense attribute storage: no 64 KB limit
        handle.attrs["model_config"] = np.bytes_(b"{" + b" " * (MAX_CONFIG_BYTES + 10) + b"}")
    with pytest.raises(UnsafeModelError) as caught:
        load_model(path)
    assert "unreasonably large" in assert_plain(caught.value)


@pytest.mark.parametrize("depth", [MAX_CONFIG_DEPTH + 20, 5000, 200_000])
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_deeply_nested_config_refused_without_recursion_error(depth, suffix):
    config = '{"class_name": "Functional", "config": {"name": "m", "layers": ' + "[" * depth + "]" * depth + "}}"
    data = _keras_archive(config) if suffix == ".keras" else _h5_file(config)
    with pytest.raises(UnsafeModelError) as caught:
        load_model(data, isolate="scan")
    assert f"nested more than {MAX_CONFIG_DEPTH} levels" in assert_plain(caught.value)
    with pytest.raises(UnsafeModelError):  # the same in this process: no RecursionError either
        scan_model_file(data)


def test_hdf5_shared_hard_links_are_walked_once(flat_model, tmp_path, rng):
    """41 groups, each linked twice from the one before: 2^40 paths, 41 groups. Opens, and correctly."""
    import h5py

    path = _h5_with_config(tmp_path, flat_model)
    with h5py.File(path, "a") as handle:
        chain = [handle.create_group(f"chain/n{i}") for i in range(41)]
        for here, there in zip(chain, chain[1:]):
            here["left"] = there
            here["right"] = there
        chain[7]["myself"] = chain[7]  # and a group linked into itself
        handle["model_weights"]["loop"] = handle["model_weights"]
    x = rng.random((1, 8, 8, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(load_model(path).model(x)), np.asarray(flat_model(x)), rtol=1e-6)


def test_hdf5_groups_nested_too_deep_refused(flat_model, tmp_path):
    import h5py

    path = _h5_with_config(tmp_path, flat_model)
    with h5py.File(path, "a") as handle:
        group = handle
        for _ in range(3000):
            group = group.create_group("a")
    with pytest.raises(UnsafeModelError) as caught:
        load_model(path)
    assert f"more than {MAX_HDF5_DEPTH} levels deep" in assert_plain(caught.value)


def test_hdf5_with_too_many_links_refused(flat_model, tmp_path):
    import h5py

    path = _h5_with_config(tmp_path, flat_model)
    with h5py.File(path, "a") as handle:
        group = handle.create_group("many")
        for index in range(MAX_HDF5_LINKS + 1):
            group[f"l{index}"] = group
    with pytest.raises(UnsafeModelError) as caught:
        load_model(path)
    assert f"more than {MAX_HDF5_LINKS:,} entries" in assert_plain(caught.value)


def _zip_with_entries(count: int) -> bytes:
    """A valid .keras-looking archive with ``count`` empty entries, written directly (zipfile takes ~10 s)."""
    import struct

    local, central = [], []
    offset = 0
    for index in range(count):
        name = f"e{index}".encode()
        header = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0) + name
        central.append(struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0, 0, offset) + name)
        local.append(header)
        offset += len(header)
    directory = b"".join(central)
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, min(count, 0xFFFF), min(count, 0xFFFF), len(directory), offset, 0)
    return b"".join(local) + directory + end


def test_archive_with_200000_entries_refused_before_parsing():
    data = _zip_with_entries(200_000)
    assert len(zipfile.ZipFile(io.BytesIO(_zip_with_entries(3))).namelist()) == 3  # the builder makes real archives
    with pytest.raises(UnsafeModelError) as caught:
        load_model(data, isolate="scan")
    assert "entries" in assert_plain(caught.value)
    with pytest.raises(UnsafeModelError, match=f"{MAX_ARCHIVE_ENTRIES + 1:,} entries"):
        load_model(_zip_with_entries(MAX_ARCHIVE_ENTRIES + 1), isolate="scan")


# --- damaged archives and files: refused in words ----------------------------------------


def _patch_member(data: bytes, member: str, *, local_offset: int, central_offset: int, value: bytes) -> bytes:
    """Overwrite a field of one archive entry in both its local header and the central directory."""
    buffer = bytearray(data)
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(member)
    buffer[info.header_offset + local_offset:info.header_offset + local_offset + len(value)] = value
    at = buffer.find(b"PK\x01\x02", 0)
    while at >= 0:
        length = int.from_bytes(buffer[at + 28:at + 30], "little")
        if bytes(buffer[at + 46:at + 46 + length]) == member.encode():
            buffer[at + central_offset:at + central_offset + len(value)] = value
            break
        at = buffer.find(b"PK\x01\x02", at + 46)
    return bytes(buffer)


@pytest.mark.parametrize("damage,message", [
    ("method", "compressed with a method Keras does not use"),
    ("encrypted", "encrypted"),
    ("deflate", "cannot be unpacked"),
    ("checksum", "cannot be unpacked"),
])
def test_damaged_archives_refused_in_words(flat_model, tmp_path, damage, message):
    import struct

    flat_model.save(tmp_path / "m.keras")
    data = (tmp_path / "m.keras").read_bytes()
    if damage == "method":
        data = _patch_member(data, "config.json", local_offset=8, central_offset=10, value=struct.pack("<H", 99))
    elif damage == "encrypted":
        data = _patch_member(data, "config.json", local_offset=6, central_offset=8, value=struct.pack("<H", 1))
    else:
        source = zipfile.ZipFile(io.BytesIO(data))
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED if damage == "deflate" else zipfile.ZIP_STORED) as out:
            for info in source.infolist():
                out.writestr(info.filename, source.read(info.filename))
        data = bytearray(buffer.getvalue())
        info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("model.weights.h5")
        start = info.header_offset + 30 + len(info.filename) + len(info.extra)
        middle = start + info.compress_size // 2
        data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])  # stored: the checksum fails; deflated: the stream
        data = bytes(data)
    with pytest.raises(ModelFileError) as caught:
        load_model(data, isolate="scan")
    assert message in assert_plain(caught.value)


@pytest.fixture(scope="module")
def saved_files(tmp_path_factory, flat_model):
    folder = tmp_path_factory.mktemp("saved")
    flat_model.save(folder / "m.keras")
    flat_model.save(folder / "m.h5")
    return {".keras": (folder / "m.keras").read_bytes(), ".h5": (folder / "m.h5").read_bytes()}


@settings(max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    suffix=st.sampled_from([".keras", ".h5"]),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.one_of(st.none(), st.floats(0.05, 1.0)),
)
def test_fuzz_damaged_model_files_loaded_or_refused_plainly(saved_files, suffix, flips, cut):
    """Byte-flipped and truncated .keras / .h5 files: a model, or an ActvizError in plain words."""
    data = bytearray(saved_files[suffix])
    for where, value in flips:
        data[8 + int(where * (len(data) - 8))] = value  # past the magic bytes, which only select the reader
    if cut is not None:
        data = data[: max(8, int(len(data) * cut))]
    try:
        load_model(bytes(data), isolate="scan")
    except Exception as exc:  # noqa: BLE001 -- the type is what is checked
        assert_plain(exc)


# --- downloads: bounded in size and in time, redirects to http(s) only ---------------------


@pytest.fixture()
def web_server():
    """A local web server: /slow trickles a byte every 0.1 s, /redirect points at an ftp:// address, /big sends 5 KB."""
    import http.server
    import time

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_GET(self):
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "ftp://127.0.0.1/model.keras")  # urllib alone would follow it
                self.end_headers()
                return
            self.send_response(200)
            self.end_headers()
            if self.path == "/big":
                self.wfile.write(b"x" * 5000)
                return
            try:
                for _ in range(600):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_bounded_in_time_size_and_redirects(web_server):
    import time

    from actviz.safety.download import fetch_model

    started = time.monotonic()
    with pytest.raises(ModelFileError) as caught:
        fetch_model(web_server + "/slow", timeout=1.0)
    assert time.monotonic() - started < 5
    assert "took longer than 1 seconds" in assert_plain(caught.value)
    with pytest.raises(ModelFileError, match="not an http\\(s\\) address"):
        fetch_model(web_server + "/redirect", timeout=5)
    with pytest.raises(ModelFileError, match="larger than actviz opens"):
        fetch_model(web_server + "/big", timeout=5, limit=1000)
    assert fetch_model(web_server + "/big", timeout=5) == b"x" * 5000
