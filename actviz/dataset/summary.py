"""What one pass over a data set learns, in one object that merges and saves.

A ``Summary`` holds, for every chosen layer and channel (computed from the channel's feature
map of each image, reduced inside the model to four numbers and a position, see ``engine``):

- the top-k images by the channel's spatial maximum, with the position (y, x) of that maximum
  in the layer's grid (ties: the smaller image index first);
- the mean and spread across images of the channel's *response*, its spatial mean on one image
  (Chan/Welford moments); the fraction of images on which it is *active* (its maximum above
  zero); its lowest and highest value anywhere;
- per true class: the moments of the response, from which come the class means and the
  channel's *selectivity* (below);

and for the model's answers: each image's predicted class and confidence (three numbers per
image: ``predictions.csv`` needs them), the most confident mistakes (a top-k), and, with
Grad-CAM, the sum of the normalised heat maps per class and per (true, predicted) cell, and the
sum of the input pixels per class (to show a heat map over the class's average image).

Every part merges: ``a.merge(b)`` summarises the images of both, exactly for the top-k lists,
the counts and the predictions, to float64 rounding for the moments and sums. Memory is
bounded by k x channels (plus three numbers per image), never by feature maps.

**Selectivity** (which channels tell the classes apart) is the correlation ratio eta squared
of the channel's response with the true class: the share of the response's variance across
images that the class explains, between-class sum of squares / total sum of squares, 0..1
(0: the class says nothing about the response; 1: the response is fixed by the class, the
classes do not overlap). It is exact from the per-class moments, so it merges exactly (unlike
AUROC, which needs every value), works for any number of classes, and unlike Morcos et al.'s
class selectivity index (class means only) it counts a difference only as far as it stands out
from the spread within the classes. ``selective_for`` is the class whose mean response stands
highest above the rest's, in units of the within-class standard deviation (one-vs-rest d').

**Dead** channels give the same value at every position of every image (for a layer ending in
ReLU: zero everywhere).

The saved file (``save``, ``load``), its schema ``Layout`` and the checks of a file that may come
from a stranger (``SummaryLimits``) are ``summary_file``'s; those names are importable from here too.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import summary_file
from .accumulate import EMPTY, Moments, Top, select
from .summary_file import MAX_CELL_CLASSES, Layout, SummaryLimits


@dataclass(frozen=True)
class LayerSummary:
    """One layer's channels over the images seen (C channels, K classes).

    ``top``: the top-k images per channel by spatial maximum, extra ``y``, ``x`` int32 (k, C);
    ``response``: moments of the per-image spatial mean (one group); ``by_class``: the same per
    true class (K groups); ``low``, ``high``: float64 (C,) lowest and highest value anywhere;
    ``active``: int64 (C,) images whose maximum is above zero.
    """

    top: Top
    response: Moments
    by_class: Moments
    low: np.ndarray
    high: np.ndarray
    active: np.ndarray

    @classmethod
    def empty(cls, k: int, channels: int, classes: int) -> "LayerSummary":
        return cls(
            Top.empty(k, channels, {"y": np.int32, "x": np.int32}), Moments.empty(1, channels), Moments.empty(classes, channels),
            np.full(channels, np.inf), np.full(channels, -np.inf), np.zeros(channels, np.int64),
        )

    def merge(self, other: "LayerSummary") -> "LayerSummary":
        return LayerSummary(
            self.top.merge(other.top), self.response.merge(other.response), self.by_class.merge(other.by_class),
            np.minimum(self.low, other.low), np.maximum(self.high, other.high), self.active + other.active,
        )


@dataclass(frozen=True)
class Summary:
    """Everything one pass over a data set learns; merges with ``merge``, saves with ``save``.

    ``layout``: what is held (see ``Layout``); ``layers``: name -> ``LayerSummary``;
    ``count``: images summarised; ``index``, ``label``, ``predicted``: int64 (n,) and
    ``confidence``: float32 (n,) per image, sorted by image index (label -1: none);
    ``mistakes``: top of the wrong answers by confidence (extra ``label``, ``predicted``;
    C = 1); ``cam_class``: float64 (K, h, w) heat-map sums per true class (per predicted
    class for images without a label) and ``cam_cell``: (K, K, h, w) per (true, predicted)
    cell, None without Grad-CAM; ``class_pixels``: float64 (K, H, W, C) sums of the input
    pixels, grouped like ``cam_class``; ``skipped``: (index, path, reason) of files left out
    (index -1 for those left out before the pass); ``images``: every image's path, by index
    (set when the pass ends); ``meta``: where it came from (model, data, options), in words
    and numbers.
    """

    layout: Layout
    layers: dict
    count: int
    index: np.ndarray
    label: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray
    mistakes: Top
    cam_class: np.ndarray | None
    cam_cell: np.ndarray | None
    class_pixels: np.ndarray | None
    skipped: tuple = ()
    images: tuple | None = None
    meta: dict = field(default_factory=dict)

    # --- building ------------------------------------------------------------------------

    @classmethod
    def empty(cls, layout: Layout, *, meta: dict | None = None) -> "Summary":
        """A summary of no images."""
        classes = len(layout.classes)
        cells = classes <= MAX_CELL_CLASSES
        h_w = layout.cam_shape
        return cls(
            layout=layout,
            layers={name: LayerSummary.empty(layout.top_k, shape[-1], classes) for name, shape in layout.layers},
            count=0, index=np.zeros(0, np.int64), label=np.zeros(0, np.int64), predicted=np.zeros(0, np.int64),
            confidence=np.zeros(0, np.float32),
            mistakes=Top.empty(layout.mistakes, 1, {"label": np.int64, "predicted": np.int64}),
            cam_class=None if h_w is None else np.zeros((classes, *h_w)),
            cam_cell=None if h_w is None or not cells else np.zeros((classes, classes, *h_w)),
            class_pixels=np.zeros((classes, *layout.image_shape)) if layout.class_images and cells else None,
            meta=dict(meta or {}),
        )

    def merge(self, other: "Summary") -> "Summary":
        """The summary of the images of both (which must not overlap)."""
        if other.layout != self.layout:
            raise ValueError("These summaries were made with different layers, classes or settings and cannot be merged.")
        index = np.concatenate([self.index, other.index])
        order = np.argsort(index, kind="stable")
        add = lambda a, b: None if a is None else a + b  # noqa: E731
        return replace(
            self,
            layers={name: part.merge(other.layers[name]) for name, part in self.layers.items()},
            count=self.count + other.count, index=index[order],
            label=np.concatenate([self.label, other.label])[order],
            predicted=np.concatenate([self.predicted, other.predicted])[order],
            confidence=np.concatenate([self.confidence, other.confidence])[order],
            mistakes=self.mistakes.merge(other.mistakes),
            cam_class=add(self.cam_class, other.cam_class), cam_cell=add(self.cam_cell, other.cam_cell),
            class_pixels=add(self.class_pixels, other.class_pixels),
            skipped=tuple(sorted(self.skipped + other.skipped, key=lambda s: (s[0], s[1]))),
        )

    # --- reading -------------------------------------------------------------------------

    @property
    def labelled(self) -> bool:
        """True when some image had a label (accuracy and per-class results exist)."""
        return bool((self.label >= 0).any())

    @property
    def class_count(self) -> np.ndarray:
        """int64 (K,): labelled images per true class."""
        return np.bincount(self.label[self.label >= 0], minlength=len(self.layout.classes)).astype(np.int64)

    @property
    def group(self) -> np.ndarray:
        """int64 (n,): the class each image counts under for heat maps and average images:
        its true class, or its predicted class when it has no label."""
        return np.where(self.label >= 0, self.label, self.predicted)

    @property
    def nbytes(self) -> int:
        """Bytes held by the summary (what a cache of summaries counts): its arrays, the image names
        (each string object and the tuple of them, as ``sys.getsizeof`` counts them: 200,000
        names of 60 characters are about 23 MB), the skipped rows, ``meta`` and the layout's names."""
        arrays = [self.index, self.label, self.predicted, self.confidence, self.mistakes.value, self.mistakes.image,
                  *self.mistakes.extra.values(), *(a for a in (self.cam_class, self.cam_cell, self.class_pixels) if a is not None)]
        for part in self.layers.values():
            arrays += [part.top.value, part.top.image, *part.top.extra.values(), part.low, part.high, part.active,
                       *vars(part.response).values(), *vars(part.by_class).values()]
        held = sum(a.nbytes for a in arrays if isinstance(a, np.ndarray))
        names = 0 if self.images is None else sys.getsizeof(self.images) + sum(map(sys.getsizeof, self.images))
        return int(held + names + _object_bytes(self.skipped) + _object_bytes(self.meta) + _object_bytes(self.layout.to_json()))

    def confusion(self) -> np.ndarray:
        """int64 (K, K): images of true class i predicted as class j (labelled images only)."""
        classes = len(self.layout.classes)
        known = self.label >= 0
        cells = self.label[known] * classes + self.predicted[known]
        return np.bincount(cells, minlength=classes * classes).reshape(classes, classes).astype(np.int64)

    def accuracy(self) -> float | None:
        """Share of labelled images predicted right; None without labels."""
        known = self.label >= 0
        return float((self.label[known] == self.predicted[known]).mean()) if known.any() else None

    def channels(self, layer: str) -> dict:
        """Per-channel results of one layer, each an array over the C channels.

        ``mean``, ``std``: float64, mean and standard deviation across images of the response
        (the channel's spatial mean); ``active_fraction``: share of images whose maximum is
        above zero; ``dead``: bool,
        the same value everywhere on every image; ``class_mean``: float64 (K, C) mean response
        per true class (NaN for a class without images); ``selectivity``: eta squared, 0..1;
        ``separation``: float64 (K, C) one-vs-rest d' (class mean minus the others' mean, over
        the pooled within-class standard deviation); ``selective_for``: int64, the class with
        the highest d' (-1 without labels).
        """
        part = self.layers[layer]
        n = max(self.count, 1)
        result = {
            "mean": part.response.mean[0], "std": part.response.std()[0],
            "active_fraction": part.active / n,
            "dead": (part.high == part.low) & (self.count > 0), "high": part.high, "low": part.low,
        }
        result.update(_selectivity(part.by_class))
        return result

    def mean_heatmaps(self) -> dict:
        """Mean normalised Grad-CAM heat map per class: name -> (float32 (h, w) 0..1, images), for
        classes with images (grouped as ``group``); empty without Grad-CAM."""
        if self.cam_class is None:
            return {}
        counts = np.bincount(self.group, minlength=len(self.layout.classes))
        return {
            self.layout.classes[c]: ((self.cam_class[c] / counts[c]).astype(np.float32), int(counts[c]))
            for c in range(len(self.layout.classes)) if counts[c]
        }

    def cell_heatmaps(self) -> dict:
        """Mean heat map per (true, predicted) cell with images: (i, j) -> (float32 (h, w), images)."""
        if self.cam_cell is None:
            return {}
        confusion = self.confusion()
        return {
            (i, j): ((self.cam_cell[i, j] / confusion[i, j]).astype(np.float32), int(confusion[i, j]))
            for i, j in zip(*np.nonzero(confusion))
        }

    def mean_images(self) -> dict:
        """Average input image per class as the model sees it: name -> uint8 (H, W, C)."""
        if self.class_pixels is None:
            return {}
        counts = np.bincount(self.group, minlength=len(self.layout.classes))
        return {
            self.layout.classes[c]: (self.class_pixels[c] / counts[c] + 0.5).clip(0, 255).astype(np.uint8)
            for c in range(len(self.layout.classes)) if counts[c]
        }

    def image_name(self, index: int) -> str:
        """The path of image ``index`` as given in the data set (``#index`` before the pass ends)."""
        return self.images[index] if self.images is not None and 0 <= index < len(self.images) else f"#{index}"

    # --- saving --------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The summary as an ``.npz`` file (no pickled objects; ``Summary.load`` reads it; the format
        is ``summary_file``'s)."""
        return summary_file.to_bytes(self)

    def save(self, path) -> None:
        """Write the summary to ``path`` (an ``.npz`` file)."""
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, source, *, limits: SummaryLimits | None = None) -> "Summary":
        """Read a summary written by ``save`` / ``to_bytes``: a path or the bytes.

        The file may come from a stranger, so nothing it declares is trusted. Its description
        (format, layout, where it came from, skipped files) is parsed and type-checked, and held to
        ``limits`` (default ``SummaryLimits()``); every array's type and shape is read from its
        header inside the ZIP and compared with what the layout and the image count imply; only
        then are the arrays read. Last, the values: image numbers, classes and peak positions in
        range, counts that agree, no NaN or infinity where a real summary has none. Anything
        wrong raises one ``DatasetError`` in plain words.

        >>> Summary.load("out/summary.npz", limits=SummaryLimits(images=100_000)).count  # doctest: +SKIP
        624
        """
        limits = SummaryLimits() if limits is None else limits
        fields, layers = summary_file.read(source, limits=limits)
        summary = cls(layers={name: LayerSummary(**part) for name, part in zip(fields["layout"].names, layers)}, **fields)
        summary_file.check_values(summary, limits=limits)
        return summary

    def check_model(self, probe: Any, *, limits: SummaryLimits | None = None) -> None:
        """Raise ``DatasetError`` when this summary does not fit the model ``probe`` looks into: an
        image size the model does not take (a model of one input size: exactly that size; a model
        that takes any size: within ``limits``), a layer the model does not have, a layer whose
        output (h, w, C) differs for the summary's image size, or another number of classes.

        Cheap (look-ups in the layer table and the layer shapes for one image size, worked out
        without computing and remembered by the probe): call it before drawing pictures that run
        the model over the summary's images.
        """
        summary_file.check_model(self.layout, probe, limits=SummaryLimits() if limits is None else limits)


def batch_summary(
    layout: Layout, *, index: np.ndarray, label: np.ndarray, reductions: dict, probabilities: np.ndarray,
    predicted: np.ndarray | None = None, heatmaps: np.ndarray | None = None, pixels: np.ndarray | None = None,
    skipped: tuple = (),
) -> Summary:
    """The summary of one batch of n images.

    ``index``: int (n,) image indices; ``label``: int (n,) true class or -1; ``reductions``:
    layer name -> (stats float32 (n, 3, C): spatial max, min and mean; position of the maximum int (n, C), flat index y * w + x); ``probabilities``: float
    (n, K) per class; ``predicted``: int (n,) the model's answers (default: the most probable
    class); ``heatmaps``: float (n, h, w) 0..1 or None; ``pixels``: uint8 (n, H, W, C)
    as the model saw them, or None; ``skipped``: (index, path, reason) of images of this batch
    that could not be read.
    """
    index = np.asarray(index, np.int64)
    label = np.asarray(label, np.int64)
    probabilities = np.asarray(probabilities, np.float64).reshape(len(index), -1)
    predicted = np.argmax(probabilities, axis=1) if predicted is None else predicted
    predicted = np.asarray(predicted, np.int64)
    confidence = probabilities[np.arange(len(index)), predicted].astype(np.float32)
    result = Summary.empty(layout)
    layers = {name: _layer_batch(layout, name, reductions[name], index, label) for name in layout.names}
    wrong = (label >= 0) & (label != predicted)
    mistakes = select(
        confidence[wrong, None], index[wrong, None], {"label": label[wrong, None], "predicted": predicted[wrong, None]}, layout.mistakes,
    )
    group = np.where(label >= 0, label, predicted)
    cam_class, cam_cell, class_pixels = result.cam_class, result.cam_cell, result.class_pixels
    if heatmaps is not None and cam_class is not None:
        heat = np.asarray(heatmaps, np.float64)
        np.add.at(cam_class, group, heat)
        if cam_cell is not None:
            np.add.at(cam_cell, (label[label >= 0], predicted[label >= 0]), heat[label >= 0])
    if pixels is not None and class_pixels is not None:
        for g in np.unique(group):
            class_pixels[g] += pixels[group == g].sum(axis=0, dtype=np.float64)
    order = np.argsort(index, kind="stable")
    return replace(
        result, layers=layers, count=len(index), index=index[order], label=label[order], predicted=predicted[order],
        confidence=confidence[order], mistakes=mistakes, skipped=tuple(sorted(skipped, key=lambda s: (s[0], s[1]))),
    )


def skipped_only(layout: Layout, skipped: tuple) -> Summary:
    """A summary of no images that records files that could not be read."""
    return replace(Summary.empty(layout), skipped=tuple(sorted(skipped, key=lambda s: (s[0], s[1]))))


def differences(a: Summary, b: Summary, *, rtol: float = 1e-5, atol: float = 1e-6) -> list[str]:
    """Where two summaries disagree, in words (empty when they agree): top-k images, counts and
    predictions exactly; top-k values, moments and sums to ``rtol`` / ``atol``.

    For checking that two ways of splitting the work (batches, processes, Ray) agree.
    """
    found = []
    if a.layout != b.layout:
        return ["different layouts (layers, classes or settings)"]
    exact = {"count": (a.count, b.count), "index": (a.index, b.index), "label": (a.label, b.label),
             "predicted": (a.predicted, b.predicted), "mistakes": (a.mistakes.image, b.mistakes.image),
             "skipped": (np.array([s[:2] for s in a.skipped], object), np.array([s[:2] for s in b.skipped], object))}
    for name, (x, y) in exact.items():
        if not np.array_equal(x, y):
            found.append(f"{name} differs")
    close = {"confidence": (a.confidence, b.confidence), "cam_class": (a.cam_class, b.cam_class),
             "cam_cell": (a.cam_cell, b.cam_cell), "class_pixels": (a.class_pixels, b.class_pixels)}
    for name, part in a.layers.items():
        other = b.layers[name]
        for key in ("image", "y", "x"):
            x, y = (part.top.image, other.top.image) if key == "image" else (part.top.extra[key], other.top.extra[key])
            if not np.array_equal(x, y):
                found.append(f"{name}: top-k {key} differs in {int((x != y).sum())} places")
        for key, x, y in [("top value", part.top.value, other.top.value), ("mean", part.response.mean, other.response.mean),
                          ("m2", part.response.m2, other.response.m2), ("class mean", part.by_class.mean, other.by_class.mean),
                          ("class m2", part.by_class.m2, other.by_class.m2), ("low", part.low, other.low), ("high", part.high, other.high)]:
            close[f"{name}: {key}"] = (x, y)
        for key, x, y in [("active", part.active, other.active), ("class count", part.by_class.count, other.by_class.count)]:
            if not np.array_equal(x, y):
                found.append(f"{name}: {key} differs")
    for name, (x, y) in close.items():
        if (x is None) != (y is None) or (x is not None and not np.allclose(x, y, rtol=rtol, atol=atol)):
            found.append(f"{name} differs beyond the tolerance")
    return found


def _selectivity(by_class: Moments) -> dict:
    """Class means, eta squared, one-vs-rest d' and the class each channel favours (see the module)."""
    classes, channels = by_class.mean.shape
    present = by_class.count > 0
    class_mean = np.where(present[:, None], by_class.mean, np.nan)
    if present.sum() < 2:
        return {"class_mean": class_mean, "selectivity": np.full(channels, np.nan),
                "separation": np.full((classes, channels), np.nan), "selective_for": np.full(channels, -1, np.int64)}
    count = by_class.count[:, None].astype(np.float64)
    total = count.sum()
    sums = count * by_class.mean  # (K, C): each class's summed response
    grand = sums.sum(axis=0) / total
    between = (count * (by_class.mean - grand) ** 2).sum(axis=0)
    within = by_class.m2.sum(axis=0)
    eta2 = np.divide(between, between + within, out=np.zeros(channels), where=(between + within) > 0)
    # one-vs-rest: the other classes' mean from the totals, over the pooled within-class deviation
    rest = np.divide(sums.sum(axis=0) - sums, total - count, out=np.zeros_like(sums), where=(total - count) > 0)
    gap = np.where(present[:, None], by_class.mean - rest, np.nan)
    sd = np.sqrt(within / total)
    with np.errstate(invalid="ignore"):
        separation = np.where(sd > 0, gap / np.where(sd > 0, sd, 1.0), np.sign(gap) * np.inf)
    separation = np.where(gap == 0, 0.0, separation)
    favoured = np.where(np.isnan(separation), -np.inf, separation).argmax(axis=0)
    return {"class_mean": class_mean, "selectivity": np.clip(eta2, 0.0, 1.0), "separation": separation, "selective_for": favoured.astype(np.int64)}


def _layer_batch(layout: Layout, name: str, reduced: tuple, index: np.ndarray, label: np.ndarray) -> LayerSummary:
    stats, position = reduced
    stats = np.asarray(stats, np.float32)
    width = layout.shape(name)[1]
    position = np.asarray(position, np.int64)
    columns = stats.shape[2]
    images = np.broadcast_to(index[:, None], (len(index), columns))
    top = select(stats[:, 0, :], images, {"y": (position // width).astype(np.int32), "x": (position % width).astype(np.int32)}, layout.top_k)
    response = stats[:, 2, :]
    return LayerSummary(
        top=top, response=Moments.of(response, np.zeros(len(index), np.int64), 1),
        by_class=Moments.of(response, label, len(layout.classes)),
        low=stats[:, 1, :].min(axis=0).astype(np.float64), high=stats[:, 0, :].max(axis=0).astype(np.float64),
        active=(stats[:, 0, :] > 0).sum(axis=0).astype(np.int64),
    )


def _object_bytes(value: Any) -> int:
    """Memory of a structure of dicts, lists, tuples, text and numbers, as ``sys.getsizeof`` counts
    each object (an object that appears twice is counted twice)."""
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        total += sys.getsizeof(item)
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return total

__all__ = ["Layout", "LayerSummary", "Summary", "SummaryLimits", "batch_summary", "skipped_only", "differences", "EMPTY"]
