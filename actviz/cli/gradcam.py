"""``actviz gradcam``: where in the image the model found evidence for a class (Grad-CAM or Grad-CAM++)."""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

from ..errors import ActvizError
from .common import model_options, preprocess_option, out_option, say, open_chosen_model, answer
from .explain import LAYER_HELP

#: The class activation maps this command has always offered (``actviz explain`` offers every method).
OFFERED = ("gradcam", "gradcam++")


def add(commands) -> None:
    from ..explainers.registry import METHOD_INFO

    sub = commands.add_parser("gradcam", help="where in the image the model found evidence for a class (Grad-CAM)")
    model_options(sub)
    sub.add_argument("--image", required=True, help="an image file")
    out_option(sub)
    sub.add_argument("--layer", help=LAYER_HELP)
    sub.add_argument("--class", dest="class_index", type=int, help="class number (default: the predicted class)")
    sub.add_argument("--method", choices=[name for name, info in METHOD_INFO.items() if info.family == "cam" and name in OFFERED],
                     default="gradcam")
    sub.add_argument("--opacity", type=float, default=0.45, help="heatmap opacity over the image, 0..1 (default 0.45)")
    preprocess_option(sub)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from ..core.predictions import class_labels
    from ..draw.export import OutputFolder
    from ..draw.figures import overlay
    from ..explainers.explain import explain
    from ..inputs.batch import to_batch
    from ..inputs.images import open_image

    if not 0.0 <= args.opacity <= 1.0:
        raise ActvizError(f"--opacity must be between 0 and 1 (got {args.opacity}).")
    image = open_image(args.image)  # a file that is not an image is said before the model loads
    opened = open_chosen_model(args)
    batch = to_batch(image, opened.probe, preprocess_as=args.preprocess)
    pixels = batch.pixels[0]
    cam = explain(opened.probe, batch.inputs, method=args.method, layer=args.layer, class_index=args.class_index)
    picture = io.BytesIO()
    Image.fromarray(overlay(pixels, cam.heatmap[0], opacity=args.opacity)).save(picture, format="PNG")
    heatmap = io.BytesIO()
    np.save(heatmap, cam.heatmap[0])
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["rank", "channel", "weight"])
    by_weight = np.argsort(-cam.weights[0], kind="stable")  # channels.csv has always ranked channels by weight
    writer.writerows((rank, int(c), f"{cam.weights[0, c]:.6g}") for rank, c in enumerate(by_weight, start=1))
    with OutputFolder(args.out) as out:
        out.write("overlay.png", picture.getvalue())
        out.write("heatmap.npy", heatmap.getvalue())
        out.write("channels.csv", table.getvalue().encode())
    index = int(cam.class_index[0])
    label = class_labels(index + 1, opened.class_names)[index]
    say(batch.preprocessing.note)
    say(f"{Path(args.image).name}: {answer(cam.predictions[0], opened.class_names)}; map for {label} at layer {cam.layer}, "
         f"written to {args.out}")
    if cam.layer_reason:
        say(f"Layer: {cam.layer_reason}")
    return 0
