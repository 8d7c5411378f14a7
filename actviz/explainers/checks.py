"""Can this heat map be trusted? Three checks on any explanation, each with a verdict in plain words.

- Deletion and insertion (Petsiuk et al. 2018, "RISE"): the pixels are removed
  (turned black) in the map's order, most important first, and the class
  probability is measured after each step; or revealed in that order on a
  blurred copy. A faithful map makes the deletion curve fall fast (small area)
  and the insertion curve rise fast (large area). Batched.
- Model randomisation (Adebayo et al. 2018, "Sanity Checks for Saliency Maps"):
  the same method on a copy of the model whose weights are re-drawn as before
  training, layer by layer from the top down (cascading, seeded); the Spearman
  rank correlation of each such map with the original. A map that barely
  changes when what the model learned is gone does not explain the model.
- Completeness (Integrated Gradients only): the attributions should add up to
  the change of the class score from the baseline to the image.

Verdicts are never wrong in the reassuring direction: an empty map (nothing stands out, see
``EMPTY_SPREAD``), a class the model gives almost no chance (``LOW_PROBABILITY``) and a comparison
with an empty randomised map each say so in their own sentence and "cannot tell", never "passed".

The user's model is never changed: the randomisation works on a copy. Every pass is sized to the
memory the job may use (``Probe.max_bytes``, the copies' too). How long the checks will take is
worked out before they start (``checks_estimate``), and unless told how many randomised depths
to run, ``run_checks`` runs as many as fit in ``CHECK_SECONDS`` on this machine (at least the
top one). Measured on VGG16 at 300 x 300 on two shared cores, each method at its defaults: all 14
depths of every class activation map and of Saliency (30 to 50 s), two to four of SmoothGrad's,
Integrated Gradients' and occlusion's (70 to 90 s), and the one of Score-CAM on all 512 channels,
whose single run takes longer than that (166 s; with 64 channels it is under a minute).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.batches import Progress, report, slices
from ..core.batches import batch_size as fitting_batch
from ..draw.rounding import percent
from ..errors import ActvizError, ChoiceError
from .result import Explanation
from ..core.passes import class_logits, seconds
from ..core.probe import Probe
from ..core.target import Target

#: Rank correlation at or above which a map is flagged: it stays much the same without the learned weights.
FLAG_CORRELATION = 0.5
#: Rank correlation under which a map "changes completely".
CHANGED_CORRELATION = 0.3
#: Most steps of the randomisation cascade: deeper models are randomised in groups of neighbouring layers.
MAX_CASCADE_STEPS = 16
#: Default number of steps of the deletion and insertion curves (the curves have one more point).
CURVE_STEPS = 32
#: The time the checks are meant to take unless more randomised depths are asked for, in seconds:
#: the default number of depths is as many as fit in it after the curves (at least one).
CHECK_SECONDS = 120.0
#: What a randomised depth costs besides explaining again, in passes of the model: copying the
#: weights back into a fresh graph and compiling the method's passes for it (measured 0.5 s on
#: VGG16 at 300 x 300, about two passes).
DEPTH_PASSES = 2.0


@dataclass(frozen=True)
class Curves:
    """Deletion and insertion curves, batch axis first.

    ``fractions``: float64 (S + 1,), the share of pixels removed or revealed,
    0 to 1; ``deletion``, ``insertion``: float64 (N, S + 1), the class
    probability after each step; ``deletion_auc``, ``insertion_auc``: float64
    (N,), the areas under the curves (trapezoids over the fractions).
    """

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    deletion_auc: np.ndarray
    insertion_auc: np.ndarray

    def rows(self, index: int = 0) -> list[dict]:
        """One dict per step for a chart or a table: share, deletion, insertion."""
        return [{"share": float(f), "deletion": float(d), "insertion": float(i)}
                for f, d, i in zip(self.fractions, self.deletion[index], self.insertion[index])]


@dataclass(frozen=True)
class Randomisation:
    """The model-randomisation check, batch axis first.

    ``layers``: the layer (or group of neighbouring layers, "first … last")
    re-drawn at each step, top first (cumulative: after step d, the top d + 1
    of them are random); ``correlation``: float64 (N, D), Spearman rank
    correlation of each step's map with the original (0 when a map is flat, so
    there is no order to compare); ``flagged``: bool (N,), the correlation
    stays at or above ``FLAG_CORRELATION`` at the last step; ``maps``: float32
    (N, D, h, w), each step's display map, to show them in a row; ``empty``:
    bool (N, D), that step's map is empty (``empty_map``), so its correlation
    says nothing (None: not recorded).
    """

    layers: list
    correlation: np.ndarray
    flagged: np.ndarray
    maps: np.ndarray | None = None
    empty: np.ndarray | None = None

    def rows(self, index: int = 0) -> list[dict]:
        """One dict per step for a chart or a table: depth (1 = top layer only), layer, correlation."""
        return [{"depth": d + 1, "layer": name, "correlation": float(c)}
                for d, (name, c) in enumerate(zip(self.layers, self.correlation[index]))]

    def shown_steps(self, most: int = 6) -> list[int]:
        """At most ``most`` steps spread evenly, the first and the last among them (for a row of pictures).

        >>> Randomisation(layers=tuple("abcdefghij"), correlation=np.zeros((1, 10)), flagged=np.zeros(1, bool)).shown_steps()
        [0, 2, 4, 5, 7, 9]
        """
        last = len(self.layers) - 1
        return sorted({round(i * last / (most - 1)) for i in range(most)}) if last > 0 else [0]


@dataclass(frozen=True)
class Checks:
    """The checks run on one explanation (each None when not run), and their verdicts in words.
    ``empty``: bool (N,), the explanation's own map is empty (``empty_map``; None: not recorded)."""

    method: str
    curves: Curves | None = None
    randomisation: Randomisation | None = None
    completeness: dict | None = None
    class_names: list | None = field(default=None)
    empty: np.ndarray | None = None

    def verdicts(self, index: int = 0) -> list[dict]:
        """One dict per check run: ``check`` (its name), ``passed`` (True, False, or None when
        the check cannot say yes or no), ``state`` ("passed", "failed", "partly" or "cannot
        tell"), ``sentence`` (plain words with the numbers) and ``reference`` (where the check
        comes from). An empty map, a class the model gives almost no chance and a comparison with
        an empty map each have their own sentence, and never pass."""
        empty = self.empty is not None and bool(self.empty[index])
        found = []
        if self.curves is not None:
            found.append(curves_verdict(self.curves, index, empty=empty))
        if self.randomisation is not None:
            found.append(randomisation_verdict(self.randomisation, index, self.method, empty=empty))
        if self.completeness is not None:
            found.append(completeness_verdict(self.completeness, index))
        return found

    def as_json(self, index: int = 0) -> dict:
        """Image ``index``'s figures for ``checks.json``: ``deletion_auc``, ``insertion_auc``, the curves,
        ``randomisation_rank_correlation`` (one value per randomised depth, top layer first) with
        ``randomised_layers``, and for Integrated Gradients ``completeness_gap`` (a share of the
        score's change), with each verdict sentence."""
        result: dict[str, Any] = {"method": self.method}
        if self.curves is not None:
            result.update({
                "deletion_auc": float(self.curves.deletion_auc[index]), "insertion_auc": float(self.curves.insertion_auc[index]),
                "fractions": self.curves.fractions.tolist(), "deletion_curve": self.curves.deletion[index].tolist(),
                "insertion_curve": self.curves.insertion[index].tolist(),
            })
        if self.randomisation is not None:
            result.update({
                "randomisation_rank_correlation": self.randomisation.correlation[index].tolist(),
                "randomised_layers": list(self.randomisation.layers),
                "randomisation_flagged": bool(self.randomisation.flagged[index]),
            })
        if self.completeness is not None:
            result.update({key: float(np.asarray(value)[index]) for key, value in self.completeness.items()})
        result["verdicts"] = [v["sentence"] for v in self.verdicts(index)]
        return result


@dataclass(frozen=True)
class Estimate:
    """How long the checks of an explanation take on this machine before they run: ``seconds`` in
    all, ``curves`` and ``depth`` (one randomised depth) of them, ``depths`` the randomised
    depths that will run and ``cascade`` how many there are in all."""

    seconds: float
    curves: float
    depth: float
    depths: int
    cascade: int


def checks_estimate(
    probe: Probe, batch: np.ndarray, explanation: Explanation, *, curves: bool = True, randomisation: bool = True,
    steps: int = CURVE_STEPS, depths: int | None = None, budget: float = CHECK_SECONDS,
) -> Estimate:
    """How long ``run_checks`` with these arguments will take (an ``Estimate``), and the depths it
    runs: ``depths`` when given, else as many as fit in ``budget`` seconds after the curves."""
    from .cost import method_seconds

    shape = tuple(np.shape(batch)[1:])
    count = len(explanation)
    curve_seconds = seconds(probe, shape, forward=count * 2 * (steps + 1)) if curves else 0.0
    depth_seconds = seconds(probe, shape, forward=count * DEPTH_PASSES, stacked=False) + method_seconds(
        probe, (count, *shape), explanation.method, explanation.settings, layer=explanation.layer)
    cascade = cascade_length(probe)
    if not randomisation:
        return Estimate(curve_seconds, curve_seconds, depth_seconds, 0, cascade)
    chosen = depths if depths is not None else int(max(1, min(cascade, (budget - curve_seconds) // max(depth_seconds, 1e-9))))
    return Estimate(curve_seconds + int(chosen) * depth_seconds, curve_seconds, depth_seconds, chosen, cascade)


def cascade_length(probe: Probe, max_steps: int = MAX_CASCADE_STEPS) -> int:
    """Steps of the randomisation cascade of the probe's model: its layers with weights, in at most
    ``max_steps`` groups."""
    weighted = sum(1 for info in probe.table.rows if not info.container and info.params > 0)
    return min(weighted, max(1, int(max_steps)))


def run_checks(
    probe: Probe, batch: np.ndarray, explanation: Explanation, *, curves: bool = True, randomisation: bool = True,
    steps: int = CURVE_STEPS, black: float | np.ndarray = 0.0, seed: int = 0, depths: int | None = None,
    batch_size: int | None = None, progress: Progress | None = None,
) -> Checks:
    """Every check that applies to ``explanation`` of ``batch`` (the preprocessed images it explains):
    deletion and insertion curves, model randomisation, and completeness for Integrated Gradients.

    ``black``: the model input of a black pixel (see ``attributions.black_input``);
    ``depths``: stop the randomisation after that many steps (default: as many as fit in
    ``CHECK_SECONDS`` on this machine, see ``checks_estimate``).
    ``progress(done, total)`` runs from 0 to 1000 over all the checks, each check's share of it
    its share of the estimated time.
    """
    planned = checks_estimate(probe, batch, explanation, curves=curves, randomisation=randomisation, steps=steps, depths=depths)
    share = planned.curves / max(planned.seconds, 1e-9) if randomisation else 1.0

    def stage(start: float, width: float) -> Progress | None:
        if progress is None:
            return None
        return lambda done, total: progress(min(1000, round(1000 * (start + width * done / max(total, 1)))), 1000)

    found_curves = found_random = None
    if curves:
        found_curves = deletion_insertion(probe, batch, explanation, steps=steps, black=black, batch_size=batch_size,
                                          progress=stage(0.0, share))
    if randomisation:
        found_random = randomisation_check(probe, batch, explanation, seed=seed, depths=planned.depths, batch_size=batch_size,
                                           progress=stage(share if curves else 0.0, 1.0 - share if curves else 1.0))
    complete = None
    if "completeness_gap" in explanation.details:
        complete = {key: explanation.details[key] for key in ("completeness_gap", "attribution_sum", "score", "baseline_score")}
    return Checks(method=explanation.method, curves=found_curves, randomisation=found_random, completeness=complete,
                  empty=np.array([empty_map(heatmap) for heatmap in explanation.heatmap]))


# --- deletion and insertion ------------------------------------------------------------------


def deletion_insertion(
    probe: Probe, batch: np.ndarray, explanation: Explanation, *, steps: int = CURVE_STEPS,
    black: float | np.ndarray = 0.0, blur_sigma: float | None = None, batch_size: int | None = None,
    progress: Progress | None = None,
) -> Curves:
    """Deletion and insertion curves of an explanation of ``batch`` float32 (N, H, W, C).

    Pixels are ranked by the explanation's display map at the input's size
    (what a person sees; ties in raster order). Deletion: the top share of
    pixels becomes ``black`` (all colour channels); insertion: the top share is
    the image's, the rest a blurred copy (``blur_sigma`` pixels; default as
    ``attributions.blurred``). The class is the explanation's; the value, its
    probability (softmax of the logits, or the sigmoid for one output). All
    N x 2 x (steps + 1) images are stacked as many per pass as memory allows.
    """
    from .attributions import blurred

    batch = np.asarray(batch, dtype=np.float32)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= 1000:
        raise ChoiceError(f"The curves take 1 to 1000 steps (got {steps}).")
    _check_matches(batch, explanation)
    count, height, width, _ = batch.shape
    orders = [np.argsort(-explanation.at_input_size(n).ravel(), kind="stable") for n in range(count)]
    fractions = np.arange(steps + 1) / steps
    shown = np.round(fractions * height * width).astype(int)
    empty = np.broadcast_to(np.asarray(black, np.float32), batch.shape[1:])
    soft = blurred(batch, sigma=blur_sigma)
    jobs = [(n, kind, i) for n in range(count) for kind in (0, 1) for i in range(steps + 1)]
    values = np.zeros((count, 2, steps + 1))
    size = fitting_batch(probe, batch.shape[1:], requested=batch_size, extra_bytes=batch[0].nbytes)
    for part in slices(len(jobs), size):
        images = []
        for n, kind, i in jobs[part]:
            chosen = np.zeros(height * width, dtype=bool)
            chosen[orders[n][: shown[i]]] = True
            chosen = chosen.reshape(height, width, 1)
            images.append(np.where(chosen, empty, batch[n]) if kind == 0 else np.where(chosen, batch[n], soft[n]))
        logits = class_logits(probe, np.stack(images))
        which = np.array([n for n, _, _ in jobs[part]])
        probabilities = Target(explanation.class_index)[which].probabilities(logits)
        for (n, kind, i), value in zip(jobs[part], probabilities):
            values[n, kind, i] = value
        report(progress, part.stop, len(jobs))
    deletion, insertion = values[:, 0], values[:, 1]
    return Curves(fractions=fractions, deletion=deletion, insertion=insertion,
                  deletion_auc=np.trapezoid(deletion, fractions, axis=1), insertion_auc=np.trapezoid(insertion, fractions, axis=1))


def _check_matches(batch: np.ndarray, explanation: Explanation) -> None:
    if batch.ndim != 4 or len(batch) != len(explanation) or tuple(batch.shape[1:3]) != tuple(explanation.input_size):
        raise ActvizError(
            f"The checks need the images the explanation was made for ({len(explanation)} of "
            f"{explanation.input_size[0]} x {explanation.input_size[1]} pixels); got an array of shape {np.shape(batch)}."
        )


# --- model randomisation ---------------------------------------------------------------------


def randomisation_check(
    probe: Probe, batch: np.ndarray, explanation: Explanation, *, seed: int = 0, depths: int | None = None,
    max_steps: int = MAX_CASCADE_STEPS, batch_size: int | None = None, progress: Progress | None = None,
) -> Randomisation:
    """The cascading model-randomisation test of ``explanation`` of ``batch`` float32 (N, H, W, C).

    A copy of the model is made; its layers with weights are re-drawn from the
    top (the class scores) down, one more step at a time, as at the start of
    training (``randomise_layer``, seeded by ``seed`` and the layer's place), and
    the same method with the same settings, class and layer explains the same
    images again after each step. Each map is compared with the original by
    Spearman rank correlation, image by image. A model with more than
    ``max_steps`` layers with weights is randomised in that many groups of
    neighbouring layers (as the paper did by blocks); ``depths``: stop after
    that many steps.
    """
    from .explain import explain

    batch = np.asarray(batch, dtype=np.float32)
    _check_matches(batch, explanation)
    copy = model_copy(probe)
    first = Probe(copy, max_bytes=probe.max_bytes)
    weighted = [info for info in reversed(first.table.rows) if not info.container and info.params > 0]
    steps = [list(group) for group in np.array_split(np.array(weighted, dtype=object), min(len(weighted), max(1, int(max_steps))))]
    if depths is not None:
        if isinstance(depths, bool) or not 1 <= int(depths) <= len(steps):
            raise ChoiceError(f"This model's randomisation has {len(steps)} steps; choose 1 to {len(steps)} (got {depths}).")
        steps = steps[: int(depths)]
    layer = None if explanation.layer is None else probe.layer(explanation.layer).index
    correlations = np.zeros((len(explanation), len(steps)))
    maps = np.zeros((len(explanation), len(steps), *explanation.heatmap.shape[1:]), dtype=np.float32)
    empty = np.zeros((len(explanation), len(steps)), dtype=bool)
    for depth, group in enumerate(steps):
        report(progress, depth * 1000, len(steps) * 1000)
        for info in group:
            randomise_layer(first.layer_object(info.name), seed=int(seed) * 100_003 + info.index)
        random_probe = Probe(copy, max_bytes=probe.max_bytes)  # traced again: the logits' twin layer copies the new weights

        def inner(done: int, total: int, depth: int = depth) -> bool | None:
            return progress(depth * 1000 + int(1000 * done / max(total, 1)), len(steps) * 1000)

        again = explain(
            random_probe, batch, method=explanation.method, class_index=explanation.class_index,
            layer=None if layer is None else random_probe.table[layer].name, batch_size=batch_size,
            progress=inner if progress is not None else None, **explanation.settings,
        )
        maps[:, depth] = again.heatmap
        empty[:, depth] = [empty_map(heatmap) for heatmap in again.heatmap]
        correlations[:, depth] = [spearman(a, b) for a, b in zip(explanation.heatmap, again.heatmap)]
    report(progress, len(steps) * 1000, len(steps) * 1000)
    # named as in the user's model (a copy may number its layers' default names anew)
    names = [[probe.table[info.index].name for info in group] for group in steps]
    return Randomisation(layers=[group[0] if len(group) == 1 else f"{group[0]} … {group[-1]}" for group in names],
                         correlation=correlations, flagged=correlations[:, -1] >= FLAG_CORRELATION, maps=maps, empty=empty)


def model_copy(probe: Probe) -> Any:
    """A copy of the probe's model with its own weights (the same values), to change freely."""
    import keras

    model = probe.model
    if model is None:
        raise ActvizError("The model is no longer open, so it cannot be copied for the randomisation check; open it again.")
    try:
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
    except Exception as exc:  # a layer Keras cannot rebuild from its configuration
        raise ActvizError(
            f"actviz could not make a copy of this model to randomise ({type(exc).__name__}: {' '.join(str(exc).split())[:160]}); "
            "the other checks still apply."
        ) from None
    return copy


def randomise_layer(layer: Any, *, seed: int) -> None:
    """Re-draw a layer's weights in place as Keras draws them before training: kernels Glorot-uniform
    (Keras' default for convolution and dense layers), biases and shifts 0, batch-normalisation
    scales and variances 1. Seeded, so the same seed gives the same weights."""
    rng = np.random.default_rng(seed)
    for variable in layer.weights:
        shape = tuple(int(d) for d in variable.shape)
        name = variable.name.split("/")[-1].split(":")[0]
        if len(shape) >= 2:
            receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
            fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
            limit = np.sqrt(6.0 / max(fan_in + fan_out, 1))
            value = rng.uniform(-limit, limit, size=shape)
        elif name in ("gamma", "moving_variance"):
            value = np.ones(shape)
        else:
            value = np.zeros(shape)
        variable.assign(value.astype(variable.dtype))


def spearman(first: np.ndarray, second: np.ndarray) -> float:
    """Spearman rank correlation of two maps of the same shape (ties share their mean rank);
    0.0 when either map is flat, as there is then no order to compare."""
    a, b = np.ravel(first).astype(np.float64), np.ravel(second).astype(np.float64)
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def ranks(values: np.ndarray) -> np.ndarray:
    """float64 (n,): the rank of each value, 1 for the smallest; tied values share their mean rank."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    group = np.repeat(np.arange(len(starts)), ends - starts)
    found = np.empty(len(values))
    found[order] = ((starts + ends + 1) / 2.0)[group]
    return found


# --- verdicts --------------------------------------------------------------------------------
# Each verdict is a dict: ``check`` (its name), ``passed`` (True, False, or None when the check
# cannot say yes or no), ``state`` (the same in one word for a page: "passed", "failed", "partly"
# or "cannot tell"), ``sentence`` (plain words with the numbers, no citation) and ``reference``
# (where the check comes from, for a "more" fold). A check that cannot tell never says "passed".

#: A display map (0..1) whose values span less than this is empty: less than one grey level of
#: the picture (1/255), so nothing in it stands out. That covers a map 0 everywhere after its
#: display rule (all of a Grad-CAM negative, for instance) and one value everywhere, round-off included.
EMPTY_SPREAD = 1 / 255
#: Under this probability the model gives a class almost no chance: the deletion curve starts
#: near 0 and cannot fall, so the curves say nothing about the map.
LOW_PROBABILITY = 0.01
#: Where each check comes from.
REFERENCES = {
    "deletion and insertion": 'Petsiuk, Das and Saenko 2018, "RISE: Randomized Input Sampling for Explanation of '
                              'Black-box Models" (the deletion and insertion curves).',
    "model randomisation": 'Adebayo et al. 2018, "Sanity Checks for Saliency Maps" (the cascading model randomisation; '
                           "the similarity is Spearman's rank correlation of the two maps).",
    "completeness": 'Sundararajan, Taly and Yan 2017, "Axiomatic Attribution for Deep Networks" (completeness of '
                    "Integrated Gradients).",
}


def empty_map(heatmap: np.ndarray) -> bool:
    """Whether a display map, float (h, w) in 0..1, is empty: its values span less than ``EMPTY_SPREAD``.

    >>> empty_map(np.zeros((3, 3))), empty_map(np.full((3, 3), 0.7)), empty_map(np.eye(3))
    (True, True, False)
    """
    values = np.asarray(heatmap, dtype=np.float64)
    return bool(values.size == 0 or np.ptp(values) < EMPTY_SPREAD)


def _verdict(check: str, state: str, sentence: str) -> dict:
    passed = {"passed": True, "failed": False}.get(state)
    return {"check": check, "passed": passed, "state": state, "sentence": sentence, "reference": REFERENCES[check]}


def curves_verdict(curves: Curves, index: int = 0, *, empty: bool = False) -> dict:
    """The deletion and insertion curves in words: how fast the class's probability falls as the
    map's pixels are removed, and how fast it comes back as they are revealed. ``empty``: the map
    is empty (``empty_map``), so it ranks no pixel above another and the curves test nothing."""
    check = "deletion and insertion"
    start = float(curves.deletion[index, 0])
    if empty:
        return _verdict(check, "cannot tell", (
            "This heat map is empty: it has the same value everywhere, so it points at nothing and ranks no pixel above "
            "another. Removing or revealing pixels in its order tests nothing: this check cannot tell whether it is right."))
    if start < LOW_PROBABILITY:
        return _verdict(check, "cannot tell", (
            f"The model gives this class almost no chance ({percent(start)}), so there is nothing for the map to explain: "
            "removing pixels cannot make that chance fall, and this check cannot tell whether the map is right. "
            "Choose the class the model answers to check a map."))
    deletion, insertion = float(curves.deletion_auc[index]), float(curves.insertion_auc[index])
    below = np.nonzero(curves.deletion[index] <= start / 2)[0]
    fall = (f"falls to half ({percent(start / 2)}) once {curves.fractions[below[0]]:.0%} of the image is gone" if below.size
            else "never falls to half")
    passed = insertion - deletion >= 0.1
    sentence = (
        f"Removing the pixels this map ranks highest first, the model's probability for this class (at first "
        f"{percent(start)}) {fall}; on average it is {percent(deletion)} while the pixels are removed (lower is better) "
        f"and {percent(insertion)} while they are revealed, most important first, on a blurred copy (higher is better). "
        + ("The map points at what the model relies on." if passed else
           "The map's order says little about what the model relies on here.")
    )
    return _verdict(check, "passed" if passed else "failed", sentence)


def randomisation_verdict(result: Randomisation, index: int = 0, method: str = "", *, empty: bool = False) -> dict:
    """The randomisation check in words: does the map depend on what the model learned? ``empty``:
    the map itself is empty, so there is nothing to compare."""
    check = "model randomisation"
    if empty:
        return _verdict(check, "cannot tell", (
            "This heat map is empty (the same value everywhere), so there is nothing to compare with the maps of a model "
            "whose learned weights are replaced by random ones: this check cannot tell whether it shows what the model learned."))
    last = float(result.correlation[index, -1])
    lowest = result.layers[-1].split(" … ")[-1]
    everything = f"every layer from {result.layers[0].split(' … ')[0]} down to {lowest} random"
    if result.empty is not None and result.empty[index, -1]:
        return _verdict(check, "cannot tell", (
            f"With {everything}, the method gives an empty map, so the two maps cannot be compared place by place: "
            "this check cannot tell whether the heat map shows what the model learned."))
    similar = f"similarity {last:.2f}, where 1 means the same places stand out and 0 means unrelated, with {everything}"
    if last >= FLAG_CORRELATION:
        state, verdict = "failed", (f"This heat map barely changes when the model's learned weights are replaced by random ones "
                                    f"({similar}): it does not show what this model learned; do not trust it.")
    elif last >= CHANGED_CORRELATION:
        state, verdict = "partly", (f"This heat map changes only in part when the model's learned weights are replaced by random "
                                    f"ones ({similar}): it depends on what the model learned, but not only; read it with care.")
    else:
        state, verdict = "passed", (f"This heat map changes completely when the model's learned weights are replaced by random "
                                    f"ones ({similar}): it depends on what the model learned.")
    first = float(result.correlation[index, 0])
    if len(result.layers) > 1 and first >= 0.9:
        verdict += (f" With only the last layer ({result.layers[0]}) random it stays the same (similarity {first:.2f}): "
                    "it shows what the network responds to more than why it chose this class.")
    return _verdict(check, state, verdict)


def completeness_verdict(completeness: dict, index: int = 0) -> dict:
    """Integrated Gradients' completeness in words: do the attributions add up to the score's change?"""
    gap = float(np.asarray(completeness["completeness_gap"])[index])
    total = float(np.asarray(completeness["attribution_sum"])[index])
    change = float(np.asarray(completeness["score"])[index] - np.asarray(completeness["baseline_score"])[index])
    passed = gap <= 0.05
    sentence = (f"The pixels' shares add up to {total:.3g}, and the model's score for the class changes by {change:.3g} "
                f"from the starting picture (the baseline) to the image: they differ by {gap:.1%} of that change. "
                + ("The method followed the path closely enough." if passed else "Use more steps for a faithful account."))
    return _verdict("completeness", "passed" if passed else "failed", sentence)
