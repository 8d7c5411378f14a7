"""What the commands share: options, opening the model, saying things on the terminal, progress
bars, small helpers."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
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


def memory_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--memory", type=float, metavar="MB",
                     help="the memory this job may use, in MB; batches are sized to it (default: 80%% of the memory available now)")


def precision_option(sub: argparse.ArgumentParser) -> None:
    from ..core.precision import PRECISIONS

    sub.add_argument("--precision", choices=PRECISIONS, default="float32",
                     help="float32 (default), or bfloat16: several times faster on processors with bfloat16 instructions "
                          "(AVX512_BF16, AMX), within about 1%% of float32; elsewhere float32 is used, and said")


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
    """The model of ``--model`` (the demo without one), with the class names of ``--classes``; for a
    command with ``--memory``, its passes sized to that memory (or to the machine's available
    memory), and with ``--precision``, run in that precision (said when it cannot be)."""
    from ..core.batches import job_memory
    from ..core.precision import at_precision
    from ..safety.models import open_model
    from ..core.predictions import parse_class_names
    from ..settings import value

    import_keras_quietly()
    names = parse_class_names(args.classes if args.classes is not None else value("ACTVIZ_CLASSES"))
    opened = open_model(args.model, trust=args.trust_model, class_names=names)
    if hasattr(args, "memory"):
        opened.probe.max_bytes = job_memory(args.memory)
    if getattr(args, "precision", "float32") != "float32":
        before = len(opened.notes)
        opened = at_precision(opened, args.precision)
        for note in opened.notes[before:]:
            say(f"note: {note}")
    return opened


class ProgressBar:
    """Progress of a long job on stderr, from the moment it starts: on a terminal a tqdm bar that says
    "compiling ..." and the time left as estimated beforehand until the first step is done, then
    the time left at the pace measured; elsewhere (a file, a pipe) one line when the job ends.

    Called as ``progress(done, total)`` (``core.batches.Progress``); ``counts=False`` shows a
    share instead of the counts (for progress in thousandths, as the checks report it).

    >>> with ProgressBar("checks", estimate=95.0) as progress:     # doctest: +SKIP
    ...     run_checks(probe, batch, result, progress=progress)
    """

    def __init__(self, title: str, *, unit: str = "step", total: int | None = None, estimate: float | None = None,
                 counts: bool = True, stream=None):
        self.title, self.unit, self.total, self.estimate, self.counts = title, unit, total, estimate, counts
        self.stream = stream or sys.stderr
        self.done = 0
        self._bar = None
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    @property
    def terminal(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def __enter__(self) -> "ProgressBar":
        from tqdm import tqdm

        self._started = time.monotonic()
        if self.terminal:
            shape = {} if self.counts else {"bar_format": "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]"}
            self._bar = tqdm(total=self.total, desc=f"{self.title} (compiling ...)", unit=self.unit, file=self.stream,
                             dynamic_ncols=True, leave=False, disable=False, smoothing=0.1, **shape)
            self._ticker = threading.Thread(target=self._tick, name="actviz-progress", daemon=True)
            self._ticker.start()
            self._show_estimate()
        return self

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = int(done), int(total)
        bar = self._bar
        if bar is None:
            return
        if bar.total != total:
            bar.total = total
        if done > 0 and bar.n == 0:  # compiled and under way: tqdm's own pace and time left from now on
            bar.set_description_str(self.title, refresh=False)
            bar.set_postfix_str("", refresh=False)
        bar.update(done - bar.n)

    def __exit__(self, kind, value, traceback) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
        if self._bar is not None:
            self._bar.close()
        elif kind is None:
            took = time.monotonic() - self._started
            guess = f"; estimated {duration(self.estimate)} beforehand" if self.estimate is not None else ""
            count = f"{self.done:,} {self.unit}{'s' if self.done != 1 else ''} " if self.done and self.counts else ""
            print(f"{self.title}: {count}done in {took:,.1f} s{guess}", file=self.stream, flush=True)

    def _tick(self) -> None:
        """Until the first step is done, keep the elapsed time and the estimate moving (once a second)."""
        while not self._stop.wait(1.0):
            if self._bar is None or self._bar.n > 0:
                return
            self._show_estimate()

    def _show_estimate(self) -> None:
        if self.estimate is not None and self._bar is not None:
            left = max(0.0, self.estimate - (time.monotonic() - self._started))
            self._bar.set_postfix_str(f"{duration(left)} left, estimated", refresh=False)
        if self._bar is not None:
            self._bar.refresh()


def duration(seconds: float) -> str:
    """A duration in words for the terminal (``core.passes.duration_words``)."""
    from ..core.passes import duration_words

    return duration_words(seconds)


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
