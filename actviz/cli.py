"""The command line: ``python -m actviz layers|export``.

Every mistake a user can make ends with exit status 2 and one line on stderr
starting with ``error:``; never a traceback.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import warnings
from pathlib import Path
from typing import Sequence

from .errors import ActvizError
from .pipeline import file_name

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, as for every other mistake
        self.exit(EXIT_USAGE, f"error: {message} (see 'python -m actviz {self.prog.split()[-1]} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from .images import PREPROCESSING
    from .render import CONTRASTS

    parser = _Parser(prog="python -m actviz", description="See what a trained Keras convolutional network sees.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def model_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--model", help="a .keras or .h5 model file (default: the bundled demo model)")
        sub.add_argument("--trust-model", action="store_true", help="load a file you trust without the safety checks (it may run code)")

    layers = commands.add_parser("layers", help="list the model's layers and which can be shown")
    model_options(layers)

    export = commands.add_parser("export", help="write feature-map grids, statistics and activations for images")
    model_options(export)
    export.add_argument("--image", nargs="+", required=True, help="one or more image files")
    export.add_argument("--out", required=True, help="folder to write into (created if needed)")
    export.add_argument("--layers", nargs="+", help="layer names or numbers (default: convolution and pooling layers); 'all' for every layer with an image-like output")
    export.add_argument("--per-row", type=int, default=16, help="channels per grid row (default 16, as in the notebook)")
    export.add_argument("--cmap", default="viridis", help="matplotlib colour map (default viridis)")
    export.add_argument("--contrast", choices=sorted(CONTRASTS), default="channel", help="stretch each channel on its own (default) or share one scale across the layer")
    export.add_argument("--gap", type=int, default=1, help="pixels between tiles (default 1; 0 for none)")
    export.add_argument("--preprocess", choices=["auto", *PREPROCESSING], default="auto", help="pixel scaling (default auto: /255 unless the model rescales itself)")
    export.add_argument("--npz", action="store_true", help="also write the raw activations as activations.npz")

    gradcam = commands.add_parser("gradcam", help="where in the image the model found evidence for a class (Grad-CAM)")
    model_options(gradcam)
    gradcam.add_argument("--image", required=True, help="an image file")
    gradcam.add_argument("--out", required=True, help="folder to write into (created if needed)")
    gradcam.add_argument("--layer", help="convolution layer (default: the last one)")
    gradcam.add_argument("--class", dest="class_index", type=int, help="class number (default: the predicted class)")
    gradcam.add_argument("--method", choices=["gradcam", "gradcam++"], default="gradcam")
    gradcam.add_argument("--opacity", type=float, default=0.45, help="heatmap opacity over the image, 0..1 (default 0.45)")
    gradcam.add_argument("--preprocess", choices=["auto", *PREPROCESSING], default="auto")

    filters = commands.add_parser("filters", help="images that excite chosen filters most (gradient ascent), and the first layer's kernels")
    model_options(filters)
    filters.add_argument("--layer", required=True, help="a convolution layer")
    filters.add_argument("--channels", type=int, nargs="+", default=[0, 1, 2, 3], help="channel numbers (default 0 1 2 3)")
    filters.add_argument("--steps", type=int, default=30, help="gradient ascent steps (default 30)")
    filters.add_argument("--preprocess", choices=["auto", *PREPROCESSING], default="auto", help="the model's pixel scaling, for the starting image's range")
    filters.add_argument("--out", required=True, help="folder to write into (created if needed)")

    compare = commands.add_parser("compare", help="one layer for two images: side by side on one scale, and their difference")
    model_options(compare)
    compare.add_argument("--image", nargs=2, required=True, metavar=("FIRST", "SECOND"), help="the two images")
    compare.add_argument("--layer", required=True, help="layer name or number")
    compare.add_argument("--out", required=True, help="folder to write into (created if needed)")
    compare.add_argument("--per-row", type=int, default=16)
    compare.add_argument("--cmap", default="viridis")
    compare.add_argument("--preprocess", choices=["auto", *PREPROCESSING], default="auto")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            commands = {"layers": run_layers, "export": run_export, "gradcam": run_gradcam, "filters": run_filters, "compare": run_compare}
            return commands[args.command](args)
    except ActvizError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (e.g. `| head`): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug: say so in one line, not a traceback
        print(f"error: unexpected failure ({type(exc).__name__}: {exc}); this is a bug in actviz, please report it", file=sys.stderr)
        return 1


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
    from .pipeline import open_model

    _import_keras_quietly()

    return open_model(args.model, trust=args.trust_model)


def run_layers(args: argparse.Namespace) -> int:
    opened = _open(args)
    probe = opened.probe
    print(f"model: {opened.name}  input: {_shape(probe.input_shape)}")
    width = max(12, *(len(info.name) + 2 * info.depth for info in probe.table))
    types = max(12, *(len(info.type) for info in probe.table))
    print(f"{'#':>4}  {'layer':<{width}} {'type':<{types}} {'output shape':<18} {'params':>11}  shown")
    for info in probe.table:
        shown = "default" if info.default_view else ("yes" if info.spatial else "no")
        name = "  " * info.depth + info.name
        print(f"{info.index:>4}  {name:<{width}} {info.type:<{types}} {_shape(info.output_shape):<18} {info.params:>11,}  {shown}")
    for note in opened.loaded.notes:
        print(f"note: {note}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from .images import open_image
    from .pipeline import choose_preprocessing, class_probabilities, export_bundle, prepare

    if args.per_row < 1:
        raise ActvizError(f"--per-row must be at least 1 (got {args.per_row}).")
    if not 0 <= args.gap <= 16:
        raise ActvizError(f"--gap must be between 0 and 16 pixels (got {args.gap}).")
    _check_cmap(args.cmap)
    images = [(Path(path), open_image(path)) for path in args.image]  # all checked before any work
    opened = _open(args)
    probe = opened.probe
    layers = _select_layers(probe, args.layers)
    method, note = choose_preprocessing(probe, args.preprocess)
    print(note)
    out = Path(args.out)
    folders = _image_folders(out, [path for path, _ in images])
    names = [info.name for info in layers]
    for (path, image), folder in zip(images, folders):
        _, batch = prepare(probe, image, method)
        files, predictions = export_bundle(probe, batch, names, per_row=args.per_row, cmap=args.cmap, contrast=args.contrast, npz=args.npz, gap=args.gap)
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
        best, probability = class_probabilities(predictions, opened.class_names)[0]
        print(f"{path.name}: predicted {best} ({probability:.1%}); {len(layers)} grids written to {folder}")
    return 0


def run_gradcam(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from .explain import grad_cam, overlay
    from .images import open_image
    from .pipeline import choose_preprocessing, class_labels, class_probabilities, prepare

    if not 0.0 <= args.opacity <= 1.0:
        raise ActvizError(f"--opacity must be between 0 and 1 (got {args.opacity}).")
    image = open_image(args.image)
    opened = _open(args)
    method, note = choose_preprocessing(opened.probe, args.preprocess)
    pixels, batch = prepare(opened.probe, image, method)
    cam = grad_cam(opened.probe, batch, layer=args.layer, class_index=args.class_index, method=args.method)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(overlay(pixels, cam.heatmap, opacity=args.opacity)).save(out / "overlay.png")
    np.save(out / "heatmap.npy", cam.heatmap)
    with open(out / "channels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rank", "channel", "weight"])
        writer.writerows((rank, int(c), f"{cam.weights[c]:.6g}") for rank, c in enumerate(cam.ranking, start=1))
    label = class_labels(cam.class_index + 1, opened.class_names)[cam.class_index]
    best = class_probabilities(cam.predictions, opened.class_names)[0]
    print(note)
    print(f"{Path(args.image).name}: predicted {best[0]} ({best[1]:.1%}); map for {label} ({cam.probability:.1%}) "
          f"at layer {cam.layer}, written to {out}")
    return 0


def run_filters(args: argparse.Namespace) -> int:
    from PIL import Image

    from .filters import filter_patterns, first_layer_kernels, tile_images
    from .images import value_range
    from .pipeline import choose_preprocessing

    if not 1 <= args.steps <= 1000:
        raise ActvizError(f"--steps must be between 1 and 1000 (got {args.steps}).")
    opened = _open(args)
    info = opened.probe.layer(args.layer)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def report(step: int, steps: int) -> None:
        print(f"\rstep {step} of {steps}", end="", file=sys.stderr, flush=True)

    method, _ = choose_preprocessing(opened.probe, args.preprocess)
    start_range = value_range(method, opened.probe.input_shape[-1])
    patterns = filter_patterns(opened.probe, info.name, args.channels, steps=args.steps, value_range=start_range, progress=report)
    print(file=sys.stderr)
    zoom = max(1, 128 // patterns.shape[1])
    Image.fromarray(tile_images(patterns, per_row=min(8, len(patterns)), gap=4, zoom=zoom)).save(out / f"patterns_{file_name(info.name)}.png")
    first, kernels = first_layer_kernels(opened.probe)
    Image.fromarray(tile_images(kernels, per_row=16, gap=2, zoom=max(1, 32 // kernels.shape[1]))).save(out / f"kernels_{file_name(first)}.png")
    print(f"patterns of channels {' '.join(map(str, args.channels))} of {info.name} and the kernels of {first} written to {out}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    import csv as csv_module

    from .compare import compare_maps
    from .images import open_image
    from .pipeline import choose_preprocessing, class_probabilities, prepare
    from .render import save_png

    _check_cmap(args.cmap)
    images = [open_image(path) for path in args.image]
    opened = _open(args)
    probe = opened.probe
    info = probe.layer(args.layer)
    method, _ = choose_preprocessing(probe, args.preprocess)
    results = [probe.run(prepare(probe, image, method)[1], [info.name]) for image in images]
    comparison = compare_maps(results[0].maps[info.name], results[1].maps[info.name], per_row=args.per_row, cmap=args.cmap)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = file_name(info.name)
    save_png(comparison.grid_a, out / f"{stem}_first.png")
    save_png(comparison.grid_b, out / f"{stem}_second.png")
    save_png(comparison.difference, out / f"{stem}_difference.png")
    with open(out / "channels.csv", "w", newline="") as handle:
        writer = csv_module.writer(handle)
        writer.writerow(["rank", "channel", "difference_in_std"])
        writer.writerows((rank, int(c), f"{comparison.scores[c]:.6g}") for rank, c in enumerate(comparison.ranking, start=1))
    for path, result in zip(args.image, results):
        best, chance = class_probabilities(result.predictions[0], opened.class_names)[0]
        print(f"{Path(path).name}: predicted {best} ({chance:.1%})")
    print(f"{info.name}: both grids on one scale, their difference and the channel ranking written to {out}")
    return 0


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


def _image_folders(out: Path, paths: list[Path]) -> list[Path]:
    """One image: the output folder itself; several: a subfolder per image, named after it."""
    if len(paths) == 1:
        return [out]
    folders, used = [], set()
    for path in paths:
        stem = file_name(path.stem) or "image"
        name, count = stem, 2
        while name in used:
            name, count = f"{stem}_{count}", count + 1
        used.add(name)
        folders.append(out / name)
    return folders


def _shape(shape: tuple) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")" if shape else "-"
