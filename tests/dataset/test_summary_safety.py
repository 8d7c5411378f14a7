"""A saved summary is untrusted input: ``Summary.load`` checks what a file declares before it
allocates anything, ``Summary.check_model`` checks a layout against the model that is open, and
the command line never opens a location written inside a summary.

Hostile files are made from a real summary (the demo model over 40 demo digits) by rewriting its
parts: the description (JSON) and the arrays. The big ones are written as compressed zeros, a
megabyte at a time, so the test itself stays small; ``tracemalloc`` (which sees numpy's
allocations) checks that they are refused before anything big is allocated.
"""

from __future__ import annotations

import io
import json
import math
import sys
import tracemalloc
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from colours import colour_images, colour_model, write_folder

from actviz.cli import main
from actviz.dataset.sources import DatasetError
from actviz.dataset.summary import Summary, SummaryLimits, differences, skipped_only

#: Most memory a refusal may take (the summary file itself is under a megabyte).
PEAK = 50 * 1024**2


@dataclass(frozen=True)
class Zeros:
    """A part written as ``shape`` zeros of ``dtype``, streamed: never held in memory."""

    dtype: str
    shape: tuple


@pytest.fixture(scope="module")
def demo():
    """(probe, summary, its file) for the demo model over 40 demo digits, with Grad-CAM."""
    from actviz import open_model
    from actviz.dataset import summarize

    opened = open_model()
    summary = summarize(opened, None, indices=np.arange(40), layers=["block2_conv1", "block3_conv2"], top_k=4, batch_size=20, gradcam=True)
    return opened.probe, summary, summary.to_bytes()


def _unpack(data: bytes) -> dict:
    with np.load(io.BytesIO(data), allow_pickle=False) as stored:
        return {key: stored[key] for key in stored.files}


def _pack(parts: dict) -> bytes:
    """An .npz file of ``parts`` (arrays or ``Zeros``), as ``np.savez_compressed`` writes one."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for key, value in parts.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                if isinstance(value, Zeros):
                    dtype = np.dtype(value.dtype)
                    np.lib.format.write_array_header_1_0(member, {"descr": dtype.str, "fortran_order": False, "shape": value.shape})
                    left, chunk = math.prod(value.shape) * dtype.itemsize, bytes(1 << 20)
                    while left:
                        member.write(chunk[: min(left, len(chunk))])
                        left -= min(left, len(chunk))
                else:
                    np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
    return buffer.getvalue()


def _crafted(data: bytes, *, head=None, parts: dict | None = None, drop: tuple = ()) -> bytes:
    """The summary file ``data`` with its description changed by ``head(description)`` (in place),
    parts replaced or added from ``parts`` and the parts in ``drop`` left out."""
    stored = _unpack(data)
    if head is not None:
        description = json.loads(stored["head"].tobytes())
        head(description)
        stored["head"] = np.frombuffer(json.dumps(description).encode(), np.uint8)
    stored.update(parts or {})
    for key in drop:
        del stored[key]
    return _pack(stored)


def _changed(data: bytes, key: str, change) -> bytes:
    """The summary file with one array changed by ``change(copy)`` (in place)."""
    array = _unpack(data)[key].copy()
    change(array)
    return _crafted(data, parts={key: array})


def _refused(data: bytes, words: str, *, limits: SummaryLimits | None = None) -> str:
    """Loading ``data`` raises one ``DatasetError`` containing ``words``, within ``PEAK`` bytes."""
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError) as caught:
            Summary.load(data, limits=limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert words in message and "\n" not in message, message
    assert peak < PEAK, f"{peak / 1024**2:.0f} MB taken to refuse: {message}"
    return message


# --- a real summary still loads ---------------------------------------------------------------


def test_load_keeps_a_real_summary_exactly(demo):
    _, summary, data = demo
    again = Summary.load(data)
    assert differences(again, summary, rtol=0, atol=0) == []
    assert again.layout == summary.layout and again.images == summary.images and again.meta == summary.meta
    assert len(again.images) == 1000 and again.count == 40


def test_a_summary_of_no_images_keeps_its_infinite_lowest_and_highest(demo):
    _, summary, _ = demo
    empty = skipped_only(summary.layout, ((-1, "notes.txt", "not an image file (.txt)"),))
    again = Summary.load(empty.to_bytes())
    assert again.count == 0 and again.skipped == empty.skipped
    assert (again.layers["block2_conv1"].low == np.inf).all() and (again.layers["block2_conv1"].high == -np.inf).all()


def test_default_limits_open_a_chexpert_sized_summary():
    """200,000 images, VGG16's 17 layers (13 convolutions, 4 poolings of up to 512 channels), 14 classes."""
    from actviz.dataset.summary import Layout
    from actviz.dataset.summary_file import _expected_parts, _parse_layout

    channels = [64, 64, 64, 128, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512]
    layout = Layout(layers=tuple((f"layer{i}", (18, 18, c)) for i, c in enumerate(channels)), classes=tuple(f"c{i}" for i in range(14)),
                    top_k=9, image_shape=(320, 320, 3), cam_layer="layer15", cam_shape=(20, 20))
    limits = SummaryLimits()
    assert _parse_layout(json.loads(json.dumps(layout.to_json())), limits) == layout
    declared = sum(math.prod(shape) * dtype.itemsize for dtype, shape in
                   (part for key, part in _expected_parts(layout, 200_000, True).items() if part[1] is not None))
    assert declared < limits.bytes / 4 and 200_000 <= limits.images


def test_class_average_images_the_plan_keeps_fit_the_limits():
    from actviz.dataset.plan import MAX_CLASS_PIXELS
    from actviz.dataset.summary import MAX_CELL_CLASSES

    limits = SummaryLimits()
    assert 8 * MAX_CLASS_PIXELS < limits.bytes and MAX_CELL_CLASSES <= limits.classes


# --- what the description declares, refused before anything is allocated ----------------------


def test_a_hundred_million_names_are_refused_before_they_are_read(demo):
    _, _, data = demo
    stored = _unpack(data)
    stored["images"] = Zeros("u1", (100_000_000,))  # 1e8 NUL bytes: 1e8 + 1 empty names, 0.1 MB compressed
    hostile = _pack(stored)
    assert len(hostile) < 1024**2
    message = _refused(hostile, "image names take 95.4 MB; actviz opens summaries whose names take at most 64.0 MB")
    assert message.startswith("This summary's image names")


def test_more_names_than_the_limit_are_refused_before_any_string_is_made(demo):
    _, _, data = demo
    hostile = _crafted(data, parts={"images": np.zeros(5_000, np.uint8)})
    _refused(hostile, "This summary names 5,001 images; actviz opens summaries of at most 1,000 images.", limits=SummaryLimits(images=1_000))


@pytest.mark.parametrize("side", [2000, 7000])
def test_a_huge_image_size_is_refused_even_with_the_real_model_digest(demo, side):
    probe, summary, data = demo

    def huge(head):
        head["layout"]["image_shape"] = [side, side, 1]

    hostile = _crafted(data, head=huge)
    assert json.loads(_unpack(hostile)["head"].tobytes())["meta"]["model_digest"] == summary.meta["model_digest"]
    _refused(hostile, f"declares images of {side:,} x {side:,} pixels; actviz opens summaries of images of at most 1,024 pixels a side")


def test_a_huge_image_size_within_raised_limits_is_refused_by_the_model(demo):
    probe, _, data = demo

    def huge(head):
        head["layout"]["image_shape"] = [2000, 2000, 1]
        head["layout"]["class_images"] = False

    raised = SummaryLimits(image_side=8000, image_pixels=64_000_000)
    loaded = Summary.load(_crafted(data, head=huge, drop=("class_pixels",)), limits=raised)
    with pytest.raises(DatasetError, match=r"made with images of 2,000 x 2,000 pixels .* takes images of 56 x 56 pixels"):
        loaded.check_model(probe, limits=raised)


def test_seven_and_a_half_million_channels_are_refused(demo):
    _, _, data = demo

    def wide(head):
        head["layout"]["layers"][0][1][2] = 7_500_000

    hostile = _crafted(data, head=wide)
    _refused(hostile, "declares 7,500,000 channels in the layer 'block2_conv1'; actviz opens summaries of at most 16,384 channels per layer.")
    raised = SummaryLimits(channels=10**7, total_channels=10**7)  # then the arrays do not match what the layout declares
    _refused(hostile, "part 'layer0/top_value' holds float32 numbers (4 x 32) where its layout calls for float32 numbers (4 x 7,500,000)", limits=raised)


def test_twelve_thousand_classes_are_refused(demo):
    _, _, data = demo

    def many(head):
        head["layout"]["classes"] = [f"class {i}" for i in range(12_000)]

    _refused(_crafted(data, head=many), "This summary declares 12,000 classes; actviz opens summaries of at most 1,000 classes.")


def test_arrays_that_declare_more_than_the_limit_in_all_are_refused(demo):
    _, _, data = demo
    _refused(data, "KB once read; actviz opens summaries of at most 4.0 KB.", limits=SummaryLimits(bytes=4096))


def test_a_description_of_millions_of_entries_is_refused_before_it_is_parsed(demo):
    _, _, data = demo

    def stuffed(head):
        head["meta"]["padding"] = [[] for _ in range(300_000)]

    _refused(_crafted(data, head=stuffed), "description holds 600,", limits=SummaryLimits(skipped=10))


def test_a_zip_of_thousands_of_parts_is_refused_before_its_table_of_contents_is_read():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(5_000):
            archive.writestr(f"{i}.npy", b"")
    _refused(buffer.getvalue(), "This file lists 5,000 parts")


# --- a description of the wrong shape ---------------------------------------------------------


@pytest.mark.parametrize("change, words", [
    (lambda h: h["layout"].pop("classes"), "This summary's layout has no 'classes'"),
    (lambda h: h.pop("skipped"), "This summary's description has no 'skipped'"),
    (lambda h: h.update(format=2), "written in format 2; this actviz reads format 1"),
    (lambda h: h.update(format=True), "written in format true"),
    (lambda h: h["layout"].update(top_k="4"), "gives the number of top images per channel as '4', where actviz writes a whole number"),
    (lambda h: h["layout"].update(top_k=0), "gives the number of top images per channel as 0"),
    (lambda h: h["layout"].update(layers=[]), "declares no layers"),
    (lambda h: h["layout"]["layers"].append(h["layout"]["layers"][0]), "lists the layer 'block2_conv1' twice"),
    (lambda h: h["layout"]["layers"][1].__setitem__(1, [7, 7]), "gives the grid of the layer 'block3_conv2' as a list of 2 items"),
    (lambda h: h["layout"].update(classes=["a", 3]), "gives a class name as a whole number, where actviz writes text"),
    (lambda h: h["layout"].update(cam_shape=None), "names a heat-map layer without its grid"),
    (lambda h: h["layout"].update(image_shape=[28, 28, 4]), "images of 4 colour channels"),
    (lambda h: h.update(meta=["model"]), "gives where it came from as a list, where actviz writes a table"),
    (lambda h: h["meta"].update(notes="one note"), "gives its notes as text, where actviz writes a list"),
    (lambda h: h["meta"].update(preprocessing="eval"), "names the preprocessing 'eval', which actviz does not know"),
    (lambda h: h.update(skipped=[[0, 1, "x"]]), "lists a skipped file as a list of 3 items, where actviz writes an image number, a path and a reason"),
    (lambda h: h.update(has_images="yes"), "gives whether it names its images as text, where actviz writes true or false"),
])
def test_a_description_of_the_wrong_shape_is_refused_in_words(demo, change, words):
    _, _, data = demo
    _refused(_crafted(data, head=change), words)


def test_a_file_that_is_not_a_summary_is_refused(demo, tmp_path):
    _, _, data = demo
    _refused(b"not a zip", "not a data set summary written by actviz")
    _refused(_crafted(data, drop=("head",)), "not a data set summary written by actviz (it has no 'head' part)")
    with pytest.raises(DatasetError, match="There is no summary file"):
        Summary.load(tmp_path / "missing.npz")


# --- arrays of the wrong type or shape, and parts too many or missing -------------------------


@pytest.mark.parametrize("key, value, words", [
    ("index", lambda a: a.astype(np.int32), "part 'index' holds int32 numbers (40) where its layout calls for int64 numbers (40)"),
    ("layer0/top_y", lambda a: a.astype(np.int64), "part 'layer0/top_y' holds int64 numbers (4 x 32) where its layout calls for int32 numbers"),
    ("confidence", lambda a: a[:39], "part 'confidence' holds float32 numbers (39)"),
    ("count", lambda a: np.int64(41), "part 'index' holds int64 numbers (40) where its layout calls for int64 numbers (41)"),
    ("layer1/class_mean", lambda a: Zeros("O", a.shape), "part 'layer1/class_mean' holds object numbers (10 x 64) where its layout calls for float64"),
    ("layer1/low", lambda a: a.astype(">f8"), "part 'layer1/low' holds float64 numbers (64)"),  # big-endian: not what actviz writes
])
def test_arrays_of_the_wrong_type_or_shape_are_refused(demo, key, value, words):
    _, _, data = demo
    _refused(_crafted(data, parts={key: value(_unpack(data)[key])}), words)


def test_extra_and_missing_parts_are_refused(demo):
    _, _, data = demo
    _refused(_crafted(data, parts={"evil": np.zeros(3)}), "holds a part named 'evil' that its layout does not call for")
    _refused(_crafted(data, drop=("layer1/m2",)), "has no 'layer1/m2' part, which its layout calls for")
    buffer = io.BytesIO(data)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("notes.txt", b"hello")
    _refused(buffer.getvalue(), "holds a part named 'notes.txt' that actviz never writes")


# --- values out of range ----------------------------------------------------------------------


def _set(where, value):
    def change(array):
        array[where] = value
    return change


@pytest.mark.parametrize("key, change, words", [
    ("index", _set(0, -5), "gives an image number of -5, outside 0 to 999 (the images it names)"),
    ("index", _set(39, 1000), "gives an image number of 1,000, outside 0 to 999"),
    ("index", _set(1, 0), "lists an image twice or out of order"),
    ("label", _set(0, 12), "gives a true class of 12, outside -1 to 9"),
    ("predicted", _set(3, -1), "gives an answer of -1, outside 0 to 9"),
    ("confidence", _set(2, np.inf), "holds a confidence that is not a number (NaN) or is infinite"),
    ("layer0/top_image", _set((0, 0), 5000), "gives a top image in the layer 'block2_conv1' of 5,000, outside 0 to 999"),
    ("layer0/top_image", _set((1, 2), -3), "gives a top image in the layer 'block2_conv1' of -3"),
    ("layer1/top_y", _set((0, 0), 14), "gives the row of a peak in the layer 'block3_conv2' of 14, outside 0 to 13"),
    ("layer1/top_x", _set((0, 1), -1), "gives the column of a peak in the layer 'block3_conv2' of -1"),
    ("layer0/top_value", _set((0, 0), np.nan), "holds a top value in the layer 'block2_conv1' that is not a number"),
    ("layer0/mean", _set((0, 0), np.nan), "holds a mean response in the layer 'block2_conv1' that is not a number (NaN)"),
    ("layer1/class_m2", _set((0, 0), -1.0), "holds a negative spread of the response in the layer 'block3_conv2'"),
    ("layer0/count", _set(0, 39), "counts of images in the layer 'block2_conv1' disagree with its 40 images"),
    ("layer0/class_count", _set(0, 0), "counts of images in the layer 'block2_conv1' disagree"),
    ("layer0/active", _set(0, 41), "gives a count of images a channel is active on in the layer 'block2_conv1' of 41"),
    ("layer0/low", _set(0, np.inf), "holds a lowest or highest value in the layer 'block2_conv1' that no summary of 40 images has"),
    ("mistakes/image", _set((0, 0), 2000), "gives the image of a mistake of 2,000"),
    ("mistakes/predicted", _set((0, 0), 10), "gives the answer of a mistake of 10, outside 0 to 9"),
    ("cam_class", _set((0, 0, 0), np.nan), "'cam_class' holds a negative or infinite value, or one that is not a number"),
])
def test_values_no_real_summary_holds_are_refused(demo, key, change, words):
    _, summary, data = demo
    assert summary.mistakes.filled()[0, 0]  # the demo model makes mistakes on these 40 digits
    _refused(_changed(data, key, change), words)


def test_names_and_skipped_rows_must_agree_with_the_images(demo):
    _, _, data = demo
    _refused(_crafted(data, parts={"images": np.frombuffer(b"a\0b\0c", np.uint8)}), "counts 40 images but names only 3")

    def far(head):
        head["skipped"] = [[5000, "x.png", "damaged"]]

    _refused(_crafted(data, head=far), "gives the image number of a skipped file of 5,000, outside -1 to 999")


# --- the layout against the model that is open -------------------------------------------------


def test_check_model_accepts_the_model_the_summary_was_made_with(demo):
    probe, summary, data = demo
    Summary.load(data).check_model(probe)


@pytest.mark.parametrize("change, words", [
    (dict(layers=(("nope", (28, 28, 32)),)), "shows the layer 'nope', which the model open does not have (it has block1_conv1"),
    (dict(layers=(("block2_conv1", (27, 28, 32)),)), "the layer 'block2_conv1' gives a grid of 27 x 28 x 32, but in the model open it gives 28 x 28 x 32"),
    (dict(layers=(("block2_conv1", (28, 28, 16)),)), "gives a grid of 28 x 28 x 16"),
    (dict(classes=("a", "b", "c")), "This summary has 3 classes, but the model open answers with 10"),
    (dict(image_shape=(32, 32, 1)), "made with images of 32 x 32 pixels (1 colour channel(s)); the model open takes images of 56 x 56 pixels"),
    (dict(image_shape=(56, 56, 3)), "(3 colour channel(s))"),
    (dict(cam_layer="gap", cam_shape=(28, 28)), "shows the layer 'gap', which the model open does not have"),
    (dict(cam_layer="nope"), "shows the layer 'nope'"),
    (dict(cam_shape=(3, 3)), "the layer 'block3_conv2' gives a grid of 3 x 3, but in the model open it gives 14 x 14"),
])
def test_check_model_refuses_a_layout_of_another_model(demo, change, words):
    probe, summary, _ = demo
    other = replace(summary, layout=replace(summary.layout, **change))
    with pytest.raises(DatasetError) as caught:
        other.check_model(probe)
    assert words in str(caught.value), str(caught.value)


def test_check_model_for_a_model_that_takes_any_size(keras):
    from actviz.dataset import summarize
    from actviz.safety.models import open_model

    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(2, 3, activation="relu", name="c")(inputs)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    opened = open_model(keras.Model(inputs, outputs))
    summary = summarize(opened, None, indices=np.arange(8), image_size=(20, 16), top_k=2, batch_size=8, preprocessing="rescale")
    summary = Summary.load(summary.to_bytes())
    summary.check_model(opened.probe)  # 20 x 16 gives an 18 x 14 grid
    moved = replace(summary, layout=replace(summary.layout, image_shape=(24, 16, 3)))
    with pytest.raises(DatasetError, match=r"'c' gives a grid of 18 x 14 x 2, but in the model open it gives 22 x 14 x 2 for images of 24 x 16"):
        moved.check_model(opened.probe)
    huge = replace(summary, layout=replace(summary.layout, image_shape=(20, 2000, 3)))
    with pytest.raises(DatasetError, match="declares images of 20 x 2,000 pixels; actviz opens summaries of images of at most 1,024 pixels a side"):
        huge.check_model(opened.probe)
    tiny = replace(summary, layout=replace(summary.layout, image_shape=(2, 2, 3)))
    with pytest.raises(DatasetError, match="cannot take images of 2 x 2 pixels"):
        tiny.check_model(opened.probe)


# --- memory counted for everything a summary holds ---------------------------------------------


def test_nbytes_counts_names_skipped_rows_and_meta(demo):
    _, summary, _ = demo
    names = tuple(f"patient{i:06d}/study1/view1_frontal.jpg" for i in range(50_000))
    named = replace(summary, images=names)
    without = replace(summary, images=None)
    assert named.nbytes - without.nbytes == sys.getsizeof(names) + sum(sys.getsizeof(n) for n in names)
    assert named.nbytes - without.nbytes > 50_000 * (len(names[0]) + 40)
    rows = tuple((i, f"folder/file{i}.txt", "not an image file (.txt)") for i in range(1000))
    assert replace(without, skipped=rows).nbytes - without.nbytes > 1000 * (len(rows[0][1]) + len(rows[0][2]))
    assert replace(without, meta={**summary.meta, "comment": "x" * 10_000}).nbytes - without.nbytes > 10_000


def test_nbytes_is_what_a_loaded_summary_holds(demo):
    _, summary, _ = demo
    names = tuple(f"CheXpert-v1.0/train/patient{i:05d}/study1/view1_frontal.jpg" for i in range(100_000))
    data = replace(summary, images=names).to_bytes()
    Summary.load(data)  # imports and first-time caches before measuring
    tracemalloc.start()
    try:
        loaded = Summary.load(data)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held > 10 * 1024**2  # the names: about 10 MB
    assert 0.9 * held <= loaded.nbytes <= 1.5 * held, (loaded.nbytes, held)


# --- the command line opens no location written inside a file ----------------------------------


@pytest.fixture(scope="module")
def saved(keras, tmp_path_factory):
    """A summary made by the command line from a folder of images, the folder, and the model file."""
    root = tmp_path_factory.mktemp("saved")
    images, filed, _ = colour_images(24, seed=5)
    write_folder(root / "images", images, filed)
    colour_model(keras).save(root / "colours.keras")
    assert main(["dataset", "--model", str(root / "colours.keras"), "--images", str(root / "images"), "--out", str(root / "first"),
                 "--top", "3", "--batch-size", "8", "--preprocess", "rescale"]) == 0
    assert (root / "first" / "sheets" / "000_conv.png").exists()
    return root


@pytest.fixture()
def opened_folders(monkeypatch):
    """Every folder a data set is listed from during the test (the real listing still runs)."""
    from actviz.dataset import sources

    seen = []
    real = sources.open_folder

    def listing(root, **kwargs):
        seen.append(Path(root).resolve())
        return real(root, **kwargs)

    monkeypatch.setattr(sources, "open_folder", listing)
    return seen


def _reopen(saved: Path, out: Path, *extra: str) -> int:
    return main(["dataset", "--summary", str(saved / "first" / "summary.npz"), "--out", str(out), "--model", str(saved / "colours.keras"), *extra])


def test_the_stored_location_is_never_opened_and_the_note_says_how_to_draw_the_sheets(saved, tmp_path, capsys, opened_folders):
    capsys.readouterr()
    assert _reopen(saved, tmp_path / "again") == 0
    said = capsys.readouterr().out
    assert opened_folders == []
    assert not (tmp_path / "again" / "sheets").exists() and (tmp_path / "again" / "channels.csv").exists()
    assert f"note: the contact sheets need the images this summary was made from ({saved / 'images'})" in said
    assert f"add --images {saved / 'images'}" in said


def test_sheets_are_drawn_from_the_images_given_when_they_are_the_summarys(saved, tmp_path, capsys, opened_folders):
    assert _reopen(saved, tmp_path / "again", "--images", str(saved / "images")) == 0
    assert opened_folders == [(saved / "images").resolve()]
    assert (tmp_path / "again" / "sheets" / "000_conv.png").read_bytes() == (saved / "first" / "sheets" / "000_conv.png").read_bytes()
    said = capsys.readouterr().out
    assert "contact sheets need" not in said and "not the ones" not in said


def test_other_images_given_draw_no_sheets(saved, tmp_path, capsys):
    images, filed, _ = colour_images(10, seed=6)
    write_folder(tmp_path / "other", images, filed)
    capsys.readouterr()
    assert _reopen(saved, tmp_path / "again", "--images", str(tmp_path / "other")) == 0
    said = capsys.readouterr().out
    assert "are not the ones this summary was made from" in said and "10 images in 2 classes" in said
    assert not (tmp_path / "again" / "sheets").exists()


def test_a_summary_naming_another_folder_makes_the_command_line_read_nothing_of_it(saved, tmp_path, capsys, opened_folders):
    """A stranger's summary naming a private folder (here one with images in it) and escape codes."""
    private = tmp_path / "private"
    images, filed, _ = colour_images(6, seed=7)
    write_folder(private, images, filed)
    data = (saved / "first" / "summary.npz").read_bytes()

    def elsewhere(head):
        head["meta"]["source"] = {"kind": "folder", "location": str(private) + "\x1b[2J"}

    hostile = tmp_path / "hostile.npz"
    hostile.write_bytes(_crafted(data, head=elsewhere))
    capsys.readouterr()
    assert main(["dataset", "--summary", str(hostile), "--out", str(tmp_path / "out"), "--model", str(saved / "colours.keras")]) == 0
    said = capsys.readouterr().out
    assert opened_folders == [] and not (tmp_path / "out" / "sheets").exists()
    assert "\x1b" not in said and f"--images '{private}'" in said  # quoted for the shell, the escape code removed
