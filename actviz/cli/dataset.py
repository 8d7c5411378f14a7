"""``actviz dataset``: one pass over a data set, or a saved summary reopened, and the tables it writes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ActvizError
from .common import ProgressBar, memory_option, model_options, open_chosen_model, precision_option, preprocess_option, say, say_error


def add(commands) -> None:
    sub = commands.add_parser(
        "dataset", help="one pass over a data set: the images that excite each channel most, channels that tell the classes apart, mean heat maps, mistakes",
    )
    model_options(sub)
    sub.add_argument(
        "--images", help="a folder of images (one subfolder per class), a .csv list (path[,label]) or a .zip of a folder; default: the bundled demo "
        "digits. With --summary: the images the summary was made from, to draw its contact sheets (a location written in a summary is never opened)",
    )
    sub.add_argument("--out", help="folder to write into (created if needed)")
    sub.add_argument("--labels", choices=["folders", "none"], default="folders", help="class labels from subfolder names (default) or none")
    sub.add_argument("--top", type=int, default=9, help="images kept per channel (default 9)")
    sub.add_argument("--layers", nargs="+", help="layer names or numbers (default: convolution and pooling layers); 'all' for every layer with an image-like output")
    sub.add_argument("--batch-size", type=int, default=32, help="most images per forward pass (default 32; fewer when --memory holds fewer)")
    sub.add_argument("--gradcam", action="store_true", help="also the mean Grad-CAM heat map per class and per kind of answer (costs a backward pass)")
    sub.add_argument("--cam-layer", help="convolution layer for the heat maps (default: the last one)")
    sub.add_argument("--engine", choices=["local", "ray"], default="local", help="run here (default) or on Ray")
    sub.add_argument("--address", help="with --engine ray: the address of an existing Ray cluster (e.g. auto, ray://head:10001)")
    sub.add_argument("--ray-actors", type=int, help="with --engine ray: copies of the model (default: one per node)")
    sub.add_argument("--resume", action="store_true", help="continue an interrupted run into the same --out folder")
    sub.add_argument("--checkpoint-every", type=float, default=60.0, metavar="SECONDS", help="save the progress so far every this many seconds (default 60; it is saved on Ctrl-C too)")
    sub.add_argument("--channels", type=int, nargs="+", help="channels shown on the contact sheets (default: the most selective, or most active, of each layer)")
    sub.add_argument("--sheet-channels", type=int, default=16, help="channels per contact sheet when --channels is not given (default 16; 0 for no sheets)")
    sub.add_argument("--image-size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"), help="for a model that takes any size: the size images are resized to (default 224 224)")
    sub.add_argument("--workers", type=int, help="threads decoding images (default: up to 4)")
    sub.add_argument("--summary", help="a summary.npz written before: show it (and with --out, write its tables again) without running the model over the images")
    memory_option(sub)
    precision_option(sub)
    preprocess_option(sub)


def run(args: argparse.Namespace) -> int:
    from ..dataset.sources import open_source

    if args.summary:
        return _reopen_summary(args)
    if not args.out:
        raise ActvizError("--out is required: the folder to write the results into.")
    if args.sheet_channels < 0:
        raise ActvizError(f"--sheet-channels must be 0 or more (got {args.sheet_channels}).")
    source = open_source(None if args.images in (None, "demo") else args.images, labels=args.labels)  # checked before any work
    opened = open_chosen_model(args)
    summary = _summarize_with_progress(args, opened, source)
    sheets = _dataset_sheets(args, summary, source, opened.probe)
    _write_dataset(args.out, summary, sheets)
    _dataset_checkpoint(args.out).unlink(missing_ok=True)
    _say_dataset(summary, args.out, sheets=bool(sheets))
    return 0


def _summarize_with_progress(args: argparse.Namespace, opened, source):
    from ..dataset.engine import estimate_seconds, summarize

    checkpoint = _dataset_checkpoint(args.out)
    if checkpoint.exists() and not args.resume:
        say(f"note: the progress of an earlier, unfinished run in {args.out} is not used (add --resume to continue it)")
    elif args.resume and not checkpoint.exists():
        say(f"note: there is no unfinished run in {args.out} to resume; starting from the beginning")
    layers = None if not args.layers else ([info.name for info in opened.probe.spatial_layers] if args.layers == ["all"] else args.layers)
    options = {"layers": layers, "top_k": args.top, "batch_size": args.batch_size, "gradcam": args.gradcam, "cam_layer": args.cam_layer,
               "preprocessing": args.preprocess, "image_size": tuple(args.image_size) if args.image_size else None}
    estimate = estimate_seconds(opened, source, **options) if args.engine == "local" else None
    try:
        with ProgressBar("images", unit="image", total=len(source), estimate=estimate) as progress:
            return summarize(
                opened, source, **options, engine=args.engine, address=args.address, actors=args.ray_actors, workers=args.workers,
                checkpoint=checkpoint, resume=args.resume, checkpoint_seconds=args.checkpoint_every, progress=progress,
            )
    except KeyboardInterrupt:
        if checkpoint.exists():
            say_error(f"progress saved in {args.out}: run the same command with --resume to continue")
        raise


def _dataset_sheets(args: argparse.Namespace, summary, source, probe) -> dict:
    from ..dataset.report import build_sheets

    if not args.channels and args.sheet_channels == 0:
        return {}
    print("drawing the contact sheets ...", file=sys.stderr, flush=True)
    return build_sheets(summary, source, probe, channels=args.channels, count=args.sheet_channels)


def _write_dataset(folder: str, summary, sheets: dict) -> None:
    from ..dataset.report import output_files
    from ..draw.export import OutputFolder

    with OutputFolder(folder) as out:
        for name, data in output_files(summary, sheets=sheets).items():
            out.write(name, data)


def _dataset_checkpoint(folder: str) -> Path:
    """Where an unfinished run keeps its progress: a hidden file inside the output folder."""
    return Path(folder) / ".actviz-dataset-progress.npz"


def _say_dataset(summary, folder: str | None, *, sheets: bool = True) -> None:
    from ..dataset.views import channel_ranking, overview

    facts = overview(summary)
    say(facts["data"])
    for note in facts["notes"]:
        say(f"note: {note}")
    say(facts["text"])
    last = summary.layout.names[-1]
    if summary.labelled:
        best = [row for row in channel_ranking(summary, last, limit=5) if row["selectivity"] is not None]
        if best:
            listed = ", ".join(f"{row['channel']} ({row['selectivity']:.2f}, most for {row['selective_for']})" for row in best)
            say(f"channels of {last} that tell the classes apart best (selectivity): {listed}")
    if folder:
        written = ["summary", "tables"] + (["heat maps"] if summary.layout.cam_layer else []) + (["contact sheets"] if sheets else [])
        say(f"{', '.join(written[:-1])} and {written[-1]} written to {folder}")


def _reopen_summary(args: argparse.Namespace) -> int:
    from ..dataset.sources import DatasetError
    from ..dataset.summary import Summary
    from ..dataset.views import summary_source

    summary = Summary.load(args.summary)
    sheets = {}
    if args.out:
        # the pictures come only from images named here (--images), never from a location written in the file
        source, why = summary_source(summary, args.images) if args.sheet_channels or args.channels else (None, "")
        if why:
            say(f"note: {why}")
        opened = open_chosen_model(args) if source is not None else None
        if opened is not None and opened.loaded.digest != summary.meta.get("model_digest"):
            say("note: --model is not the model this summary was made with, so no contact sheets are drawn")
        elif opened is not None:
            try:
                summary.check_model(opened.probe)
            except DatasetError as exc:  # made with this model, yet its layers disagree with it: draw nothing from it
                say(f"note: {exc} No contact sheets are drawn.")
            else:
                sheets = _dataset_sheets(args, summary, source, opened.probe)
        _write_dataset(args.out, summary, sheets)
    _say_dataset(summary, args.out, sheets=bool(sheets))
    return 0
