"""ZIP archives as data sets: read in place, and refused whole when unsafe."""

from __future__ import annotations

import io
import pickle
import stat
import zipfile

import numpy as np
import pytest
from PIL import Image

from actviz.dataset.sources import MAX_ZIP_DEPTH, DatasetError, open_source, open_zip
from actviz.errors import ImageError


def _png(colour=(200, 10, 10), size=(6, 5)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _zip(entries: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_zip_of_a_class_folder_tree_is_read_in_place(tmp_path):
    data = _zip({
        "test/": b"", "test/NORMAL/a.png": _png((10, 10, 10)), "test/NORMAL/sub/b.png": _png((20, 20, 20)),
        "test/PNEUMONIA/c.png": _png((30, 30, 30)), "test/PNEUMONIA/notes.txt": b"x",
        "__MACOSX/test/._a.png": b"junk", "test/.DS_Store": b"junk",
    })
    source = open_source(data)
    assert source.kind == "zip" and source.location == "uploaded ZIP"
    assert source.paths == ("NORMAL/a.png", "NORMAL/sub/b.png", "PNEUMONIA/c.png")
    assert source.label_names == ("NORMAL", "PNEUMONIA") and source.labels.tolist() == [0, 0, 1]
    assert [(s.path, s.reason) for s in source.skipped] == [("PNEUMONIA/notes.txt", "not an image file (.txt)")]
    assert np.asarray(source.read(1)).reshape(-1, 3)[0].tolist() == [20, 20, 20]
    copy = pickle.loads(pickle.dumps(source))  # what Ray ships to its workers
    assert np.asarray(copy.read(2)).reshape(-1, 3)[0].tolist() == [30, 30, 30]
    path = tmp_path / "set.zip"
    path.write_bytes(data)
    assert open_source(path).paths == source.paths


def test_damaged_member_is_skipped_not_fatal():
    data = bytearray(_zip({"a/x.png": _png(), "a/y.png": _png((1, 2, 3))}))
    start = data.find(b"y.png") + 40  # inside y.png's compressed bytes
    data[start : start + 8] = b"\xff" * 8
    source = open_source(bytes(data))
    assert source.read(0).size == (6, 5)
    with pytest.raises(ImageError, match="damaged inside the ZIP archive"):
        source.read(1)


@pytest.mark.parametrize("name", ["../evil.png", "/etc/evil.png", "a/../../evil.png", "C:/evil.png", "a\\..\\evil.png"])
def test_zip_entry_escaping_its_folder_is_refused(name):
    with pytest.raises(DatasetError, match="outside its folder"):
        open_zip(_zip({"a/ok.png": _png(), name: _png()}))


def test_zip_with_a_link_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a/ok.png", _png())
        link = zipfile.ZipInfo("a/link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(DatasetError, match="link"):
        open_zip(buffer.getvalue())


def test_zip_too_big_too_many_entries_or_too_deep_is_refused():
    data = _zip({f"a/{i}.png": _png() for i in range(5)})
    with pytest.raises(DatasetError, match="more than the"):
        open_zip(data, max_bytes=100)
    with pytest.raises(DatasetError, match="5 entries, more than the 4 allowed"):
        open_zip(data, max_entries=4)
    with pytest.raises(DatasetError, match="decompressed"):
        open_zip(_zip({"a/big.png": b"\0" * 10_000}), max_total=5_000)
    with pytest.raises(DatasetError, match="nests folders"):
        open_zip(_zip({"/".join(["d"] * (MAX_ZIP_DEPTH + 1)) + "/x.png": _png()}))


def test_zip_that_is_not_a_zip_or_has_no_images():
    with pytest.raises(DatasetError, match="not a ZIP file"):
        open_zip(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(DatasetError, match="no images"):
        open_zip(_zip({"a/readme.txt": b"hello"}))


def test_open_source_explains_what_it_takes(tmp_path):
    (tmp_path / "model.h5").write_bytes(b"x")
    with pytest.raises(DatasetError, match="not a folder, a .csv list or a .zip"):
        open_source(tmp_path / "model.h5")
    with pytest.raises(DatasetError, match="There is no folder or file"):
        open_source(tmp_path / "missing")


def test_csv_labels_that_are_class_numbers_map_by_number(tmp_path):
    from actviz.dataset.plan import align_labels

    for i in range(3):
        Image.new("RGB", (4, 4)).save(tmp_path / f"{i}.png")
    (tmp_path / "list.csv").write_text("path,label\n0.png,10\n1.png,2\n2.png,\n")
    source = open_source(tmp_path / "list.csv")
    assert source.label_names == ("10", "2") and source.labels.tolist() == [0, 1, -1]  # an empty label: no label
    names, mapping, note = align_labels(source, None, 12)
    assert mapping.tolist() == [10, 2] and "class numbers" in note
    with pytest.raises(DatasetError, match="has 2 classes .* answers with 1"):
        align_labels(source, None, 1)
    names, mapping, _ = align_labels(open_source(tmp_path / "list.csv"), ["a"] * 3, 3)
    assert mapping.tolist() == [0, 1]  # neither names nor numbers that fit: sorted order
