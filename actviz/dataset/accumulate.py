"""Mergeable accumulators: a top-k list and running moments, each a few arrays that combine
associatively, so batches, processes and machines can split a data set in any way.

- ``top_k``: the k largest values per column with their image index (and any payload such as
  the position of the maximum). Ties are broken by the smaller image index, so the result is
  exactly the same whatever the order and grouping of the merges.
- ``moments``: count, mean and sum of squared deviations (M2) per column, merged with Chan,
  Golub and LeVeque's pairwise formula (the parallel form of Welford's update): exact for the
  counts, equal to float64 rounding for mean and variance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Image index of an empty top-k slot: sorts after every real image.
EMPTY = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Top:
    """The k largest values of each column, strongest first.

    ``value``: float32 (k, C), -inf in empty slots; ``image``: int64 (k, C), the image index
    (``EMPTY`` in empty slots); ``extra``: name -> (k, C) arrays that travel with each entry.
    """

    value: np.ndarray
    image: np.ndarray
    extra: dict

    @property
    def k(self) -> int:
        return int(self.value.shape[0])

    @classmethod
    def empty(cls, k: int, columns: int, extra: dict[str, np.dtype]) -> "Top":
        return cls(
            np.full((k, columns), -np.inf, np.float32), np.full((k, columns), EMPTY, np.int64),
            {name: np.full((k, columns), -1, dtype) for name, dtype in extra.items()},
        )

    def merge(self, other: "Top") -> "Top":
        """The top k of both, by value then (for ties) by smaller image index."""
        return select(
            np.concatenate([self.value, other.value]), np.concatenate([self.image, other.image]),
            {name: np.concatenate([array, other.extra[name]]) for name, array in self.extra.items()}, self.k,
        )

    def filled(self) -> np.ndarray:
        """bool (k, C): the slots that hold an image."""
        return self.image != EMPTY


def select(value: np.ndarray, image: np.ndarray, extra: dict, k: int) -> Top:
    """The top ``k`` rows of each column of ``value`` (n, C), by value descending then image index
    ascending; fewer than k rows are padded with empty slots. NaN ranks as -inf."""
    value = np.where(np.isnan(value), -np.inf, value).astype(np.float32)
    if value.shape[0] < k:
        pad = k - value.shape[0]
        value = np.concatenate([value, np.full((pad, value.shape[1]), -np.inf, np.float32)])
        image = np.concatenate([image, np.full((pad, image.shape[1]), EMPTY, np.int64)])
        extra = {n: np.concatenate([a, np.full((pad, a.shape[1]), -1, a.dtype)]) for n, a in extra.items()}
    order = np.lexsort((image, -value), axis=0)[:k]  # the last key sorts first: value, then image
    pick = lambda array: np.take_along_axis(array, order, axis=0)  # noqa: E731
    return Top(pick(value), pick(image).astype(np.int64), {n: pick(a) for n, a in extra.items()})


@dataclass(frozen=True)
class Moments:
    """Count, mean and M2 (sum of squared deviations from the mean) of each column, over groups.

    ``count``: int64 (G,); ``mean``, ``m2``: float64 (G, C). One group for a plain running
    mean; one per class for class-conditional moments.
    """

    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def empty(cls, groups: int, columns: int) -> "Moments":
        return cls(np.zeros(groups, np.int64), np.zeros((groups, columns)), np.zeros((groups, columns)))

    @classmethod
    def of(cls, values: np.ndarray, group: np.ndarray, groups: int) -> "Moments":
        """Moments of the rows of ``values`` (n, C) in each of ``groups`` groups (``group``: int (n,),
        rows with a group outside 0..groups-1 are left out)."""
        values = np.asarray(values, np.float64)
        result = cls.empty(groups, values.shape[1])
        for g in np.unique(group):
            if 0 <= g < groups:
                rows = values[group == g]
                mean = rows.mean(axis=0)
                result.count[g] = len(rows)
                result.mean[g] = mean
                result.m2[g] = ((rows - mean) ** 2).sum(axis=0)
        return result

    def merge(self, other: "Moments") -> "Moments":
        """Chan et al.'s pairwise update: the moments of both sets of rows together."""
        na, nb = self.count[:, None].astype(np.float64), other.count[:, None].astype(np.float64)
        n = na + nb
        safe = np.where(n > 0, n, 1.0)
        delta = other.mean - self.mean
        mean = self.mean + delta * (nb / safe)
        m2 = self.m2 + other.m2 + delta**2 * (na * nb / safe)
        return Moments(self.count + other.count, np.where(n > 0, mean, 0.0), np.where(n > 0, m2, 0.0))

    def pooled(self) -> "Moments":
        """All groups as one (G = 1)."""
        total = Moments.empty(1, self.mean.shape[1])
        for g in range(len(self.count)):
            total = total.merge(Moments(self.count[g : g + 1], self.mean[g : g + 1], self.m2[g : g + 1]))
        return total

    def std(self) -> np.ndarray:
        """float64 (G, C): population standard deviation (0 for an empty group)."""
        return np.sqrt(np.divide(self.m2, self.count[:, None], out=np.zeros_like(self.m2), where=self.count[:, None] > 0))
