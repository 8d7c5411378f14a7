"""What a pattern maximises (lucent's ``objectives``): a channel (its mean over the map), a neuron
(the channel at the centre of the map) or a class (its logit, the score before the softmax);
one score per pattern from one forward pass over the batch of patterns.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from ..core.predictions import check_class
from ..core.probe import Probe
from ..errors import ChannelNotFoundError, ChoiceError

#: What a pattern can be made to excite.
OBJECTIVES = ("channel", "neuron", "class")


def check_targets(probe: Probe, layer: str | None, targets: Sequence[int], objective: str) -> tuple[str | None, int, list[int]]:
    """(layer name or None for classes, how many targets there are, the targets as ints), or a
    ``ChoiceError`` / ``ChannelNotFoundError`` / ``ClassNotFoundError`` in plain words."""
    if objective not in OBJECTIVES:
        raise ChoiceError(f"Unknown objective '{objective}'. Choose one of: {', '.join(OBJECTIVES)}.")
    targets = list(targets)
    if objective == "class":
        count = class_count_of(probe)
        if not targets:
            raise ChoiceError(f"Choose at least one class (the model has {count}, numbered 0 to {count - 1}).")
        return None, count, [check_class(t, count) for t in targets]
    info = probe.table.resolve(layer) if layer is not None else None
    if info is None:
        raise ChoiceError("Choose a layer whose channels the patterns should excite.")
    count = int(info.output_shape[-1])
    bad = [t for t in targets if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= int(t) < count]
    if bad or not targets:
        raise ChannelNotFoundError(f"Layer '{info.name}' has channels 0 to {count - 1}; asked for {targets or 'none'}.")
    return info.name, count, [int(t) for t in targets]


def class_count_of(probe: Probe) -> int:
    """How many classes the model's first output distinguishes (one sigmoid unit is two)."""
    size = math.prod(d or 1 for d in probe.symbolic_logits().shape[1:])
    return 2 if size == 1 else int(size)


def score_function(probe: Probe, layer: str | None, objective: str) -> Callable[[Any], Any]:
    """A TensorFlow function: model input float32 (N, H, W, C) -> scores float32 (N, K).

    K is the layer's channel count (channel: the mean over the map; neuron: the
    value at the map's centre) or the class count (class: the logits; one
    sigmoid unit z gives the two classes (-z, z), whose probabilities are 1 - p and p).
    """
    import tensorflow as tf

    if objective == "class":
        model = probe.logits_model()

        def scores(x):
            logits = tf.reshape(model(x, training=False)[0], [tf.shape(x)[0], -1])
            return tf.concat([-logits, logits], axis=1) if logits.shape[1] == 1 else logits
        return scores
    model = probe.feature_model(layer)
    if objective == "neuron":
        def scores(x):
            maps = model(x, training=False)
            return maps[:, tf.shape(maps)[1] // 2, tf.shape(maps)[2] // 2, :]
        return scores
    return lambda x: tf.reduce_mean(model(x, training=False), axis=(1, 2))


def target_activations(
    probe: Probe, layer: str | None, targets: Sequence[int], inputs: np.ndarray, *, objective: str = "channel",
) -> np.ndarray:
    """Each input's own objective: float32 (N,) for model inputs float32 (N, H, W, C) and N targets.

    One forward pass. The same measure the optimisation climbs (used to report
    what a pattern reached, and by the benchmark).
    """
    import tensorflow as tf

    name, _, targets = check_targets(probe, layer, targets, objective)
    if len(inputs) != len(targets):
        raise ValueError(f"one target per input: {len(inputs)} inputs, {len(targets)} targets")
    scores = score_function(probe, name, objective)(tf.constant(np.asarray(inputs, dtype=np.float32))).numpy()
    return scores[np.arange(len(targets)), targets].astype(np.float32)
