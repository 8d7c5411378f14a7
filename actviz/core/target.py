"""The class an explanation is about, and its score: one callable object for every method and pass.

Explanations differentiate or compare the class *score*, the logit before the
final softmax/sigmoid (the gradient of a probability vanishes when the model is
sure). A single sigmoid output is two classes: class 1 scores the logit ``z``,
class 0 (probability ``1 - p``) scores ``-z``, whose sigmoid is ``1 - p``. That
rule is written once, in ``class_score``, with ``keras.ops``, so the same lines
serve numpy arrays, eager tensors under a ``GradientTape`` and the compiled
passes' graphs.

``Target`` holds each image's class (as tf-keras-vis's ``CategoricalScore`` and
``BinaryScore`` do, in one object): called on logits it gives the differentiable
score; ``scores`` and ``probabilities`` read the same from logits as numbers
(methods that weigh by a probability, Score-CAM and the deletion and insertion
curves, take it from the same logits, so the two always agree), and
``output_probability`` reads the model's own output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import ChoiceError
from .predictions import check_class, class_count, per_class, predicted_class


def class_score(logits: Any, classes: Any) -> Any:
    """The class score of each row: logits (N, K) or (N, 1) (or (N, ...), flattened) and classes
    int (N,) -> (N,), in the logits' dtype; numpy arrays and TensorFlow tensors alike, inside a
    compiled graph too. For one sigmoid output, class 1 scores ``z`` and class 0 scores ``-z``."""
    from keras import ops

    flat = _rows(logits)
    if flat.shape[1] == 1:
        return ops.where(classes == 1, flat[:, 0], -flat[:, 0])
    return ops.take_along_axis(flat, ops.expand_dims(ops.cast(classes, "int32"), 1), axis=1)[:, 0]


def predicted_classes(outputs: Any) -> Any:
    """int64 (N,): the class each row of the model's first output (N, K) or (N, 1) chose, as a
    tensor, for a compiled graph (``predictions.predicted_class`` is the same rule on numbers:
    for one sigmoid output, class 1 when p >= 0.5)."""
    from keras import ops

    values = _rows(outputs)
    if values.shape[1] == 1:
        return ops.cast(values[:, 0] >= 0.5, "int64")
    return ops.cast(ops.argmax(values, axis=1), "int64")


def _rows(values: Any) -> Any:
    """(N, ...) -> (N, K): one row per image."""
    from keras import ops

    rest = tuple(values.shape[1:])
    if None in rest:  # an output of unknown width: the batch axis is kept, the rest flattened
        return ops.reshape(values, (ops.shape(values)[0], -1))
    return ops.reshape(values, (-1, int(np.prod(rest))))


@dataclass(frozen=True, eq=False)
class Target:
    """The class each image's explanation follows, and its score; ``classes``: int64 (N,).

    >>> target = Target.choose(probabilities, 1)      # class 1 for every image    # doctest: +SKIP
    >>> tf.reduce_sum(target(logits))                 # differentiable, (N,) summed  # doctest: +SKIP
    >>> target.scores(logits), target.probabilities(logits)   # float64 (N,) each   # doctest: +SKIP
    """

    classes: Any

    @classmethod
    def choose(cls, outputs: np.ndarray, class_index: int | Sequence[int] | None) -> "Target":
        """Each image's class: ``class_index`` for all, one per image, or None for the predicted one.

        ``outputs``: the model's first output, (N, K) or (N, 1) for one sigmoid.
        Raises ``ClassNotFoundError`` for a class the model lacks, ``ChoiceError`` for
        a list whose length is not the number of images.
        """
        values = np.asarray(outputs).reshape(len(outputs), -1)
        count = class_count(values[0])
        if class_index is None:
            return cls(np.array([predicted_class(row) for row in values], dtype=np.int64))
        wanted = [class_index] * len(values) if np.ndim(class_index) == 0 else list(class_index)
        if len(wanted) != len(values):
            raise ChoiceError(f"{len(wanted)} classes were given for {len(values)} images; give one class, or one per image.")
        return cls(np.array([check_class(index, count) for index in wanted], dtype=np.int64))

    def __len__(self) -> int:
        return len(self.classes)

    def __getitem__(self, rows: slice | np.ndarray) -> "Target":
        """The targets of some rows (a slice, or an int array that may repeat rows)."""
        return Target(np.asarray(self.classes)[rows])

    def __call__(self, logits: Any) -> Any:
        """The class score of each image as a tensor (N,), differentiable: ``logits`` (N, K) or (N, 1).

        Each image's score depends on that image only, so the gradient of the sum
        gives every image its own gradient in one backward pass.
        """
        return class_score(logits, self.classes)

    def scores(self, logits: np.ndarray) -> np.ndarray:
        """float64 (N,): the class score (logit) of each image, from logits (N, K) or (N, 1) as numbers."""
        return np.asarray(class_score(np.asarray(logits, dtype=np.float64), np.asarray(self.classes)))

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """float64 (N,) in 0..1: the class probability made from the logits (softmax over the classes,
        or the sigmoid of the class score for one output), for each image's class."""
        flat = np.asarray(logits, dtype=np.float64).reshape(len(self), -1)
        if flat.shape[1] == 1:
            return 0.5 * (1.0 + np.tanh(0.5 * self.scores(flat)))  # the sigmoid, without overflow
        exp = np.exp(flat - flat.max(axis=1, keepdims=True))
        return self.scores(exp) / exp.sum(axis=1)

    def output_probability(self, outputs: np.ndarray, logits: np.ndarray | None = None) -> np.ndarray:
        """float32 (N,): each image's chance of its class. The model's own output where it reads as
        probabilities (every value in 0..1: softmax, one or several sigmoids; ``1 - p`` for class 0
        of one sigmoid); a model that outputs raw scores (no softmax or sigmoid at its end, as
        keras_hub's classifiers by default) gets the probability its ``logits`` make, never a
        score called a probability."""
        values = np.asarray(outputs, dtype=np.float64).reshape(len(self), -1)
        if logits is not None and values.size and not (values.min() >= 0 and values.max() <= 1):
            return self.probabilities(logits).astype(np.float32)
        return np.array([per_class(row)[int(c)] for row, c in zip(values, self.classes)], dtype=np.float32)
