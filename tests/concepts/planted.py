"""The planted-patch data set and models whose concepts are known by construction, shared by the
concept tests.

Images are 24 x 24 grey noise (levels 0..150). Class "marked" has a bright 4 x 4 square (255) in
the top-left corner, pixels [0, 4) x [0, 4); class "plain" has none. Only the square decides the
class, so a model trained on them reads the square and nothing else: the square is the concept
that matters, and it sits in the same small place in every "marked" image (the shape of a
hospital's text marker). For TCAV: ``squares`` (the square at a random place on fresh noise: the
concept's examples) and ``noise`` (fresh noise: random counterexamples).

The hand-set colour model (``colour_model``): a 1x1 convolution reading red (channel 0) and
green (channel 1), a second 1x1 convolution that keeps only strong red (ReLU after a threshold of
200 grey levels), global average pooling and a dense layer: "reddish" scores 8 x the strong red (minus 0.05),
"other" the negative. Its answer ignores green entirely, so "a
green stripe" (added green, the red noise left alone) is a concept it cannot be sensitive to,
while "a red square" is the one it answers by.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 24
PATCH = 4
CLASSES = ["marked", "plain"]
NOISE = 150


def noise(rng: np.random.Generator, count: int) -> np.ndarray:
    """uint8 (count, SIZE, SIZE, 1) grey noise 0..NOISE."""
    return rng.integers(0, NOISE + 1, (count, SIZE, SIZE, 1)).astype(np.uint8)


def planted(count: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (count, SIZE, SIZE, 1) images and int labels (0 marked, 1 plain), alternating."""
    rng = np.random.default_rng(seed)
    images = noise(rng, count)
    labels = np.arange(count) % 2
    images[labels == 0, :PATCH, :PATCH] = 255
    return images, labels


def squares(count: int, *, seed: int = 1) -> np.ndarray:
    """The concept's examples: the 4 x 4 square at random places on fresh noise."""
    rng = np.random.default_rng(seed)
    images = noise(rng, count)
    for image in images:
        y, x = rng.integers(0, SIZE - PATCH + 1, 2)
        image[y : y + PATCH, x : x + PATCH] = 255
    return images


def write(folder: Path, images: np.ndarray, labels: np.ndarray | None = None) -> Path:
    """PNG files in folder/<class>/ (or folder/ without labels); returns the folder."""
    for i, image in enumerate(images):
        sub = folder / CLASSES[int(labels[i])] if labels is not None else folder
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[:, :, 0]).save(sub / f"img_{i:03d}.png")
    return folder


def trained_model(keras, *, count: int = 400, epochs: int = 12, seed: int = 5):
    """A small CNN trained (seeded) on ``planted`` images: conv1 (8) -> pool1 -> conv2 (8) -> GAP -> softmax."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 1), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="answer")(x)
    model = keras.Model(inputs, outputs, name="planted")
    images, labels = planted(count, seed=seed + 100)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images.astype(np.float32) / 255.0, labels, epochs=epochs, batch_size=16, verbose=0, shuffle=True)
    return model


COLOUR_CLASSES = ["reddish", "other"]
COLOUR_SIZE = 16


def colour_model(keras, *, sigmoid: bool = False):
    """The hand-set colour model (see the module): layers ``colour`` (red, green), ``strong``
    (red above 0.8 after /255), ``gap``, ``answer``. With ``sigmoid``: one output whose logit
    is 8 x the strong red, so class 1 is the reddish one and class 0 scores the negated logit."""
    inputs = keras.Input((COLOUR_SIZE, COLOUR_SIZE, 3), name="image")
    x = keras.layers.Conv2D(2, 1, activation="relu", name="colour")(inputs)
    x = keras.layers.Conv2D(1, 1, activation="relu", name="strong")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(1 if sigmoid else 2, activation="sigmoid" if sigmoid else "softmax", name="answer")(x)
    model = keras.Model(inputs, outputs, name="colours")
    model.get_layer("colour").set_weights([np.array([[1, 0], [0, 1], [0, 0]], np.float32)[None, None], np.zeros(2, np.float32)])
    model.get_layer("strong").set_weights([np.array([[1], [0]], np.float32)[None, None], np.array([-0.8], np.float32)])
    dense = np.array([[8.0]], np.float32) if sigmoid else np.array([[8.0, -8.0]], np.float32)
    bias = np.array([-0.05], np.float32) if sigmoid else np.array([-0.05, 0.05], np.float32)  # no strong red: not reddish
    model.get_layer("answer").set_weights([dense, bias])
    return model


def colour_noise(rng: np.random.Generator, count: int) -> np.ndarray:
    """uint8 (count, 16, 16, 3) colour noise 0..NOISE in each channel."""
    return rng.integers(0, NOISE + 1, (count, COLOUR_SIZE, COLOUR_SIZE, 3)).astype(np.uint8)


def colour_squares(count: int, *, seed: int, channel: int = 0) -> np.ndarray:
    """A pure red (``channel`` 0) or green (1) 4 x 4 square at a random place on colour noise."""
    rng = np.random.default_rng(seed)
    images = colour_noise(rng, count)
    for image in images:
        y, x = rng.integers(0, COLOUR_SIZE - PATCH + 1, 2)
        image[y : y + PATCH, x : x + PATCH] = 0
        image[y : y + PATCH, x : x + PATCH, channel] = 255
    return images


def colour_stripes(count: int, *, seed: int) -> np.ndarray:
    """A green vertical stripe, 2 pixels wide, at a random place on colour noise: full green, the
    red and blue noise left as they are (so it adds green and takes no red away)."""
    rng = np.random.default_rng(seed)
    images = colour_noise(rng, count)
    for image in images:
        x = rng.integers(0, COLOUR_SIZE - 2)
        image[:, x : x + 2, 1] = 255
    return images


def write_rgb(folder: Path, images: np.ndarray, labels: np.ndarray | None = None, names: list[str] | None = None) -> Path:
    """RGB PNG files in folder/<class>/ (or folder/ without labels); returns the folder."""
    for i, image in enumerate(images):
        sub = folder / (names or COLOUR_CLASSES)[int(labels[i])] if labels is not None else folder
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(sub / f"img_{i:03d}.png")
    return folder
