"""What one batch of images becomes in each pass (the local engine and every Ray actor run these
same tasks; ``collect`` runs them and merges their parts).

- ``Answers``: the model's answer for each image (to find a class's images in a data set
  without labels);
- ``Crops``: each image's crops (``crops``) through the layer, each crop's positive activations
  averaged over the grid (one row of the matrix NMF factorises);
- ``Readings``: whole images read in fixed concepts: each grid position's activations projected
  on the concepts, the class score with each concept removed (``importance``), each concept's
  peak (``maps``), and the class's mean maps;
- ``Features``: a layer's activations, flattened (the examples TCAV's linear classifiers learn
  from);
- ``Sensitivities``: the class score's gradient at the layer and its directional derivative
  along each concept activation vector (TCAV).

A task is a small frozen object (its settings and arrays; picklable, sent to Ray actors); it
fixes the model's chunk sizes on the calling machine, so every process computes an image with
the same kernels. Per image, only what the results need is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..inputs.preprocessing import preprocess
from .classes import answers
from .collect import Part
from .crops import crop_batch, crop_boxes
from .factorise import positive_part, project
from .importance import drops, removal_scores
from .layer import crop_forward, forward, head_gradients, head_logits, outputs_forward, run_chunked
from .maps import peaks

#: ``Readings.kind`` of an image: the class's image answered right, the class's image answered
#: otherwise (a miss), another class's image answered as this class (a false alarm).
RIGHT, MISSED, FALSE_ALARM = 0, 1, 2


def _split(source: Any, index: np.ndarray, loaded: list) -> tuple[np.ndarray, list, tuple]:
    """(indices of the images read, their uint8 (H, W, C) pixels, (index, path, reason) of the others)."""
    skipped = tuple((int(i), source.paths[int(i)], str(why)) for i, (pixels, why) in zip(index, loaded) if pixels is None)
    good = [(int(i), pixels) for i, (pixels, _) in zip(index, loaded) if pixels is not None]
    return np.array([i for i, _ in good], np.int64), [p for _, p in good], skipped


def _head_images(x: np.ndarray, takes_image: bool) -> np.ndarray:
    """The images a head reads: the model inputs when it reads them, else a 1 x 1 placeholder."""
    return x if takes_image else np.zeros((len(x), 1, 1, 1), np.float32)


@dataclass(frozen=True)
class Answers:
    """The model's answer for each image: rows ``key`` (the image), ``answer`` int64."""

    scaling: str
    image_shape: tuple
    chunk: int
    units = 1

    def __call__(self, probe: Any, source: Any, index: np.ndarray, loaded: list) -> Part:
        good, pixels, skipped = _split(source, index, loaded)
        rows = {}
        if len(good):
            x = preprocess(np.stack(pixels), self.scaling)
            (outputs,) = run_chunked(outputs_forward(probe, self.image_shape, self.chunk), [x], self.chunk)
            rows = {"key": good, "answer": answers(outputs)}
        return Part.of(rows=rows, done=index, skipped=skipped)


@dataclass(frozen=True)
class Crops:
    """Each image's ``count`` crops through the layer: rows ``key`` (image x count + crop),
    ``index``, ``crop`` (its number), ``vector`` float32 (C) the positive activations averaged
    over the grid; lowest ``low``: the smallest activation seen."""

    scaling: str
    image_shape: tuple
    layer: str
    chunk: int
    count: int
    sides: tuple
    seed: int

    @property
    def units(self) -> int:
        return int(self.count)

    def __call__(self, probe: Any, source: Any, index: np.ndarray, loaded: list) -> Part:
        good, pixels, skipped = _split(source, index, loaded)
        pairs = [(p, j, box) for p, i in enumerate(good)
                 for j, box in enumerate(crop_boxes(i, self.image_shape[:2], count=self.count, sides=self.sides, seed=self.seed))]
        if not pairs:
            return Part.of(done=index, skipped=skipped)
        function = crop_forward(probe, self.layer, self.image_shape, self.chunk)
        vectors, lows = [], []
        for start in range(0, len(pairs), self.chunk):  # crops are cut a chunk at a time: memory stays at one chunk
            group = pairs[start : start + self.chunk]
            x = preprocess(crop_batch(pixels, [(p, box) for p, _, box in group]), self.scaling)
            mean, low = run_chunked(function, [x], self.chunk)
            vectors.append(mean)
            lows.append(float(low.min()))
        image = np.array([good[p] for p, _, _ in pairs], np.int64)
        crop = np.array([j for _, j, _ in pairs], np.int64)
        rows = {"key": image * self.count + crop, "index": image, "crop": crop, "vector": np.concatenate(vectors).astype(np.float32)}
        return Part.of(rows=rows, lows={"low": min(lows)}, done=index, skipped=skipped)


@dataclass(frozen=True, eq=False)
class Readings:
    """Whole images read in fixed concepts (see the module), for the images of the class and the
    other classes' images the model answers as the class.

    ``labels`` int64 (N,): the model class of each image's label (-1: none); for a data set
    without labels (``labelled`` False) the pass is given the images the model answered as the
    class and ``labels`` says so. Rows: ``key`` (the image), ``label``, ``answer``, ``kind``
    (``RIGHT``, ``MISSED``, ``FALSE_ALARM``), ``score`` the class score, ``drop`` (K) and
    ``random`` (K) its fall with each concept or random direction removed, ``all`` with every
    concept removed, ``strength`` (K) and ``cell`` (K) each concept's peak. Sums: ``maps_class``
    and ``maps_mistakes`` (h, w, K), the concept maps added over the class's images and over the
    mistakes. Lowest ``low``: the smallest activation seen.
    """

    scaling: str
    image_shape: tuple
    layer: str
    chunk: int
    head_chunk: int
    class_index: int
    concepts: np.ndarray
    randoms: np.ndarray
    labels: np.ndarray
    labelled: bool
    takes_image: bool
    units = 1

    def __call__(self, probe: Any, source: Any, index: np.ndarray, loaded: list) -> Part:
        good, pixels, skipped = _split(source, index, loaded)
        if not len(good):
            return Part.of(done=index, skipped=skipped)
        x = preprocess(np.stack(pixels), self.scaling)
        feature, _, outputs = run_chunked(forward(probe, self.layer, self.image_shape, self.chunk), [x], self.chunk)
        label = self.labels[good]
        answer = answers(outputs) if self.labelled else np.full(len(good), self.class_index, np.int64)
        mine, said = label == self.class_index, answer == self.class_index
        treat = mine | (said & (label >= 0))
        low = float(feature.min())
        if not treat.any():
            return Part.of(lows={"low": low}, done=index, skipped=skipped)
        return self._read(probe, good[treat], x[treat], feature[treat], label[treat], answer[treat], (index, skipped, low))

    def _read(self, probe: Any, good: np.ndarray, x: np.ndarray, feature: np.ndarray, label: np.ndarray, answer: np.ndarray, rest: tuple) -> Part:
        index, skipped, low = rest
        count, height, width, channels = feature.shape
        coefficients = project(positive_part(feature).reshape(-1, channels), self.concepts).reshape(count, height, width, -1)
        images = _head_images(x, self.takes_image)
        head = head_logits(probe, self.layer, ((height, width, channels), tuple(images.shape[1:])), self.head_chunk)
        found = drops(removal_scores(head, feature, coefficients, self.concepts, self.randoms, images, self.class_index, self.head_chunk))
        strength, cell = peaks(coefficients)
        mine, said = label == self.class_index, answer == self.class_index
        kind = np.where(mine & said, RIGHT, np.where(mine, MISSED, FALSE_ALARM)).astype(np.int64)
        rows = {"key": good, "label": label, "answer": answer, "kind": kind, "score": found["score"], "drop": found["drop"],
                "random": found["random"], "all": found["all"], "strength": strength, "cell": cell}
        sums = {"maps_class": coefficients[kind != FALSE_ALARM].sum(axis=0, dtype=np.float64),
                "maps_mistakes": coefficients[kind != RIGHT].sum(axis=0, dtype=np.float64)}
        return Part.of(rows=rows, sums=sums, lows={"low": low}, done=index, skipped=skipped)


@dataclass(frozen=True)
class Features:
    """A layer's activations, flattened: rows ``key`` (the image), ``feature`` float32 (h*w*C)."""

    scaling: str
    image_shape: tuple
    layer: str
    chunk: int
    units = 1

    def __call__(self, probe: Any, source: Any, index: np.ndarray, loaded: list) -> Part:
        good, pixels, skipped = _split(source, index, loaded)
        rows = {}
        if len(good):
            x = preprocess(np.stack(pixels), self.scaling)
            feature, _, _ = run_chunked(forward(probe, self.layer, self.image_shape, self.chunk), [x], self.chunk)
            rows = {"key": good, "feature": feature.reshape(len(good), -1).astype(np.float32)}
        return Part.of(rows=rows, done=index, skipped=skipped)


@dataclass(frozen=True, eq=False)
class Sensitivities:
    """TCAV's directional derivatives: for each image of the class, the gradient of the class
    score at the layer, dotted with each of ``vectors`` float32 (R, h*w*C) (the concept
    activation vectors). ``by_answer``: keep only the images the model answers as the class (a
    data set without labels). Rows: ``key`` (the image), ``derivative`` float32 (R)."""

    scaling: str
    image_shape: tuple
    layer: str
    chunk: int
    head_chunk: int
    class_index: int
    vectors: np.ndarray
    by_answer: bool
    takes_image: bool
    units = 1

    def __call__(self, probe: Any, source: Any, index: np.ndarray, loaded: list) -> Part:
        good, pixels, skipped = _split(source, index, loaded)
        if not len(good):
            return Part.of(done=index, skipped=skipped)
        x = preprocess(np.stack(pixels), self.scaling)
        feature, _, outputs = run_chunked(forward(probe, self.layer, self.image_shape, self.chunk), [x], self.chunk)
        keep = answers(outputs) == self.class_index if self.by_answer else np.ones(len(good), bool)
        if not keep.any():
            return Part.of(done=index, skipped=skipped)
        images = _head_images(x[keep], self.takes_image)
        function = head_gradients(probe, self.layer, (tuple(feature.shape[1:]), tuple(images.shape[1:])), self.head_chunk, self.class_index)
        _, gradient = run_chunked(function, [feature[keep], images], self.head_chunk)
        derivative = gradient.reshape(int(keep.sum()), -1).astype(np.float64) @ np.asarray(self.vectors, np.float64).T
        return Part.of(rows={"key": good[keep], "derivative": derivative.astype(np.float32)}, done=index, skipped=skipped)
