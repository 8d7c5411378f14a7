"""``actviz filters``: pictures that excite chosen filters (or classes), and the first layer's kernels."""

from __future__ import annotations

import argparse

from ..errors import ActvizError
from ..text import file_name
from .common import ProgressBar, memory_option, model_options, open_chosen_model, out_option, preprocess_option, say


def add(commands) -> None:
    sub = commands.add_parser("filters", help="images that excite chosen filters (or classes) most, and the first layer's kernels")
    model_options(sub)
    sub.add_argument("--layer", help="a layer with an image-like output (not needed with --objective class)")
    sub.add_argument("--channels", type=int, nargs="+", default=[0, 1, 2, 3], help="channel numbers, or class numbers with --objective class (default 0 1 2 3)")
    sub.add_argument("--method", choices=("robust", "plain"), default="robust",
                     help="robust (default): smooth patterns that survive small shifts, turns and zooms, easy to read; plain: pixel-by-pixel gradient ascent")
    sub.add_argument("--objective", choices=("channel", "neuron", "class"), default="channel",
                     help="what to excite: a channel's mean over the picture (default), its value at the centre, or a class's score")
    sub.add_argument("--steps", type=int, help="optimisation steps (default 128 robust, 30 plain)")
    sub.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same patterns (default 0)")
    preprocess_option(sub)
    memory_option(sub)
    out_option(sub)


def run(args: argparse.Namespace) -> int:
    from ..draw.export import OutputFolder
    from ..draw.figures import picture_png, tile_images
    from ..featurevis.objectives import check_targets
    from ..featurevis.patterns import find_patterns, first_layer_kernels
    from ..featurevis.render import PLAIN_STEPS, ROBUST_STEPS, pattern_seconds
    from ..inputs.preprocessing import choose_preprocessing

    if args.steps is not None and not 1 <= args.steps <= 1000:
        raise ActvizError(f"--steps must be between 1 and 1000 (got {args.steps}).")
    if args.objective != "class" and not args.layer:
        raise ActvizError("filters needs --layer (the layer whose channels to show), unless --objective class.")
    opened = open_chosen_model(args)
    probe = opened.probe
    layer = None if args.objective == "class" else probe.layer(args.layer).name

    chosen = choose_preprocessing(probe, args.preprocess)
    check_targets(probe, layer, args.channels, args.objective)  # a wrong channel is said before anything is timed
    steps = args.steps or (ROBUST_STEPS if args.method == "robust" else PLAIN_STEPS)
    with ProgressBar(f"{args.method} patterns", estimate=pattern_seconds(probe, layer, len(args.channels), steps=steps)) as progress:
        patterns = find_patterns(
            probe, layer, args.channels, method=args.method, objective=args.objective, steps=steps, seed=args.seed,
            preprocessing=chosen.scaling, class_names=opened.class_names, progress=progress,
        )
    first, kernels = first_layer_kernels(probe)
    stem = "classes" if layer is None else file_name(layer)
    with OutputFolder(args.out) as out:
        zoom = max(1, 128 // patterns.images.shape[1])
        out.write(f"patterns_{stem}.png", picture_png(tile_images(patterns.images, per_row=min(8, len(patterns)), gap=4, zoom=zoom)))
        out.write(f"kernels_{file_name(first)}.png", picture_png(tile_images(kernels, per_row=16, gap=2, zoom=max(1, 32 // kernels.shape[1]))))
    say(f"{args.method} patterns ({patterns.steps} steps, {patterns.seconds:.1f} s), left to right:")
    for line in patterns.captions():
        say("  " + line)
    say(f"patterns and the kernels of {first} written to {args.out}")
    return 0
