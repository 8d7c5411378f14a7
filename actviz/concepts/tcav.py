"""Concepts the user names, tested (TCAV, Kim et al., ICML 2018): is the model's answer for a class
sensitive to a concept shown by examples, more than to random directions?

1. **Concept activation vectors (CAVs)**: the layer's activations (flattened, as in the paper)
   of the concept's examples (a folder) against those of a random set drawn from a folder of
   other images; a linear classifier (scikit-learn's ``SGDClassifier``, the paper code's
   settings: hinge loss, ``alpha=0.01``; classes weighted to balance) separates them and the CAV
   is its normal, pointing towards the concept. Its accuracy on a held-out third says whether
   the layer represents the concept at all. The activations are *centred* (the training
   examples' mean subtracted) before the fit. With the classifier's intercept this changes no
   optimal direction, but stochastic gradient descent on raw ReLU activations (all >= 0) drifts
   the weights of features that have nothing to do with the concept towards negative values: on
   a hand-set model that ignores green, "a green stripe" then scored 0% against 47% for random
   directions (p < 0.001, "pushes away"), a false finding; centred, it scores like random ones.
2. **Directional derivatives**: for each image of the class, the gradient of the class score
   (the logit, ``classes.class_score``) at the layer, dotted with the CAV. The **TCAV score** is
   the share of the class's images for which it is positive: for how many of them adding some of
   the concept would raise the answer.
3. **Statistics**: ``runs`` CAVs, each against another random set (drawn with its own seed from
   the random folder; sets overlap when the folder is small), give ``runs`` scores. Random-vs-
   random CAVs (random set r against random set r + 1) give what chance looks like at this layer
   for this class. A two-sided t-test (``scipy.stats.ttest_ind``, as the paper's code) of the two
   groups of scores gives the p-value.
4. **The verdict in words**, which never reassures wrongly: a score that random directions
   match says it is *no evidence*; too few images says so before any number; a concept the
   layer cannot tell from random images says so; a score below chance says the concept pushes
   away from the class.

At the layer just before global pooling and a dense layer, the rest of the network is linear
and its gradient is the same for every image: every image then gets the same answer from each
CAV. The default layer is therefore an earlier one (``layer.tcav_default_layer``), and the
result notes when this happens.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..dataset.sources import DatasetError, Source, open_source
from ..errors import BudgetError, ChoiceError
from ..inputs.preprocessing import choose_preprocessing
from .classes import choose_class
from .collect import Progress, Runner, Stages, ray_session, run_pass
from .discover import image_shape_of, sample
from .layer import forward_chunk, head_chunk, layer_name, map_shape
from .passes import Features, Sensitivities
from .result import Tcav, TcavRun

#: Random counterexample sets, and as many random-vs-random CAVs (the paper used up to 500).
RUNS = 10
#: Concept examples used at most (the paper used about 50 per concept).
EXAMPLES = 100
#: Fewer images than this of the concept, of the random folder or of the class: "too few".
MIN_IMAGES = 10
#: Mean held-out accuracy of the concept's CAVs below which the layer barely represents it.
MIN_ACCURACY = 0.7


def tcav(
    model: Any = None, images: Any = None, class_index: int | str = 0, *, concept: Any, random: Any,
    layer: str | int | None = None, runs: int = RUNS, examples: int = EXAMPLES, concept_name: str | None = None,
    alpha: float = 0.05, preprocessing: str = "auto", image_size: tuple[int, int] | None = None, labels: str = "folders",
    class_names: Sequence[str] | None = None, trust: bool = False, engine: str = "local", address: str | None = None,
    actors: int | None = None, cpus_per_actor: float = 1.0, workers: int | None = None, batch_size: int = 32,
    seed: int = 0, progress: Progress | None = None,
) -> Tcav:
    """Test whether the model's answer ``class_index`` depends on a concept shown by examples.

    ``images``: the data set whose images of the class are tested (anything ``open_source``
    opens; in a data set without labels, the images the model answers the class for);
    ``concept``: a folder (or ``Source``) of images showing the concept; ``random``: a folder of
    other images; ``layer`` (default: ``layer.tcav_default_layer``); ``runs``: random sets;
    ``examples``: concept images used at most; ``alpha``: the significance level; the rest as
    for ``actviz.concepts``.

    >>> result = actviz.tcav("xray.h5", "chest_xray/test", "pneumonia", concept="markers/", random="random/")  # doctest: +SKIP
    >>> result.score, result.p_value, result.words                                                           # doctest: +SKIP
    """
    from ..safety.models import open_model

    _check(runs, examples, alpha)
    opened = open_model(model, trust=trust, class_names=class_names)
    names = list(class_names) if class_names else opened.class_names
    source = images if isinstance(images, Source) else open_source(images, labels=labels)
    plan = _plan(opened.probe, source, class_index, names, layer=layer, preprocessing=preprocessing, image_size=image_size)
    shown, others = _folder(concept, "concept"), _folder(random, "random")
    chosen = sample(np.arange(len(shown)), int(examples), seed=seed)
    size = min(len(chosen), len(others))
    sets = [sample(np.arange(len(others)), size, seed=seed * 1_000 + r + 1) for r in range(int(runs))]  # one seed per set
    pool = np.unique(np.concatenate(sets))
    _check_memory(opened.probe, math.prod(plan["grid"]), len(chosen), len(pool), size, int(runs))
    runner = Runner(engine, int(batch_size), workers, opened.model if model is opened else model, trust, names, actors, cpus_per_actor)
    runner.check()
    klass = plan["class"]
    todo = klass.images if klass.images is not None else np.arange(len(source), dtype=np.int64)
    stages = Stages(progress, len(chosen) + len(pool) + len(todo))
    seconds: dict[str, float] = {}
    with ray_session(engine, address):
        positive, negative, vectors, accuracy = _vectors(plan, opened.probe, runner, stages, seconds, (shown, chosen), (others, pool, sets), seed=seed)
        clock = time.perf_counter()
        task = Sensitivities(plan["scaling"], plan["image_shape"], plan["layer"], plan["chunk"], plan["head_chunk"], klass.index, vectors,
                             klass.images is None, plan["takes_image"])
        derivative = run_pass(task, opened.probe, source, todo, runner, stages, plan["image_shape"]).column("derivative", (2 * int(runs),))
        seconds["derivatives"] = time.perf_counter() - clock
    counts = {"class": len(derivative), "concept": len(positive), "random": len(negative)}
    return _result(klass, concept_name or _name(concept), plan["layer"], derivative, accuracy, counts, alpha=alpha, notes=plan["notes"],
                   meta={"model": opened.name, "data": source.describe(), "engine": engine, "seconds": seconds})


def _plan(probe: Any, source: Source, class_index: Any, names: Any, *, layer: Any, preprocessing: str, image_size: Any) -> dict:
    """Everything fixed before the first pass (checked before any work)."""
    image_shape = image_shape_of(probe, image_size)
    name = layer_name(probe, layer, tcav=True)
    klass = choose_class(probe, source, class_index, class_names=names)
    chosen = choose_preprocessing(probe, preprocessing)
    _, takes_image = probe.head_model(name)
    return {"image_shape": image_shape, "layer": name, "class": klass, "scaling": chosen.scaling, "grid": map_shape(probe, name, image_shape),
            "chunk": forward_chunk(probe, name, image_shape), "head_chunk": head_chunk(probe, name, image_shape, backward=True),
            "takes_image": takes_image, "notes": [n for n in (klass.note, chosen.note) if n]}


def _vectors(plan: dict, probe: Any, runner: Runner, stages: Stages, seconds: dict, shown: tuple, others: tuple, *, seed: int) -> tuple:
    """The concept's and the random images' activations (two passes), and the CAVs fitted on them:
    (concept activations, random activations, CAVs float32 (2R, D), accuracies (2R,))."""
    (concept_source, chosen), (random_source, pool, sets) = shown, others
    clock = time.perf_counter()
    features = Features(plan["scaling"], plan["image_shape"], plan["layer"], plan["chunk"])
    positive = run_pass(features, probe, concept_source, chosen, runner, stages, plan["image_shape"])
    negative = run_pass(features, probe, random_source, pool, runner, stages, plan["image_shape"])
    seconds["activations"] = time.perf_counter() - clock
    clock = time.perf_counter()
    concept_rows = positive.column("feature", (math.prod(plan["grid"]),))
    vectors, accuracy = concept_vectors(concept_rows, _sets(negative, sets), seed=seed)
    seconds["cavs"] = time.perf_counter() - clock
    return concept_rows, negative.column("key", dtype=np.int64), vectors, accuracy


def _check(runs: int, examples: int, alpha: float) -> None:
    if isinstance(runs, bool) or not 2 <= int(runs) <= 500:
        raise ChoiceError(f"TCAV needs between 2 and 500 runs (random sets) for its test; got {runs}.")
    if isinstance(examples, bool) or not 2 <= int(examples) <= 5_000:
        raise ChoiceError(f"The concept's examples must be between 2 and 5,000 images; got {examples}.")
    if not 0 < float(alpha) < 1:
        raise ChoiceError(f"The significance level must be between 0 and 1 (e.g. 0.05); got {alpha}.")


def _folder(value: Any, role: str) -> Source:
    """The concept's or the random images: a ``Source``, or a folder / CSV / ZIP read without labels."""
    if isinstance(value, Source):
        return value
    if value is None:
        raise DatasetError(f"Give a folder of {role} images.")
    return open_source(value, labels="none")


def _name(value: Any) -> str:
    return Path(str(value.location if isinstance(value, Source) else value)).name or "the concept"


def _check_memory(probe: Any, size: int, examples: int, pool: int, per_set: int, runs: int) -> None:
    """``BudgetError`` in words when the activations kept (float32), a classifier's copy of one
    run's examples (float64) and the CAVs would pass the memory budget."""
    need = 4 * size * (examples + pool) + 8 * size * (examples + per_set) + 4 * size * 2 * runs
    if need > probe.max_bytes:
        raise BudgetError(
            f"TCAV at this layer keeps {size:,} values per image; {examples + pool:,} images and {2 * runs} vectors would take about "
            f"{need / 1e9:.1f} GB, more than the {probe.max_bytes / 1e9:.1f} GB allowed here. Use fewer examples or runs, or an earlier, smaller layer."
        )


def _sets(negative: Any, sets: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each random set's activations (the images of it that could be read)."""
    keys = negative.column("key", dtype=np.int64)
    features = negative.rows.get("feature", np.zeros((0, 0), np.float32))
    where = {int(k): i for i, k in enumerate(keys)}
    return [features[[where[int(i)] for i in chosen if int(i) in where]] for chosen in sets]


def fit_cav(positive: np.ndarray, negative: np.ndarray, *, seed: int = 0) -> tuple[np.ndarray, float]:
    """A concept activation vector: ``positive`` (a, D) against ``negative`` (b, D) -> (float32
    (D,) unit vector pointing towards ``positive``, accuracy 0..1 on a held-out third of each)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDClassifier

    x = np.concatenate([positive, negative]).astype(np.float64)
    y = np.concatenate([np.ones(len(positive), np.int64), np.zeros(len(negative), np.int64)])
    rng = np.random.default_rng([int(seed), 0xCA5])
    test = np.concatenate([rng.permutation(np.nonzero(y == c)[0])[: int((y == c).sum()) // 3] for c in (1, 0)])
    train = np.setdiff1d(np.arange(len(y)), test)
    centre = x[train].mean(axis=0)  # see the module: centred, the fit leaves unrelated features alone
    classifier = SGDClassifier(alpha=0.01, max_iter=1000, tol=1e-3, random_state=int(seed), class_weight="balanced")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier.fit(x[train] - centre, y[train])
    accuracy = float(classifier.score(x[test] - centre, y[test])) if len(test) else float("nan")
    vector = classifier.coef_[0]
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).astype(np.float32), accuracy


def concept_vectors(positive: np.ndarray, sets: Sequence[np.ndarray], *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 (2R, D): R concept CAVs (the concept against random set r), then R random CAVs
    (random set r against random set r + 1); and their held-out accuracies float (2R,)."""
    if len(positive) < 2 or any(len(s) < 2 for s in sets):
        raise DatasetError("TCAV needs at least 2 readable images of the concept and of each random set.")
    count = len(sets)
    fitted = [fit_cav(positive, sets[r], seed=seed + r) for r in range(count)]
    fitted += [fit_cav(sets[r], sets[(r + 1) % count], seed=seed + count + r) for r in range(count)]
    return np.stack([v for v, _ in fitted]), np.array([a for _, a in fitted])


def p_value(scores: Sequence[float], random_scores: Sequence[float]) -> float:
    """Two-sided t-test of the concept's scores against the random ones (``ttest_ind``); when both
    groups have no spread at all, 1 if they are equal and 0 if not."""
    import warnings

    from scipy import stats

    a, b = np.asarray(scores, float), np.asarray(random_scores, float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scores all alike (e.g. all 1.0): the test is still right
        value = float(stats.ttest_ind(a, b).pvalue)
    if math.isnan(value):
        return 1.0 if math.isclose(a.mean(), b.mean()) else 0.0
    return value


def p_words(value: float) -> str:
    """A p-value for words: three decimals, or "p < 0.001".

    >>> p_words(0.0004), p_words(0.0123)
    ('p < 0.001', 'p = 0.012')
    """
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def verdict_kind(*, score: float, random_score: float, p: float, alpha: float, counts: dict) -> str:
    """What the test found, as one word a page colours by: "too few" (not enough images to conclude),
    "no evidence" (may be chance), "sensitive" (the answer depends on the concept) or "pushes away"
    (the concept moves the images away from the class).

    >>> verdict_kind(score=0.9, random_score=0.5, p=0.001, alpha=0.05, counts={"class": 40, "concept": 40, "random": 40})
    'sensitive'
    >>> verdict_kind(score=0.9, random_score=0.5, p=0.001, alpha=0.05, counts={"class": 40, "concept": 5, "random": 40})
    'too few'
    """
    if any(v < MIN_IMAGES for v in counts.values()):
        return "too few"
    if p >= alpha:
        return "no evidence"
    return "sensitive" if score >= random_score else "pushes away"


def verdict(*, class_name: str, concept: str, layer: str, score: float, random_score: float, p: float, alpha: float,
            accuracy: float, counts: dict, runs: int) -> str:
    """TCAV's answer in words (see the module)."""
    said = f"The model's answer '{class_name}' is sensitive to '{concept}' in {score:.0%} of its images"
    few = {k: v for k, v in counts.items() if v < MIN_IMAGES}
    if few:
        listed = ", ".join(f"{v} {'of the class' if k == 'class' else k + ' image' + ('s' if v != 1 else '')}" for k, v in few.items())
        return (f"Too few images to conclude ({listed}; at least {MIN_IMAGES} of each are needed, 50 or more is better). "
                f"{said} and random directions in {random_score:.0%} ({p_words(p)}), but with so few images neither number can be trusted.")
    if p >= alpha:
        words = (f"{said}, but random directions give {random_score:.0%} on average and the difference may be chance ({p_words(p)}, "
                 f"{runs} runs): this is no evidence that the answer depends on '{concept}'.")
    elif score >= random_score:
        words = f"{said}; this is not chance, {p_words(p)} (random directions: {random_score:.0%} on average, {runs} runs)."
    else:
        words = (f"The model's answer '{class_name}' is sensitive to '{concept}' in only {score:.0%} of its images, fewer than random "
                 f"directions ({random_score:.0%}); this is not chance, {p_words(p)}: '{concept}' pushes its images away from '{class_name}'.")
    if accuracy < MIN_ACCURACY:
        words += (f" At layer {layer} the concept's images are hard to tell from the random ones (the classifier is right on {accuracy:.0%} "
                  "of held-out images), so this layer may not represent the concept: try another layer or clearer examples.")
    return words


def _result(klass: Any, concept: str, layer: str, derivative: np.ndarray, accuracy: np.ndarray, counts: dict, *, alpha: float, notes: list, meta: dict) -> Tcav:
    if len(derivative) == 0:
        raise DatasetError(f"None of the images of '{klass.name}' could be read (or the model answers '{klass.name}' for none of them).")
    runs = derivative.shape[1] // 2
    positive = derivative > 0
    scores, randoms = positive[:, :runs].mean(axis=0), positive[:, runs:].mean(axis=0)
    p = p_value(scores, randoms)
    score, random_score = float(scores.mean()), float(randoms.mean())
    words = verdict(class_name=klass.name, concept=concept, layer=layer, score=score, random_score=random_score, p=p, alpha=alpha,
                    accuracy=float(np.nanmean(accuracy[:runs])), counts=counts, runs=runs)
    if len(derivative) > 1 and (positive.all(axis=0) | ~positive.any(axis=0)).all():
        notes = notes + [f"Every image of '{klass.name}' answers each direction the same way at layer {layer}: the rest of the network is "
                         "(nearly) linear there, so TCAV measures the class's weights rather than each image. An earlier layer tests each image."]
    listed = tuple(TcavRun(float(scores[r]), float(randoms[r]), float(accuracy[r]), float(accuracy[runs + r])) for r in range(runs))
    kind = verdict_kind(score=score, random_score=random_score, p=p, alpha=alpha, counts=counts)
    return Tcav(klass.index, klass.name, concept, layer, score, p, listed, words, counts["class"], counts["concept"], counts["random"],
                tuple(notes), meta, kind=kind, alpha=float(alpha))
