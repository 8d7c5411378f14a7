"""What concept discovery and TCAV return: results that show themselves in Jupyter
(``_repr_html_``, ``_repr_png_``), say what they found in words, and turn into the files of the
command line (``files()``: name -> bytes, JSON and PNG).

``Concepts`` (from ``actviz.concepts``): the class's concepts, most important first, each with
its importance, its baseline, its most typical crops and its mean map; the findings of the
shortcut finder; per image, what the findings were made from. ``Tcav`` (from ``actviz.tcav``):
the TCAV score, its runs, the test against random directions, and the verdict.

The command line's ``concepts.json``::

    {"class": "marked", "class_index": 1, "layer": "conv2", "images": 120, "reconstruction_error": 0.08,
     "notes": [...], "concepts": [{"concept": 1, "importance": 2.31, "random_importance": 0.02,
     "examples": ["marked/img_003.png", ...], "mean_map": "concept_1_map.npy", "sheet": "concept_1_crops.png"}, ...]}

``importance``: the mean fall of the class score (logit) over the class's images when the concept
is removed at the layer; ``random_importance``: the same for a random part of equal size;
``mean_map``: float32 (H, W) the concept's map averaged over the class's images, in input pixels.
``findings.json``: ``{"class": ..., "findings": [{"concept", "kind", "share", "region", "words",
"picture"}]}`` (``shortcuts``). ``tcav.json``: ``{"class", "concept", "layer", "score",
"p_value", "runs": [{"score", "random_score", "accuracy", "random_accuracy"}], "words", "notes"}``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .shortcuts import percent


@dataclass(frozen=True)
class Crop:
    """One crop: the data set index of its image, its box [x0, y0, x1, y1] in input pixels, and
    how much of the concept it holds (its NMF coefficient)."""

    image: int
    box: tuple
    amount: float


@dataclass(frozen=True, eq=False)
class Concept:
    """One concept, numbered by importance (1 = most important).

    ``importance`` / ``random_importance``: mean fall of the class score over the class's images
    when the concept (or a random part of equal size) is removed; ``spread``: the standard
    deviation of that fall over the images; ``relied``: share of the class's images that rely
    on it (``shortcuts.relies``); ``direction``: float32 (C,) unit, non-negative, the concept in
    the layer's channels; ``grid_map``: float32 (h, w) its mean map at the layer's grid;
    ``mean_map``: float32 (H, W) the same in input pixels; ``crops``: its most typical crops
    (one per image), most typical first; ``examples``: their images' names.
    """

    number: int
    importance: float
    random_importance: float
    spread: float
    relied: float
    direction: np.ndarray
    grid_map: np.ndarray
    mean_map: np.ndarray
    crops: tuple
    examples: tuple

    def to_json(self) -> dict:
        return {"concept": self.number, "importance": round(float(self.importance), 6),
                "random_importance": round(float(self.random_importance), 6), "examples": list(self.examples),
                "mean_map": f"concept_{self.number}_map.npy", "sheet": f"concept_{self.number}_crops.png"}

    def words(self, class_name: str, mean_score: float | None = None) -> str:
        """One sentence for people: what removing it does to the model's score for the class, against a
        random part of the same size; as a share of the class's mean score when that is positive
        (``mean_score``), else in the score's own units.

        >>> c = Concept(3, 1.9, 0.2, 0.5, 0.83, None, None, None, (), ())
        >>> c.words("digit 7", mean_score=5.0)
        "Concept 3: removing it lowers the model's score for 'digit 7' by 38% on average (a random part of the same size: by 4%); 83% of its images rely on it."
        >>> c.words("digit 7")
        "Concept 3: removing it lowers the model's score for 'digit 7' by 1.9 on average (a random part of the same size: by 0.2); 83% of its images rely on it."
        """
        verb = "lowers" if self.importance >= 0 else "raises"
        baseline = ("by " if self.random_importance >= 0 else "raises it by ") + _amount(self.random_importance, mean_score)
        return (f"Concept {self.number}: removing it {verb} the model's score for '{class_name}' by {_amount(self.importance, mean_score)} "
                f"on average (a random part of the same size: {baseline}); {percent(self.relied)} of its images rely on it.")


@dataclass(frozen=True, eq=False)
class Concepts:
    """Concepts of one class at one layer, most important first (see the module).

    ``per_image``: name -> array over the images read (``index`` int64 data set index,
    ``kind`` ``passes.RIGHT``/``MISSED``/``FALSE_ALARM``, ``score``, ``drop`` (n, K), ``random``
    (n, K), ``all``, ``strength`` (n, K), ``cell`` (n, K)), concepts in the order of
    ``concepts``; ``reconstruction``: the NMF's relative error on the crops; ``chosen``: how the
    number of concepts was chosen; ``count``: the class's images read; ``notes``: plain words;
    ``meta``: model, data, engine, seconds per stage.
    """

    class_index: int
    class_name: str
    layer: str
    image_shape: tuple
    concepts: tuple
    findings: tuple
    per_image: dict
    reconstruction: float
    chosen: str
    count: int
    images: tuple
    notes: tuple = ()
    meta: dict = field(default_factory=dict)
    pixels_of: Callable | None = field(default=None, repr=False)
    reader: Callable | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.concepts)

    @property
    def nbytes(self) -> int:
        """Bytes the result holds (what a cache of results counts): its arrays, the image names, and an
        uploaded data set's bytes it keeps alive to draw its pictures (the model is not its own)."""
        arrays = [*self.per_image.values(), *(a for c in self.concepts for a in (c.direction, c.grid_map, c.mean_map))]
        names = sys.getsizeof(self.images) + sum(map(sys.getsizeof, self.images))
        return int(sum(a.nbytes for a in arrays) + names + self.meta.get("source_bytes", 0))

    @property
    def mean_score(self) -> float | None:
        """The class score's mean over the class's images (the logit), by which importance is shared
        out in words; None when no image of the class was read."""
        from .passes import FALSE_ALARM

        kind, score = self.per_image.get("kind"), self.per_image.get("score")
        if kind is None or score is None:
            return None
        own = np.asarray(score)[np.asarray(kind) != FALSE_ALARM]
        return float(own.mean()) if len(own) else None

    def concept_words(self, number: int) -> str:
        """Concept ``number``'s sentence (``Concept.words``, shares of the class's mean score)."""
        return self[number].words(self.class_name, self.mean_score)

    def __getitem__(self, number: int) -> Concept:
        """Concept ``number`` (1 = most important)."""
        if not 1 <= int(number) <= len(self.concepts):
            from ..errors import ChoiceError

            raise ChoiceError(f"There is no concept {number}: the concepts are numbered 1 to {len(self.concepts)}.")
        return self.concepts[int(number) - 1]

    # --- maps of any images -------------------------------------------------------------------

    def maps(self, images: Any) -> np.ndarray:
        """Concept maps of ``images`` (anything ``actviz.to_batch`` takes): float32 (N, H, W, K)
        over the input's pixels, concept k + 1 in channel k ("where it is" in each image)."""
        if self.reader is None:
            from ..errors import ActvizError

            raise ActvizError("This result has no model attached (it was read from a file), so it cannot map new images.")
        return self.reader(images)

    # --- pictures -------------------------------------------------------------------------------

    def sheet(self, number: int) -> np.ndarray:
        """Concept ``number``'s most typical crops, tiled: uint8 (h, w, 3)."""
        from .crops import crop_pixels
        from .pictures import crop_sheet

        crops = []
        for crop in self[number].crops:
            pixels = self._pixels(crop.image)
            if pixels is not None:
                x0, y0, x1, y1 = crop.box
                crops.append(crop_pixels(pixels, crop.box, (y1 - y0, x1 - x0)))
        return crop_sheet(crops)

    def map_picture(self, number: int) -> np.ndarray:
        """Concept ``number``'s mean map over its most typical image: uint8 (h, w, 3)."""
        from .pictures import map_picture

        concept = self[number]
        base = self._pixels(concept.crops[0].image) if concept.crops else None
        return map_picture(concept.mean_map, base)

    def finding_picture(self, position: int) -> np.ndarray:
        """Finding ``position`` (0-based)'s region drawn on its typical image: uint8 (h, w, 3)."""
        from .pictures import region_picture

        finding = self.findings[position]
        pixels = self._pixels(finding.image)
        if pixels is None:
            pixels = np.full(self.image_shape, 128, np.uint8)
        return region_picture(pixels, finding.region)

    def _pixels(self, index: int) -> np.ndarray | None:
        return None if self.pixels_of is None else self.pixels_of(int(index))

    # --- words and files ------------------------------------------------------------------------

    def words(self) -> list[str]:
        """What was found, sentence by sentence: the concepts, then the findings (or that there are none)."""
        lines = [f"{len(self.concepts)} concepts of '{self.class_name}' at layer {self.layer}, from {self.count:,} images; together they "
                 f"reconstruct the crops' activations to within {percent(self.reconstruction)} (relative error)."]
        lines += [c.words(self.class_name, self.mean_score) for c in self.concepts]
        lines += [f.words for f in self.findings] or ["No finding: no important concept sits in one small place of most images or comes with the mistakes."]
        return lines

    def to_json(self) -> dict:
        """``concepts.json`` (see the module)."""
        return {"class": self.class_name, "class_index": self.class_index, "layer": self.layer, "images": self.count,
                "reconstruction_error": round(float(self.reconstruction), 6), "notes": list(self.notes),
                "concepts": [c.to_json() for c in self.concepts]}

    def findings_json(self) -> dict:
        """``findings.json`` (see the module)."""
        return {"class": self.class_name, "findings": [{**f.to_json(), "picture": f"finding_{i + 1}.png"} for i, f in enumerate(self.findings)]}

    def files(self) -> dict[str, bytes]:
        """Everything the command line writes: file name -> bytes."""
        from ..draw.figures import picture_png

        files = {"concepts.json": _json(self.to_json()), "findings.json": _json(self.findings_json())}
        for concept in self.concepts:
            files[f"concept_{concept.number}_map.npy"] = _npy(concept.mean_map)
            files[f"concept_{concept.number}_map.png"] = picture_png(self.map_picture(concept.number))
            files[f"concept_{concept.number}_crops.png"] = picture_png(self.sheet(concept.number))
        for i in range(len(self.findings)):
            files[f"finding_{i + 1}.png"] = picture_png(self.finding_picture(i))
        return files

    def _repr_png_(self) -> bytes:
        """Jupyter: each concept's mean map beside its crops, one row per concept."""
        from ..draw.figures import picture_png

        rows = [_side_by_side([self.map_picture(c.number), self.sheet(c.number)]) for c in self.concepts]
        return picture_png(_stack(rows))

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><b>{c.number}</b></td><td>{c.importance:.3g}</td><td>{c.random_importance:.3g}</td><td>{percent(c.relied)}</td>"
            f"<td>{_img(self.map_picture(c.number), 120)}</td><td>{_img(self.sheet(c.number), 480)}</td></tr>" for c in self.concepts)
        findings = "".join(f"<li>{html.escape(f.words)}<br>{_img(self.finding_picture(i), 160)}</li>" for i, f in enumerate(self.findings))
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (f"<div><p>{html.escape(self.words()[0])}</p><table><tr><th>concept</th><th>importance</th><th>random part</th>"
                f"<th>images relying on it</th><th>where (mean map)</th><th>what (most typical crops)</th></tr>{rows}</table>"
                f"<p><b>Findings</b></p><ul>{findings or '<li>None.</li>'}</ul><details><summary>Notes</summary><ul>{notes}</ul></details></div>")

    def __repr__(self) -> str:
        return (f"Concepts(class={self.class_name!r}, layer={self.layer!r}, concepts={len(self.concepts)}, "
                f"findings={len(self.findings)}, images={self.count})")


@dataclass(frozen=True)
class TcavRun:
    """One run: the TCAV score of the concept's CAV against one random set, and of a random CAV
    (one random set against another), with each classifier's accuracy on held-out examples."""

    score: float
    random_score: float
    accuracy: float
    random_accuracy: float

    def to_json(self) -> dict:
        return {key: round(float(value), 6) for key, value in vars(self).items()}


@dataclass(frozen=True, eq=False)
class Tcav:
    """A TCAV test (``tcav``): ``score`` the mean over runs of the share of the class's images
    whose class score rises along the concept's direction; ``p_value`` of the two-sided t-test
    against random directions (None when it cannot be run); ``runs``; ``words`` the verdict;
    ``count`` the class's images, ``examples`` the concept's, ``randoms`` the random images;
    ``kind``: the verdict in one word ("sensitive", "pushes away", "no evidence", "too few",
    ``tcav.verdict_kind``); ``alpha``: the significance level."""

    class_index: int
    class_name: str
    concept: str
    layer: str
    score: float
    p_value: float | None
    runs: tuple
    words: str
    count: int
    examples: int
    randoms: int
    notes: tuple = ()
    meta: dict = field(default_factory=dict)
    kind: str = ""
    alpha: float = 0.05

    @property
    def finding(self) -> bool:
        """True when the test found something (the answer depends on the concept, either way): the
        only result a page may show as a finding; "no evidence" and "too few" are not."""
        return self.kind in ("sensitive", "pushes away")

    @property
    def random_score(self) -> float:
        return float(np.mean([r.random_score for r in self.runs])) if self.runs else float("nan")

    def to_json(self) -> dict:
        return {"class": self.class_name, "concept": self.concept, "layer": self.layer, "score": round(float(self.score), 6),
                "p_value": None if self.p_value is None else float(self.p_value), "runs": [r.to_json() for r in self.runs],
                "verdict": self.kind, "words": self.words, "notes": list(self.notes)}

    def chart(self) -> bytes:
        """The runs' scores, concept against random directions: PNG bytes."""
        from .pictures import tcav_chart

        return tcav_chart([r.score for r in self.runs], [r.random_score for r in self.runs],
                          title=f"'{self.concept}' for '{self.class_name}' at {self.layer}")

    def files(self) -> dict[str, bytes]:
        return {"tcav.json": _json(self.to_json()), "tcav.png": self.chart()}

    def _repr_png_(self) -> bytes:
        return self.chart()

    def _repr_html_(self) -> str:
        chart = base64.b64encode(self.chart()).decode()
        return f"<div><p>{html.escape(self.words)}</p><img src='data:image/png;base64,{chart}'></div>"

    def __repr__(self) -> str:
        p = "n/a" if self.p_value is None else f"{self.p_value:.3g}"
        return f"Tcav(class={self.class_name!r}, concept={self.concept!r}, layer={self.layer!r}, score={self.score:.3f}, p={p}, runs={len(self.runs)})"


def _amount(fall: float, mean_score: float | None) -> str:
    """How much the class score falls, for people: a share of a positive mean score ("38%"), else the
    score's own units to two digits ("1.9")."""
    amount = abs(float(fall))
    return f"{amount / mean_score:.0%}" if mean_score is not None and mean_score > 0 else f"{amount:.2g}"


def _json(value: dict) -> bytes:
    return (json.dumps(value, indent=1, ensure_ascii=False) + "\n").encode()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, np.float32), allow_pickle=False)
    return buffer.getvalue()


def _img(picture: np.ndarray, width: int) -> str:
    from ..draw.figures import picture_png

    data = base64.b64encode(picture_png(picture)).decode()
    return f"<img src='data:image/png;base64,{data}' style='max-width:{width}px'>"


def _side_by_side(pictures: Sequence[np.ndarray], gap: int = 8) -> np.ndarray:
    height = max(p.shape[0] for p in pictures)
    padded = [np.pad(p, ((0, height - p.shape[0]), (0, gap), (0, 0)), constant_values=255) for p in pictures]
    return np.concatenate(padded, axis=1)


def _stack(rows: Sequence[np.ndarray], gap: int = 8) -> np.ndarray:
    if not rows:
        return np.full((8, 8, 3), 255, np.uint8)
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, gap), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(padded, axis=0)
