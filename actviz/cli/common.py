"""What the commands share: options, opening the model, saying things on the terminal, small helpers."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from ..errors import ActvizError
from ..text import file_name, terminal_text


EXIT_USAGE = 2


def model_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--model", help="a .keras or .h5 model file (default: the bundled demo model)")
    sub.add_argument("--trust-model", action="store_true", help="load a file you trust without the safety checks (it may run code)")
    sub.add_argument("--classes", help="class names in order, separated by commas (e.g. 'normal, pneumonia'); default: ACTVIZ_CLASSES")


def preprocess_option(sub: argparse.ArgumentParser) -> None:
    from ..inputs.preprocessing import CHOICES

    sub.add_argument("--preprocess", choices=CHOICES, default="auto", help="pixel scaling (default auto: /255 unless the model scales its input itself)")


def out_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--out", required=True, help="folder to write into (created if needed)")


def say_error(message: str) -> None:
    print("error: " + " ".join(terminal_text(message).split()), file=sys.stderr)


def say(message: str) -> None:
    print(terminal_text(message))


def import_keras_quietly() -> None:
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


def open_chosen_model(args: argparse.Namespace):
    from ..safety.models import open_model
    from ..core.predictions import parse_class_names
    from ..settings import value

    import_keras_quietly()
    names = parse_class_names(args.classes if args.classes is not None else value("ACTVIZ_CLASSES"))
    return open_model(args.model, trust=args.trust_model, class_names=names)


def progress_line(title: str):
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


def answer(prediction, class_names) -> str:
    """The model's answer for one image in words: the class and how sure, or the raw outputs."""
    from ..core.predictions import class_probabilities, is_probability

    if not is_probability(prediction):
        values = ", ".join(f"{v:.4g}" for v in prediction.ravel()[:10])
        return f"outputs {values} (not probabilities)"
    best, chance = class_probabilities(prediction, class_names)[0]
    return f"predicted {best} ({chance:.1%})"


def same_size(probe) -> bool:
    """True when every image is resized to one input size (so two images make one batch)."""
    return None not in probe.input_shape[:2]


def check_cmap(name: str) -> None:
    from ..draw.grids import palette

    try:
        palette(name)
    except ValueError as exc:
        raise ActvizError(f"{exc} Try viridis, magma, gray or another matplotlib colour map.") from None


def select_layers(probe, requested: Sequence[str] | None) -> list:
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


def image_folders(paths: list[Path]) -> list[str]:
    """One image: the output folder itself (""); several: a subfolder per image, named after it."""
    from ..text import unique_names

    if len(paths) == 1:
        return [""]
    return unique_names([file_name(path.stem) or "image" for path in paths])


def shape_text(shape: tuple) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")" if shape else "-"
