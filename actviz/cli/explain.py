"""``actviz explain``: why the model gave a class, by any explanation method, with checks of the map."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ActvizError
from .common import model_options, preprocess_option, out_option, say, open_chosen_model, progress_line, answer


def add(commands) -> None:
    from ..explainers.registry import METHOD_INFO

    sub = commands.add_parser(
        "explain", help=f"why the model gave a class, by any of {len(METHOD_INFO)} methods, with checks that say whether to trust the map",
        description="Methods: " + "; ".join(f"{name} ({info.title})" for name, info in METHOD_INFO.items()) + ".",
    )
    model_options(sub)
    sub.add_argument("--image", required=True, help="an image file")
    out_option(sub)
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
    preprocess_option(sub)


def run(args: argparse.Namespace) -> int:
    import json

    from ..explainers.attributions import black_input
    from ..explainers.checks import run_checks
    from ..explainers.explain import explain
    from ..explainers.result import npy_bytes
    from ..draw.export import OutputFolder
    from ..draw.figures import picture_png
    from ..inputs.images import open_image
    from ..explainers.registry import method_info
    from ..core.predictions import class_labels
    from ..inputs.preprocessing import choose_preprocessing, prepare

    info = method_info(args.method)
    if not 0.0 <= args.opacity <= 1.0:
        raise ActvizError(f"--opacity must be between 0 and 1 (got {args.opacity}).")
    settings = _explain_settings(args)
    image = open_image(args.image)
    opened = open_chosen_model(args)
    probe = opened.probe
    chosen = choose_preprocessing(probe, args.preprocess)
    pixels, batch = prepare(probe, image, chosen.scaling)
    black = black_input(chosen.scaling, batch.shape[-1])
    if "black" in info.settings:
        settings["black"] = black
    if "seed" in info.settings:
        settings["seed"] = args.seed
    say(chosen.note)
    report = progress_line(info.title) if info.expensive else None
    result = explain(probe, batch, method=args.method, class_index=args.class_index, layer=args.layer,
                     batch_size=args.batch_size, progress=report, **settings)
    checks = None
    if args.checks:
        checks = run_checks(probe, batch, result, steps=args.curve_steps, black=black, seed=args.seed, depths=args.depths,
                            batch_size=args.batch_size, progress=progress_line("checks"))
    with OutputFolder(args.out) as out:
        out.write("map.npy", npy_bytes(result.raw[0]))
        out.write("overlay.png", picture_png(result.overlay(pixels, 0, opacity=args.opacity)))
        if checks is not None:
            figures = {"class_index": int(result.class_index[0]), "layer": result.layer, **checks.as_json(0)}
            out.write("checks.json", (json.dumps(figures, indent=2) + "\n").encode())
    index = int(result.class_index[0])
    label = class_labels(index + 1, opened.class_names)[index]
    where = f" at layer {result.layer}" if result.layer else ""
    say(f"{Path(args.image).name}: {answer(result.predictions[0], opened.class_names)}; {info.title} map for {label} "
         f"({result.probability[0]:.1%}){where}, written to {args.out}")
    for verdict in checks.verdicts(0) if checks is not None else []:
        say(f"{verdict['check']}: {verdict['sentence']}")
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
