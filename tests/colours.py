"""The colour data set and its hand-set model, shared by the data set tests (engine, views, Ray, the
command line, saved summaries).

The colour model: a 1x1 convolution whose channels read the red channel (0), the green channel
(1), both (2) and nothing (3, dead), then a 2x2 max pooling, global average pooling and a
softmax that answers "red" when the pooled red response beats the green one. Images are black
with one red or green square of random size, brightness and place; a few red squares are filed
under "green" (known mistakes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 12
CLASSES = ["red", "green"]
WEIGHTS = np.array([[1, 0, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]], np.float32)  # (RGB, channel) of the 1x1 convolution
MISLABELLED = 3  # red squares filed under green


def colour_model(keras):
    """The hand-set colour model (see the module)."""
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Conv2D(4, 1, activation="relu", name="conv")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="answer")(x)
    model = keras.Model(inputs, outputs, name="colours")
    model.get_layer("conv").set_weights([WEIGHTS[None, None], np.zeros(4, np.float32)])
    dense = np.array([[4, -4], [-4, 4], [0, 0], [0, 0]], np.float32)
    model.get_layer("answer").set_weights([dense, np.zeros(2, np.float32)])
    return model


def colour_images(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 (count, SIZE, SIZE, 3) images, the folder each is filed under (0 red, 1 green) and the
    colour really drawn."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, SIZE, SIZE, 3), np.uint8)
    drawn = np.arange(count) % 2
    for i in range(count):
        side = rng.integers(2, 6)
        y, x = rng.integers(0, SIZE - side, size=2)
        images[i, y : y + side, x : x + side, drawn[i]] = rng.integers(60, 256)
    filed = drawn.copy()
    filed[np.nonzero(drawn == 0)[0][:MISLABELLED]] = 1
    return images, filed, drawn


def write_folder(root: Path, images: np.ndarray, filed: np.ndarray) -> list[str]:
    """PNG files under root/red and root/green; returns the relative paths in the order a folder
    source lists them (class folders sorted: green, then red)."""
    paths = []
    for i, (image, folder) in enumerate(zip(images, filed)):
        path = root / CLASSES[folder] / f"img_{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
        paths.append(path.relative_to(root).as_posix())
    return paths
