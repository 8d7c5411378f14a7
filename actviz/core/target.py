"""The class an explanation is about, and its score: one rule for every method.

Explanations differentiate or compare the class *score*, the logit before the
final softmax/sigmoid (the gradient of a probability vanishes when the model is
sure). A single sigmoid output is two classes: class 1 scores the logit ``z``,
class 0 (probability ``1 - p``) scores ``-z``, whose sigmoid is ``1 - p``.
Methods that weigh by a probability (Score-CAM, the deletion and insertion
curves) take it from the same logits, so the two always agree.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import ChoiceError
from .predictions import check_class, class_count, predicted_class


def choose_classes(probabilities: np.ndarray, class_index: int | Sequence[int] | None) -> np.ndarray:
    """int64 (N,): each image's class: ``class_index`` for all, one per image, or None for the predicted one.

    ``probabilities``: the model's first output, (N, K) or (N, 1) for one sigmoid.
    Raises ``ClassNotFoundError`` for a class the model lacks, ``ChoiceError`` for
    a list whose length is not the number of images.
    """
    values = np.asarray(probabilities).reshape(len(probabilities), -1)
    count = class_count(values[0])
    if class_index is None:
        return np.array([predicted_class(row) for row in values], dtype=np.int64)
    wanted = [class_index] * len(values) if np.ndim(class_index) == 0 else list(class_index)
    if len(wanted) != len(values):
        raise ChoiceError(f"{len(wanted)} classes were given for {len(values)} images; give one class, or one per image.")
    return np.array([check_class(index, count) for index in wanted], dtype=np.int64)


def class_probability(probabilities: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """float32 (N,): the model's own output for each image's class (``1 - p`` for class 0 of one sigmoid)."""
    values = np.asarray(probabilities, dtype=np.float64).reshape(len(chosen), -1)
    if values.shape[1] == 1:
        return np.where(chosen == 1, values[:, 0], 1.0 - values[:, 0]).astype(np.float32)
    return values[np.arange(len(chosen)), chosen].astype(np.float32)


def score_tensor(logits: Any, chosen: np.ndarray) -> Any:
    """The class score of each image as a tensor (N,), differentiable: ``logits`` (N, K) or (N, 1) -> (N,).

    Each image's score depends on that image only, so the gradient of the sum
    gives every image its own gradient in one backward pass.
    """
    import tensorflow as tf

    flat = tf.reshape(logits, [len(chosen), -1])
    if flat.shape[1] == 1:  # one sigmoid output: logits z and -z for classes 1 and 0
        return flat[:, 0] * tf.constant(np.where(chosen == 1, 1.0, -1.0), dtype=flat.dtype)
    return tf.gather(flat, tf.constant(chosen), axis=1, batch_dims=1)


def score_values(logits: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """float64 (N,): the class score (logit) of each image, from logits (N, K) or (N, 1) as numbers."""
    flat = np.asarray(logits, dtype=np.float64).reshape(len(chosen), -1)
    if flat.shape[1] == 1:
        return np.where(chosen == 1, flat[:, 0], -flat[:, 0])
    return flat[np.arange(len(chosen)), chosen]


def probability_values(logits: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """float64 (N,) in 0..1: the class probability made from the logits (softmax over the classes,
    or the sigmoid of the signed logit for one output), for each image's class."""
    flat = np.asarray(logits, dtype=np.float64).reshape(len(chosen), -1)
    if flat.shape[1] == 1:
        signed = np.where(chosen == 1, flat[:, 0], -flat[:, 0])
        return 0.5 * (1.0 + np.tanh(0.5 * signed))  # the sigmoid, without overflow
    shifted = flat - flat.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp[np.arange(len(chosen)), chosen] / exp.sum(axis=1)
