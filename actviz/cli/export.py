"""``actviz export``: feature-map grids, statistics and activations for images, written all or nothing."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ActvizError
from .common import (
    answer, check_cmap, image_folders, model_options, open_chosen_model, out_option, precision_option, preprocess_option, say, select_layers,
)


def add(commands) -> None:
    from ..draw.grids import CONTRASTS

    sub = commands.add_parser("export", help="write feature-map grids, statistics and activations for images")
    model_options(sub)
    sub.add_argument("--image", nargs="+", required=True, help="one or more image files")
    out_option(sub)
    sub.add_argument("--layers", nargs="+", help="layer names or numbers (default: convolution and pooling layers); 'all' for every layer with an image-like output")
    sub.add_argument("--per-row", type=int, default=16, help="channels per grid row (default 16, as in the notebook)")
    sub.add_argument("--cmap", default="viridis", help="matplotlib colour map (default viridis)")
    sub.add_argument("--contrast", choices=sorted(CONTRASTS), default="channel", help="stretch each channel on its own (default) or share one scale across the layer")
    sub.add_argument("--gap", type=int, default=1, help="pixels between tiles (default 1; 0 for none)")
    preprocess_option(sub)
    precision_option(sub)
    sub.add_argument("--npz", action="store_true", help="also write the raw activations as activations.npz")


def run(args: argparse.Namespace) -> int:
    from ..draw.export import OutputFolder, export_bundle
    from ..inputs.batch import to_batch
    from ..inputs.images import open_image

    if args.per_row < 1:
        raise ActvizError(f"--per-row must be at least 1 (got {args.per_row}).")
    if not 0 <= args.gap <= 16:
        raise ActvizError(f"--gap must be between 0 and 16 pixels (got {args.gap}).")
    check_cmap(args.cmap)
    images = [(Path(path), open_image(path)) for path in args.image]  # all checked before the model loads
    opened = open_chosen_model(args)
    probe = opened.probe
    names = [info.name for info in select_layers(probe, args.layers)]
    folders = image_folders([path for path, _ in images])
    lines = []
    with OutputFolder(args.out) as out:
        for number, ((path, image), folder) in enumerate(zip(images, folders)):
            batch = to_batch(image, probe, preprocess_as=args.preprocess)  # one image at a time: any-size models take each at its own size
            if number == 0:
                say(batch.preprocessing.note)  # the same for every image of one model
            files, prediction = export_bundle(probe, batch.inputs, names, per_row=args.per_row, cmap=args.cmap, contrast=args.contrast, npz=args.npz, gap=args.gap)
            for name, data in files.items():
                out.write(f"{folder}/{name}" if folder else name, data)
            lines.append(f"{path.name}: {answer(prediction, opened.class_names)}; {len(names)} grids written to {Path(args.out) / folder}")
    for line in lines:
        say(line)
    return 0
