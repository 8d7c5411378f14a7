"""What ``export`` writes for an image, as file name -> bytes, and writing such a set of files
so that it either all lands or none of it does.

The layers' grids are drawn and encoded on as many threads as the machine has cores (NumPy and
Pillow's zlib let go of Python's lock while they work), largest layers first so that no core
waits on the last big one at the end.
"""

from __future__ import annotations

import io
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import ActvizError
from ..core.probe import Probe
from .grids import feature_grid, png_bytes
from .stats import channel_moments, layer_stats, stats_csv
from ..text import file_name, unique_names


def grid_file_names(probe: Probe, names: Sequence[str]) -> dict[str, str]:
    """Layer name -> PNG file name (``003_block1_conv1.png``): numbered, capped in length, unique."""
    wanted = [f"{probe.layer(name).index:03d}_{file_name(name)}.png" for name in names]
    return dict(zip(names, unique_names(wanted)))


def export_bundle(
    probe: Probe, batch: np.ndarray, names: Sequence[str], *, per_row: int = 16, cmap: str = "viridis",
    contrast: str = "channel", gap: int = 1, npz: bool = False,
) -> tuple[dict[str, bytes], np.ndarray]:
    """Everything ``export`` writes for one image: file name -> bytes (one full-resolution PNG
    grid per layer, ``stats.csv`` and, with ``npz``, ``activations.npz``), and the model's
    first output for the image. ``batch``: float32 (1, H, W, C). One forward pass."""
    result = probe.run(batch, names)
    maps = {name: activation[0] for name, activation in result.maps.items()}
    png_names = grid_file_names(probe, list(maps))

    def draw(name: str) -> tuple[bytes, object]:
        moments = channel_moments(maps[name])  # one summary for both the grid and the statistics
        grid = feature_grid(maps[name], per_row=per_row, cmap=cmap, contrast=contrast, gap=gap, moments=moments)
        return png_bytes(grid), layer_stats(name, maps[name], moments=moments)

    largest_first = sorted(maps, key=lambda name: -maps[name].size)
    with ThreadPoolExecutor(max_workers=max(1, min(len(maps), os.cpu_count() or 1))) as pool:
        drawn = dict(zip(largest_first, pool.map(draw, largest_first)))
    files = {png_names[name]: drawn[name][0] for name in maps}
    files["stats.csv"] = stats_csv([drawn[name][1] for name in maps]).encode()
    if npz:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **maps)  # keyed by layer name: np.load(...)["block1_conv1"]
        files["activations.npz"] = buffer.getvalue()
    return files, result.predictions[0][0]


def zip_bytes(files: Mapping[str, bytes]) -> bytes:
    """A ZIP archive of ``files`` (stored, not deflated: PNGs are compressed already)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


class OutputFolder:
    """Files written into a folder the user chose: all of them land, or none does.

    Each ``write`` goes to a hidden partial file at once (memory stays bounded);
    leaving the ``with`` block normally renames them all into place, leaving it
    by an error (or Ctrl-C) removes them, and any folder this export made.
    Files already in the folder are never touched, except those replaced by
    name on success.

    >>> with OutputFolder("grids") as out:      # doctest: +SKIP
    ...     out.write("stats.csv", b"layer,...")
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._pending: list[tuple[Path, Path]] = []
        self._made: list[Path] = []

    def __enter__(self) -> "OutputFolder":
        self._mkdir(self.folder)
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.commit()
        else:
            self.rollback()

    def write(self, name: str, data: bytes) -> Path:
        """Write ``data`` as ``name`` (may contain ``/`` for a subfolder) inside the folder."""
        target = (self.folder / name)
        if ".." in Path(name).parts or Path(name).is_absolute():
            raise ActvizError(f"Refused to write '{name}': it is outside the folder '{self.folder}'.")
        self._mkdir(target.parent)
        if target.is_dir():
            raise ActvizError(f"Cannot write '{target}': a folder of that name is in the way.")
        partial = target.with_name(f".{target.name}.actviz-partial")
        try:
            partial.write_bytes(data)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise ActvizError(f"Could not write '{target}': {exc.strerror or exc}.") from None
        self._pending.append((partial, target))
        return target

    def commit(self) -> list[Path]:
        """Move every written file into place; on failure, undo all of it and raise ``ActvizError``.

        A file of the same name already there is set aside first and put back
        if anything fails, so a failed export loses nothing.
        """
        placed: list[tuple[Path, Path | None]] = []
        try:
            for partial, target in self._pending:
                backup = None
                if target.exists() or target.is_symlink():
                    backup = target.with_name(f".{target.name}.actviz-previous")
                    os.replace(target, backup)
                placed.append((target, backup))
                os.replace(partial, target)
        except OSError as exc:
            for target, backup in reversed(placed):
                if target.is_file() and not target.is_symlink():
                    target.unlink(missing_ok=True)
                if backup is not None:
                    os.replace(backup, target)
            self.rollback()
            raise ActvizError(f"Could not write into '{self.folder}': {exc.strerror or exc}. Nothing was changed.") from None
        for _, backup in placed:
            if backup is not None:
                backup.unlink(missing_ok=True)
        self._pending = []
        return [target for target, _ in placed]

    def rollback(self) -> None:
        """Remove every partial file and every folder this export made."""
        for partial, _ in self._pending:
            partial.unlink(missing_ok=True)
        self._pending = []
        for folder in reversed(self._made):
            try:
                folder.rmdir()
            except OSError:
                pass
        self._made = []

    def _mkdir(self, folder: Path) -> None:
        missing = []
        path = folder
        while not path.exists():
            missing.append(path)
            path = path.parent
        try:
            for path in reversed(missing):
                path.mkdir()
                self._made.append(path)
        except OSError as exc:
            raise ActvizError(f"Could not make the folder '{folder}': {exc.strerror or exc}.") from None
