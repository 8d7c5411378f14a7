"""The steps every front end takes: open a model, choose preprocessing, prepare an image, name classes.

The command line and the dashboard both go through here, so they show the
same thing for the same model and image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ActvizError
from .graph import Probe
from .images import PREPROCESSING, fit_image, preprocess
from .loading import LoadedModel, ModelSource, load_model

DEMO_DIR = Path(__file__).parent / "demo"
DEMO_MODEL = DEMO_DIR / "digits_vgg.keras"
DEMO_SAMPLES = DEMO_DIR / "samples"


@dataclass
class OpenModel:
    """A loaded model, ready to look inside: the file, its probe, and class names if known."""

    loaded: LoadedModel
    probe: Probe
    class_names: list | None = None

    @property
    def name(self) -> str:
        return self.loaded.name


def open_model(source: ModelSource | None = None, *, trust: bool = False, name: str | None = None) -> OpenModel:
    """Open a model file (bytes or path; None for the bundled demo) and trace its layers."""
    if source is None:
        source, name = DEMO_MODEL, name or "bundled demo: handwritten digits"
    loaded = load_model(source, trust=trust, name=name)
    probe = Probe(loaded.model)
    names = demo_class_names() if source == DEMO_MODEL else None
    return OpenModel(loaded=loaded, probe=probe, class_names=names)


def demo_class_names() -> list:
    return json.loads((DEMO_DIR / "classes.json").read_text())


def demo_samples() -> list[Path]:
    """The bundled sample images, sorted by name."""
    return sorted(DEMO_SAMPLES.glob("*.png"))


def choose_preprocessing(probe: Probe, requested: str = "auto") -> tuple[str, str]:
    """The preprocessing to use and a plain-words reason: (method, note)."""
    if requested != "auto":
        if requested not in PREPROCESSING:
            choices = ", ".join(["auto", *PREPROCESSING])
            raise ActvizError(f"Unknown preprocessing '{requested}'. Choose one of: {choices}.")
        return requested, f"Preprocessing: {PREPROCESSING[requested]} (chosen by you)."
    if probe.rescales_inputs:
        return "none", (
            "Preprocessing: none. The model starts with its own rescaling layer, so the image is passed "
            "as raw pixel values 0..255 and is not scaled twice."
        )
    return "rescale", f"Preprocessing: {PREPROCESSING['rescale']} (chosen automatically)."


def prepare(probe: Probe, image: Any, method: str) -> tuple[np.ndarray, np.ndarray]:
    """An opened Pillow image -> (uint8 (H, W, C) as the model sees it, float32 (1, H, W, C) model input)."""
    pixels = fit_image(image, probe.input_shape)
    return pixels, preprocess(pixels, method)


def is_probability(prediction: np.ndarray) -> bool:
    """True when an output reads as class probabilities: one value in 0..1, or values in 0..1 summing to 1."""
    values = np.asarray(prediction, dtype=np.float64).ravel()
    if values.size == 0 or values.min() < 0 or values.max() > 1:
        return False
    return values.size == 1 or abs(values.sum() - 1.0) < 1e-3


def class_labels(count: int, class_names: list | None = None) -> list[str]:
    """A name for each of ``count`` classes: the given names, then "class i" for the rest."""
    names = list(class_names or [])
    return [names[i] if i < len(names) else f"class {i}" for i in range(count)]


def _per_class(prediction: np.ndarray) -> np.ndarray:
    """float64 (K,): one value per class; a single sigmoid output p becomes (1 - p, p)."""
    values = np.asarray(prediction, dtype=np.float64).ravel()
    return np.array([1.0 - values[0], values[0]]) if values.size == 1 else values


def predicted_class(prediction: np.ndarray) -> int:
    """The class the model chose (for a single sigmoid output: 1 when p >= 0.5)."""
    values = np.asarray(prediction).ravel()
    return int(values[0] >= 0.5) if values.size == 1 else int(np.argmax(values))


def class_probabilities(prediction: np.ndarray, class_names: list | None = None) -> list[tuple[str, float]]:
    """Name and probability of each class, highest first.

    A single sigmoid output ``p`` is read as two classes: class 0 with ``1 - p``, class 1 with ``p``.
    """
    values = _per_class(prediction)
    labels = class_labels(values.size, class_names)
    order = np.argsort(-values, kind="stable")
    return [(labels[i], float(values[i])) for i in order]


def export_bundle(
    probe: Probe, batch: np.ndarray, names: list[str], *, per_row: int = 16, cmap: str = "viridis",
    contrast: str = "channel", gap: int = 1, npz: bool = False,
) -> tuple[dict[str, bytes], np.ndarray]:
    """Everything ``export`` writes for one image, as file name -> bytes: one full-resolution PNG
    grid per layer, ``stats.csv`` and, with ``npz``, ``activations.npz``; and the model's
    prediction (first output). One forward pass."""
    import io

    from .render import feature_grid, png_bytes
    from .stats import channel_moments, layer_stats, stats_csv

    result = probe.run(batch, names)
    files, stats = {}, []
    for name in names:
        activation = result.maps[name]
        moments = channel_moments(activation)  # one summary for both the grid and the statistics
        grid = feature_grid(activation, per_row=per_row, cmap=cmap, contrast=contrast, gap=gap, moments=moments)
        files[f"{probe.layer(name).index:03d}_{file_name(name)}.png"] = png_bytes(grid)
        stats.append(layer_stats(name, activation, moments=moments))
    files["stats.csv"] = stats_csv(stats).encode()
    if npz:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **result.maps)
        files["activations.npz"] = buffer.getvalue()
    return files, result.predictions[0]


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """A ZIP archive of ``files`` (stored, not deflated: PNGs are compressed already)."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def file_name(text: str) -> str:
    """A layer or image name made safe as a file name (nesting slashes become '__')."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text.replace("/", "__")).strip("._")
