"""Concepts as the factors of a layer's activations: non-negative matrix factorisation (NMF),
choosing how many, and reading new activations in terms of fixed concepts.

The crops' activations form a matrix ``A`` (n crops x C channels), each row a crop's response
averaged over the layer's grid (CRAFT). NMF writes ``A ~ U W`` with ``U`` (n x K) and ``W``
(K x C) both non-negative: each of the K rows of ``W`` is a *concept*, a direction in the
layer's channels; ``U`` says how much of each concept each crop holds. Non-negativity is what
makes the parts add up instead of cancelling, so a concept reads as "this much of that".

- **NMF**: scikit-learn's coordinate-descent solver from the deterministic NNDSVDa start (an SVD,
  no random draws), so the same matrix gives the same concepts. Each concept is scaled to unit
  length (``U`` takes the scale), so concepts compare across layers and runs.
- **How many** (``choose_count``): the fewest concepts whose reconstruction error is within
  ``MARGIN`` of the lowest tried (2 to 12, fewer than the layer's channels, as CRAFT's 10-25 for
  ImageNet classes suggests for one class): more concepts than that split a part into shades of
  itself.
- **Projection** (``project``): a new activation vector (a whole image's, one grid position at a
  time) is written in the fixed concepts by non-negative least squares,
  ``min ||a - u W|| over u >= 0``, solved exactly by coordinate descent on the K x K Gram matrix,
  each row on its own (so a row's answer never depends on the other rows of its batch).
- **Negative activations**: NMF needs ``A >= 0``. A layer ending in ReLU is; a layer without one
  (a convolution with a linear activation, a BatchNormalization) is not, and its *positive part*
  ``max(a, 0)`` is factorised: the concepts are what the layer turns on, and the result says so
  in its notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ChoiceError

#: Concept counts tried when none is given (each fewer than the layer's channels and the crops).
CANDIDATES = tuple(range(2, 13))
#: The fewest concepts whose relative reconstruction error is within this of the lowest tried.
MARGIN = 0.02
#: NMF iterations at most (scikit-learn's coordinate descent; it stops earlier at ``TOLERANCE``).
MAX_ITER = 600
TOLERANCE = 1e-5
#: Sweeps of the projection's coordinate descent at most, and the change that stops a row.
PROJECT_SWEEPS = 500
PROJECT_TOLERANCE = 1e-7
#: Words for the notes when the layer's values can be negative.
POSITIVE_PART_NOTE = (
    "The layer's values can be negative (it has no ReLU), and concepts are built from non-negative parts: "
    "its positive part max(a, 0), what the layer turns on, is factorised and removed; its negative values are left as they are."
)


@dataclass(frozen=True)
class Factors:
    """A factorisation ``A ~ coefficients @ concepts``.

    ``concepts``: float32 (K, C), non-negative rows of unit length (W); ``coefficients``: float32
    (n, K), non-negative (U); ``error``: relative reconstruction error ``||A - U W|| / ||A||``
    (Frobenius); ``errors``: K tried -> its error (only K itself when it was given);
    ``chosen``: how K was chosen, in words.
    """

    concepts: np.ndarray
    coefficients: np.ndarray
    error: float
    errors: dict = field(default_factory=dict)
    chosen: str = ""

    @property
    def count(self) -> int:
        return int(self.concepts.shape[0])


def relative_error(matrix: np.ndarray, coefficients: np.ndarray, concepts: np.ndarray) -> float:
    """``||A - U W||_F / ||A||_F`` (0 for an all-zero ``A``), in float64."""
    a = np.asarray(matrix, np.float64)
    norm = float(np.linalg.norm(a))
    if norm == 0.0:
        return 0.0
    return float(np.linalg.norm(a - np.asarray(coefficients, np.float64) @ np.asarray(concepts, np.float64)) / norm)


def fit(matrix: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """NMF of ``matrix`` float (n, C) >= 0 into ``count`` concepts: (U float32 (n, K), W float32
    (K, C) with unit rows). Deterministic: NNDSVDa start, coordinate descent."""
    import warnings

    from sklearn.decomposition import NMF
    from sklearn.exceptions import ConvergenceWarning

    a = np.asarray(matrix, np.float64)
    model = NMF(n_components=int(count), init="nndsvda", solver="cd", max_iter=MAX_ITER, tol=TOLERANCE, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the error is measured and reported instead
        u = model.fit_transform(a)
    w = model.components_
    norms = np.linalg.norm(w, axis=1)
    keep = norms > 0  # a concept NMF left empty (more concepts than the data holds) is dropped
    u, w, norms = u[:, keep], w[keep], norms[keep]
    return (u * norms).astype(np.float32), (w / norms[:, None]).astype(np.float32)


def choose_count(errors: dict) -> int:
    """The fewest concepts whose error is within ``MARGIN`` of the lowest error in ``errors``
    (K -> relative error).

    >>> choose_count({2: 0.50, 4: 0.31, 6: 0.30, 8: 0.295})
    4
    """
    best = min(errors.values())
    return min(k for k, e in errors.items() if e <= best + MARGIN)


def candidates(rows: int, channels: int) -> list[int]:
    """The concept counts tried for a matrix of ``rows`` x ``channels``: ``CANDIDATES`` below both
    (K = C reconstructs anything exactly and says nothing); at least 1."""
    found = [k for k in CANDIDATES if k < channels and k < rows]
    return found or [1]


def factorise(matrix: np.ndarray, *, concepts: int | None = None) -> Factors:
    """Concepts in ``matrix`` float (n, C) >= 0 (n crops' activations): ``concepts`` of them, or as
    many as ``choose_count`` picks among ``candidates``. ``ChoiceError`` for an impossible count."""
    a = np.asarray(matrix, np.float32)
    rows, channels = a.shape
    if (a < 0).any():
        raise ValueError("factorise() takes non-negative activations: make them so first (positive_part).")
    if concepts is not None:
        if isinstance(concepts, bool) or int(concepts) < 1 or int(concepts) > min(rows, channels):
            raise ChoiceError(
                f"The number of concepts must be between 1 and {min(rows, channels)} here (the layer has {channels} channels "
                f"and {rows} crops were gathered); got {concepts}."
            )
        u, w = fit(a, int(concepts))
        error = relative_error(a, u, w)
        return Factors(w, u, error, {int(concepts): error}, f"{int(concepts)} concepts, as asked.")
    fits = {}
    for k in candidates(rows, channels):
        u, w = fit(a, k)
        fits[k] = (u, w, relative_error(a, u, w))
    errors = {k: e for k, (_, _, e) in fits.items()}
    k = choose_count(errors)
    u, w, error = fits[k]
    tried = ", ".join(f"{n}: {e:.1%}" for n, e in errors.items())
    chosen = (f"{w.shape[0]} concepts: the fewest whose reconstruction error ({error:.1%}) is within {MARGIN:.0%} of the lowest "
              f"tried (errors by number of concepts: {tried}).")
    return Factors(w, u, error, errors, chosen)


def positive_part(activations: np.ndarray) -> np.ndarray:
    """float32, same shape: ``max(a, 0)``, the part of a layer's activations that NMF factorises."""
    return np.maximum(np.asarray(activations, np.float32), 0.0)


def project(activations: np.ndarray, concepts: np.ndarray) -> np.ndarray:
    """Each row of ``activations`` float (m, C) >= 0 in the fixed ``concepts`` float (K, C):
    float32 (m, K), the non-negative ``u`` minimising ``||a - u W||`` (non-negative least squares).

    Coordinate descent on ``G = W W^T``: each sweep sets each coordinate to its best non-negative
    value given the others; a row stops when no coordinate moves by more than
    ``PROJECT_TOLERANCE`` times its largest, so each row's answer is its own.
    """
    w = np.asarray(concepts, np.float64)
    b = np.einsum("mc,kc->mk", np.asarray(activations, np.float64), w)  # a . w_k, row by row
    gram = w @ w.T
    diagonal = np.maximum(np.diag(gram), 1e-30)
    u = np.zeros_like(b)
    active = np.arange(len(b))
    for _ in range(PROJECT_SWEEPS):
        if len(active) == 0:
            break
        part, rows = u[active], b[active]
        moved = np.zeros(len(active))
        for k in range(len(w)):
            residual = rows[:, k] - np.einsum("mj,j->m", part, gram[:, k])
            new = np.maximum(part[:, k] + residual / diagonal[k], 0.0)
            moved = np.maximum(moved, np.abs(new - part[:, k]))
            part[:, k] = new
        u[active] = part
        scale = np.maximum(part.max(axis=1), 1e-30)
        active = active[moved > PROJECT_TOLERANCE * scale]
    return u.astype(np.float32)
