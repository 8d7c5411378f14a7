"""``actviz compare``: one layer for two images, on one scale, and their difference."""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

from ..errors import ActvizError
from ..text import file_name
from .common import model_options, preprocess_option, out_option, say, open_chosen_model, answer, same_size, check_cmap


def add(commands) -> None:
    sub = commands.add_parser("compare", help="one layer for two images: side by side on one scale, and their difference")
    model_options(sub)
    sub.add_argument("--image", nargs=2, required=True, metavar=("FIRST", "SECOND"), help="the two images")
    sub.add_argument("--layer", required=True, help="layer name or number")
    out_option(sub)
    sub.add_argument("--per-row", type=int, default=16)
    sub.add_argument("--cmap", default="viridis")
    preprocess_option(sub)


def run(args: argparse.Namespace) -> int:
    from ..draw.compare import compare_maps
    from ..draw.export import OutputFolder
    from ..draw.grids import png_bytes
    from ..inputs.batch import to_batch
    from ..inputs.images import open_image

    check_cmap(args.cmap)
    images = [open_image(path) for path in args.image]  # both checked before the model loads
    opened = open_chosen_model(args)
    probe = opened.probe
    info = probe.layer(args.layer)
    # one pass for both when the model resizes every image to one size; else one pass each, at its own size
    groups = [images] if same_size(probe) else [[image] for image in images]
    results = [probe.run(to_batch(group, probe, preprocess_as=args.preprocess).inputs, [info.name]) for group in groups]
    maps = [m for r in results for m in r.maps[info.name]]
    predictions = [p for r in results for p in r.predictions[0]]
    if maps[0].shape != maps[1].shape:
        raise ActvizError(f"The two images give feature maps of different sizes at {info.name} ({maps[0].shape} and {maps[1].shape}); use images of the same size.")
    comparison = compare_maps(maps[0], maps[1], per_row=args.per_row, cmap=args.cmap)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["rank", "channel", "difference_in_std"])
    writer.writerows((rank, int(c), f"{comparison.scores[c]:.6g}") for rank, c in enumerate(comparison.ranking, start=1))
    stem = file_name(info.name)
    with OutputFolder(args.out) as out:
        out.write(f"{stem}_first.png", png_bytes(comparison.grid_a))
        out.write(f"{stem}_second.png", png_bytes(comparison.grid_b))
        out.write(f"{stem}_difference.png", png_bytes(comparison.difference))
        out.write("channels.csv", table.getvalue().encode())
    for path, prediction in zip(args.image, predictions):
        say(f"{Path(path).name}: {answer(prediction, opened.class_names)}")
    say(f"{info.name}: both grids on one scale, their difference and the channel ranking written to {args.out}")
    return 0
