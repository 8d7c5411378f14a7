"""Data set sources: ZIP archives read in place and refused whole when unsafe, listings linear in
their entries, and links that never lead a folder's listing (or a later read) outside it."""

from __future__ import annotations

import io
import os
import pickle
import stat
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from actviz.dataset import sources
from actviz.dataset.sources import (
    FOLDER_LINK, MAX_ZIP_DEPTH, OUTSIDE_LINK, OUTSIDE_LIST, DatasetError, open_folder, open_source, open_zip,
)
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


# --- listing is linear in the entries -----------------------------------------------------------


def _one_image_classes(count: int) -> bytes:
    png, buffer = _png(size=(2, 2)), io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for i in range(count):
            archive.writestr(f"c{i:05d}/x.png", png)
    return buffer.getvalue()


def _work(data: bytes, monkeypatch) -> tuple[object, int, int]:
    """``open_zip(data)``, the calls to the per-file grouping helper, and every function call made
    (Python and C, counted by a profiler: deterministic, unlike seconds)."""
    grouped, calls = [0], [0]
    top_folder = sources._top_folder

    def counted(path):
        grouped[0] += 1
        return top_folder(path)

    def profile(frame, event, arg):
        if event in ("call", "c_call"):
            calls[0] += 1

    monkeypatch.setattr(sources, "_top_folder", counted)
    sys.setprofile(profile)
    try:
        source = open_zip(data)
    finally:
        sys.setprofile(None)
    return source, grouped[0], calls[0]


def test_open_zip_of_20000_one_image_class_folders_is_listed_linearly(monkeypatch):
    small, small_grouped, small_calls = _work(_one_image_classes(2_000), monkeypatch)
    large, large_grouped, large_calls = _work(_one_image_classes(20_000), monkeypatch)
    assert large.label_names == tuple(f"c{i:05d}" for i in range(20_000))
    assert large.paths == tuple(f"c{i:05d}/x.png" for i in range(20_000))
    np.testing.assert_array_equal(large.labels, np.arange(20_000))
    assert np.asarray(large.read(12_345)).shape == (2, 2, 3) and not large.skipped
    assert len(small.label_names) == 2_000
    assert large_grouped == 10 * small_grouped <= 2 * 20_000  # a file is grouped by its top folder at most twice
    assert large_calls < 11 * small_calls  # ten times the entries, ten times the work (quadratic: a hundred)


# --- ZIP names with "." and empty parts ---------------------------------------------------------


def test_zip_names_with_dot_and_empty_parts_are_read_as_plain_names():
    data = _zip({"a/./x.png": _png((10, 10, 10)), "a//y.png": _png((20, 20, 20)), "./b/z.png": _png((30, 30, 30))})
    source = open_zip(data)
    assert source.label_names == ("a", "b") and source.labels.tolist() == [0, 0, 1]
    assert source.paths == ("a/x.png", "a/y.png", "b/z.png") and not source.skipped
    copy = pickle.loads(pickle.dumps(source))  # the real member names travel with the reader
    for i, grey in enumerate((10, 20, 30)):
        assert np.asarray(source.read(i)).reshape(-1, 3)[0].tolist() == [grey] * 3
        assert np.asarray(copy.read(i)).reshape(-1, 3)[0].tolist() == [grey] * 3


def test_zip_names_equal_once_normalised_are_refused_and_dot_dot_still_is():
    with pytest.raises(DatasetError, match="same file name twice"):
        open_zip(_zip({"a/x.png": _png(), "a/./x.png": _png()}))
    with pytest.raises(DatasetError, match="same file name twice"):
        open_zip(_zip({"a//x.png": _png(), "a/x.png": _png()}))
    for name in ("../x.png", "a/./../../x.png", "./../x.png"):
        with pytest.raises(DatasetError, match="outside its folder"):
            open_zip(_zip({"a/ok.png": _png(), name: _png()}))


# --- links in folders and lists -----------------------------------------------------------------

links = pytest.mark.skipif(not hasattr(os, "symlink") or sys.platform == "win32", reason="needs symbolic links")


def _grey(path, grey: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (6, 5), (grey,) * 3).save(path)


def _first_pixel(image) -> list:
    return np.asarray(image).reshape(-1, 3)[0].tolist()


@pytest.fixture
def linked(tmp_path):
    """``data/`` with two real classes and every kind of link, and ``outside/`` beside it."""
    data, outside = tmp_path / "data", tmp_path / "outside"
    _grey(data / "NORMAL" / "a.png", 10)
    _grey(data / "PNEUMONIA" / "b.png", 30)
    _grey(outside / "secret.png", 99)
    _grey(outside / "more" / "c.png", 77)
    (data / "NORMAL" / "secret.png").symlink_to(outside / "secret.png")  # a file outside
    (data / "NORMAL" / "copy.png").symlink_to(os.path.join("..", "PNEUMONIA", "b.png"))  # a file inside
    (data / "NORMAL" / "more").symlink_to(data / "PNEUMONIA", target_is_directory=True)  # a folder inside
    (data / "ELSEWHERE").symlink_to(outside / "more", target_is_directory=True)  # a class folder outside
    return data, outside


@links
def test_open_folder_skips_links_outside_and_links_to_folders(linked):
    data, _ = linked
    source = open_folder(data)
    assert source.label_names == ("NORMAL", "PNEUMONIA") and source.labels.tolist() == [0, 0, 1]
    assert source.paths == ("NORMAL/a.png", "NORMAL/copy.png", "PNEUMONIA/b.png")
    assert [(s.path, s.reason) for s in source.skipped] == [
        ("ELSEWHERE", OUTSIDE_LINK), ("NORMAL/more", FOLDER_LINK), ("NORMAL/secret.png", OUTSIDE_LINK),
    ]
    assert any("'ELSEWHERE' is a link to another folder, so it is not read" in note for note in source.notes)
    assert [_first_pixel(source.read(i)) for i in range(3)] == [[10] * 3, [30] * 3, [30] * 3]  # the link inside is read
    assert 99 not in {_first_pixel(source.read(i))[0] for i in range(len(source))}


@links
def test_open_folder_of_only_linked_class_folders_says_they_are_links(tmp_path):
    _grey(tmp_path / "elsewhere" / "NORMAL" / "a.png", 10)
    _grey(tmp_path / "elsewhere" / "PNEUMONIA" / "b.png", 20)
    (tmp_path / "data").mkdir()
    for name in ("NORMAL", "PNEUMONIA"):
        (tmp_path / "data" / name).symlink_to(tmp_path / "elsewhere" / name, target_is_directory=True)
    with pytest.raises(DatasetError, match="no images .* 'NORMAL', 'PNEUMONIA' are links to other folders") as refused:
        open_folder(tmp_path / "data")
    assert "has no images" not in str(refused.value)
    assert open_folder(tmp_path / "elsewhere").label_names == ("NORMAL", "PNEUMONIA")  # the folder they point to


@links
def test_file_reader_refuses_a_file_swapped_for_an_outside_link_after_listing(linked):
    data, outside = linked
    source = open_folder(data)
    assert source.file_paths() is not None
    (data / "NORMAL" / "a.png").unlink()
    (data / "NORMAL" / "a.png").symlink_to(outside / "secret.png")
    with pytest.raises(ImageError, match="link to a place outside the data set's folder"):
        source.read(0)
    with pytest.raises(ImageError, match="outside the data set's folder"):
        pickle.loads(pickle.dumps(source)).read(0)  # in a Ray worker too
    assert source.file_paths() is None  # Ray Data then reads each image through read(), not itself
    assert _first_pixel(source.read(2)) == [30] * 3


@links
def test_csv_relative_paths_must_stay_in_the_lists_folder_absolute_ones_are_read(tmp_path):
    listed, outside = tmp_path / "set", tmp_path / "outside"
    _grey(listed / "in.png", 10)
    _grey(outside / "secret.png", 99)
    (listed / "link.png").symlink_to(outside / "secret.png")
    (listed / "list.csv").write_text(
        f"path,label\nin.png,a\n../outside/secret.png,b\nlink.png,b\n{outside / 'secret.png'},c\n"
    )
    source = open_source(listed / "list.csv")
    assert source.paths == ("in.png", str(outside / "secret.png"))
    assert source.label_names == ("a", "b", "c") and source.labels.tolist() == [0, 2]
    assert [(s.path, s.reason) for s in source.skipped] == [("../outside/secret.png", OUTSIDE_LIST), ("link.png", OUTSIDE_LIST)]
    assert [_first_pixel(source.read(i)) for i in range(2)] == [[10] * 3, [99] * 3]  # an absolute path: on purpose
