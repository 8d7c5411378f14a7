"""``actviz explain``: why the model gave a class, by any explanation method, with checks of the map."""

from __future__ import annotations

import argparse
from contextlib import nullcontext
from pathlib import Path

from ..errors import ActvizError
from .common import (
    ProgressBar, answer, duration, memory_option, model_options, open_chosen_model, out_option, precision_option, preprocess_option, say,
)

#: The --layer flag of the commands that draw class activation maps.
LAYER_HELP = (
    "layer of a class activation map: any layer whose map leads to the answer, by name or number (default: the last map "
    "before the global pooling, or a vision transformer's last attention input; which one is said in words)"
)
#: How a flag's text is read, by the kind of setting (choices stay text: see ``Setting.from_text``).
FLAG_TYPES = {"count": int, "share": float}


def add(commands) -> None:
    from ..explainers.registry import METHOD_INFO, offered_settings

    sub = commands.add_parser(
        "explain", help=f"why the model gave a class, by any of {len(METHOD_INFO)} methods, with checks that say whether to trust the map",
        description="Methods: " + "; ".join(f"{name} ({info.title})" for name, info in METHOD_INFO.items()) + ".",
    )
    model_options(sub)
    sub.add_argument("--image", required=True, help="an image file")
    out_option(sub)
    sub.add_argument("--method", required=True, metavar="NAME", help="one of: " + ", ".join(METHOD_INFO))
    sub.add_argument("--class", dest="class_index", type=int, help="class number (default: the predicted class)")
    sub.add_argument("--layer", help=LAYER_HELP)
    sub.add_argument("--checks", action="store_true", help="also run the checks (deletion/insertion, model randomisation, completeness) and write checks.json")
    for name, (methods, setting) in offered_settings().items():  # one flag per setting of the registry
        sub.add_argument(f"--{name}", type=FLAG_TYPES.get(setting.kind), help=f"{', '.join(methods)}: {setting.help()}")
    sub.add_argument("--curve-steps", type=int, default=32, help="checks: steps of the deletion and insertion curves (default 32)")
    sub.add_argument("--depths", type=int, help="checks: randomise only the top N layers (default: as many as fit in about two "
                                                "minutes on this machine, at least the top one; the command says how many of how many)")
    sub.add_argument("--seed", type=int, default=0, help="seed of the noise and of the random weights (default 0)")
    sub.add_argument("--batch-size", type=int, help="model inputs per pass (default: as many as --memory allows)")
    memory_option(sub)
    precision_option(sub)
    sub.add_argument("--opacity", type=float, default=0.45, help="heat map opacity over the image, 0..1 (default 0.45)")
    preprocess_option(sub)


def run(args: argparse.Namespace) -> int:
    import json

    from ..draw.export import OutputFolder
    from ..draw.figures import picture_png
    from ..explainers.attributions import black_input
    from ..explainers.cost import method_seconds
    from ..explainers.explain import explain
    from ..explainers.registry import context_settings, method_info
    from ..explainers.result import npy_bytes
    from ..inputs.batch import to_batch
    from ..inputs.images import open_image
    from ..core.predictions import class_labels

    info = method_info(args.method)
    if not 0.0 <= args.opacity <= 1.0:
        raise ActvizError(f"--opacity must be between 0 and 1 (got {args.opacity}).")
    settings = _explain_settings(args)
    image = open_image(args.image)  # a file that is not an image is said before the model loads
    opened = open_chosen_model(args)
    probe = opened.probe
    batch = to_batch(image, probe, preprocess_as=args.preprocess)
    pixels = batch.pixels[0]
    black = black_input(batch.preprocessing.scaling, batch.inputs.shape[-1])
    settings = {**context_settings(args.method, black=black, seed=args.seed), **settings}
    say(batch.preprocessing.note)
    estimate = method_seconds(probe, batch.inputs.shape, args.method, settings, layer=args.layer) if info.expensive else None
    with ProgressBar(info.title, estimate=estimate) if info.expensive else nullcontext() as report:  # the quick ones show none
        result = explain(probe, batch.inputs, method=args.method, class_index=args.class_index, layer=args.layer,
                         batch_size=args.batch_size, progress=report, **settings)
    checks = _checks(args, probe, batch.inputs, result, black) if args.checks else None
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
    if result.layer_reason:
        say(f"Layer: {result.layer_reason}")
    for verdict in checks.verdicts(0) if checks is not None else []:
        say(f"{verdict['check']}: {verdict['sentence']}")
    return 0


def _checks(args: argparse.Namespace, probe, inputs, result, black):
    """The checks of ``result``, said before they start (how long, how many randomised depths), with a progress bar."""
    from ..explainers.checks import checks_estimate, run_checks

    planned = checks_estimate(probe, inputs, result, steps=args.curve_steps, depths=args.depths)
    more = f"; --depths {planned.cascade} for all" if planned.depths < planned.cascade and args.depths is None else ""
    say(f"checks: {duration(planned.seconds)} here (curves of {args.curve_steps} steps; model randomisation at "
        f"{planned.depths} of the model's {planned.cascade} depths, the top layer first{more})")
    with ProgressBar("checks", total=1000, counts=False, estimate=planned.seconds) as progress:
        return run_checks(probe, inputs, result, steps=args.curve_steps, black=black, seed=args.seed, depths=planned.depths,
                          batch_size=args.batch_size, progress=progress)


def _explain_settings(args: argparse.Namespace) -> dict:
    """The method settings given on the command line (the method refuses any it does not have)."""
    from ..explainers.registry import offered_settings

    settings = {}
    for name, (_, setting) in offered_settings().items():
        value = getattr(args, name)
        if value is not None:
            settings[name] = setting.from_text(value) if setting.kind == "choice" else value
    return settings
