"""``actviz concepts``: what the model sees in one class, in concepts (``actviz.concepts``), and the
shortcut finder's findings; writes ``concepts.json``, ``findings.json``, each concept's mean map
(``concept_<n>_map.npy``, and ``.png``) and most typical crops (``concept_<n>_crops.png``), and
each finding's region on a typical image (``finding_<n>.png``). See ``actviz.concepts.result``
for the JSON."""

from __future__ import annotations

import argparse
import sys

from ..errors import ActvizError
from .common import model_options, open_chosen_model, preprocess_option, say


def add(commands) -> None:
    sub = commands.add_parser("concepts", help="what the model sees in one class, in concepts: found, ranked by importance, mapped, and checked for shortcuts")
    model_options(sub)
    images_options(sub)
    sub.add_argument("--concepts", type=int, help="how many concepts (default: chosen by how well they reconstruct the layer, 2 to 12)")
    sub.add_argument("--crops", type=int, default=1024, help="crops factorised at most (default 1024)")
    sub.add_argument("--crops-per-image", type=int, default=8, help="crops cut from each image (default 8)")
    sub.add_argument("--no-mistakes", action="store_true", help="read only the class's images (skip the other classes' images, which show the model's false alarms)")
    run_options(sub)


def images_options(sub: argparse.ArgumentParser) -> None:
    """The data set, the class, the layer and the output folder (shared with ``tcav``)."""
    sub.add_argument("--images", help="a folder of images (one subfolder per class), a .csv list (path[,label]) or a .zip of a folder; default: the bundled demo digits")
    sub.add_argument("--class", dest="class_choice", metavar="CLASS", required=True, help="the class: its number or its name (the model's class names or the data set's class folders)")
    sub.add_argument("--out", required=True, help="folder to write into (created if needed)")
    sub.add_argument("--layer", help="layer name or number (default: concepts: the layer of class activation maps, the last map before global pooling; tcav: the convolution before the last)")
    sub.add_argument("--labels", choices=["folders", "none"], default="folders", help="class labels from subfolder names (default) or none (then the class's images are those the model answers it for)")


def run_options(sub: argparse.ArgumentParser) -> None:
    """How the passes run (shared with ``tcav``)."""
    sub.add_argument("--batch-size", type=int, default=32, help="images per batch (default 32; the model runs in chunks sized to memory)")
    sub.add_argument("--engine", choices=["local", "ray"], default="local", help="run here (default) or on Ray")
    sub.add_argument("--address", help="with --engine ray: the address of an existing Ray cluster (e.g. auto, ray://head:10001)")
    sub.add_argument("--ray-actors", type=int, help="with --engine ray: copies of the model (default: one per node)")
    sub.add_argument("--workers", type=int, help="threads decoding images (default: up to 4)")
    sub.add_argument("--image-size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"), help="for a model that takes any size: the size images are resized to (default 224 224)")
    sub.add_argument("--seed", type=int, default=0, help="seed of the crops, the random sets and the random baseline (default 0)")
    preprocess_option(sub)


def common_settings(args: argparse.Namespace) -> dict:
    """The keyword arguments ``actviz.concepts`` and ``actviz.tcav`` share, from the options."""
    from ..dataset.sources import open_source

    source = open_source(None if args.images in (None, "demo") else args.images, labels=args.labels)  # checked before the model is loaded
    return {"images": source, "class_index": args.class_choice, "layer": args.layer, "preprocessing": args.preprocess,
            "image_size": tuple(args.image_size) if args.image_size else None, "engine": args.engine, "address": args.address,
            "actors": args.ray_actors, "workers": args.workers, "batch_size": args.batch_size, "seed": args.seed}


def progress_bar(what: str):
    """(progress callback, close): a tqdm bar on stderr in model inputs with the time left; says
    "computing ..." before the first batch."""
    from tqdm import tqdm

    print(f"computing {what} ...", file=sys.stderr, flush=True)
    bar = tqdm(total=0, unit="input", desc=what, file=sys.stderr, dynamic_ncols=True, smoothing=0.1, disable=None)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return progress, bar.close


def run(args: argparse.Namespace) -> int:
    from ..concepts.discover import discover_concepts
    from ..draw.export import OutputFolder

    if args.concepts is not None and args.concepts < 1:
        raise ActvizError(f"--concepts must be 1 or more (got {args.concepts}).")
    settings = common_settings(args)
    opened = open_chosen_model(args)
    progress, close = progress_bar("concepts")
    try:
        found = discover_concepts(opened, concepts=args.concepts, max_crops=args.crops, crops_per_image=args.crops_per_image,
                         mistakes=not args.no_mistakes, labels=args.labels, trust=args.trust_model, progress=progress, **settings)
    finally:
        close()
    print("drawing the pictures ...", file=sys.stderr, flush=True)
    with OutputFolder(args.out) as out:
        for name, data in found.files().items():
            out.write(name, data)
    for note in found.notes:
        say(f"note: {note}")
    for line in found.words():
        say(line)
    say(f"concepts.json, findings.json and pictures written to {args.out}")
    return 0
