"""A saved summary's file: what ``Summary.to_bytes`` writes and ``Summary.load`` reads, and every
check of a file that may come from a stranger.

The file is an ``.npz`` (a ZIP of ``.npy`` arrays, no pickled objects), format ``FORMAT``: the
description ``head`` (JSON: the format, the ``Layout``, where the summary came from, the skipped
files, whether the images are named), ``count``, the per-image arrays, the mistakes, thirteen
parts per layer (``layer0/top_value`` ...), the heat-map and class-image sums when kept, and the
image names (UTF-8 between NUL bytes). ``Layout``, what a summary holds, is the file's schema:
the reader builds it first, to know which parts to expect.

Nothing a file declares is trusted (``read``): its ZIP directory, every array's type and shape
(from the ``.npy`` headers) and its description are held to ``SummaryLimits`` before anything is
allocated; once the summary is built, its values (``check_values``). ``check_model`` holds a
layout to the model that is open.
"""

from __future__ import annotations

import io
import json
import lzma
import math
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.predictions import class_count
from ..errors import ActvizError
from .accumulate import Moments, Top
from .sources import DatasetError

#: Version of the file format written by ``Summary.save``.
FORMAT = 1
#: Most classes for which the per-cell heat maps and the class average images are kept.
MAX_CELL_CLASSES = 50
#: Most bytes of arrays a summary file may declare, added up (the default of ``SummaryLimits.bytes``).
MAX_SUMMARY_BYTES = 512 * 1024**2


@dataclass(frozen=True)
class SummaryLimits:
    """The most a summary file may declare for ``Summary.load`` to read it: a saved summary may come
    from a stranger, so everything it declares is checked against these before anything is allocated.

    ``layers``: layers summarised; ``channels``: channels of one layer; ``total_channels``: of all
    layers; ``classes``: the model's classes (the confusion matrix is classes x classes); ``top_k``:
    images kept per channel; ``mistakes``: mistakes kept; ``image_side`` / ``image_pixels``: the
    size images are resized to (and the Grad-CAM grid), per side and height x width; ``images``:
    images summarised, and images named; ``name_bytes``: the image names' text (UTF-8);
    ``skipped``: files listed as left out; ``head_bytes``: the file's description (JSON: layout,
    where it came from, skipped files); ``bytes``: every array as declared, added up.

    The defaults open a CheXpert-sized summary (200,000 images, VGG16's 17 layers of up to 512
    channels, 14 classes: about 40 MB) and an ImageNet one (1,000 classes, ResNet50's 26,000
    channels: about 430 MB), and keep any summary under about 750 MB in memory, names and
    skipped files counted. A deployment passes smaller ones (``Summary.load(data, limits=...)``).
    """

    layers: int = 256
    channels: int = 16_384
    total_channels: int = 65_536
    classes: int = 1_000
    top_k: int = 100
    mistakes: int = 1_000
    image_side: int = 1_024
    image_pixels: int = 1_024 * 1_024
    images: int = 2_000_000
    name_bytes: int = 64 * 1024**2
    skipped: int = 250_000
    head_bytes: int = 16 * 1024**2
    bytes: int = MAX_SUMMARY_BYTES


@dataclass(frozen=True)
class Layout:
    """What a summary holds, fixed before the pass; every partial summary of a pass shares it.

    ``layers``: (name, (h, w, channels)) per layer, in network order; ``classes``: the model's
    class names (K); ``top_k``: images kept per channel; ``mistakes``: most confident mistakes
    kept; ``image_shape``: (H, W, C) the images are resized to; ``cam_layer`` / ``cam_shape``:
    the Grad-CAM layer and its (h, w), None without Grad-CAM; ``class_images``: whether the
    per-class average images are kept.
    """

    layers: tuple
    classes: tuple
    top_k: int = 9
    mistakes: int = 24
    image_shape: tuple = ()
    cam_layer: str | None = None
    cam_shape: tuple | None = None
    class_images: bool = True

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.layers]

    def shape(self, layer: str) -> tuple:
        return dict(self.layers)[layer]

    def to_json(self) -> dict:
        return {
            "layers": [[n, list(s)] for n, s in self.layers], "classes": list(self.classes), "top_k": self.top_k,
            "mistakes": self.mistakes, "image_shape": list(self.image_shape), "cam_layer": self.cam_layer,
            "cam_shape": None if self.cam_shape is None else list(self.cam_shape), "class_images": self.class_images,
        }

    @classmethod
    def from_json(cls, data: dict) -> "Layout":
        return cls(
            layers=tuple((n, tuple(s)) for n, s in data["layers"]), classes=tuple(data["classes"]), top_k=data["top_k"],
            mistakes=data["mistakes"], image_shape=tuple(data["image_shape"]), cam_layer=data["cam_layer"],
            cam_shape=None if data["cam_shape"] is None else tuple(data["cam_shape"]), class_images=data["class_images"],
        )


# --- writing -----------------------------------------------------------------------------------


def to_bytes(summary: Any) -> bytes:
    """A ``Summary`` as an ``.npz`` file (no pickled objects; ``read`` reads it back)."""
    arrays = {
        "count": np.array(summary.count, np.int64), "index": summary.index, "label": summary.label,
        "predicted": summary.predicted, "confidence": summary.confidence,
        "mistakes/value": summary.mistakes.value, "mistakes/image": summary.mistakes.image,
        **{f"mistakes/{k}": v for k, v in summary.mistakes.extra.items()},
    }
    for i, (name, part) in enumerate(summary.layers.items()):
        arrays.update(_layer_arrays(f"layer{i}", part))
    for key in ("cam_class", "cam_cell", "class_pixels"):
        if getattr(summary, key) is not None:
            arrays[key] = getattr(summary, key)
    if summary.images is not None:
        arrays["images"] = np.frombuffer("\0".join(summary.images).encode("utf-8", "surrogateescape"), np.uint8)
    head = {"format": FORMAT, "layout": summary.layout.to_json(), "meta": summary.meta,
            "skipped": [list(s) for s in summary.skipped], "has_images": summary.images is not None}
    arrays["head"] = np.frombuffer(json.dumps(head).encode(), np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _layer_arrays(prefix: str, part: Any) -> dict:
    """The parts of one ``LayerSummary``, named ``{prefix}/top_value`` ..."""
    return {
        f"{prefix}/top_value": part.top.value, f"{prefix}/top_image": part.top.image,
        f"{prefix}/top_y": part.top.extra["y"], f"{prefix}/top_x": part.top.extra["x"],
        f"{prefix}/count": part.response.count, f"{prefix}/mean": part.response.mean, f"{prefix}/m2": part.response.m2,
        f"{prefix}/class_count": part.by_class.count, f"{prefix}/class_mean": part.by_class.mean, f"{prefix}/class_m2": part.by_class.m2,
        f"{prefix}/low": part.low, f"{prefix}/high": part.high, f"{prefix}/active": part.active,
    }


# --- reading a summary file that may come from a stranger ----------------------------------------

#: What reading a damaged or foreign file raises, from zipfile, its decompressors and numpy's header parser.
_UNREADABLE = (OSError, ValueError, KeyError, EOFError, RuntimeError, struct.error, zipfile.BadZipFile, zipfile.LargeZipFile,
               zlib.error, lzma.LZMAError)
#: Bytes of a ZIP's table of contents allowed per part (an entry of ``np.savez`` takes about 80).
_DIRECTORY_BYTES_PER_PART = 512
#: Longest .npy header read (numpy's own default).
_MAX_HEADER = 10_000
_END_OF_DIRECTORY, _ZIP64_LOCATOR = b"PK\x05\x06", b"PK\x06\x07"
_HEAD_KEYS = ("format", "layout", "meta", "skipped", "has_images")
_LAYOUT_KEYS = ("layers", "classes", "top_k", "mistakes", "image_shape", "cam_layer", "cam_shape", "class_images")
_META_TEXT = ("model", "model_digest", "data", "fingerprint", "preprocessing", "engine")
_SOURCE_KINDS = ("folder", "csv", "zip", "demo")
_DAMAGED = "the file is damaged or was not written by actviz"


def read(source: Any, *, limits: SummaryLimits) -> tuple[dict, list[dict]]:
    """A summary file (a path or its bytes), its description and every array's type and shape
    checked before the arrays are read (see ``Summary.load``): (the keyword arguments of a
    ``Summary`` but ``layers``; each layer's ``LayerSummary`` keyword arguments, in the layout's
    order). The values are checked once the summary is built (``check_values``)."""
    if not isinstance(source, (bytes, bytearray, memoryview)) and not Path(source).is_file():
        raise DatasetError(f"There is no summary file at '{source}'.")
    try:
        with _open_npz(source, limits) as archive:
            head, count, arrays = _read_checked(archive, limits)
    except DatasetError:
        raise
    except _UNREADABLE as exc:
        raise DatasetError(f"This file is not a data set summary written by actviz ({' '.join(str(exc).split())[:160]}).") from None
    fields = {
        "layout": head["layout"], "count": count, "index": arrays["index"], "label": arrays["label"],
        "predicted": arrays["predicted"], "confidence": arrays["confidence"],
        "mistakes": Top(arrays["mistakes/value"], arrays["mistakes/image"], {k: arrays[f"mistakes/{k}"] for k in ("label", "predicted")}),
        "cam_class": arrays.get("cam_class"), "cam_cell": arrays.get("cam_cell"), "class_pixels": arrays.get("class_pixels"),
        "skipped": head["skipped"], "images": _names(arrays["images"], limits) if head["has_images"] else None, "meta": head["meta"],
    }
    return fields, [_layer_from(arrays, f"layer{i}") for i in range(len(head["layout"].layers))]


def _layer_from(arrays: dict, prefix: str) -> dict:
    """The keyword arguments of one ``LayerSummary``, from its parts (as ``_layer_arrays`` names them)."""
    get = lambda key: arrays[f"{prefix}/{key}"]  # noqa: E731
    return {
        "top": Top(get("top_value"), get("top_image"), {"y": get("top_y"), "x": get("top_x")}),
        "response": Moments(get("count"), get("mean"), get("m2")), "by_class": Moments(get("class_count"), get("class_mean"), get("class_m2")),
        "low": get("low"), "high": get("high"), "active": get("active"),
    }


def _open_npz(source, limits: SummaryLimits) -> zipfile.ZipFile:
    """The summary's ZIP archive (a path or bytes), after refusing a table of contents larger than a
    summary's can be: ``zipfile`` reads it whole, one object per entry, so a file of millions of
    empty entries would take gigabytes before anything else is checked."""
    data = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else None
    if data is not None:
        _check_directory(data, limits)
        return zipfile.ZipFile(data)
    with open(source, "rb") as handle:
        _check_directory(handle, limits)
    return zipfile.ZipFile(source)


def _check_directory(handle, limits: SummaryLimits) -> None:
    """Refuse a ZIP whose end record (found as ``zipfile`` finds it) declares more parts, or a larger
    table of contents, than a summary within ``limits`` has, or points to a ZIP64 record."""
    handle.seek(0, io.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - 22 - 65_535 - 20))  # the end record, its comment, and room for a ZIP64 locator before it
    tail = handle.read()
    at = len(tail) - 22 if tail[-22:-18] == _END_OF_DIRECTORY and tail[-2:] == b"\0\0" else tail.rfind(_END_OF_DIRECTORY)
    if at < 0 or len(tail) - at < 22:
        return  # not a ZIP file: zipfile says so
    parts, directory = struct.unpack_from("<HL", tail, at + 10)
    most = _most_parts(limits)
    if parts > most or directory > most * _DIRECTORY_BYTES_PER_PART or (at >= 20 and tail[at - 20 : at - 16] == _ZIP64_LOCATOR):
        raise DatasetError(
            f"This file lists {parts:,} parts in {directory / 1024:,.0f} KB; a data set summary has at most {most:,} parts, so it is refused."
        )


def _most_parts(limits: SummaryLimits) -> int:
    """Most parts a summary within ``limits`` holds: 13 per layer, 10 others (the description among
    them), 3 kept only with heat maps or average images, and the names."""
    return 15 + 13 * limits.layers


def _read_checked(archive: zipfile.ZipFile, limits: SummaryLimits) -> tuple[dict, int, dict]:
    """The description, the image count and the arrays of a summary ZIP: every array's type and
    shape is read from its header and checked against the layout before any array is read."""
    infos = _parts(archive, limits)
    headers = {key: _header(archive, info) for key, info in infos.items()}
    for key in ("head", "count"):
        if key not in headers:
            raise DatasetError(f"This file is not a data set summary written by actviz (it has no '{key}' part).")
    _expect_header("head", headers["head"], np.dtype(np.uint8), None)
    if headers["head"][1][0] > limits.head_bytes:
        raise DatasetError(
            f"This summary's description takes {_size(headers['head'][1][0])}; actviz opens summaries whose "
            f"description takes at most {_size(limits.head_bytes)}."
        )
    head = _parse_head(_read_array(archive, infos["head"], headers["head"]).tobytes(), limits)
    _expect_header("count", headers["count"], np.dtype(np.int64), ())
    count = int(_read_array(archive, infos["count"], headers["count"]))
    if count < 0:
        raise DatasetError(f"This summary counts {count:,} images; {_DAMAGED}.")
    _at_most(count, limits.images, "images")
    expected = _expected_parts(head["layout"], count, head["has_images"])
    for key in headers:
        if key not in expected:
            raise DatasetError(f"This summary holds a part named '{_short(key)}' that its layout does not call for; {_DAMAGED}.")
    for key, (dtype, shape) in expected.items():
        if key not in headers:
            raise DatasetError(f"This summary has no '{key}' part, which its layout calls for; {_DAMAGED}.")
        _expect_header(key, headers[key], dtype, shape)
    if "images" in headers and headers["images"][1][0] > limits.name_bytes:
        raise DatasetError(
            f"This summary's image names take {_size(headers['images'][1][0])}; actviz opens summaries whose "
            f"names take at most {_size(limits.name_bytes)}."
        )
    total = sum(math.prod(shape) * dtype.itemsize for dtype, shape, _ in headers.values())
    if total > limits.bytes:
        raise DatasetError(f"This summary would take {_size(total)} once read; actviz opens summaries of at most {_size(limits.bytes)}.")
    arrays = {key: _read_array(archive, infos[key], headers[key]) for key in expected if key not in ("head", "count")}
    return head, count, arrays


def _parts(archive: zipfile.ZipFile, limits: SummaryLimits) -> dict:
    """Part name (``layer0/top_value``) -> its ZIP entry; refuses too many, duplicates and non-arrays."""
    infos = archive.infolist()
    if len(infos) > _most_parts(limits):
        raise DatasetError(f"This file holds {len(infos):,} parts; a data set summary has at most {_most_parts(limits):,}, so it is refused.")
    parts = {}
    for info in infos:
        if not info.filename.endswith(".npy"):
            raise DatasetError(f"This summary holds a part named '{_short(info.filename)}' that actviz never writes; {_DAMAGED}.")
        key = info.filename[: -len(".npy")]
        if key in parts:
            raise DatasetError(f"This summary holds the part '{_short(key)}' twice; {_DAMAGED}.")
        parts[key] = info
    return parts


def _header(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple:
    with archive.open(info) as member:
        return _read_header(member)


def _read_header(member) -> tuple:
    """(dtype, shape, fortran_order) from the .npy header at the start of ``member``, reading only
    the header (at most ``_MAX_HEADER`` bytes: its declared length is checked before it is read)."""
    version = np.lib.format.read_magic(member)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"an array in .npy format {version[0]}.{version[1]}, which actviz does not write")
    length_bytes = member.read(2 if version == (1, 0) else 4)
    length = int.from_bytes(length_bytes, "little")
    if length > _MAX_HEADER:
        raise ValueError(f"an array header of {length:,} bytes")
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    try:
        shape, fortran, dtype = reader(io.BytesIO(length_bytes + member.read(length)))
    except (ValueError, OSError, EOFError):
        raise
    except Exception as exc:  # noqa: BLE001 -- a garbled header reaches Python's tokenizer and parser, which raise their own kinds
        raise ValueError(f"an array header that cannot be read ({type(exc).__name__})") from None
    return dtype, tuple(shape), bool(fortran)


def _read_array(archive: zipfile.ZipFile, info: zipfile.ZipInfo, header: tuple) -> np.ndarray:
    """The array of one part, into memory allocated from its header (checked before), a megabyte at a time."""
    dtype, shape, fortran = header
    with archive.open(info) as member:
        if _read_header(member) != header:
            raise ValueError(f"the part '{_short(info.filename)}' changed while it was read")
        array = np.empty(math.prod(shape), dtype)
        view, done = array.view(np.uint8), 0
        while done < view.size:
            chunk = member.read(min(1 << 20, view.size - done))
            if not chunk:
                raise ValueError(f"the part '{_short(info.filename)}' ends early")
            view[done : done + len(chunk)] = np.frombuffer(chunk, np.uint8)
            done += len(chunk)
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def _expected_parts(layout: Layout, count: int, has_images: bool) -> dict:
    """Each part a summary of ``layout`` over ``count`` images holds, as ``to_bytes`` writes it
    (see ``Summary.empty``, ``batch_summary`` and ``accumulate``): name -> (dtype, shape); shape
    None: one axis of any length."""
    k, m, classes = layout.top_k, layout.mistakes, len(layout.classes)
    i64, i32, f32, f64, u8 = (np.dtype(t) for t in (np.int64, np.int32, np.float32, np.float64, np.uint8))
    parts = {
        "head": (u8, None), "count": (i64, ()), "index": (i64, (count,)), "label": (i64, (count,)), "predicted": (i64, (count,)),
        "confidence": (f32, (count,)), "mistakes/value": (f32, (m, 1)), "mistakes/image": (i64, (m, 1)),
        "mistakes/label": (i64, (m, 1)), "mistakes/predicted": (i64, (m, 1)),
    }
    for i, (_, (_, _, c)) in enumerate(layout.layers):
        parts.update({
            f"layer{i}/top_value": (f32, (k, c)), f"layer{i}/top_image": (i64, (k, c)), f"layer{i}/top_y": (i32, (k, c)),
            f"layer{i}/top_x": (i32, (k, c)), f"layer{i}/count": (i64, (1,)), f"layer{i}/mean": (f64, (1, c)), f"layer{i}/m2": (f64, (1, c)),
            f"layer{i}/class_count": (i64, (classes,)), f"layer{i}/class_mean": (f64, (classes, c)), f"layer{i}/class_m2": (f64, (classes, c)),
            f"layer{i}/low": (f64, (c,)), f"layer{i}/high": (f64, (c,)), f"layer{i}/active": (i64, (c,)),
        })
    cells = classes <= MAX_CELL_CLASSES
    if layout.cam_shape is not None:
        parts["cam_class"] = (f64, (classes, *layout.cam_shape))
        if cells:
            parts["cam_cell"] = (f64, (classes, classes, *layout.cam_shape))
    if layout.class_images and cells:
        parts["class_pixels"] = (f64, (classes, *layout.image_shape))
    if has_images:
        parts["images"] = (u8, None)
    return parts


def _expect_header(key: str, header: tuple, dtype: np.dtype, shape: tuple | None) -> None:
    got_dtype, got_shape, _ = header
    if got_dtype != dtype or (len(got_shape) != 1 if shape is None else got_shape != shape):
        raise DatasetError(
            f"This summary's part '{key}' holds {_array_words(got_dtype, got_shape)} where its layout calls for "
            f"{_array_words(dtype, shape)}; {_DAMAGED}."
        )


def _array_words(dtype: np.dtype, shape: tuple | None) -> str:
    size = "a list of any length" if shape is None else (" x ".join(f"{d:,}" for d in shape) if shape else "a single value")
    return _short(f"{dtype.name} numbers ({size})", 120)


def _parse_head(raw: bytes, limits: SummaryLimits) -> dict:
    """The summary's description (JSON), type-checked: the format, the layout (held to ``limits``),
    meta, the skipped rows and whether the images are named.

    The entries are counted before parsing: each becomes a Python object of 30 to 60 bytes, so a
    16 MB description of empty lists would take about 300 MB.
    """
    entries = raw.count(b",") + raw.count(b":") + raw.count(b"[") + raw.count(b"{")
    most = 4 * limits.skipped + 8 * limits.layers + 2 * limits.classes + 100_000
    if entries > most:
        raise DatasetError(
            f"This summary's description holds {entries:,} entries; actviz opens summaries of at most {most:,} "
            f"(at most {limits.skipped:,} skipped files, {limits.layers:,} layers and {limits.classes:,} classes)."
        )
    try:
        head = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise DatasetError(f"This file is not a data set summary written by actviz (its description cannot be read: {_short(str(exc))}).") from None
    if not isinstance(head, dict):
        raise DatasetError(f"This file is not a data set summary written by actviz (its description is {_kind(head)}).")
    version = head.get("format")
    if not _is_whole(version) or version != FORMAT:
        raise DatasetError(f"This summary was written in format {_shown(version)}; this actviz reads format {FORMAT}. Run the data set again.")
    missing = [key for key in _HEAD_KEYS if key not in head]
    if missing:
        raise DatasetError(f"This summary's description has no '{missing[0]}'; {_DAMAGED}.")
    return {
        "layout": _parse_layout(head["layout"], limits), "meta": _check_meta(head["meta"]),
        "skipped": _parse_skipped(head["skipped"], limits), "has_images": _flag(head["has_images"], "whether it names its images"),
    }


def _parse_layout(data: Any, limits: SummaryLimits) -> Layout:
    """The ``Layout`` a description declares, every field type-checked and held to ``limits``."""
    if not isinstance(data, dict):
        raise DatasetError(f"This summary gives its layout as {_kind(data)}, where actviz writes a table; {_DAMAGED}.")
    missing = [key for key in _LAYOUT_KEYS if key not in data]
    if missing:
        raise DatasetError(f"This summary's layout has no '{missing[0]}'; {_DAMAGED}.")
    classes = _list(data["classes"], "its class names")
    _at_most(len(classes), limits.classes, "classes")
    if not classes:
        raise DatasetError(f"This summary declares no classes; {_DAMAGED}.")
    layers = _list(data["layers"], "its layers")
    _at_most(len(layers), limits.layers, "layers")
    if not layers:
        raise DatasetError(f"This summary declares no layers; {_DAMAGED}.")
    parsed = tuple(_parse_layer(entry, limits) for entry in layers)
    names = [name for name, _ in parsed]
    if len(set(names)) != len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise DatasetError(f"This summary lists the layer '{_short(twice)}' twice; {_DAMAGED}.")
    _at_most(sum(shape[2] for _, shape in parsed), limits.total_channels, "channels in all")
    top_k = _whole(data["top_k"], "the number of top images per channel", low=1)
    _at_most(top_k, limits.top_k, "top images per channel", verb="keeps")
    mistakes = _whole(data["mistakes"], "the number of mistakes kept", low=0)
    _at_most(mistakes, limits.mistakes, "mistakes", verb="keeps")
    image_shape = _sizes(data["image_shape"], 3, "the image size")
    if image_shape[2] not in (1, 3):
        raise DatasetError(f"This summary declares images of {image_shape[2]:,} colour channels; actviz summarises greyscale (1) or colour (3) images only.")
    _check_picture(image_shape[0], image_shape[1], limits, "images")
    cam_layer = None if data["cam_layer"] is None else _text(data["cam_layer"], "its heat-map layer")
    cam_shape = None if data["cam_shape"] is None else _sizes(data["cam_shape"], 2, "its heat-map grid")
    if (cam_layer is None) != (cam_shape is None):
        raise DatasetError(f"This summary names a heat-map layer without its grid, or a grid without its layer; {_DAMAGED}.")
    if cam_shape is not None:
        _check_picture(cam_shape[0], cam_shape[1], limits, "heat maps")
    return Layout(
        layers=parsed, classes=tuple(_text(name, "a class name") for name in classes), top_k=top_k, mistakes=mistakes,
        image_shape=image_shape, cam_layer=cam_layer, cam_shape=cam_shape,
        class_images=_flag(data["class_images"], "whether it keeps average images"),
    )


def _parse_layer(entry: Any, limits: SummaryLimits) -> tuple:
    """(name, (h, w, channels)) of one layer of a layout, its channels held to ``limits``."""
    if not isinstance(entry, list) or len(entry) != 2:
        raise DatasetError(f"This summary gives a layer as {_shown(entry)}, where actviz writes its name and its grid; {_DAMAGED}.")
    name = _text(entry[0], "a layer's name")
    shape = _sizes(entry[1], 3, f"the grid of the layer '{_short(name)}'")
    if shape[2] > limits.channels:
        raise DatasetError(
            f"This summary declares {shape[2]:,} channels in the layer '{_short(name)}'; actviz opens summaries of at most "
            f"{limits.channels:,} channels per layer."
        )
    return name, shape


def _check_meta(meta: Any) -> dict:
    """``meta`` as ``summarize`` writes it: a table whose known entries have the types the views use."""
    from ..inputs.preprocessing import PREPROCESSING

    if not isinstance(meta, dict):
        raise DatasetError(f"This summary gives where it came from as {_kind(meta)}, where actviz writes a table; {_DAMAGED}.")
    for key in _META_TEXT:
        if key in meta:
            _text(meta[key], f"its '{key}'")
    for note in _list(meta.get("notes", []), "its notes"):
        _text(note, "a note")
    if "labelled" in meta:
        _flag(meta["labelled"], "whether its images had labels")
    if "batch_size" in meta:
        _whole(meta["batch_size"], "its batch size", low=1)
    source = meta.get("source", {})
    if not isinstance(source, dict) or source.get("kind", "demo") not in _SOURCE_KINDS or not isinstance(source.get("location", ""), str):
        raise DatasetError(f"This summary gives the data set it came from as {_shown(source)}; {_DAMAGED}.")
    if meta.get("preprocessing", "rescale") not in PREPROCESSING:
        raise DatasetError(f"This summary names the preprocessing '{_short(meta['preprocessing'])}', which actviz does not know; {_DAMAGED}.")
    return meta


def _parse_skipped(rows: Any, limits: SummaryLimits) -> tuple:
    """The skipped rows, each (image number or -1, path, reason)."""
    rows = _list(rows, "its skipped files")
    _at_most(len(rows), limits.skipped, "skipped files", verb="lists")
    for row in rows:
        if not (isinstance(row, list) and len(row) == 3 and _is_whole(row[0]) and row[0] >= -1 and isinstance(row[1], str) and isinstance(row[2], str)):
            raise DatasetError(
                f"This summary lists a skipped file as {_shown(row)}, where actviz writes an image number, a path and a reason; {_DAMAGED}."
            )
    return tuple((int(index), path, reason) for index, path, reason in rows)


def _names(raw: np.ndarray, limits: SummaryLimits) -> tuple[str, ...]:
    """The image names, stored as UTF-8 between NUL bytes, counted before any string is made."""
    count = int(np.count_nonzero(raw == 0)) + 1
    _at_most(count, limits.images, "images", verb="names")
    return tuple(part.decode("utf-8", "surrogateescape") for part in raw.tobytes().split(b"\0"))


# --- the values, once read ---------------------------------------------------------------------


def check_values(summary: Any, *, limits: SummaryLimits) -> None:
    """Refuse values no summary written by actviz holds, in a ``Summary`` built from a file: image
    numbers, classes and peak positions out of range, counts that disagree, NaN or infinity where a
    real summary has none (the lowest and highest values of a summary of no images are +inf and
    -inf: allowed exactly there)."""
    layout, count = summary.layout, summary.count
    classes = len(layout.classes)
    named = None if summary.images is None else len(summary.images)
    if named is not None and named < count:
        raise DatasetError(f"This summary counts {count:,} images but names only {named:,}; {_DAMAGED}.")
    known = limits.images if named is None else named
    images = "the images it names" if named is not None else "the most images a summary holds"
    _in_range(summary.index, 0, known, "an image number", images)
    if (np.diff(summary.index) <= 0).any():
        raise DatasetError(f"This summary lists an image twice or out of order; {_DAMAGED}.")
    _in_range(summary.label, -1, classes, "a true class", "its classes, or -1 for none")
    _in_range(summary.predicted, 0, classes, "an answer", "its classes")
    _finite(summary.confidence, "a confidence")
    mistakes = summary.mistakes
    filled = mistakes.filled()
    _in_range(mistakes.image[filled], 0, known, "the image of a mistake", images)
    _in_range(mistakes.extra["label"][filled], 0, classes, "the true class of a mistake", "its classes")
    _in_range(mistakes.extra["predicted"][filled], 0, classes, "the answer of a mistake", "its classes")
    _finite(mistakes.value[filled], "the confidence of a mistake")
    _in_range(np.array([row[0] for row in summary.skipped], np.int64), -1, known, "the image number of a skipped file", images)
    per_class = np.bincount(summary.label[summary.label >= 0], minlength=classes)
    for name, (h, w, _) in layout.layers:
        _check_layer(summary.layers[name], name, (h, w), count, per_class, known, images)
    for key in ("cam_class", "cam_cell", "class_pixels"):
        values = getattr(summary, key)
        if values is not None and not (np.isfinite(values).all() and (values >= 0).all()):
            raise DatasetError(f"This summary's '{key}' holds a negative or infinite value, or one that is not a number; {_DAMAGED}.")


def _check_layer(part: Any, name: str, grid: tuple, count: int, per_class: np.ndarray, known: int, images: str) -> None:
    """One layer's values (see ``check_values``)."""
    where = f"in the layer '{_short(name)}'"
    filled = part.top.filled()
    _in_range(part.top.image[filled], 0, known, f"a top image {where}", images)
    _in_range(part.top.extra["y"][filled], 0, grid[0], f"the row of a peak {where}", "the rows of its grid")
    _in_range(part.top.extra["x"][filled], 0, grid[1], f"the column of a peak {where}", "the columns of its grid")
    if np.isnan(part.top.value).any():
        raise DatasetError(f"This summary holds a top value {where} that is not a number; {_DAMAGED}.")
    if int(part.response.count[0]) != count or not np.array_equal(part.by_class.count, per_class):
        raise DatasetError(f"This summary's counts of images {where} disagree with its {count:,} images and their classes; {_DAMAGED}.")
    for moments in (part.response, part.by_class):
        _finite(moments.mean, f"a mean response {where}")
        _finite(moments.m2, f"a spread of the response {where}")
        if (moments.m2 < 0).any():
            raise DatasetError(f"This summary holds a negative spread of the response {where}; {_DAMAGED}.")
    _in_range(part.active, 0, count + 1, f"a count of images a channel is active on {where}", "its images")
    if count == 0:
        fitting = bool((part.low == np.inf).all() and (part.high == -np.inf).all())
    else:
        fitting = bool(np.isfinite(part.low).all() and np.isfinite(part.high).all() and (part.low <= part.high).all())
    if not fitting:
        raise DatasetError(f"This summary holds a lowest or highest value {where} that no summary of {count:,} images has; {_DAMAGED}.")


def _in_range(values: np.ndarray, low: int, high: int, what: str, of: str) -> None:
    """Refuse when some of ``values`` (integers) lie outside ``low`` .. ``high - 1``."""
    outside = (values < low) | (values >= high)
    if outside.any():
        raise DatasetError(
            f"This summary gives {what} of {int(values[outside][0]):,}, outside {low:,} to {high - 1:,} ({of}); {_DAMAGED}."
        )


def _finite(values: np.ndarray, what: str) -> None:
    if not np.isfinite(values).all():
        raise DatasetError(f"This summary holds {what} that is not a number (NaN) or is infinite; a real summary never does, so {_DAMAGED}.")


# --- the model that is open --------------------------------------------------------------------


def check_model(layout: Layout, probe: Any, *, limits: SummaryLimits) -> None:
    """Raise ``DatasetError`` when a summary of ``layout`` does not fit the model ``probe`` looks
    into (see ``Summary.check_model``)."""
    height, width, colours = layout.image_shape
    takes = tuple(probe.input_shape)
    if len(takes) != 3 or any(want is not None and int(want) != got for want, got in zip(takes, layout.image_shape)):
        raise DatasetError(
            f"This summary was made with images of {height:,} x {width:,} pixels ({colours} colour channel(s)); the model "
            f"open takes {_input_words(takes)}. Open the model the summary was made with."
        )
    _check_picture(height, width, limits, "images")
    spatial = {info.name for info in probe.spatial_layers}
    for name in [*layout.names, *([layout.cam_layer] if layout.cam_layer else [])]:
        if name not in spatial:
            shown = ", ".join(sorted(spatial)[:8]) + (", ..." if len(spatial) > 8 else "")
            raise DatasetError(f"This summary shows the layer '{name}', which the model open does not have (it has {shown}).")
    if layout.cam_layer is not None and layout.cam_layer not in {info.name for info in probe.table.cam_layers}:
        raise DatasetError(
            f"This summary's heat maps come from the layer '{layout.cam_layer}', which in the model open is not a layer whose map "
            "leads to the answer, so no class activation map is made there."
        )
    try:
        shapes = probe.layer_shapes(height, width)
    except ActvizError:
        raise DatasetError(f"The model open cannot take images of {height:,} x {width:,} pixels, the size this summary was made with.") from None
    for name, shape in [*layout.layers, *([(layout.cam_layer, layout.cam_shape)] if layout.cam_layer else [])]:
        actual = tuple(shapes.get(name, ()))[: len(shape)]
        if actual != tuple(shape):
            raise DatasetError(
                f"In this summary the layer '{name}' gives a grid of {' x '.join(f'{d:,}' for d in shape)}, but in the model open "
                f"it gives {' x '.join(str(d) for d in actual)} for images of {height:,} x {width:,} pixels: the summary was made with another model."
            )
    answers = _model_classes(probe)
    if answers != len(layout.classes):
        raise DatasetError(f"This summary has {len(layout.classes):,} classes, but the model open answers with {answers:,}: the summary was made with another model.")


def _input_words(shape: tuple) -> str:
    """A model's input shape (H, W, C), None where any size goes, in words."""
    if len(shape) != 3:
        return f"inputs of shape {shape}"
    height, width, colours = shape
    size = "any size" if height is None and width is None else f"{height or 'any'} x {width or 'any'} pixels"
    return f"images of {size} ({colours} colour channel(s))"


def _model_classes(probe: Any) -> int:
    """How many classes the model's first output distinguishes (one sigmoid output is two, as in ``predictions``)."""
    shape = tuple(probe.symbolic_predictions[0].shape[1:])
    if None in shape:
        raise DatasetError(f"The model open answers with an output of shape {shape}; actviz reads a fixed number of class scores.")
    return class_count(np.broadcast_to(np.float32(0), (math.prod(shape),)))


# --- in words ----------------------------------------------------------------------------------


def _at_most(count: int, cap: int, what: str, *, verb: str = "declares") -> None:
    """Refuse ``count`` over ``cap``: "This summary declares 12,000 classes; actviz opens summaries of at most 1,000 classes."."""
    if count > cap:
        raise DatasetError(f"This summary {verb} {count:,} {what}; actviz opens summaries of at most {cap:,} {what}.")


def _check_picture(height: int, width: int, limits: SummaryLimits, what: str) -> None:
    if max(height, width) > limits.image_side or height * width > limits.image_pixels:
        raise DatasetError(
            f"This summary declares {what} of {height:,} x {width:,} pixels; actviz opens summaries of {what} of at most "
            f"{limits.image_side:,} pixels a side ({limits.image_pixels:,} pixels in all)."
        )


def _sizes(value: Any, count: int, what: str) -> tuple:
    """A list of ``count`` whole numbers from 1 to 2**31 - 1, as a tuple of ints."""
    if not isinstance(value, list) or len(value) != count or not all(_is_whole(v) and 1 <= v < 2**31 for v in value):
        raise DatasetError(f"This summary gives {what} as {_shown(value)}, where actviz writes {count} whole numbers of 1 or more; {_DAMAGED}.")
    return tuple(int(v) for v in value)


def _whole(value: Any, what: str, *, low: int) -> int:
    if not _is_whole(value) or value < low:
        raise DatasetError(f"This summary gives {what} as {_shown(value)}, where actviz writes a whole number of {low} or more; {_DAMAGED}.")
    return int(value)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise DatasetError(f"This summary gives {what} as {_kind(value)}, where actviz writes text; {_DAMAGED}.")
    return value


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise DatasetError(f"This summary gives {what} as {_kind(value)}, where actviz writes true or false; {_DAMAGED}.")
    return value


def _list(value: Any, what: str) -> list:
    if not isinstance(value, list):
        raise DatasetError(f"This summary gives {what} as {_kind(value)}, where actviz writes a list; {_DAMAGED}.")
    return value


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    """What a JSON value is, in words."""
    if value is None:
        return "nothing (null)"
    kinds = [(bool, "true or false"), (int, "a whole number"), (float, "a number"), (str, "text"), (list, "a list")]
    return next((words for kind, words in kinds if isinstance(value, kind)), "a table")


def _shown(value: Any) -> str:
    """A JSON value in a few words (a long list or text is not copied into a message)."""
    if isinstance(value, (list, dict)):
        return f"{_kind(value)} of {len(value):,} item{'s' if len(value) != 1 else ''}"
    return repr(_short(value, 40)) if isinstance(value, str) else _short(json.dumps(value), 40)


def _size(count: int) -> str:
    """Bytes in words: "95.4 MB", "12.0 KB"."""
    return f"{count / 1024**2:,.1f} MB" if count >= 1024**2 else f"{count / 1024:,.1f} KB"


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
