"""The class a concept explanation is about: chosen by number or by name, its images in a data
set, and its score.

``class_score`` is the class score for one class, by the package's one rule
(``core.target.class_score``): the logit, the value before the model's final softmax or sigmoid
(``probe.symbolic_logits()``, the first output of ``probe.head_model(layer)[0]``), because the
gradient of a probability vanishes when the model is sure and removing a concept from a sure
answer barely moves its probability. For a single sigmoid output, class 1 scores the logit ``z``
and class 0 scores ``-z`` (whose sigmoid is ``1 - p``).

A class is given by its number, by one of the model's class names (``open_model(...,
class_names=)``), or by one of the data set's class folder names (matched to the model's
classes as the data set engine matches them: ``dataset.plan.align_labels``). Names are compared
ignoring case, spaces and underscores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..core.predictions import check_class, class_count, predicted_class
from ..core.target import class_score as target_class_score
from ..errors import ClassNotFoundError
from ..dataset.plan import align_labels
from ..dataset.sources import DatasetError, Source


def class_score(logits: Any, class_index: int) -> Any:
    """The class score of each image for one class: logits (N, K), or (N, 1) for one sigmoid, as a
    numpy array or a TensorFlow tensor -> (N,), same kind and dtype (``core.target.class_score``,
    the one rule: class 1 of one sigmoid scores ``z``, class 0 scores ``-z``)."""
    from keras import ops

    classes = ops.full((ops.shape(logits)[0],), int(class_index), dtype="int32")
    return target_class_score(logits, classes)


def answers(outputs: np.ndarray) -> np.ndarray:
    """int64 (N,): the class the model answers for each row of its first output (N, K) or (N, 1)
    (``predictions.predicted_class``: one sigmoid answers class 1 when p >= 0.5)."""
    rows = np.asarray(outputs).reshape(len(outputs), -1)
    return np.array([predicted_class(row) for row in rows], dtype=np.int64)


def output_count(probe: Any) -> int:
    """How many classes the model's first output distinguishes (a single sigmoid is two)."""
    shape = tuple(probe.symbolic_predictions[0].shape[1:])
    if None in shape:
        raise ClassNotFoundError(f"The model's output has shape {shape}; concepts need a fixed number of class scores.")
    return class_count(np.zeros(int(np.prod(shape)) if shape else 1))


@dataclass(frozen=True)
class ClassChoice:
    """The class explained: ``index`` (the model's class number), ``name`` (for words);
    ``images``: int64 (n,) the data set's images labelled with this class, or None when the data
    set has no labels (then the class's images are those the model answers it for);
    ``labels``: int64 (N,) the model class of every image's label (-1: none), or None;
    ``note``: how labels were matched to classes, in words (may be empty)."""

    index: int
    name: str
    images: np.ndarray | None
    labels: np.ndarray | None
    note: str = ""


def choose_class(probe: Any, source: Source, choice: int | str, *, class_names: Sequence[str] | None = None) -> ClassChoice:
    """The class ``choice`` (a number, a model class name or a data set class folder name) and
    its images in ``source``; ``ClassNotFoundError`` naming the classes there are otherwise."""
    count = output_count(probe)
    names, label_map, note = align_labels(source, class_names, count)
    index = _match(choice, names, source.label_names if source.labelled else None, label_map, count)
    if label_map is None or source.labels is None:
        return ClassChoice(index, str(names[index]), None, None, note)
    raw = np.asarray(source.labels, np.int64)
    labels = np.where(raw >= 0, label_map[np.maximum(raw, 0)], -1).astype(np.int64)
    images = np.nonzero(labels == index)[0].astype(np.int64)
    if len(images) == 0:
        raise DatasetError(
            f"The data set has no images labelled '{names[index]}' (its classes: {', '.join(source.label_names or ())}). "
            "Choose one of its classes, or read it without labels to take the images the model answers this class for."
        )
    return ClassChoice(index, str(names[index]), images, labels, note)


def _key(text: Any) -> str:
    return " ".join(str(text).casefold().replace("_", " ").split())


def _match(choice: int | str, names: Sequence[str], folders: Sequence[str] | None, label_map: np.ndarray | None, count: int) -> int:
    """The model class number of ``choice``: a number, a model class name, or a folder name."""
    if isinstance(choice, (int, np.integer)) and not isinstance(choice, bool):
        return check_class(int(choice), count)
    text = str(choice).strip()
    found = [i for i, name in enumerate(names) if _key(name) == _key(text)]
    if found:
        return found[0]
    if folders and label_map is not None:
        by_folder = [int(label_map[i]) for i, name in enumerate(folders) if _key(name) == _key(text)]
        if by_folder:
            return by_folder[0]
    if text.lstrip("-").isdigit():
        return check_class(int(text), count)
    known = ", ".join(f"{i} ({name})" for i, name in enumerate(names))
    extra = f"; the data set's class folders: {', '.join(folders)}" if folders else ""
    raise ClassNotFoundError(f"There is no class '{text}'. The model's classes: {known}{extra}. Give a class by its number or name.")
