"""Benchmark: listing an uploaded ZIP of many class folders (``open_zip`` on the bytes of an upload).

    python bench/listing.py                        # 5,000 / 20,000 / 40,000 class folders
    python bench/listing.py --classes 2000 20000   # other sizes

Each archive is built in memory: one folder per class, one tiny PNG in each (the worst case for
listing: as many classes as images; 40,000 of them make a ZIP of about 7 MB, well inside the
upload limits). The time is ``open_zip`` alone: opening the archive, the safety checks, the
listing into classes and labels (building the archive is not timed). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from actviz.dataset.sources import open_zip  # noqa: E402


def tiny_png() -> bytes:
    """A 2x2 grey PNG: 69 bytes or so."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (2, 2), 128).save(buffer, format="PNG")
    return buffer.getvalue()


def archive(classes: int) -> bytes:
    """A ZIP (deflated) of ``classes`` folders ``c00000/`` ..., one ``x.png`` in each."""
    png, buffer = tiny_png(), io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
        for i in range(classes):
            zipped.writestr(f"c{i:05d}/x.png", png)
    return buffer.getvalue()


def measure(classes: int, runs: int) -> tuple[int, int, float]:
    """(entries, archive bytes, best seconds of ``runs``) for ``classes`` one-image folders."""
    data = archive(classes)
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        source = open_zip(data)
        best = min(best, time.perf_counter() - start)
    assert len(source.label_names) == classes and len(source) == classes, "the listing is wrong"
    return classes, len(data), best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[5_000, 20_000, 40_000])
    parser.add_argument("--runs", type=int, default=3, help="runs per size; the best is shown")
    args = parser.parse_args()
    print("| classes | entries | ZIP size | seconds (best of %d) |" % args.runs)
    print("|---:|---:|---:|---:|")
    for classes in args.classes:
        entries, size, seconds = measure(classes, args.runs)
        print(f"| {classes:,} | {entries:,} | {size / 1e6:.1f} MB | {seconds:.3f} |", flush=True)


if __name__ == "__main__":
    main()
