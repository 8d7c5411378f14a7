"""The structure scan: read a model file's structure and configuration without running any of it,
and refuse what could reach outside the file or exhaust memory or time while it is read.

``read_model_file(path, kind=...)`` needs only zipfile, h5py and json, never TensorFlow. It
checks the archive (``.keras``: entry count, names, compression, encryption, sizes, every
entry's checksum, the HDF5 weights inside) or the HDF5 structure (``.h5``: links, datasets,
attributes, each object visited once), then reads the configuration with its size, nesting
depth and number of values capped. It returns a ``FileScan``. This is the code that meets the
raw bytes: a damaged or hostile file can crash or hang h5py here, which is why it runs in a
child process (``child``, started by ``isolation``). What the configuration may name is decided
by the parent (``policy``). Every limit below fails closed: a file that exceeds one is refused,
never read further.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelFileError, UnsafeModelError

#: Largest model accepted: file size, uncompressed archive contents and declared weights, in bytes.
MAX_MODEL_BYTES = 2 * 1024**3
#: Largest configuration (config.json or the HDF5 model_config attribute), in bytes, whatever type h5py returns.
MAX_CONFIG_BYTES = 32 * 1024**2
#: Deepest nesting of lists and objects in a configuration (real ones stay under 40).
MAX_CONFIG_DEPTH = 100
#: Most values (numbers, strings, lists, objects) in a configuration (a 900-layer model has ~100,000).
MAX_CONFIG_VALUES = 2_000_000
#: Most entries in a .keras archive (Keras writes 3, plus asset files for lookup layers).
MAX_ARCHIVE_ENTRIES = 1_000
#: Largest central directory of a .keras archive, in bytes (read before any entry is parsed).
MAX_ARCHIVE_DIRECTORY = 1024**2
#: Most links in an HDF5 file (a 1,000-layer model has about 5,000).
MAX_HDF5_LINKS = 50_000
#: Deepest nesting of HDF5 groups (Keras writes fewer than 20 levels).
MAX_HDF5_DEPTH = 64
#: Most attributes read in an HDF5 file, and the largest one's stored size in bytes.
MAX_HDF5_ATTRIBUTES = 100_000
MAX_ATTRIBUTE_BYTES = 64 * 1024**2
#: Largest HDF5 chunk: reading a dataset allocates one chunk at a time, whatever the dataset's size.
MAX_CHUNK_BYTES = 256 * 1024**2
#: Most stored chunks in one dataset (Keras stores weights contiguously, in one piece).
MAX_CHUNKS = 100_000
#: HDF5 filters h5py reads without plugins: deflate, shuffle, fletcher32, szip, nbit, scale-offset, lzf.
_KNOWN_FILTERS = {1, 2, 3, 4, 5, 6, 32000}

_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_WEIGHTS_MEMBER = "model.weights.h5"


@dataclass
class FileScan:
    """What the structure scan learnt about a model file.

    ``kind``: "keras" or "h5"; ``config``: the parsed model configuration;
    ``keras_version``: the version of Keras that wrote it ("" if not said);
    ``stored_bytes``: bytes of weights the file's datasets declare.
    """

    kind: str
    config: dict
    keras_version: str = ""
    stored_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def keras2(self) -> bool:
        """True for an .h5 file written by Keras 2 (tf.keras / tf_keras)."""
        return self.kind == "h5" and self.keras_version.startswith("2.")

    def to_json(self) -> dict:
        return {"kind": self.kind, "config": self.config, "keras_version": self.keras_version,
                "stored_bytes": self.stored_bytes, "notes": list(self.notes)}

    @classmethod
    def from_json(cls, value: dict) -> "FileScan":
        return cls(kind=str(value["kind"]), config=dict(value["config"]), keras_version=str(value.get("keras_version", "")),
                   stored_bytes=int(value.get("stored_bytes", 0)), notes=[str(n) for n in value.get("notes", [])])


def file_kind(head: bytes, label: str) -> str:
    """'keras' or 'h5' from a file's first bytes; ``ModelFileError`` for anything else."""
    if head.startswith(_ZIP_MAGIC):
        return "keras"
    if head.startswith(_HDF5_MAGIC):
        return "h5"
    if not head:
        raise ModelFileError(f"The model file '{label}' is empty.")
    raise ModelFileError(
        f"'{label}' is not a Keras model file. actviz opens models saved by Keras as .keras or .h5 files."
    )


# --- the structure: archive and HDF5 (no TensorFlow) ----------------------------------


def read_model_file(path: str | Path, *, kind: str, check: bool = True) -> FileScan:
    """Read and check a model file's structure and configuration (zipfile, h5py and json only).

    ``kind``: "keras" or "h5", as ``file_kind`` found it from the same bytes.
    ``check=False`` (a trusted file) reads the configuration only. Any failure a
    damaged file causes becomes ``ModelFileError`` with a sentence.
    """
    path = str(path)
    try:
        if kind == "keras":
            return _read_archive(path, check=check)
        return _read_hdf5(path, check=check)
    except ModelFileError:
        raise
    except RecursionError:  # every walk here is bounded; a deep structure is still refused, not reported as a bug
        raise UnsafeModelError("The model file is nested too deeply to be read safely; refused.") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError, KeyError,
            ValueError, TypeError, UnicodeError, IndexError, AttributeError, struct.error) as exc:
        raise ModelFileError(_damaged(kind, exc)) from None


def _damaged(kind: str, exc: BaseException) -> str:
    """Plain words for what zipfile or h5py raised on a damaged file."""
    if kind == "h5":
        return "The .h5 file is damaged and cannot be read."
    if isinstance(exc, NotImplementedError):  # zipfile: a compression method it does not know
        return "The .keras file is compressed in a way Keras does not write, so it cannot be unpacked."
    if isinstance(exc, RuntimeError) and "encrypt" in str(exc).lower():
        return "The .keras file is encrypted; Keras cannot read it."
    if isinstance(exc, (zipfile.BadZipFile, zlib.error, EOFError)):
        return "The .keras file is damaged: part of the archive cannot be unpacked."
    return "The .keras file is damaged and cannot be read."


def _read_archive(path: str, *, check: bool) -> FileScan:
    _check_directory_size(path)
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        if check:
            _check_members(infos)
        names = [info.filename for info in infos]
        if "config.json" not in names:
            raise ModelFileError("The .keras file has no config.json inside: it was not saved by Keras.")
        info = archive.getinfo("config.json")
        if info.file_size > MAX_CONFIG_BYTES:
            raise UnsafeModelError("The model's configuration inside the .keras file is unreasonably large.")
        with archive.open(info) as member:
            config = parse_config(member.read(MAX_CONFIG_BYTES + 1))
        version = ""
        if "metadata.json" in names and archive.getinfo("metadata.json").file_size < 65536:
            version = _metadata_version(archive.read("metadata.json"))
        stored = _verify_members(archive, infos, Path(path).parent) if check else 0
    return FileScan(kind="keras", config=config, keras_version=version, stored_bytes=stored)


def _check_directory_size(path: str) -> None:
    """Refuse an archive whose central directory is too large, before zipfile parses it entry by entry.

    The end-of-archive record (the last 22 bytes, plus up to 64 KB of comment)
    says how large the directory is; zipfile would parse all of it, however large.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        handle.seek(max(0, size - 65557))
        tail = handle.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise ModelFileError("The .keras file is damaged: it is not a readable archive.")
    entries, directory = struct.unpack("<HI", tail[at + 10:at + 16])
    if entries != 0xFFFF and entries > MAX_ARCHIVE_ENTRIES:
        raise UnsafeModelError(
            f"The .keras archive has {entries:,} entries; Keras writes three. Refused (at most {MAX_ARCHIVE_ENTRIES:,})."
        )
    if directory != 0xFFFFFFFF and directory > MAX_ARCHIVE_DIRECTORY:
        raise UnsafeModelError("The .keras archive's list of entries is unreasonably large; refused.")


def _check_members(infos: list) -> None:
    if len(infos) > MAX_ARCHIVE_ENTRIES:
        raise UnsafeModelError(
            f"The .keras archive has {len(infos):,} entries; Keras writes three. Refused (at most {MAX_ARCHIVE_ENTRIES:,})."
        )
    total, seen = 0, set()
    for info in infos:
        member = info.filename
        if member.startswith(("/", "\\")) or ".." in Path(member.replace("\\", "/")).parts or ":" in member:
            raise UnsafeModelError(
                f"The .keras archive contains an entry '{member}' that points outside the archive; "
                "such files are made to overwrite files on the computer that opens them."
            )
        if member in seen:
            raise UnsafeModelError(f"The .keras archive contains '{member}' twice; refused, since it is unclear which one Keras would read.")
        seen.add(member)
        if info.flag_bits & 0x1:
            raise ModelFileError(f"The .keras archive's entry '{member}' is encrypted; Keras cannot read it.")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ModelFileError(
                f"The .keras archive's entry '{member}' is compressed with a method Keras does not use; the file was not saved by Keras."
            )
        total += info.file_size
    if total > MAX_MODEL_BYTES:
        raise UnsafeModelError(
            f"The .keras archive unpacks to {total / 1e9:.1f} GB, more than actviz opens "
            f"({MAX_MODEL_BYTES / 1e9:.1f} GB)."
        )


def _verify_members(archive: zipfile.ZipFile, infos: list, folder: Path) -> int:
    """Unpack every entry once, checking its checksum; scan the HDF5 weights inside. Returns their declared bytes.

    Keras reads the weights file with h5py, so it gets the same structure scan as
    an .h5 model. It is unpacked into ``folder`` (the caller's private folder) and
    removed again.
    """
    stored = 0
    for info in infos:
        if info.is_dir():
            continue
        if info.filename == _WEIGHTS_MEMBER:
            work = tempfile.mkdtemp(prefix="weights-", dir=folder)
            try:
                target = os.path.join(work, "weights.h5")
                with archive.open(info) as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out, 1024**2)
                import h5py

                with h5py.File(target, "r") as handle:
                    stored = _walk_hdf5(handle, "weights inside the .keras file")
            finally:
                shutil.rmtree(work, ignore_errors=True)
        else:
            with archive.open(info) as source:
                while source.read(1024**2):
                    pass
    return stored


def _metadata_version(raw: bytes) -> str:
    try:
        metadata = json.loads(raw)
    except (ValueError, RecursionError):
        return ""
    version = metadata.get("keras_version") if isinstance(metadata, dict) else None
    return version if isinstance(version, str) else ""


def _read_hdf5(path: str, *, check: bool) -> FileScan:
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError:
        raise ModelFileError("The .h5 file is damaged and cannot be read.") from None
    with handle:
        stored = _walk_hdf5(handle, "the .h5 file") if check else 0
        if "model_config" not in handle.attrs:
            raise ModelFileError(
                "This .h5 file holds weights only, not a model. Save the whole model "
                "(model.save('model.h5') or 'model.keras'), not model.save_weights()."
            )
        if _attribute_bytes(handle, "model_config") > MAX_CONFIG_BYTES:  # a fixed-length string: its size is known before reading
            raise UnsafeModelError("The model's configuration is unreasonably large.")
        config = parse_config(handle.attrs["model_config"])
        version = handle.attrs.get("keras_version", b"")
    version = version.decode("utf-8", "replace") if isinstance(version, bytes) else str(version)
    return FileScan(kind="h5", config=config, keras_version=version[:40], stored_bytes=stored)


def _walk_hdf5(handle: Any, where: str) -> int:
    """Visit every object of an HDF5 file once; refuse links out, outside storage, absurd sizes.

    HDF5's own visitors (H5Lvisit, H5Ovisit) walk the file in C and enter each
    group once, however many hard links lead to it: a group linked into itself,
    or groups hard-linked into each other 2^40 ways, cost one visit each. The
    number of links and the depth are capped while walking (the walk stops at
    the first excess). Every attribute and every weight is read (Keras reads
    them), so that one h5py would crash or hang on does so here, in isolation.
    Returns the bytes the numeric datasets declare.
    """
    import h5py

    links = 0

    def visit_link(name: bytes, info: Any) -> Any:
        nonlocal links
        links += 1
        path = "/" + name.decode("utf-8", "replace")
        if links > MAX_HDF5_LINKS:
            return UnsafeModelError(f"The {where} has more than {MAX_HDF5_LINKS:,} entries; Keras files have far fewer. Refused.")
        if info.type != h5py.h5l.TYPE_HARD:
            kind = "another file" if info.type == h5py.h5l.TYPE_EXTERNAL else "another place in the file"
            return UnsafeModelError(f"The {where} has an entry '{path}' that links to {kind}; actviz does not follow such links.")
        if name.count(b"/") >= MAX_HDF5_DEPTH:
            return UnsafeModelError(f"The {where} nests its groups more than {MAX_HDF5_DEPTH} levels deep; refused.")
        return None

    _raise_if_stopped(handle.id.links.visit(visit_link, info=True))
    counts = {"attributes": _read_attributes(handle, "/", 0), "declared": 0}

    def visit_object(name: bytes, info: Any) -> Any:
        try:
            path = "/" + name.decode("utf-8", "replace")
            if info.type not in (h5py.h5o.TYPE_DATASET, h5py.h5o.TYPE_GROUP):
                return None
            item = handle[name]
            counts["attributes"] += _read_attributes(item, path, counts["attributes"])
            if info.type == h5py.h5o.TYPE_DATASET:
                counts["declared"] += _check_dataset(item, path, where)
                if counts["declared"] > MAX_MODEL_BYTES:
                    return UnsafeModelError(
                        f"The {where} declares {counts['declared'] / 1e9:.1f} GB of weights or more, more than actviz opens "
                        f"({MAX_MODEL_BYTES / 1e9:.1f} GB)."
                    )
        except Exception as exc:  # noqa: BLE001 -- handed back through the C visitor, raised below
            return exc
        return None

    _raise_if_stopped(h5py.h5o.visit(handle.id, visit_object, info=True))
    return counts["declared"]


def _raise_if_stopped(result: Any) -> None:
    """A visitor stops when its callback returns something: here, always the exception to raise."""
    if isinstance(result, BaseException):
        raise result


def _read_attributes(item: Any, path: str, so_far: int) -> int:
    names = list(item.attrs.keys())
    if so_far + len(names) > MAX_HDF5_ATTRIBUTES:
        raise UnsafeModelError("The HDF5 file has an unreasonable number of attributes; refused.")
    for name in names:
        if name in ("model_config", "training_config"):  # read with their own checks (read_config), or never
            continue
        if _attribute_bytes(item, name) > MAX_ATTRIBUTE_BYTES:
            raise UnsafeModelError(f"The HDF5 attribute '{path}' / '{name}' is unreasonably large; refused.")
        item.attrs[name]  # read, so that an attribute h5py would crash on crashes here, isolated
    return len(names)


def _attribute_bytes(item: Any, name: str) -> int:
    """Stored size of an attribute from its shape and type, before reading it (a variable-length
    string counts its 16-byte reference: its text is read, bounded by the reader's memory limit)."""
    attribute = item.attrs.get_id(name)
    return _product(attribute.shape or ()) * attribute.dtype.itemsize


def _check_dataset(item: Any, path: str, where: str) -> int:
    if item.external:
        raise UnsafeModelError(f"The {where} stores '{path}' in an outside file; actviz does not read those.")
    if item.is_virtual:
        raise UnsafeModelError(f"The {where} maps '{path}' onto other files (a virtual dataset); actviz does not read those.")
    plist = item.id.get_create_plist()
    for index in range(plist.get_nfilters()):
        code = plist.get_filter(index)[0]
        if code not in _KNOWN_FILTERS:
            raise UnsafeModelError(f"The {where} stores '{path}' with a compression filter ({code}) that Keras does not use; refused.")
    itemsize = item.dtype.itemsize
    if item.chunks is not None:
        if _product(item.chunks) * itemsize > MAX_CHUNK_BYTES:
            raise UnsafeModelError(f"The {where} stores '{path}' in blocks too large to read safely; refused.")
        if item.id.get_num_chunks() > MAX_CHUNKS:
            raise UnsafeModelError(f"The {where} stores '{path}' in more than {MAX_CHUNKS:,} pieces; Keras never does. Refused.")
    if item.dtype.kind not in "biufc":  # strings and the like: not weights
        return 0
    declared = _product(item.shape or ()) * itemsize
    if declared <= MAX_MODEL_BYTES:
        _read_values(item)
    return declared


def _read_values(item: Any) -> None:
    """Read a dataset's values in slabs of at most 64 MB, so that data h5py would crash or hang
    on (a damaged chunk index, a bad compressed block) does so here, where the reading is isolated."""
    shape = item.shape or ()
    if not shape or 0 in shape:
        item[()]
        return
    row = max(1, _product(shape[1:]) * item.dtype.itemsize)
    step = max(1, (64 * 1024**2) // row)
    for start in range(0, shape[0], step):
        item[start:start + step]


def _product(values: Any) -> int:
    total = 1
    for value in values:
        total *= int(value)
    return total


# --- the configuration -----------------------------------------------------------------


def parse_config(text: Any) -> dict:
    """A model configuration from JSON text (str or bytes, as h5py returns either), bounded.

    The size is checked before parsing, the nesting depth while parsing (Python's
    JSON reader stops at the recursion limit) and after it, with the number of values.
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text)
    elif not isinstance(text, str):
        raise ModelFileError("The model file is damaged: its configuration is not text.")
    if len(text) > MAX_CONFIG_BYTES:
        raise UnsafeModelError("The model's configuration is unreasonably large.")
    try:
        config = json.loads(text)
    except RecursionError:
        raise UnsafeModelError(
            f"The model's configuration is nested more than {MAX_CONFIG_DEPTH} levels deep; real Keras models are not. Refused."
        ) from None
    except (ValueError, TypeError):  # includes UnicodeDecodeError
        raise ModelFileError("The model file is damaged: its configuration is not valid.") from None
    _check_shape(config)
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelFileError("The model file's configuration does not describe a Keras model.")
    return config


def _check_shape(config: Any) -> None:
    """Refuse a parsed configuration nested too deeply or holding too many values (no recursion)."""
    stack, values = [(config, 1)], 0
    while stack:
        node, depth = stack.pop()
        values += 1
        if depth > MAX_CONFIG_DEPTH:
            raise UnsafeModelError(
                f"The model's configuration is nested more than {MAX_CONFIG_DEPTH} levels deep; real Keras models are not. Refused."
            )
        if values > MAX_CONFIG_VALUES:
            raise UnsafeModelError(f"The model's configuration holds more than {MAX_CONFIG_VALUES:,} values; refused.")
        if isinstance(node, dict):
            stack.extend((value, depth + 1) for value in node.values())
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in node)
