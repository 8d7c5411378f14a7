"""Reading a model's output: how many classes, which one it chose, how sure it is, and names.

One rule lives here for every front end: a single sigmoid output is two
classes, class 1 with probability ``p`` and class 0 with ``1 - p``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ClassNotFoundError


def class_count(prediction: np.ndarray) -> int:
    """How many classes one image's output distinguishes (a single sigmoid output is two)."""
    size = int(np.asarray(prediction).size)
    return 2 if size == 1 else size


def per_class(prediction: np.ndarray) -> np.ndarray:
    """float64 (K,): one value per class for one image; a single sigmoid output p becomes (1 - p, p)."""
    values = np.asarray(prediction, dtype=np.float64).ravel()
    return np.array([1.0 - values[0], values[0]]) if values.size == 1 else values


def predicted_class(prediction: np.ndarray) -> int:
    """The class the model chose for one image (for a single sigmoid output: 1 when p >= 0.5)."""
    values = np.asarray(prediction).ravel()
    return int(values[0] >= 0.5) if values.size == 1 else int(np.argmax(values))


def is_probability(prediction: np.ndarray) -> bool:
    """True when an output reads as class probabilities: one value in 0..1, or values in 0..1 summing to 1."""
    values = np.asarray(prediction, dtype=np.float64).ravel()
    if values.size == 0 or values.min() < 0 or values.max() > 1:
        return False
    return values.size == 1 or abs(values.sum() - 1.0) < 1e-3


def class_labels(count: int, class_names: Sequence[str] | None = None) -> list[str]:
    """A name for each of ``count`` classes: the given names, then "class i" for the rest."""
    names = list(class_names or [])
    return [names[i] if i < len(names) else f"class {i}" for i in range(count)]


def class_probabilities(prediction: np.ndarray, class_names: Sequence[str] | None = None) -> list[tuple[str, float]]:
    """Name and probability of each class for one image, highest first.

    >>> class_probabilities(np.array([0.8]), ["normal", "pneumonia"])   # one sigmoid output: two classes
    [('pneumonia', 0.8), ('normal', 0.19999999999999996)]
    """
    values = per_class(prediction)
    labels = class_labels(values.size, class_names)
    order = np.argsort(-values, kind="stable")
    return [(labels[i], float(values[i])) for i in order]


def check_class(index: int, count: int) -> int:
    """``index`` as an int if the model has such a class; ``ClassNotFoundError`` otherwise.

    >>> check_class(3, 2)
    Traceback (most recent call last):
    actviz.errors.ClassNotFoundError: Class 3 does not exist: the model has 2 classes, numbered 0 to 1.
    """
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= int(index) < count:
        raise ClassNotFoundError(f"Class {index} does not exist: the model has {count} classes, numbered 0 to {count - 1}.")
    return int(index)


def parse_class_names(text: str | None) -> list[str] | None:
    """Class names typed or configured as ``normal, pneumonia`` (commas or new lines); None if empty."""
    if not text:
        return None
    names = [name.strip() for name in text.replace("\n", ",").split(",")]
    names = [name for name in names if name]
    return names or None
