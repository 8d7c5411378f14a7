"""The command line: ``actviz`` or ``python -m actviz`` followed by a command (``layers``,
``export``, ``gradcam``, ``filters``, ``compare``, ``explain``, ``dataset``).

A thin front end over the package. Every mistake a user can make ends with
exit status 2 and one line on stderr starting with ``error:``; anything else
is a bug, logged with its traceback (shown with ``--debug``) and exit status 1.
Whatever a command writes lands whole in the folder given by ``--out``, or not
at all.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Callable, Sequence

from .errors import ActvizError
from .text import file_name, shorten, terminal_text

EXIT_USAGE = 2
log = logging.getLogger("actviz")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, as for every other mistake
        self.exit(EXIT_USAGE, f"error: {message} (see '{self.prog} --help')\n")


# --- options shared by several commands -------------------------------------------------


def _model_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--model", help="a .keras or .h5 model file (default: the bundled demo model)")
    sub.add_argument("--trust-model", action="store_true", help="load a file you trust without the safety checks (it may run code)")
    sub.add_argument("--classes", help="class names in order, separated by commas (e.g. 'normal, pneumonia'); default: ACTVIZ_CLASSES")


def _preprocess_option(sub: argparse.ArgumentParser) -> None:
    from .preprocessing import CHOICES

    sub.add_argument("--preprocess", choices=CHOICES, default="auto", help="pixel scaling (default auto: /255 unless the model scales its input itself)")


def _out_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--out", required=True, help="folder to write into (created if needed)")


def _add_layers(commands) -> None:
    sub = commands.add_parser("layers", help="list the model's layers and which can be shown")
    _model_options(sub)


def _add_export(commands) -> None:
    from .render import CONTRASTS

    sub = commands.add_parser("export", help="write feature-map grids, statistics and activations for images")
    _model_options(sub)
    sub.add_argument("--image", nargs="+", required=True, help="one or more image files")
    _out_option(sub)
    sub.add_argument("--layers", nargs="+", help="layer names or numbers (default: convolution and pooling layers); 'all' for every layer with an image-like output")
    sub.add_argument("--per-row", type=int, default=16, help="channels per grid row (default 16, as in the notebook)")
    sub.add_argument("--cmap", default="viridis", help="matplotlib colour map (default viridis)")
    sub.add_argument("--contrast", choices=sorted(CONTRASTS), default="channel", help="stretch each channel on its own (default) or share one scale across the layer")
    sub.add_argument("--gap", type=int, default=1, help="pixels between tiles (default 1; 0 for none)")
    _preprocess_option(sub)
    sub.add_argument("--npz", action="store_true", help="also write the raw activations as activations.npz")


def _add_gradcam(commands) -> None:
    from .explain import METHODS

    sub = commands.add_parser("gradcam", help="where in the image the model found evidence for a class (Grad-CAM)")
    _model_options(sub)
    sub.add_argument("--image", required=True, help="an image file")
    _out_option(sub)
    sub.add_argument("--layer", help="convolution layer (default: the last one)")
    sub.add_argument("--class", dest="class_index", type=int, help="class number (default: the predicted class)")
    sub.add_argument("--method", choices=list(METHODS), default="gradcam")
    sub.add_argument("--opacity", type=float, default=0.45, help="heatmap opacity over the image, 0..1 (default 0.45)")
    _preprocess_option(sub)


def _add_explain(commands) -> None:
    from .methods import METHOD_INFO

    sub = commands.add_parser(
        "explain", help=f"why the model gave a class, by any of {len(METHOD_INFO)} methods, with checks that say whether to trust the map",
        description="Methods: " + "; ".join(f"{name} ({info.title})" for name, info in METHOD_INFO.items()) + ".",
    )
    _model_options(sub)
    sub.add_argument("--image", required=True, help="an image file")
    _out_option(sub)
    sub.add_argument("--method", required=True, metavar="NAME", help="one of: " + ", ".join(METHOD_INFO))
    sub.add_argument("--class", dest="class_index", type=int, help="class number (default: the predicted class)")
    sub.add_argument("--layer", help="convolution layer of a class activation map (default: the last one)")
    sub.add_argument("--checks", action="store_true", help="also run the checks (deletion/insertion, model randomisation, completeness) and write checks.json")
    sub.add_argument("--channels", type=int, help="scorecam: only the N channels whose maps vary most (Faster Score-CAM)")
    sub.add_argument("--samples", type=int, help="smoothgrad: noisy copies of the image (default 20)")
    sub.add_argument("--noise", type=float, help="smoothgrad: the noise's spread, as a share of the image's range (default 0.2)")
    sub.add_argument("--steps", type=int, help="integrated-gradients: points on the path (default 50)")
    sub.add_argument("--baseline", help="integrated-gradients: the image the path starts from: black (default), blur or noise")
    sub.add_argument("--patch", type=int, help="occlusion: side of the hidden square in pixels (default: an eighth of the image)")
    sub.add_argument("--stride", type=int, help="occlusion: pixels between patches (default: the patch)")
    sub.add_argument("--fill", help="occlusion: what hides a patch: black (default), mean, blur, or a number")
    sub.add_argument("--curve-steps", type=int, default=32, help="checks: steps of the deletion and insertion curves (default 32)")
    sub.add_argument("--depths", type=int, help="checks: randomise only the top N layers (default: all)")
    sub.add_argument("--seed", type=int, default=0, help="seed of the noise and of the random weights (default 0)")
    sub.add_argument("--batch-size", type=int, help="model inputs per pass (default: as many as memory allows)")
    sub.add_argument("--opacity", type=float, default=0.45, help="heat map opacity over the image, 0..1 (default 0.45)")
    _preprocess_option(sub)


def _add_filters(commands) -> None:
    sub = commands.add_parser("filters", help="images that excite chosen filters (or classes) most, and the first layer's kernels")
    _model_options(sub)
    sub.add_argument("--layer", help="a layer with an image-like output (not needed with --objective class)")
    sub.add_argument("--channels", type=int, nargs="+", default=[0, 1, 2, 3], help="channel numbers, or class numbers with --objective class (default 0 1 2 3)")
    sub.add_argument("--method", choices=("robust", "plain"), default="robust",
                     help="robust (default): smooth patterns that survive small shifts, turns and zooms, easy to read; plain: pixel-by-pixel gradient ascent")
    sub.add_argument("--objective", choices=("channel", "neuron", "class"), default="channel",
                     help="what to excite: a channel's mean over the picture (default), its value at the centre, or a class's score")
    sub.add_argument("--steps", type=int, help="optimisation steps (default 128 robust, 30 plain)")
    sub.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same patterns (default 0)")
    _preprocess_option(sub)
    _out_option(sub)


def _add_compare(commands) -> None:
    sub = commands.add_parser("compare", help="one layer for two images: side by side on one scale, and their difference")
    _model_options(sub)
    sub.add_argument("--image", nargs=2, required=True, metavar=("FIRST", "SECOND"), help="the two images")
    sub.add_argument("--layer", required=True, help="layer name or number")
    _out_option(sub)
    sub.add_argument("--per-row", type=int, default=16)
    sub.add_argument("--cmap", default="viridis")
    _preprocess_option(sub)


def _add_dataset(commands) -> None:
    sub = commands.add_parser(
        "dataset", help="one pass over a data set: the images that excite each channel most, channels that tell the classes apart, mean heat maps, mistakes",
    )
    _model_options(sub)
    sub.add_argument(
        "--images", help="a folder of images (one subfolder per class), a .csv list (path[,label]) or a .zip of a folder; default: the bundled demo "
        "digits. With --summary: the images the summary was made from, to draw its contact sheets (a location written in a summary is never opened)",
    )
    sub.add_argument("--out", help="folder to write into (created if needed)")
    sub.add_argument("--labels", choices=["folders", "none"], default="folders", help="class labels from subfolder names (default) or none")
    sub.add_argument("--top", type=int, default=9, help="images kept per channel (default 9)")
    sub.add_argument("--layers", nargs="+", help="layer names or numbers (default: convolution and pooling layers); 'all' for every layer with an image-like output")
    sub.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
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
    _preprocess_option(sub)


def run_dataset(args: argparse.Namespace) -> int:
    from .dataset.sources import open_source

    if args.summary:
        return _reopen_summary(args)
    if not args.out:
        raise ActvizError("--out is required: the folder to write the results into.")
    if args.sheet_channels < 0:
        raise ActvizError(f"--sheet-channels must be 0 or more (got {args.sheet_channels}).")
    source = open_source(None if args.images in (None, "demo") else args.images, labels=args.labels)  # checked before any work
    opened = _open(args)
    summary = _summarize_with_progress(args, opened, source)
    sheets = _dataset_sheets(args, summary, source, opened.probe)
    _write_dataset(args.out, summary, sheets)
    _dataset_checkpoint(args.out).unlink(missing_ok=True)
    _say_dataset(summary, args.out, sheets=bool(sheets))
    return 0


def _summarize_with_progress(args: argparse.Namespace, opened, source):
    from tqdm import tqdm

    from .dataset.engine import summarize

    checkpoint = _dataset_checkpoint(args.out)
    if checkpoint.exists() and not args.resume:
        _say(f"note: the progress of an earlier, unfinished run in {args.out} is not used (add --resume to continue it)")
    elif args.resume and not checkpoint.exists():
        _say(f"note: there is no unfinished run in {args.out} to resume; starting from the beginning")
    layers = None if not args.layers else ([info.name for info in opened.probe.spatial_layers] if args.layers == ["all"] else args.layers)
    bar = tqdm(total=len(source), unit="image", desc="images", file=sys.stderr, dynamic_ncols=True, smoothing=0.1, disable=None)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        return summarize(
            opened, source, layers=layers, top_k=args.top, batch_size=args.batch_size, gradcam=args.gradcam, cam_layer=args.cam_layer,
            preprocessing=args.preprocess, image_size=tuple(args.image_size) if args.image_size else None, engine=args.engine,
            address=args.address, actors=args.ray_actors, workers=args.workers, checkpoint=checkpoint, resume=args.resume,
            checkpoint_seconds=args.checkpoint_every, progress=progress,
        )
    except KeyboardInterrupt:
        bar.close()
        if checkpoint.exists():
            _say_error(f"progress saved in {args.out}: run the same command with --resume to continue")
        raise
    finally:
        bar.close()


def _dataset_sheets(args: argparse.Namespace, summary, source, probe) -> dict:
    from .dataset.report import build_sheets

    if not args.channels and args.sheet_channels == 0:
        return {}
    print("drawing the contact sheets ...", file=sys.stderr, flush=True)
    return build_sheets(summary, source, probe, channels=args.channels, count=args.sheet_channels)


def _write_dataset(folder: str, summary, sheets: dict) -> None:
    from .dataset.report import output_files
    from .export import OutputFolder

    with OutputFolder(folder) as out:
        for name, data in output_files(summary, sheets=sheets).items():
            out.write(name, data)


def _dataset_checkpoint(folder: str) -> Path:
    """Where an unfinished run keeps its progress: a hidden file inside the output folder."""
    return Path(folder) / ".actviz-dataset-progress.npz"


def _say_dataset(summary, folder: str | None, *, sheets: bool = True) -> None:
    from .dataset.views import channel_ranking, overview

    facts = overview(summary)
    _say(facts["data"])
    for note in facts["notes"]:
        _say(f"note: {note}")
    _say(facts["text"])
    last = summary.layout.names[-1]
    if summary.labelled:
        best = [row for row in channel_ranking(summary, last, limit=5) if row["selectivity"] is not None]
        if best:
            listed = ", ".join(f"{row['channel']} ({row['selectivity']:.2f}, most for {row['selective_for']})" for row in best)
            _say(f"channels of {last} that tell the classes apart best (selectivity): {listed}")
    if folder:
        written = ["summary", "tables"] + (["heat maps"] if summary.layout.cam_layer else []) + (["contact sheets"] if sheets else [])
        _say(f"{', '.join(written[:-1])} and {written[-1]} written to {folder}")


def _reopen_summary(args: argparse.Namespace) -> int:
    from .dataset.sources import DatasetError
    from .dataset.summary import Summary
    from .dataset.views import summary_source

    summary = Summary.load(args.summary)
    sheets = {}
    if args.out:
        # the pictures come only from images named here (--images), never from a location written in the file
        source, why = summary_source(summary, args.images) if args.sheet_channels or args.channels else (None, "")
        if why:
            _say(f"note: {why}")
        opened = _open(args) if source is not None else None
        if opened is not None and opened.loaded.digest != summary.meta.get("model_digest"):
            _say("note: --model is not the model this summary was made with, so no contact sheets are drawn")
        elif opened is not None:
            try:
                summary.check_model(opened.probe)
            except DatasetError as exc:  # made with this model, yet its layers disagree with it: draw nothing from it
                _say(f"note: {exc} No contact sheets are drawn.")
            else:
                sheets = _dataset_sheets(args, summary, source, opened.probe)
        _write_dataset(args.out, summary, sheets)
    _say_dataset(summary, args.out, sheets=bool(sheets))
    return 0


def build_parser(prog: str = "actviz") -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description="See what a trained Keras convolutional network sees.")
    parser.add_argument("--debug", action="store_true", help="on an unexpected failure, print the full traceback")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"actviz {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add, _ in COMMANDS.values():
        add(commands)
    return parser


def _program_name() -> str:
    """``actviz`` when run as the console script, ``python -m actviz`` when run as a module."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "actviz"
    return "python -m actviz" if name in ("__main__.py", "-m", "-c", "") else name


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser(prog or _program_name()).parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return COMMANDS[args.command][1](args)
    except ActvizError as exc:
        _say_error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say_error("interrupted; nothing was left half-written")
        return 130
    except BrokenPipeError:  # the reader went away (e.g. `| head`): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug: logged with its traceback for whoever runs this
        if args.debug:
            log.exception("unexpected failure")
        _say_error(
            f"unexpected failure ({type(exc).__name__}: {exc}); this is a bug in actviz, please report it"
            + ("" if args.debug else " (run again with --debug to see the traceback)")
        )
        return 1


def _say_error(message: str) -> None:
    print("error: " + " ".join(terminal_text(message).split()), file=sys.stderr)


def _say(message: str) -> None:
    print(terminal_text(message))


def _import_keras_quietly() -> None:
    """Import TensorFlow with file descriptor 2 muted: its C++ start-up lines are not ours to print."""
    if "keras" in sys.modules:
        return
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        import keras  # noqa: F401 -- imported for its side effect: TensorFlow loads while fd 2 is muted
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _open(args: argparse.Namespace):
    from .models import open_model
    from .predictions import parse_class_names
    from .settings import value

    _import_keras_quietly()
    names = parse_class_names(args.classes if args.classes is not None else value("ACTVIZ_CLASSES"))
    return open_model(args.model, trust=args.trust_model, class_names=names)


# --- the commands ------------------------------------------------------------------------


def run_layers(args: argparse.Namespace) -> int:
    opened = _open(args)
    probe = opened.probe
    names = {info.index: shorten(terminal_text("  " * info.depth + info.name)) for info in probe.table}
    width = max(12, *(len(name) for name in names.values()))
    types = max(12, *(len(info.type) for info in probe.table))
    _say(f"model: {opened.name}  input: {_shape(probe.input_shape)}")
    print(f"{'#':>4}  {'layer':<{width}} {'type':<{types}} {'output shape':<18} {'params':>11}  shown")
    for info in probe.table:
        shown = "default" if info.default_view else ("yes" if info.spatial else "no")
        print(f"{info.index:>4}  {names[info.index]:<{width}} {terminal_text(info.type):<{types}} {_shape(info.output_shape):<18} {info.params:>11,}  {shown}")
    for note in opened.notes:
        _say(f"note: {note}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from .export import OutputFolder, export_bundle
    from .images import open_image
    from .preprocessing import choose_preprocessing, prepare

    if args.per_row < 1:
        raise ActvizError(f"--per-row must be at least 1 (got {args.per_row}).")
    if not 0 <= args.gap <= 16:
        raise ActvizError(f"--gap must be between 0 and 16 pixels (got {args.gap}).")
    _check_cmap(args.cmap)
    images = [(Path(path), open_image(path)) for path in args.image]  # all checked before any work
    opened = _open(args)
    probe = opened.probe
    names = [info.name for info in _select_layers(probe, args.layers)]
    chosen = choose_preprocessing(probe, args.preprocess)
    _say(chosen.note)
    folders = _image_folders([path for path, _ in images])
    lines = []
    with OutputFolder(args.out) as out:
        for (path, image), folder in zip(images, folders):
            _, batch = prepare(probe, image, chosen.scaling)
            files, prediction = export_bundle(probe, batch, names, per_row=args.per_row, cmap=args.cmap, contrast=args.contrast, npz=args.npz, gap=args.gap)
            for name, data in files.items():
                out.write(f"{folder}/{name}" if folder else name, data)
            lines.append(f"{path.name}: {_answer(prediction, opened.class_names)}; {len(names)} grids written to {Path(args.out) / folder}")
    for line in lines:
        _say(line)
    return 0


def run_gradcam(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from .explain import grad_cam
    from .export import OutputFolder
    from .figures import overlay
    from .images import open_image
    from .predictions import class_labels
    from .preprocessing import choose_preprocessing, prepare

    if not 0.0 <= args.opacity <= 1.0:
        raise ActvizError(f"--opacity must be between 0 and 1 (got {args.opacity}).")
    image = open_image(args.image)
    opened = _open(args)
    chosen = choose_preprocessing(opened.probe, args.preprocess)
    pixels, batch = prepare(opened.probe, image, chosen.scaling)
    cam = grad_cam(opened.probe, batch, layer=args.layer, class_index=args.class_index, method=args.method)
    picture = io.BytesIO()
    Image.fromarray(overlay(pixels, cam.heatmap[0], opacity=args.opacity)).save(picture, format="PNG")
    heatmap = io.BytesIO()
    np.save(heatmap, cam.heatmap[0])
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["rank", "channel", "weight"])
    writer.writerows((rank, int(c), f"{cam.weights[0, c]:.6g}") for rank, c in enumerate(cam.ranking[0], start=1))
    with OutputFolder(args.out) as out:
        out.write("overlay.png", picture.getvalue())
        out.write("heatmap.npy", heatmap.getvalue())
        out.write("channels.csv", table.getvalue().encode())
    index = int(cam.class_index[0])
    label = class_labels(index + 1, opened.class_names)[index]
    _say(chosen.note)
    _say(f"{Path(args.image).name}: {_answer(cam.predictions[0], opened.class_names)}; map for {label} at layer {cam.layer}, "
         f"written to {args.out}")
    return 0


def run_filters(args: argparse.Namespace) -> int:
    from .export import OutputFolder
    from .figures import picture_png, tile_images
    from .filters import find_patterns, first_layer_kernels
    from .preprocessing import choose_preprocessing

    if args.steps is not None and not 1 <= args.steps <= 1000:
        raise ActvizError(f"--steps must be between 1 and 1000 (got {args.steps}).")
    if args.objective != "class" and not args.layer:
        raise ActvizError("filters needs --layer (the layer whose channels to show), unless --objective class.")
    opened = _open(args)
    probe = opened.probe
    layer = None if args.objective == "class" else probe.layer(args.layer).name

    chosen = choose_preprocessing(probe, args.preprocess)
    patterns = find_patterns(
        probe, layer, args.channels, method=args.method, objective=args.objective, steps=args.steps, seed=args.seed,
        preprocessing=chosen.scaling, class_names=opened.class_names, progress=_progress_line(f"{args.method} patterns"),
    )
    first, kernels = first_layer_kernels(probe)
    stem = "classes" if layer is None else file_name(layer)
    with OutputFolder(args.out) as out:
        zoom = max(1, 128 // patterns.images.shape[1])
        out.write(f"patterns_{stem}.png", picture_png(tile_images(patterns.images, per_row=min(8, len(patterns)), gap=4, zoom=zoom)))
        out.write(f"kernels_{file_name(first)}.png", picture_png(tile_images(kernels, per_row=16, gap=2, zoom=max(1, 32 // kernels.shape[1]))))
    _say(f"{args.method} patterns ({patterns.steps} steps, {patterns.seconds:.1f} s), left to right:")
    for line in patterns.captions():
        _say("  " + line)
    _say(f"patterns and the kernels of {first} written to {args.out}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    import numpy as np

    from .compare import compare_maps
    from .export import OutputFolder
    from .images import open_image
    from .preprocessing import choose_preprocessing, prepare
    from .render import png_bytes

    _check_cmap(args.cmap)
    images = [open_image(path) for path in args.image]
    opened = _open(args)
    probe = opened.probe
    info = probe.layer(args.layer)
    chosen = choose_preprocessing(probe, args.preprocess)
    batch = np.concatenate([prepare(probe, image, chosen.scaling)[1] for image in images]) if _same_size(probe) else None
    results = [probe.run(batch, [info.name])] if batch is not None else [probe.run(prepare(probe, image, chosen.scaling)[1], [info.name]) for image in images]
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
        _say(f"{Path(path).name}: {_answer(prediction, opened.class_names)}")
    _say(f"{info.name}: both grids on one scale, their difference and the channel ranking written to {args.out}")
    return 0


def run_explain(args: argparse.Namespace) -> int:
    import json

    from .attributions import black_input
    from .checks import run_checks
    from .explain import explain
    from .explanation import npy_bytes
    from .export import OutputFolder
    from .figures import picture_png
    from .images import open_image
    from .methods import method_info
    from .predictions import class_labels
    from .preprocessing import choose_preprocessing, prepare

    info = method_info(args.method)
    if not 0.0 <= args.opacity <= 1.0:
        raise ActvizError(f"--opacity must be between 0 and 1 (got {args.opacity}).")
    settings = _explain_settings(args)
    image = open_image(args.image)
    opened = _open(args)
    probe = opened.probe
    chosen = choose_preprocessing(probe, args.preprocess)
    pixels, batch = prepare(probe, image, chosen.scaling)
    black = black_input(chosen.scaling, batch.shape[-1])
    if "black" in info.settings:
        settings["black"] = black
    if "seed" in info.settings:
        settings["seed"] = args.seed
    _say(chosen.note)
    report = _progress_line(info.title) if info.expensive else None
    result = explain(probe, batch, method=args.method, class_index=args.class_index, layer=args.layer,
                     batch_size=args.batch_size, progress=report, **settings)
    checks = None
    if args.checks:
        checks = run_checks(probe, batch, result, steps=args.curve_steps, black=black, seed=args.seed, depths=args.depths,
                            batch_size=args.batch_size, progress=_progress_line("checks"))
    with OutputFolder(args.out) as out:
        out.write("map.npy", npy_bytes(result.raw[0]))
        out.write("overlay.png", picture_png(result.overlay(pixels, 0, opacity=args.opacity)))
        if checks is not None:
            figures = {"class_index": int(result.class_index[0]), "layer": result.layer, **checks.as_json(0)}
            out.write("checks.json", (json.dumps(figures, indent=2) + "\n").encode())
    index = int(result.class_index[0])
    label = class_labels(index + 1, opened.class_names)[index]
    where = f" at layer {result.layer}" if result.layer else ""
    _say(f"{Path(args.image).name}: {_answer(result.predictions[0], opened.class_names)}; {info.title} map for {label} "
         f"({result.probability[0]:.1%}){where}, written to {args.out}")
    for verdict in checks.verdicts(0) if checks is not None else []:
        _say(f"{verdict['check']}: {verdict['sentence']}")
    return 0


def _explain_settings(args: argparse.Namespace) -> dict:
    """The method settings given on the command line (the method refuses any it does not have)."""
    given = {name: getattr(args, name) for name in ("channels", "samples", "noise", "steps", "baseline", "patch", "stride")}
    settings = {name: value for name, value in given.items() if value is not None}
    if args.fill is not None:
        try:
            settings["fill"] = float(args.fill)
        except ValueError:
            settings["fill"] = args.fill
    return settings


def _progress_line(title: str):
    """A progress callback drawing a tqdm bar on stderr (as ``dataset`` does): shown on a terminal,
    left out when stderr is a file or a pipe, removed when the work is done."""
    from tqdm import tqdm

    bar = None

    def report(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=title, unit="step", file=sys.stderr, dynamic_ncols=True, disable=None, leave=False)
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return report


COMMANDS: dict[str, tuple[Callable, Callable[[argparse.Namespace], int]]] = {
    "layers": (_add_layers, run_layers),
    "export": (_add_export, run_export),
    "gradcam": (_add_gradcam, run_gradcam),
    "filters": (_add_filters, run_filters),
    "compare": (_add_compare, run_compare),
    "explain": (_add_explain, run_explain),
    "dataset": (_add_dataset, run_dataset),
}


# --- small helpers -----------------------------------------------------------------------


def _answer(prediction, class_names) -> str:
    """The model's answer for one image in words: the class and how sure, or the raw outputs."""
    from .predictions import class_probabilities, is_probability

    if not is_probability(prediction):
        values = ", ".join(f"{v:.4g}" for v in prediction.ravel()[:10])
        return f"outputs {values} (not probabilities)"
    best, chance = class_probabilities(prediction, class_names)[0]
    return f"predicted {best} ({chance:.1%})"


def _same_size(probe) -> bool:
    """True when every image is resized to one input size (so two images make one batch)."""
    return None not in probe.input_shape[:2]


def _check_cmap(name: str) -> None:
    from .render import palette

    try:
        palette(name)
    except ValueError as exc:
        raise ActvizError(f"{exc} Try viridis, magma, gray or another matplotlib colour map.") from None


def _select_layers(probe, requested: Sequence[str] | None) -> list:
    if not requested:
        return probe.default_layers
    if requested == ["all"]:
        return probe.spatial_layers
    chosen = []
    for key in requested:
        info = probe.layer(key)
        if info not in chosen:
            chosen.append(info)
    return sorted(chosen, key=lambda info: info.index)


def _image_folders(paths: list[Path]) -> list[str]:
    """One image: the output folder itself (""); several: a subfolder per image, named after it."""
    from .text import unique_names

    if len(paths) == 1:
        return [""]
    return unique_names([file_name(path.stem) or "image" for path in paths])


def _shape(shape: tuple) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")" if shape else "-"
