"""Class activation maps at any convolution layer: Grad-CAM, Grad-CAM++, HiResCAM, XGrad-CAM,
LayerCAM (from gradients), Score-CAM and Ablation-CAM (from the model's answers to changed
inputs or switched-off channels, batched), and Eigen-CAM (from the layer alone).

Each takes a preprocessed batch (N, H, W, C) and returns an ``Explanation``
whose maps have the layer's height and width. The formulas follow the papers
and pytorch-grad-cam / tf-keras-vis where they agree (noted where they differ):

- Grad-CAM: w_k = mean_ij dS/dA_k;  map = sum_k w_k A_k
- Grad-CAM++: alpha = g^2 / (2 g^2 + sum_ij(A_k) g^3);  w_k = sum_ij alpha relu(g)
- HiResCAM: map = sum_k dS/dA_k * A_k (element by element)
- XGrad-CAM: w_k = sum_ij (A_k / sum_ij A_k) dS/dA_k
- LayerCAM: map = sum_k relu(dS/dA_k) * A_k
- Score-CAM: M_k = normalise(upsample(A_k)) to 0..1; w_k = P(class | x * M_k)
- Ablation-CAM: w_k = (S - S_k) / |S|, S_k the score with channel k set to 0
- Eigen-CAM: map = (A - mean) v, v the first right singular vector of the centred (h*w, C) matrix

S is the class score (the logit, see ``scores``); every map is shown through a ReLU.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.batches import Progress, batch_size, head_batch_size, report, slices
from ..errors import ChoiceError, LayerNotFoundError
from .result import Explanation, check_batch, display_map, upsample
from ..core.layers import LayerInfo
from ..core.passes import ablated_logits, class_logits
from ..core.probe import Probe
from ..core.target import choose_classes, class_probability, probability_values, score_tensor, score_values

GRADIENT_CAMS = ("gradcam", "gradcam++", "hirescam", "xgradcam", "layercam")
CAMS = (*GRADIENT_CAMS, "scorecam", "ablationcam", "eigencam")
#: Added to the span of a channel before scaling it to 0..1, as tf-keras-vis does (Keras' epsilon):
#: a constant channel becomes an all-zero mask instead of a division by zero.
MASK_EPSILON = 1e-7


def cam_layer(probe: Probe, layer: str | int | None) -> LayerInfo:
    """The convolution layer to explain at: ``layer`` (name, suffix or number) or the last one."""
    table = probe.table
    return table.last_convolution() if layer is None else table.resolve(layer, among=table.convolutions)


def class_activation_map(
    probe: Probe, batch: np.ndarray, *, method: str = "gradcam", layer: str | int | None = None,
    class_index: int | Sequence[int] | None = None, channels: int | None = None,
    batch_size: int | None = None, progress: Progress | None = None,
) -> Explanation:
    """A class activation map of each image of a batch: float32 (N, H, W, C) -> ``Explanation``
    with maps (N, h, w) at the layer's size.

    ``method``: one of ``CAMS``; ``layer``: a convolution layer (default the
    last); ``class_index``: one class, one per image, or None for each image's
    predicted class. Score-CAM and Ablation-CAM run the model once per channel
    and image, stacked ``batch_size`` at a time (default: as many as the memory
    budget allows), telling ``progress(done, total)`` after each batch;
    ``channels`` (Score-CAM only) keeps the channels whose maps vary most
    (Faster Score-CAM), None for all.
    """
    if method not in CAMS:
        raise ChoiceError(f"Unknown class activation map '{method}'. Choose one of: {', '.join(CAMS)}.")
    if channels is not None and method != "scorecam":
        raise ChoiceError("Only Score-CAM can be limited to some channels.")
    batch = check_batch(batch)
    info = cam_layer(probe, layer)
    activation, logits, probabilities = _first_pass(probe, batch, info.name)
    chosen = choose_classes(probabilities, class_index)
    details: dict = {}
    if method in GRADIENT_CAMS:
        gradients = layer_gradients(probe, batch, info.name, activation, chosen)
        weights, terms = channel_terms(activation, gradients, method)
    elif method == "eigencam":
        weights, terms = eigen_terms(activation)
    elif method == "scorecam":
        weights = score_cam_weights(probe, batch, activation, chosen, channels=channels, requested=batch_size, progress=progress)
        terms = activation * weights[:, None, None, :]
    else:
        weights, scores = ablation_weights(probe, batch, info.name, activation, logits, chosen, requested=batch_size, progress=progress)
        terms = activation * weights[:, None, None, :]
        details["ablated_scores"] = scores.astype(np.float32)
    raw = terms.sum(axis=-1)
    contribution = np.abs(weights) if method == "eigencam" else terms.sum(axis=(1, 2))
    return Explanation(
        method=method, family="cam", layer=info.name, input_size=tuple(batch.shape[1:3]), class_index=chosen,
        probability=class_probability(probabilities, chosen), score=score_values(logits, chosen).astype(np.float32),
        raw=raw.astype(np.float32), heatmap=display_map(raw, "positive"), predictions=np.asarray(probabilities),
        display="positive", weights=weights.astype(np.float32), ranking=np.argsort(-contribution, axis=1, kind="stable"),
        settings={"channels": channels} if method == "scorecam" else {}, details=details,
    )


# --- the passes through the model ----------------------------------------------------------


def _first_pass(probe: Probe, batch: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One forward pass: the layer's maps float64 (N, h, w, C), the logits (N, K) and the probabilities (N, ...)."""
    size = batch_size(probe, batch.shape[1:], keep=[name], requested=len(batch))
    model = probe.score_model(name)
    parts = [[np.asarray(t) for t in model(batch[part], training=False)] for part in slices(len(batch), size)]
    activation, logits, probabilities = (np.concatenate([p[i] for p in parts]) for i in range(3))
    return activation.astype(np.float64), logits.reshape(len(batch), -1), probabilities


def layer_gradients(probe: Probe, batch: np.ndarray, name: str, activation: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """float64 (N, h, w, C): the gradient of each image's class score with respect to the layer's map.

    The map is fed to the part of the network after the layer (``Probe.head_model``),
    so the backward pass runs through that part only and nothing below the layer
    is kept alive for it.
    """
    import tensorflow as tf

    head, takes_image = probe.head_model(name)
    size = head_batch_size(probe, batch.shape[1:], name, takes_image=takes_image, backward=True, requested=len(batch))
    grads = []
    for part in slices(len(batch), size):
        feature = tf.constant(activation[part], dtype=tf.float32)
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(feature)
            logits, _ = head([tf.constant(batch[part]), feature] if takes_image else feature, training=False)
            score = tf.reduce_sum(score_tensor(logits, chosen[part]))
        gradient = tape.gradient(score, feature)
        if gradient is None:  # the layer does not lead to the output (a side branch)
            raise LayerNotFoundError(f"The layer '{name}' does not lead to the model's prediction, so it has no class activation map.")
        grads.append(np.asarray(gradient, dtype=np.float64))
    return np.concatenate(grads)


def score_cam_weights(
    probe: Probe, batch: np.ndarray, activation: np.ndarray, chosen: np.ndarray, *, channels: int | None = None,
    requested: int | None = None, progress: Progress | None = None,
) -> np.ndarray:
    """float64 (N, C): Score-CAM's weight of each channel, the class probability of the image lit by it.

    For each image and channel, the channel's map is resized to the image
    (bilinear, corners aligned) and scaled to 0..1; the image times that mask
    goes through the model. The masked images are stacked as many per pass as
    memory allows. A constant channel gives an all-zero mask, so all of an
    image's constant channels share one pass. With ``channels``, only that many
    channels whose maps vary most are used (Faster Score-CAM); the rest weigh 0.
    """
    count, _, _, depth = activation.shape
    used = _varying_channels(activation, channels)
    constant = activation.max(axis=(1, 2)) == activation.min(axis=(1, 2))
    jobs = [(n, k) for n in range(count) for k in range(depth) if used[n, k] and not constant[n, k]]
    jobs += [(n, -1) for n in range(count) if (used[n] & constant[n]).any()]  # one all-zero mask per image
    height, width, colours = batch.shape[1:]
    size = batch_size(probe, batch.shape[1:], requested=requested, extra_bytes=4 * height * width * (colours + 1))
    found = np.zeros(len(jobs))
    for part in slices(len(jobs), size):
        images = np.array([n for n, _ in jobs[part]])
        picked = np.array([max(k, 0) for _, k in jobs[part]])
        maps = activation[images, :, :, picked] * np.array([k >= 0 for _, k in jobs[part]])[:, None, None]
        masks = upsample(maps[..., None], (height, width))
        low = masks.min(axis=(1, 2, 3), keepdims=True)
        high = masks.max(axis=(1, 2, 3), keepdims=True)
        masks = (masks - low) / (high - low + MASK_EPSILON)
        found[part] = probability_values(class_logits(probe, batch[images] * masks), chosen[images])
        report(progress, part.stop, len(jobs))
    weights = np.zeros((count, depth))
    for (n, k), value in zip(jobs, found):
        if k >= 0:
            weights[n, k] = value
        else:
            weights[n, used[n] & constant[n]] = value
    return weights


def _varying_channels(activation: np.ndarray, channels: int | None) -> np.ndarray:
    """bool (N, C): the channels Score-CAM uses: all, or the ``channels`` whose maps vary most."""
    count, depth = activation.shape[0], activation.shape[-1]
    if channels is None:
        return np.ones((count, depth), dtype=bool)
    if isinstance(channels, bool) or not 1 <= int(channels) <= depth:
        raise ChoiceError(f"Score-CAM can use 1 to {depth} channels of this layer (got {channels}).")
    spread = activation.std(axis=(1, 2))
    keep = np.zeros((count, depth), dtype=bool)
    top = np.argsort(-spread, axis=1, kind="stable")[:, : int(channels)]
    np.put_along_axis(keep, top, True, axis=1)
    return keep


def ablation_weights(
    probe: Probe, batch: np.ndarray, name: str, activation: np.ndarray, logits: np.ndarray, chosen: np.ndarray, *,
    requested: int | None = None, progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Ablation-CAM's weights float64 (N, C), and the class score with each channel switched off (N, C).

    Each channel of the layer's map is set to zero in turn and the rest of the
    network (``Probe.head_model``) gives the class score S_k; the weight is
    (S - S_k) / |S|. The paper divides by S; dividing by its size keeps the
    meaning when the score is negative (a class the model did not choose),
    where dividing by S would turn every weight's sign around. A channel that
    is zero everywhere changes nothing: its weight is 0 without a pass.
    Copies of the map are made in the graph, as many per pass as memory allows.
    """
    count, depth = activation.shape[0], activation.shape[-1]
    score = score_values(logits, chosen)
    scores = np.repeat(score[:, None], depth, axis=1)
    _, takes_image = probe.head_model(name)
    size = head_batch_size(probe, batch.shape[1:], name, takes_image=takes_image, requested=requested)
    maps = activation.astype(np.float32)
    live = [np.nonzero(maps[n].reshape(-1, depth).any(axis=0))[0] for n in range(count)]
    total, done = sum(len(k) for k in live), 0
    for n in range(count):
        for part in slices(len(live[n]), size):
            picked = live[n][part]
            out = ablated_logits(probe, name, maps[n], picked, batch[n] if takes_image else None)
            scores[n, picked] = score_values(out, np.full(len(picked), chosen[n]))
            done += len(picked)
            report(progress, done, total)
    size_of_score = np.where(np.abs(score) > 1e-12, np.abs(score), 1.0)[:, None]
    return (score[:, None] - scores) / size_of_score, scores


# --- the formulas, on numbers ------------------------------------------------------------


def channel_terms(activation: np.ndarray, gradients: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Channel weights float64 (N, C) and each channel's term of the map (N, h, w, C) for a gradient CAM.

    ``activation``: the layer's maps A, ``gradients``: dS/dA, both (N, h, w, C).
    The map is the terms summed over channels. For HiResCAM and LayerCAM, which
    weigh each position on its own, the weight is the spatial mean of what
    multiplies A (the gradient, or its positive part).
    """
    if method == "gradcam":
        # a vector where each entry is the mean intensity of the gradient over one channel
        weights = gradients.mean(axis=(1, 2))
    elif method == "gradcam++":
        # closed form with exp(score) as the class score (Chattopadhay et al. 2018, eq. 19)
        g2, g3 = gradients**2, gradients**3
        denominator = 2.0 * g2 + activation.sum(axis=(1, 2), keepdims=True) * g3
        alpha = np.divide(g2, denominator, out=np.zeros_like(g2), where=denominator != 0)
        weights = (alpha * np.maximum(gradients, 0.0)).sum(axis=(1, 2))
    elif method == "xgradcam":
        total = activation.sum(axis=(1, 2), keepdims=True)
        share = np.divide(activation, total, out=np.zeros_like(activation), where=total != 0)
        weights = (share * gradients).sum(axis=(1, 2))
    elif method == "hirescam":
        return gradients.mean(axis=(1, 2)), gradients * activation
    elif method == "layercam":
        positive = np.maximum(gradients, 0.0)
        return positive.mean(axis=(1, 2)), positive * activation
    else:
        raise ChoiceError(f"'{method}' is not a gradient class activation map.")
    return weights, activation * weights[:, None, None, :]


def eigen_terms(activation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-CAM: the first principal direction v (N, C) and each channel's term of the projection (N, h, w, C).

    The centred map of each image, (h*w, C), is projected on its first right
    singular vector. A singular vector's sign is arbitrary; it is turned so
    that its entries sum to at least zero, which makes the projection rise
    where the channels are active overall (its correlation with the sum of the
    channels is then never negative).
    """
    count, h, w, depth = activation.shape
    centred = activation.reshape(count, h * w, depth) - activation.reshape(count, h * w, depth).mean(axis=1, keepdims=True)
    directions = np.stack([first_direction(matrix) for matrix in centred]) if count else np.zeros((0, depth))
    return directions, centred.reshape(count, h, w, depth) * directions[:, None, None, :]


def first_direction(matrix: np.ndarray) -> np.ndarray:
    """float64 (C,): the first right singular vector of a (P, C) matrix, its entries summing to >= 0
    (zeros for an all-zero matrix).

    Worked out from the eigenvectors of the smaller Gram matrix (P x P or C x C) with
    TensorFlow's solver: numpy's SVD goes through OpenBLAS, whose threads spin
    against each other on a busy CPU (2 to 5 s for a 324 x 512 map on two shared
    cores, against 0.2 s here).
    """
    import tensorflow as tf

    if not matrix.any():
        return np.zeros(matrix.shape[1])
    rows, cols = matrix.shape
    gram = matrix @ matrix.T if rows < cols else matrix.T @ matrix
    values, vectors = (np.asarray(t) for t in tf.linalg.eigh(tf.constant(gram, dtype=tf.float64)))
    top = vectors[:, -1]  # eigenvalues come in ascending order
    direction = matrix.T @ top if rows < cols else top
    direction = direction / np.linalg.norm(direction)
    return direction if direction.sum() >= 0 else -direction
