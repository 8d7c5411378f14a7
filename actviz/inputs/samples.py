"""Sample images offered with a model: the demo's digits, or an operator's own folder.

An operator deploying their own model sets ``ACTVIZ_SAMPLES`` to a folder of
images (chest X-rays for an X-ray model): those are offered on the first
screen with that model. The demo's digits go only with the demo model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ActvizError

#: Image files offered as samples, by extension.
SAMPLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff")
#: Most samples offered from a folder (the first ones by name).
MAX_SAMPLES = 200


@dataclass(frozen=True)
class Sample:
    """One sample image: its file and the name shown for it ("digit 7", "normal 01")."""

    path: Path
    label: str


def sample_images(folder: str | Path, *, limit: int = MAX_SAMPLES) -> list[Sample]:
    """The images in ``folder`` (not its subfolders), sorted by name, at most ``limit``.

    Raises ``ActvizError`` if the folder does not exist or holds no image.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ActvizError(f"There is no folder of sample images at '{folder}'.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SAMPLE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise ActvizError(f"The folder '{folder}' holds no image ({', '.join(SAMPLE_SUFFIXES)}).")
    return [Sample(path, path.stem.replace("_", " ")) for path in files[:limit]]
