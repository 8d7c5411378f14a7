"""The bundled demo: a small VGG-style model that reads handwritten digits, its class names
and sample images (held-out digits it never saw in training). Package data: an installed
actviz finds them here."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
MODEL = HERE / "digits_vgg.keras"
SAMPLES = HERE / "samples"
NAME = "bundled demo: handwritten digits"


def class_names() -> list[str]:
    """The demo model's ten class names ("digit 0" ... "digit 9")."""
    return json.loads((HERE / "classes.json").read_text())


def samples() -> list[Path]:
    """The bundled sample images, sorted by name."""
    return sorted(SAMPLES.glob("*.png"))
