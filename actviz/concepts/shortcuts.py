"""The shortcut finder: concepts a class's answers rely on that look like how the images were
taken rather than what they show, reported as findings in plain words.

Shortcut learning is the known failure of chest X-ray models: they read the hospital's text
marker or the portable scanner's label instead of the lungs. Such a cue is small and sits in the
same place of every image (a marker is printed in a corner), or comes with the model's mistakes
(it fires where the cue is, whatever the image shows). Two kinds of finding follow:

- **place**: an *important* concept (its removal lowers the class score by at least
  ``IMPORTANT_SHARE`` of what all concepts' removals add up to, and by ``RANDOM_FACTOR`` times
  removing a random part of equal size) that *sits in the same place*: among the class's images
  that rely on it (where its removal costs at least ``RELY_SHARE`` of the costliest concept's,
  and more than removing a random part of the same size),
  its peak falls in one grid cell in at least ``FIXED`` of them, and those are at least ``MOST``
  of the class's images; its region (its mean map's strong part) is at most ``SMALL_REGION`` of
  the image. The one-cell test is what tells a cue printed in one place from a part of the object
  in well-aligned images (digits, chest X-rays): on the demo digits the strokes a class relies on
  peak in their most common cell in 26% to 62% of the images that rely on them (86% for the
  stroke of a "1", which too few of the 1s rely on), and no finding is made for any of the ten
  classes; the planted marker of the tests peaks in one cell in all of its images;
- **mistakes**: a concept *present* (its peak at least ``PRESENT`` of the 90th percentile of its
  peaks over the class's images) in at least ``MOST`` of the class's mistakes (its images the
  model missed, and other classes' images it answered as this class; at least
  ``MIN_MISTAKES``), at least ``MISTAKES_RATIO`` times as often as in its right answers and more
  often than chance allows (Fisher's exact test, p < ``MISTAKES_P``), and that matters on those
  mistakes: its removal there lowers the class score by at least ``IMPORTANT_SHARE`` of what all
  concepts' removals add up to, and by ``RANDOM_FACTOR`` times a random part's.

A finding's ``share`` is the share of the images it speaks of (the class's images for a place,
its mistakes for a mistake finding), ``region`` is ``[x0, y0, x1, y1]`` in input pixels
(``maps.region``), and its words describe what is there as far as numbers can (size, brightness
against the rest of the image, place) and say what to check. They do not decide that something is
a shortcut (they say what a shortcut looks like): whether a cue belongs to the disease is for a
person to judge, looking at the concept's crops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .maps import region
from .passes import RIGHT, FALSE_ALARM, MISSED

IMPORTANT_SHARE = 0.10
RANDOM_FACTOR = 2.0
RELY_SHARE = 0.25
MOST = 0.5
FIXED = 0.8
SMALL_REGION = 0.15
PRESENT = 0.5
MIN_MISTAKES = 5
MISTAKES_RATIO = 2.0
MISTAKES_P = 0.05
#: Typical images read to say whether a region is brighter or darker than the rest.
LOOKS = 16
#: Grey levels (of 255) a region must differ from its image's mean by to be called bright or dark.
CONTRAST = 20.0
ADVICE = ("A small fixed patch that decides the answer is the sign of a shortcut: check whether it belongs to the disease "
          "or to how the images were taken.")


@dataclass(frozen=True)
class Finding:
    """One finding: ``concept`` (its number, 1 = most important), ``kind`` ("place" or
    "mistakes"), ``share`` 0..1 of ``count`` images (see the module), ``region`` [x0, y0, x1, y1]
    in input pixels, ``region_share`` 0..1 of the image, ``words``, ``image`` (the data set index
    of a typical image to draw it on)."""

    concept: int
    kind: str
    share: float
    count: int
    region: tuple
    region_share: float
    words: str
    image: int

    def to_json(self) -> dict:
        return {"concept": self.concept, "kind": self.kind, "share": round(float(self.share), 4),
                "region": [int(v) for v in self.region], "words": self.words}


@dataclass(frozen=True)
class Evidence:
    """What the finder reads, concepts in order of importance. Per image (n rows): ``index`` int64
    (data set index), ``kind`` int64 (``passes.RIGHT`` ...), ``drop`` and ``random`` float (n, K),
    ``strength`` float (n, K), ``cell`` int (n, K). Per concept: ``importance`` and
    ``random_importance`` float (K,); ``maps_class`` and ``maps_mistakes`` float (K, h, w), the
    mean maps at the grid. ``image_hw`` (H, W); ``class_name``."""

    index: np.ndarray
    kind: np.ndarray
    drop: np.ndarray
    random: np.ndarray
    strength: np.ndarray
    cell: np.ndarray
    importance: np.ndarray
    random_importance: np.ndarray
    maps_class: np.ndarray
    maps_mistakes: np.ndarray
    image_hw: tuple
    class_name: str


def find_shortcuts(evidence: Evidence, *, pixels_of: Callable[[int], np.ndarray] | None = None) -> list[Finding]:
    """Every finding (place findings first, then mistakes; each in order of importance).
    ``pixels_of(index)``: uint8 (H, W, C) of a data set image, to say whether a region is bright
    or dark (left out of the words when None)."""
    found = [f for k in range(len(evidence.importance)) if (f := place_finding(evidence, k, pixels_of)) is not None]
    found += [f for k in range(len(evidence.importance)) if (f := mistakes_finding(evidence, k, pixels_of)) is not None]
    return found


def important(evidence: Evidence, k: int) -> bool:
    """Concept k matters to the class: see the module."""
    value = float(evidence.importance[k])
    total = float(np.clip(evidence.importance, 0, None).sum())
    return value > 0 and value >= IMPORTANT_SHARE * total and value >= RANDOM_FACTOR * max(float(evidence.random_importance[k]), 0.0)


def relies(drop: np.ndarray, random: np.ndarray, k: int) -> np.ndarray:
    """bool (n,): the images that rely on concept k: its removal lowers their score by at least
    ``RELY_SHARE`` of the costliest concept's, and by more than removing a random part of the
    same size does there. ``drop``, ``random``: float (n, K)."""
    most = drop.max(axis=1)
    return (drop[:, k] > 0) & (drop[:, k] >= RELY_SHARE * most) & (drop[:, k] > random[:, k])


def place_finding(evidence: Evidence, k: int, pixels_of: Callable | None) -> Finding | None:
    """A place finding for concept k, or None (see the module)."""
    mine = evidence.kind != FALSE_ALARM
    relying = mine & relies(evidence.drop, evidence.random, k)
    if not important(evidence, k) or not relying.any():
        return None
    cells = evidence.cell[:, k]
    counted = relying & (cells == np.bincount(cells[relying]).argmax())  # the images whose peak is in its most common cell
    share = float(counted.sum() / mine.sum())
    if share < MOST or counted.sum() < FIXED * relying.sum():
        return None
    box, share_of_image = region(evidence.maps_class[k], evidence.image_hw)
    if share_of_image == 0 or share_of_image > SMALL_REGION:
        return None
    what = describe(box, share_of_image, evidence, k, counted, pixels_of)
    words = (f"In {percent(share)} of '{evidence.class_name}' images the model relies on {what} "
             f"({percent(share_of_image)} of the image; concept {k + 1}). {ADVICE}")
    return Finding(k + 1, "place", share, int(mine.sum()), tuple(box), share_of_image, words, _typical(evidence, k, counted))


def mistakes_finding(evidence: Evidence, k: int, pixels_of: Callable | None) -> Finding | None:
    """A mistakes finding for concept k, or None (see the module)."""
    mistakes, right, mine = evidence.kind != RIGHT, evidence.kind == RIGHT, evidence.kind != FALSE_ALARM
    if mistakes.sum() < MIN_MISTAKES or not mine.any():
        return None
    present = evidence.strength[:, k] >= PRESENT * np.percentile(evidence.strength[mine, k], 90)
    rate_mistakes = float(present[mistakes].mean())
    rate_right = float(present[right].mean()) if right.any() else 0.0
    with_it = mistakes & present
    if rate_mistakes < MOST or rate_mistakes < MISTAKES_RATIO * rate_right or not with_it.any():
        return None
    if _more_than_chance(present, mistakes, right) >= MISTAKES_P:
        return None
    effect, baseline = float(evidence.drop[with_it, k].mean()), float(evidence.random[with_it, k].mean())
    total = float(np.clip(evidence.drop[with_it].mean(axis=0), 0, None).sum())
    if effect <= 0 or effect < IMPORTANT_SHARE * total or effect < RANDOM_FACTOR * max(baseline, 0.0):
        return None
    box, share_of_image = region(evidence.maps_mistakes[k], evidence.image_hw)
    what = describe(box, share_of_image, evidence, k, with_it, pixels_of)
    alarms, missed = int((evidence.kind == FALSE_ALARM).sum()), int((evidence.kind == MISSED).sum())
    name = evidence.class_name
    words = (f"Concept {k + 1} ({what}) is in {percent(rate_mistakes)} of the model's {int(mistakes.sum())} mistakes on '{name}' "
             f"({alarms} other image{'s' if alarms != 1 else ''} answered '{name}', {missed} '{name}' image{'s' if missed != 1 else ''} missed) "
             f"but in {percent(rate_right)} of its right answers, and removing it lowers the score of '{name}' on those mistakes by "
             f"{effect:.3g} on average. A concept that comes with the mistakes may be a cue the model should not rely on: look at "
             "its crops and check whether it belongs to the disease or to how the images were taken.")
    return Finding(k + 1, "mistakes", rate_mistakes, int(mistakes.sum()), tuple(box), share_of_image, words, _typical(evidence, k, with_it))


def _more_than_chance(present: np.ndarray, mistakes: np.ndarray, right: np.ndarray) -> float:
    """One-sided Fisher's exact test: p of a concept being in this many of the mistakes, or more,
    if it came as often with the right answers."""
    from scipy.stats import fisher_exact

    table = [[int((present & mistakes).sum()), int((~present & mistakes).sum())], [int((present & right).sum()), int((~present & right).sum())]]
    return float(fisher_exact(table, alternative="greater").pvalue)


def _typical(evidence: Evidence, k: int, among: np.ndarray) -> int:
    """The data set index of the image among ``among`` whose score concept k's removal lowers most."""
    rows = np.nonzero(among)[0]
    return int(evidence.index[rows[int(np.argmax(evidence.drop[rows, k]))]])


def describe(box: Sequence[int], share_of_image: float, evidence: Evidence, k: int, among: np.ndarray, pixels_of: Callable | None) -> str:
    """"a small bright patch in the top-left corner": size, brightness against the rest of the
    typical images, and place, in words."""
    size = "a small " if share_of_image <= 0.1 else "a "
    noun = "patch" if share_of_image <= SMALL_REGION else "region"
    tone = ""
    if pixels_of is not None:
        rows = np.nonzero(among)[0]
        chosen = rows[np.argsort(-evidence.drop[rows, k], kind="stable")[:LOOKS]]
        tone = brightness(box, [pixels_of(int(evidence.index[r])) for r in chosen])
    return f"{size}{tone + ' ' if tone else ''}{noun} {place_words(box, evidence.image_hw)}"


def brightness(box: Sequence[int], images: Sequence[np.ndarray]) -> str:
    """"bright", "dark" or "": the region's mean grey level against its images' means, over
    ``images`` uint8 (H, W, C)."""
    x0, y0, x1, y1 = (int(v) for v in box)
    inside = [float(np.asarray(im, np.float64)[y0:y1, x0:x1].mean()) for im in images if im is not None and (x1 > x0 and y1 > y0)]
    whole = [float(np.asarray(im, np.float64).mean()) for im in images if im is not None]
    if not inside:
        return ""
    difference = float(np.mean(inside) - np.mean(whole))
    return "bright" if difference > CONTRAST else "dark" if difference < -CONTRAST else ""


def place_words(box: Sequence[int], image_hw: Sequence[int]) -> str:
    """Where a box is, in words: "in the top-left corner", "along the top", "in the centre" ...

    >>> place_words([0, 0, 4, 4], (24, 24)), place_words([8, 0, 16, 3], (24, 24)), place_words([9, 9, 15, 15], (24, 24))
    ('in the top-left corner', 'along the top', 'in the centre')
    """
    x0, y0, x1, y1 = box
    height, width = image_hw
    cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
    column = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "centre"
    row = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else "middle"
    if row != "middle" and column != "centre":
        return f"in the {row}-{column} corner"
    if row == "middle" and column == "centre":
        return "in the centre"
    return f"on the {column} side" if row == "middle" else f"along the {row}"


def percent(share: float) -> str:
    """A share as a percentage for words: "97%", "<1%" for a share above 0 that rounds to 0.

    >>> percent(0.968), percent(0.004), percent(0.0)
    ('97%', '<1%', '0%')
    """
    value = float(share)
    return "<1%" if 0 < value < 0.005 else f"{value:.0%}"
