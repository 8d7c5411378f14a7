"""The planted-patch data, its trained model and the concepts found in it, built once for the
concept tests (files under pytest's temporary folders only)."""

from __future__ import annotations

import numpy as np
import pytest
from planted import CLASSES, noise, planted, squares, trained_model, write


@pytest.fixture(scope="session")
def planted_data(keras, tmp_path_factory):
    """The trained model (in memory and as a file) and the folders: ``images`` (40 marked, 40
    plain, labelled), ``unlabelled`` (the same images without classes), ``squares``, ``noise``."""
    root = tmp_path_factory.mktemp("planted")
    model = trained_model(keras)
    model.save(root / "planted.keras")
    images, labels = planted(80, seed=3)
    write(root / "images", images, labels)
    write(root / "unlabelled", images)
    write(root / "squares", squares(40))
    write(root / "noise", noise(np.random.default_rng(9), 80))
    return {"root": root, "model": model, "file": root / "planted.keras", "images": images, "labels": labels}


@pytest.fixture(scope="session")
def found(planted_data):
    """The concepts of "marked" in the labelled folder (crops of every marked image)."""
    import actviz

    return actviz.discover_concepts(planted_data["model"], planted_data["root"] / "images", "marked", class_names=CLASSES, max_crops=320, batch_size=16)
