"""Where the images of a data set come from: a folder (class labels from its subfolders), a CSV of
``path,label`` or ``path`` rows, a ZIP of such a folder, or the bundled demo digits.

A ``Source`` is a list of image paths (relative to the data set's root, as given), their labels
(or none), and a way to read each one. It holds no pixels: images are read one at a time when a
pass needs them, so a source of 200,000 images costs a few megabytes. It pickles (the Ray engine
ships it to its workers). Files that cannot be used are listed in ``skipped`` with the reason;
problems with the data set as a whole (an empty folder, a CSV naming missing files, a class folder
with no images, an unsafe ZIP) raise one ``DatasetError`` in plain words.

Labels follow ``keras.utils.image_dataset_from_directory``: one subfolder per class, classes in
sorted order, subfolders of a class folder searched too.

Links in a folder: a link to a file inside the folder is read; a link that leads outside it is
skipped (with the reason), and a link to a folder is never entered, so a class folder that is a
link is not a class. Reading checks again (a file may be swapped for a link after the listing).
"""

from __future__ import annotations

import csv
import hashlib
import io
import lzma
import os
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Sequence

import numpy as np

from ..errors import ActvizError, ImageError
from ..inputs.images import fit_image, open_image

#: File name endings read as images (the formats ``open_image`` decodes).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
#: Names that are never data: left by file managers and archivers.
_SYSTEM_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini", "Icon\r"})
#: Largest ZIP archive read (compressed bytes).
MAX_ZIP_BYTES = 2 * 1024**3
#: Largest total of the files in a ZIP once decompressed.
MAX_ZIP_TOTAL = 8 * 1024**3
#: Most entries (files and folders) in a ZIP.
MAX_ZIP_ENTRIES = 250_000
#: Largest single image file (bytes): a bigger entry in a ZIP is skipped.
MAX_IMAGE_BYTES = 100 * 1024**2
#: Deepest folder nesting accepted inside a ZIP.
MAX_ZIP_DEPTH = 32
#: Missing files named in the message about a CSV (the rest are counted).
_SHOWN = 5
#: Why a file found is left out: it cannot be read; a link (in a folder) that is not followed.
_UNREADABLE = "the file cannot be read (no permission)"
OUTSIDE_LINK = "a link to a place outside the data set's folder"
FOLDER_LINK = "a link to another folder of the data set; links to folders are not followed"
BROKEN_LINK = "a link to a file that does not exist"
#: Why a relative path of a CSV list is left out.
OUTSIDE_LIST = "the path leads outside the list's folder (through '..' or a link); write it as an absolute path to read it"

LABEL_MODES = ("folders", "none")


class DatasetError(ActvizError):
    """The data set as a whole cannot be used (empty, missing files, unsafe archive, bad CSV)."""


@dataclass(frozen=True)
class Skipped:
    """A file left out of the pass: its path (as in the data set) and why, in plain words."""

    path: str
    reason: str


@dataclass(frozen=True)
class Source:
    """The images of a data set, by index: ``paths[i]`` (relative to the root, as given) and
    ``labels[i]`` (an index into ``label_names``; -1 = no label), read one at a time by ``read``.

    ``kind``: "folder", "csv", "zip" or "demo"; ``location``: what was opened (a path, "demo",
    or "uploaded ZIP"); ``skipped``: files found but left out while listing; ``notes``: plain
    words about how the data set was read.
    """

    kind: str
    location: str
    paths: tuple[str, ...]
    labels: np.ndarray | None
    label_names: tuple[str, ...] | None
    reader: "_Reader"
    skipped: tuple[Skipped, ...] = ()
    notes: tuple[str, ...] = ()
    stamp: str = field(default="", repr=False)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def labelled(self) -> bool:
        return self.labels is not None and bool((self.labels >= 0).any())

    def read(self, index: int):
        """Image ``index`` decoded (Pillow, RGB or L, upright); ``ImageError`` if it cannot be."""
        try:
            return self.reader.read(self.paths[index])
        except ImageError:
            raise
        except OSError as exc:  # permission denied, a file removed since the listing, a bad ZIP member
            raise ImageError(f"The file cannot be read ({exc.strerror or exc}).") from None

    def decode(self, data: bytes):
        """Image bytes (as read by Ray Data) decoded like ``read`` does."""
        return open_image(data)

    def pixels(self, index: int, image_shape: tuple) -> np.ndarray:
        """Image ``index`` as the model sees it: uint8 (H, W, C) for ``image_shape`` (H, W, C)."""
        return fit_image(self.read(index), image_shape)

    def file_paths(self) -> list[str] | None:
        """Absolute paths of the files, for readers that fetch files themselves (Ray Data);
        None when the images live in an archive or in the package."""
        return self.reader.file_paths(self.paths)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of what the pass reads: kind, paths, labels, file sizes and times (for a cache
        key, and to check that a resumed run continues over the same data)."""
        digest = hashlib.sha256()
        digest.update(f"{self.kind}\0{len(self.paths)}\0{self.stamp}\0".encode())
        for path in self.paths:
            digest.update(path.encode("utf-8", "surrogateescape") + b"\0")
        if self.labels is not None:
            digest.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
            digest.update("\0".join(self.label_names or ()).encode("utf-8", "surrogateescape"))
        return digest.hexdigest()

    def describe(self) -> str:
        """One sentence: how many images, how many classes, from where."""
        count = f"{len(self):,} image{'s' if len(self) != 1 else ''}"
        classes = f" in {len(self.label_names)} classes ({_names(self.label_names)})" if self.labelled and self.label_names else " without labels"
        where = {"demo": "the bundled demo digits", "zip": f"the ZIP archive '{self.location}'",
                 "csv": f"the list '{self.location}'", "folder": f"the folder '{self.location}'"}[self.kind]
        skipped = f"; {len(self.skipped):,} file(s) left out" if self.skipped else ""
        return f"{count}{classes} from {where}{skipped}."

    def spec(self) -> dict:
        """How to open this source again (``open_source(**spec)``), stored in a summary."""
        return {"kind": self.kind, "location": self.location}


# --- readers: picklable, one per kind ------------------------------------------------------


class _Reader:
    def read(self, path: str):  # pragma: no cover - interface
        raise NotImplementedError

    def file_paths(self, paths: Sequence[str]) -> list[str] | None:
        return None


@dataclass(frozen=True)
class _FileReader(_Reader):
    """Files on disk, each path relative to ``base`` (or absolute, from a CSV: ``absolute``).

    A relative path is read only if it still resolves inside ``base`` when read: the file may
    have been swapped for a link to somewhere else since the listing."""

    base: str
    absolute: bool = False

    def read(self, path: str):
        return open_image(self._checked(path))

    def file_paths(self, paths: Sequence[str]) -> list[str] | None:
        """The files' paths; None when one now leads outside ``base``, so that Ray Data does not
        read it itself and each image goes through ``read``, which refuses that one."""
        inside = _Inside(self.base)
        full = [str(self._full(p)) for p in paths]
        if any(not (self.absolute and os.path.isabs(p)) and not inside(f) for p, f in zip(paths, full)):
            return None
        return full

    def _full(self, path: str) -> Path:
        return Path(self.base) / path

    def _checked(self, path: str) -> str:
        """The file's real path (links followed); ``ImageError`` if it leads outside ``base``."""
        full = str(self._full(path))
        if self.absolute and os.path.isabs(path):
            return full  # a CSV may name any file on purpose
        if os.path.isabs(path):
            raise ImageError(f"The path '{path}' is not inside the data set's folder, so it is not read.")
        real = os.path.realpath(full)
        if not _within(real, os.path.realpath(self.base)):
            raise ImageError("The file is a link to a place outside the data set's folder (it may have been replaced since the "
                             "data set was listed), so it is not read.")
        return real


class _ZipReader(_Reader):
    """Members of a ZIP archive (a path, or the bytes of an upload), under ``prefix``. The
    archive is opened once per process, when first read (ZipFile reads are thread-safe).

    ``renamed``: the member's name in the archive for each listed name that differs from it
    (``a/./x.png`` is listed as ``a/x.png``); empty for almost every archive."""

    def __init__(self, archive: str | bytes, prefix: str, renamed: dict[str, str] | None = None):
        self.archive, self.prefix, self.renamed = archive, prefix, dict(renamed or {})
        self._zip: zipfile.ZipFile | None = None

    def __getstate__(self) -> dict:
        return {"archive": self.archive, "prefix": self.prefix, "renamed": self.renamed, "_zip": None}

    def read(self, path: str):
        if self._zip is None:
            self._zip = zipfile.ZipFile(io.BytesIO(self.archive) if isinstance(self.archive, bytes) else self.archive)
        archive = self._zip
        name = self.prefix + path
        info = archive.getinfo(getattr(self, "renamed", {}).get(name, name))
        if info.file_size > MAX_IMAGE_BYTES:
            raise ImageError(f"The file is {info.file_size / 1e6:.0f} MB, more than the {MAX_IMAGE_BYTES / 1e6:.0f} MB allowed for one image.")
        try:
            with archive.open(info) as member:  # never yields more than the declared size
                data = member.read(MAX_IMAGE_BYTES + 1)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, lzma.LZMAError, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
            raise ImageError(f"The file is damaged inside the ZIP archive ({exc}).") from None
        return open_image(data)


@dataclass(frozen=True)
class _DemoReader(_Reader):
    """The bundled held-out digits: path ``digit 3/0042.png`` is digit number 42."""

    def read(self, path: str):
        from PIL import Image

        images, _ = demo_arrays()
        return Image.fromarray(images[int(PurePosixPath(path).stem)], mode="L")


# --- opening a source ----------------------------------------------------------------------


def open_source(location: str | os.PathLike | bytes | None = None, *, labels: str = "folders", kind: str | None = None) -> Source:
    """Open a data set: a folder, a ``.csv`` list, a ``.zip`` archive (a path, or the bytes of an
    upload), or None / "demo" for the bundled demo digits.

    ``labels``: "folders" (one subfolder per class; a folder without subfolders is read
    without labels) or "none" (every image in the folder and its subfolders, no labels).
    ``kind`` forces how ``location`` is read ("folder", "csv", "zip", "demo"), e.g. when a
    summary reopens its source.

    >>> source = open_source("chest_xray/test")       # doctest: +SKIP
    >>> source.describe()                              # doctest: +SKIP
    "624 images in 2 classes (NORMAL, PNEUMONIA) from the folder 'chest_xray/test'."
    """
    if labels not in LABEL_MODES:
        raise DatasetError(f"Labels come from 'folders' or there are 'none'; '{labels}' is not a choice.")
    if location is None or kind == "demo" or (kind is None and isinstance(location, str) and location == "demo"):
        return demo_digits()
    if isinstance(location, (bytes, bytearray, memoryview)):
        return open_zip(bytes(location), labels=labels)
    path = Path(location)
    if kind == "folder" or (kind is None and path.is_dir()):
        return open_folder(path, labels=labels)
    if not path.exists():
        raise DatasetError(f"There is no folder or file at '{path}'. Give a folder of images, a .csv list of images or a .zip archive.")
    if kind == "csv" or (kind is None and path.suffix.lower() == ".csv"):
        return open_csv(path)
    if kind == "zip" or (kind is None and path.suffix.lower() == ".zip"):
        return open_zip(path, labels=labels)
    raise DatasetError(
        f"'{path.name}' is not a folder, a .csv list or a .zip archive. Give a folder of images "
        "(one subfolder per class), a .csv file with a 'path' column (and a 'label' column), or a .zip of such a folder."
    )


def open_folder(root: str | os.PathLike, *, labels: str = "folders") -> Source:
    """A folder of images: class labels from its subfolders (``labels="folders"``) or none.

    Links are not followed out of ``root`` nor into folders (see the module's notes): they are
    listed in ``skipped`` with the reason, and a class folder that is a link is not a class."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"There is no folder at '{root}'.")
    walk = _walk(root)
    notes = [_linked_classes_note(walk.linked_tops)] if walk.linked_tops else []
    try:
        listing = _Listing.of(walk.files, walk.folders, labels=labels, where=f"the folder '{root}'")
    except DatasetError as exc:
        if not walk.linked_tops:
            raise
        raise DatasetError(f"{exc} {notes[0]}") from None
    listed = set(listing.paths)  # a file that is not an image is already skipped as such
    blocked = [Skipped(p, reason) for p, reason in walk.blocked.items() if p in listed]
    skipped = sorted(blocked + walk.folder_links, key=lambda row: row.path)
    keep = [i for i, p in enumerate(listing.paths) if p not in walk.blocked]
    return Source(
        kind="folder", location=str(root), paths=tuple(listing.paths[i] for i in keep),
        labels=None if listing.labels is None else listing.labels[keep], label_names=listing.names,
        reader=_FileReader(str(root)), skipped=tuple(listing.skipped + skipped), notes=tuple(listing.notes + notes),
        stamp=_stamp(root, [listing.paths[i] for i in keep]),
    )


def open_csv(path: str | os.PathLike) -> Source:
    """A CSV list of images: a ``path`` column (relative to the CSV's folder, or absolute) and an
    optional ``label`` column; a file without a header row is read as ``path[,label]``.

    An absolute path is read wherever it is (the list's author named it on purpose); a relative
    path must stay inside the CSV's folder once links are followed, else it is skipped."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"The list '{path}' cannot be read as a text file ({exc}).") from None
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows:
        raise DatasetError(f"The list '{path}' is empty. It needs one image path a line (a 'path' column, and a 'label' column for labels).")
    header = [cell.strip().lower() for cell in rows[0]]
    if "path" in header:
        at, label_at = header.index("path"), (header.index("label") if "label" in header else None)
        rows = rows[1:]
    else:
        at, label_at = 0, (1 if max(len(r) for r in rows) > 1 else None)
    entries = [(row[at].strip(), row[label_at].strip() if label_at is not None and label_at < len(row) else "") for row in rows if at < len(row) and row[at].strip()]
    if not entries:
        raise DatasetError(f"The list '{path}' names no images.")
    base = path.parent
    missing = [p for p, _ in entries if not (base / p).is_file()]
    if missing:
        shown = ", ".join(f"'{m}'" for m in missing[:_SHOWN]) + (f" and {len(missing) - _SHOWN:,} more" if len(missing) > _SHOWN else "")
        raise DatasetError(
            f"The list '{path.name}' names {len(missing):,} file(s) that do not exist: {shown}. Paths are read relative to "
            f"the folder of the list ('{base}'). Correct the list or the paths, then run again."
        )
    paths = tuple(p for p, _ in entries)
    texts = [label for _, label in entries]
    names = tuple(sorted({t for t in texts if t})) or None
    number = {name: i for i, name in enumerate(names or ())}  # a dict, not names.index: linear in rows
    labels = None if names is None else np.array([number[t] if t else -1 for t in texts], dtype=np.int64)
    blocked = _blocked_rows(base, paths)
    notes = [] if names else ["The list has no labels: accuracy and per-class results are left out."]
    keep = [i for i, p in enumerate(paths) if p not in blocked]
    return Source(
        kind="csv", location=str(path), paths=tuple(paths[i] for i in keep), labels=None if labels is None else labels[keep],
        label_names=names, reader=_FileReader(str(base), absolute=True), skipped=tuple(Skipped(p, r) for p, r in blocked.items()),
        notes=tuple(notes), stamp=_stamp(base, [paths[i] for i in keep]),
    )


def _blocked_rows(base: Path, paths: Sequence[str]) -> dict[str, str]:
    """The rows of a CSV that are not read, path -> why: a relative path that leads outside
    ``base`` (``..`` or a link), a file that cannot be read."""
    inside, blocked = _Inside(base), {}
    for p in paths:
        if not os.path.isabs(p) and not inside(base / p):
            blocked[p] = OUTSIDE_LIST
        elif not os.access(base / p, os.R_OK):
            blocked[p] = _UNREADABLE
    return blocked


def open_zip(
    archive: str | os.PathLike | bytes, *, labels: str = "folders", max_bytes: int = MAX_ZIP_BYTES,
    max_total: int = MAX_ZIP_TOTAL, max_entries: int = MAX_ZIP_ENTRIES,
) -> Source:
    """A ZIP archive of a folder of images (a path, or the bytes of an upload), read in place.

    Refused whole (``DatasetError``) when the archive is larger than ``max_bytes``, would
    decompress to more than ``max_total`` bytes, has more than ``max_entries`` entries, has an
    entry whose name leaves the archive's folder (``..``, an absolute path, a drive) or is a
    link, or nests folders more than ``MAX_ZIP_DEPTH`` deep. A single top folder (``test/...``)
    is stepped into; ``__MACOSX`` and hidden files are ignored. Names are read with ``.`` and
    empty parts left out (``a/./x.png`` and ``a//x.png`` are ``a/x.png``); two entries with the
    same name so read are refused.
    """
    data = archive if isinstance(archive, bytes) else None
    where = "the uploaded ZIP archive" if data is not None else f"the ZIP archive '{Path(archive).name}'"
    size = len(data) if data is not None else Path(archive).stat().st_size
    if size > max_bytes:
        raise DatasetError(f"{where[0].upper() + where[1:]} is {size / 1e9:.1f} GB, more than the {max_bytes / 1e9:.1f} GB allowed. Use a smaller archive or a folder.")
    try:
        opened = zipfile.ZipFile(io.BytesIO(data) if data is not None else archive)
        infos = opened.infolist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DatasetError(f"{where[0].upper() + where[1:]} is not a ZIP file that can be read ({exc}).") from None
    members = _check_zip(infos, where=where, max_total=max_total, max_entries=max_entries)
    prefix = _common_folder(list(members))
    inner = [name[len(prefix):] for name in members]
    folders = {top for top in map(_top_folder, inner) if top is not None}
    listing = _Listing.of(inner, folders, labels=labels, where=where)
    too_big = {name[len(prefix):] for name, info in members.items() if info.file_size > MAX_IMAGE_BYTES}
    renamed = {name: info.filename for name, info in members.items() if name != info.filename}
    keep = [i for i, p in enumerate(listing.paths) if p not in too_big]
    skipped = [Skipped(p, f"the file is larger than {MAX_IMAGE_BYTES / 1e6:.0f} MB") for p in listing.paths if p in too_big]
    location = "uploaded ZIP" if data is not None else str(archive)
    stamp = hashlib.sha256(data).hexdigest() if data is not None else _stamp(Path(archive).parent, [Path(archive).name])
    return Source(
        kind="zip", location=location, paths=tuple(listing.paths[i] for i in keep),
        labels=None if listing.labels is None else listing.labels[keep], label_names=listing.names,
        reader=_ZipReader(data if data is not None else str(archive), prefix, renamed), skipped=tuple(listing.skipped + skipped),
        notes=tuple(listing.notes), stamp=stamp,
    )


@lru_cache(maxsize=1)
def demo_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The bundled held-out digits: uint8 (1000, 28, 28) and their labels uint8 (1000,)."""
    from ..demo import HERE

    with np.load(HERE / "digits.npz", allow_pickle=False) as stored:
        return stored["images"], stored["labels"]


def demo_digits() -> Source:
    """The 1,000 handwritten digits held out from the demo model's training, labelled 0-9.

    Paths read ``digit 3/0042.png``: the class, then the digit's number in the held-out set.
    """
    from ..demo import class_names

    _, labels = demo_arrays()
    names = tuple(class_names())
    paths = tuple(f"{names[int(label)]}/{i:04d}.png" for i, label in enumerate(labels))
    return Source(
        kind="demo", location="demo", paths=paths, labels=labels.astype(np.int64), label_names=names,
        reader=_DemoReader(), notes=("The demo digits: 1,000 MNIST digits the demo model never saw in training.",),
        stamp="demo-digits-v1",
    )


# --- listing: shared by folders and ZIP archives ---------------------------------------------


@dataclass
class _Listing:
    paths: list[str]
    labels: np.ndarray | None
    names: tuple[str, ...] | None
    skipped: list[Skipped]
    notes: list[str]

    @classmethod
    def of(cls, files: list[str], folders: set[str], *, labels: str, where: str) -> "_Listing":
        """Images, labels and skipped files from relative paths ``files`` (posix) and the
        top-level ``folders`` (empty ones too, to report a class with no images)."""
        files = sorted(files)
        images = [f for f in files if _is_image_name(f)]
        skipped = [Skipped(f, f"not an image file ({PurePosixPath(f).suffix or 'no extension'})") for f in files if not _is_image_name(f)]
        notes: list[str] = []
        if not images:
            raise DatasetError(
                f"There are no images in {where}. actviz reads JPEG, PNG, BMP, GIF, WebP and TIFF files "
                + (f"(found {len(files):,} other file(s))." if files else "(it is empty).")
            )
        classes = sorted(folders) if labels == "folders" else []
        if not classes or all("/" not in f for f in images):
            if labels == "folders":
                notes.append("There are no class subfolders, so the images are read without labels: accuracy and per-class results are left out.")
            return cls(images, None, None, skipped, notes)
        by_class: dict[str, list[str]] = {name: [] for name in classes}
        loose = []
        for f in images:  # one pass, in sorted order: each class keeps its images sorted
            top = _top_folder(f)
            if top is None:
                loose.append(f)
            elif top in by_class:
                by_class[top].append(f)
        empty = [name for name, found in by_class.items() if not found]
        if empty:
            raise DatasetError(
                f"The class folder{'s' if len(empty) > 1 else ''} {', '.join(repr(e) for e in empty)} in {where} "
                f"{'have' if len(empty) > 1 else 'has'} no images. Every subfolder is read as a class; add its images or remove it."
            )
        skipped += [Skipped(f, "not inside a class folder") for f in loose]
        paths = [f for name in classes for f in by_class[name]]
        label_of = np.array([i for i, name in enumerate(classes) for _ in by_class[name]], dtype=np.int64)
        return cls(paths, label_of, tuple(classes), skipped, notes)


def _top_folder(path: str) -> str | None:
    """The first folder of a relative posix path (its class), or None for a file at the top."""
    top, slash, _ = path.partition("/")
    return top if slash else None


@dataclass
class _Walk:
    """What a folder holds: ``files`` (relative posix paths; links to files too), the top-level
    ``folders``, ``blocked`` files (path -> why it is not read), ``folder_links`` (never entered)
    and ``linked_tops``, the top-level folders among them (would-be classes)."""

    files: list[str] = field(default_factory=list)
    folders: set[str] = field(default_factory=set)
    blocked: dict[str, str] = field(default_factory=dict)
    folder_links: list[Skipped] = field(default_factory=list)
    linked_tops: list[str] = field(default_factory=list)


def _walk(root: Path) -> _Walk:
    """Every entry under ``root`` once, folders in sorted order, links never entered. One
    ``scandir`` a folder: whether an entry is a link or a folder comes with it, no extra call."""
    walk, real_root = _Walk(), os.path.realpath(root)
    stack = [(str(root), "")]
    while stack:
        current, prefix = stack.pop()
        try:
            with os.scandir(current) as found:
                entries = sorted(found, key=lambda entry: entry.name)
        except OSError:  # a folder that cannot be listed is left out, as os.walk leaves it out
            continue
        below = []
        for entry in entries:
            if _ignored(entry.name):
                continue
            path = prefix + entry.name
            if entry.is_symlink():
                _add_link(walk, entry.path, path, real_root, top=not prefix)
            elif entry.is_dir(follow_symlinks=False):
                below.append((entry.path, path + "/"))
                if not prefix:
                    walk.folders.add(entry.name)
            else:
                walk.files.append(path)
                if not os.access(entry.path, os.R_OK):
                    walk.blocked[path] = _UNREADABLE
        stack.extend(reversed(below))
    return walk


def _add_link(walk: _Walk, full: str, path: str, real_root: str, *, top: bool) -> None:
    """A link found at ``full`` (``path`` in the data set): a link to a folder is never entered;
    a link to a file is listed, and blocked unless it resolves to a readable file in the root."""
    target = os.path.realpath(full)
    inside = _within(target, real_root)
    if os.path.isdir(target):
        walk.folder_links.append(Skipped(path, FOLDER_LINK if inside else OUTSIDE_LINK))
        if top:
            walk.linked_tops.append(path)
        return
    walk.files.append(path)
    if not inside:
        walk.blocked[path] = OUTSIDE_LINK
    elif not os.path.exists(target):
        walk.blocked[path] = BROKEN_LINK
    elif not os.access(target, os.R_OK):
        walk.blocked[path] = _UNREADABLE


def _linked_classes_note(names: Sequence[str]) -> str:
    """Why top-level folders that are links (would-be classes) are not read, in words."""
    many = len(names) > 1
    return (
        f"The folder{'s' if many else ''} {', '.join(repr(n) for n in names)} {'are links' if many else 'is a link'} to "
        f"{'other folders' if many else 'another folder'}, so {'they are' if many else 'it is'} not read (links to folders "
        f"are not followed): copy the images in, or give actviz the folder the link{'s' if many else ''} point{'' if many else 's'} to."
    )


class _Inside:
    """Whether files resolve (links followed) inside ``root``. Each folder's real path is found
    once, so a long list costs about one system call a file, not one a folder level."""

    def __init__(self, root: str | os.PathLike):
        self.root = os.path.realpath(root)
        self._folders: dict[str, str] = {}

    def __call__(self, full: str | os.PathLike) -> bool:
        folder, name = os.path.split(os.fspath(full))
        real_folder = self._folders.get(folder)
        if real_folder is None:
            real_folder = self._folders[folder] = os.path.realpath(folder)
        joined = os.path.join(real_folder, name)
        real = os.path.realpath(joined) if name in ("", ".", "..") or os.path.islink(joined) else joined
        return _within(real, self.root)


def _within(real: str, root: str) -> bool:
    """``real`` is ``root`` or below it (both real, absolute paths)."""
    return real == root or real.startswith(root if root.endswith(os.sep) else root + os.sep)


def _check_zip(infos: list[zipfile.ZipInfo], *, where: str, max_total: int, max_entries: int) -> dict[str, zipfile.ZipInfo]:
    """The files in a ZIP, by name with ``.`` and empty parts left out (``a/./x.png`` is
    ``a/x.png``), in the archive's order, after refusing an archive unsafe to read as a whole."""
    where = where[0].upper() + where[1:]
    if len(infos) > max_entries:
        raise DatasetError(f"{where} has {len(infos):,} entries, more than the {max_entries:,} allowed.")
    total = sum(info.file_size for info in infos)
    if total > max_total:
        raise DatasetError(f"{where} would take {total / 1e9:.1f} GB once decompressed, more than the {max_total / 1e9:.1f} GB allowed.")
    files: dict[str, zipfile.ZipInfo] = {}
    twice = False
    for info in infos:
        name = info.filename
        parts = PurePosixPath(name).parts  # PurePosixPath drops "." and empty parts, keeps ".."
        if name.startswith(("/", "\\")) or "\\" in name or ".." in parts or (parts and ":" in parts[0]) or "\0" in name:
            raise DatasetError(f"{where} contains an entry that points outside its folder ('{name}'); it is refused as unsafe.")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise DatasetError(f"{where} contains a link ('{name}'); archives with links are refused as unsafe.")
        if len(parts) > MAX_ZIP_DEPTH:
            raise DatasetError(f"{where} nests folders more than {MAX_ZIP_DEPTH} deep ('{name[:120]}...'); it is refused.")
        if info.is_dir() or not parts or any(_ignored(part) for part in parts):
            continue
        plain = "/".join(parts)
        twice = twice or plain in files
        files[plain] = info
    if twice:
        raise DatasetError(f"{where} holds the same file name twice; it cannot be read unambiguously.")
    return files


def _common_folder(files: list[str]) -> str:
    """The folder every file is in (``test/``, ``data/test/``), stepped into as the root."""
    prefix = ""
    while files:
        tops = {name[len(prefix):].split("/", 1)[0] for name in files}
        if len(tops) != 1 or all("/" not in name[len(prefix):] for name in files):
            return prefix
        top = next(iter(tops))
        if any(name[len(prefix):] == top for name in files):  # a file named like the folder
            return prefix
        prefix += top + "/"
    return prefix


def _stamp(base: Path, paths: Sequence[str]) -> str:
    """Sizes and modification times of the files (changes between a run and its resume)."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            info = os.stat(base / path)
            digest.update(f"{info.st_size}:{info.st_mtime_ns};".encode())
        except OSError:
            digest.update(b"?;")
    return digest.hexdigest()


def _ignored(name: str) -> bool:
    return name.startswith(".") or name in _SYSTEM_NAMES


def _is_image_name(path: str) -> bool:
    return PurePosixPath(path).suffix.lower() in IMAGE_EXTENSIONS


def _names(names: Sequence[str], limit: int = 6) -> str:
    shown = list(names[:limit])
    return ", ".join(shown) + (f", ... ({len(names)} in all)" if len(names) > limit else "")
