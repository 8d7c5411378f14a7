"""The explanation methods actviz offers, one entry each: the class that computes it, its name,
title, family, one plain sentence, reference, and the schema of its settings. Everything else is
made from this table: ``explain``'s dispatch, the ``explain`` command's flags
(``offered_settings``), the captions (``settings_words``), ``method_table()`` and the dashboard's
widgets (``setting_widgets``). No TensorFlow here.
"""

from __future__ import annotations

from typing import Any

from ..errors import ChoiceError
from .ablationcam import AblationCAM
from .eigencam import EigenCAM
from .gradcam import GradCAM
from .gradcam_plus_plus import GradCAMPlusPlus
from .gradient_x_input import GradientXInput
from .hirescam import HiResCAM
from .integrated_gradients import IntegratedGradients
from .layercam import LayerCAM
from .occlusion import Occlusion
from .rollout import AttentionRollout
from .saliency import Saliency
from .schema import Limits, MethodInfo, Setting, eighth_of_side, image_side, layer_channels
from .scorecam import ScoreCAM
from .smoothgrad import SmoothGrad
from .xgradcam import XGradCAM

#: Families, in the order a menu shows them, with what they have in common.
FAMILIES = {
    "cam": "Class activation maps: which regions of a layer's map speak for the class (coarse, at the layer's size).",
    "gradient": "Pixel attributions: how much each input pixel counts for the class score (fine, at the image's size).",
    "perturbation": "Perturbation: what happens to the class score when parts of the image are hidden.",
    "attention": "Attention: where a vision transformer's class token gathers its information from, through its attention layers (transformers only).",
}

#: What Integrated Gradients' path can start from.
BASELINES = {
    "black": "a black image",
    "blur": "the image blurred beyond recognition",
    "noise": "uniform noise over the image's range of values",
}
#: What Occlusion fills a hidden patch with.
FILLS = {
    "black": "black pixels",
    "mean": "the image's average colour",
    "blur": "the same patch of a blurred copy of the image",
}

_BLACK = Setting("black", 0.0, "black", "the model input of a black pixel")
_SEED = Setting("seed", 0, "seed", "seed of the noise")

_TABLE = [
    MethodInfo(
        "gradcam", "Grad-CAM", "cam", GradCAM, layer=True, reference="Selvaraju et al. 2017",
        sentence="Weighs each channel of the layer by the average gradient of the class score, then adds them up.",
    ),
    MethodInfo(
        "gradcam++", "Grad-CAM++", "cam", GradCAMPlusPlus, layer=True, reference="Chattopadhay et al. 2018",
        sentence="Like Grad-CAM, but weighs channels so that every region supporting the class counts, not only the strongest.",
    ),
    MethodInfo(
        "hirescam", "HiResCAM", "cam", HiResCAM, layer=True, reference="Draelos & Carin 2020",
        sentence="Multiplies each feature value by its own gradient instead of the channel's average: the map shows exactly what the score adds up.",
    ),
    MethodInfo(
        "xgradcam", "XGrad-CAM", "cam", XGradCAM, layer=True, reference="Fu et al. 2020",
        sentence="Weighs each channel by its gradient averaged where the channel is active, so the map follows the score more closely.",
    ),
    MethodInfo(
        "layercam", "LayerCAM", "cam", LayerCAM, layer=True, reference="Jiang et al. 2021",
        sentence="Keeps each feature value whose gradient is positive; works at early layers too, with finer detail.",
    ),
    MethodInfo(
        "scorecam", "Score-CAM", "cam", ScoreCAM, layer=True, expensive=True, reference="Wang et al. 2020",
        sentence="Shows the model the image lit only where each channel is active, and weighs the channel by the class probability it then gives; no gradients.",
        schema=(Setting(
            "channels", None, "count", "only the N channels whose maps vary most (Faster Score-CAM)", "Channels used",
            low=1, high=layer_channels, resolve=layer_channels, stops=(16, 32, 64, 128, 256), whole=True,
            error="Score-CAM can use {low} to {high} channels of this layer (got {value}).",
            phrase="the {value} channels whose maps vary most", none_phrase="all channels",
        ),),
        caption="{channels}",
    ),
    MethodInfo(
        "ablationcam", "Ablation-CAM", "cam", AblationCAM, layer=True, expensive=True, reference="Desai & Ramaswamy 2020",
        sentence="Switches each channel off in turn and weighs it by how much the class score drops; no gradients.",
    ),
    MethodInfo(
        "eigencam", "Eigen-CAM", "cam", EigenCAM, layer=True, reference="Muhammad & Yeasin 2020",
        sentence="The main pattern of the layer's channels (first principal component); the same for every class: it shows what the layer responds to, not why one class won.",
    ),
    MethodInfo(
        "saliency", "Saliency", "gradient", Saliency, display="gradient", reference="Simonyan et al. 2014",
        sentence="The gradient of the class score for each pixel: which pixels would change the score most if they changed a little.",
    ),
    MethodInfo(
        "smoothgrad", "SmoothGrad", "gradient", SmoothGrad, expensive=True, display="gradient", reference="Smilkov et al. 2017",
        sentence="The saliency averaged over copies of the image with a little noise added, which removes much of its speckle.",
        schema=(
            Setting("samples", 20, "count", "noisy copies of the image", "Noisy copies", low=1, high=10_000, slider=(4, 50, 1),
                    error="The number of samples must be a whole number from {low} to {high} (got {value}).", phrase="{value} noisy copies"),
            Setting("noise", 0.2, "share", "the noise's spread, as a share of the image's range", "Noise, as a share of the range of values",
                    low=0.0, high=1.0, slider=(0.05, 0.5, 0.05), phrase="noise {value:.0%} of the range of values",
                    error="The noise level is a share of the image's range of values, from {low:g} to {high:g} (got {value})."),
            _SEED,
        ),
        caption="{samples}, {noise}",
    ),
    MethodInfo(
        "integrated-gradients", "Integrated Gradients", "gradient", IntegratedGradients, expensive=True, display="magnitude",
        reference="Sundararajan et al. 2017",
        sentence="Adds up the gradients along a straight path from a plain image (black, blurred or noise) to this one; the attributions sum to the change in the score.",
        schema=(
            Setting("steps", 50, "count", "points on the path", "Steps along the path", low=1, high=10_000, slider=(8, 128, 1),
                    error="The number of steps must be a whole number from {low} to {high} (got {value}).", phrase="{value} steps"),
            Setting("baseline", "black", "choice", "the image the path starts from", "Start from", choices=BASELINES, other="image"),
            _BLACK, _SEED,
        ),
        caption="{steps} from {baseline}",
    ),
    MethodInfo(
        "gradient-x-input", "Gradient x Input", "gradient", GradientXInput, display="magnitude", reference="Shrikumar et al. 2016",
        sentence="Each pixel's value times its gradient: a first-order estimate of each pixel's share of the score.",
    ),
    MethodInfo(
        "occlusion", "Occlusion sensitivity", "perturbation", Occlusion, expensive=True, reference="Zeiler & Fergus 2014",
        sentence="Hides one square patch at a time and measures how much the class score drops; slow but makes no assumption about the model.",
        schema=(
            Setting("patch", None, "count", "side of the hidden square in pixels", "Side of the hidden patch, in pixels", low=1,
                    high=image_side, default_words="an eighth of the image", resolve=eighth_of_side, phrase="{value} x {value} pixels",
                    error="The occlusion patch must be a whole number of pixels from {low} to {high} (got {value})."),
            Setting("stride", None, "count", "pixels between patches", "Pixels between patches", low=1, high=image_side,
                    default_words="the patch", resolve=eighth_of_side, phrase="{value} pixels",
                    error="The occlusion stride must be a whole number of pixels from {low} to {high} (got {value})."),
            Setting("fill", "black", "choice", "what hides a patch", "Hidden with", choices=FILLS, other="number",
                    error="The fill must be one of black, mean, blur or a number (got {value!r})."),
            _BLACK,
        ),
        caption="patches of {patch} every {stride}, filled with {fill}",
    ),
    MethodInfo(
        "rollout", "Attention rollout", "attention", AttentionRollout, reference="Abnar & Zuidema 2020",
        sentence="Follows how much each patch flows into the class token through every attention layer (heads averaged, the skip connection added); the same for every class: it shows what a vision transformer gathers, not why one class won.",
    ),
]
#: name -> MethodInfo, in menu order.
METHOD_INFO = {info.name: info for info in _TABLE}
#: The command-line names, in menu order.
METHOD_NAMES = tuple(METHOD_INFO)


def methods_for(probe: Any) -> tuple[str, ...]:
    """The methods that apply to the probe's model, in menu order: attention rollout only for a
    model with attention layers (a vision transformer), every other method for every model."""
    attention = bool(probe.attention_layers)
    return tuple(name for name, info in METHOD_INFO.items() if info.family != "attention" or attention)


def method_info(name: str) -> MethodInfo:
    """The method called ``name``; ``ChoiceError`` listing the methods otherwise."""
    if name not in METHOD_INFO:
        raise ChoiceError(f"Unknown explanation method '{name}'. Choose one of: {', '.join(METHOD_INFO)}.")
    return METHOD_INFO[name]


def method_table() -> list[dict]:
    """The methods grouped by family, for a menu or a table: one dict per method, families in order.

    Each dict: name, title, family, family_sentence, sentence, needs_layer,
    expensive, settings (defaults), reference.
    """
    rows = []
    for family, family_sentence in FAMILIES.items():
        for info in METHOD_INFO.values():
            if info.family == family:
                rows.append({
                    "name": info.name, "title": info.title, "family": family, "family_sentence": family_sentence,
                    "sentence": info.sentence, "needs_layer": info.layer, "expensive": info.expensive,
                    "settings": info.settings, "reference": info.reference,
                })
    return rows


def check_settings(name: str, settings: dict) -> dict:
    """The method's settings: its defaults updated with ``settings``; ``ChoiceError`` for one it lacks."""
    return method_info(name).check(settings)


def settings_words(name: str, settings: dict) -> str:
    """The settings a method ran with, in plain words for a caption ("" when it has none to tell).

    >>> settings_words("smoothgrad", {"samples": 20, "noise": 0.2, "seed": 0})
    '20 noisy copies, noise 20% of the range of values'
    >>> settings_words("integrated-gradients", {"steps": 50, "baseline": "blur"})
    '50 steps from the image blurred beyond recognition'
    >>> settings_words("occlusion", {"patch": 7, "stride": 7, "fill": "mean"})
    "patches of 7 x 7 pixels every 7 pixels, filled with the image's average colour"
    >>> settings_words("scorecam", {"channels": 64}), settings_words("scorecam", {"channels": None})
    ('the 64 channels whose maps vary most', 'all channels')
    """
    return method_info(name).words(settings)


def context_settings(name: str, *, black: Any, seed: int) -> dict:
    """The settings the caller gives rather than a person, for the methods that take them: ``black``
    (the model input of a black pixel under the images' preprocessing) and ``seed``.

    >>> context_settings("integrated-gradients", black=-1.0, seed=3), context_settings("gradcam", black=0.0, seed=0)
    ({'black': -1.0, 'seed': 3}, {})
    """
    return method_info(name).context(black=black, seed=seed)


def offered_settings() -> dict[str, tuple[tuple[str, ...], Setting]]:
    """Every setting people choose, once per name, in menu order: name -> (the methods that take it,
    its schema, from the first of them). The ``explain`` command has a flag for each.

    >>> list(offered_settings())
    ['channels', 'samples', 'noise', 'steps', 'baseline', 'patch', 'stride', 'fill']
    >>> offered_settings()["samples"][0], offered_settings()["samples"][1].help()
    (('smoothgrad',), 'noisy copies of the image (default 20)')
    """
    found: dict[str, tuple[tuple[str, ...], Setting]] = {}
    for info in METHOD_INFO.values():
        for setting in info.schema:
            if setting.offered:
                methods, first = found.get(setting.name, ((), setting))
                found[setting.name] = ((*methods, info.name), first)
    return found


def setting_widgets(name: str, *, image_size: tuple[int, int], channels: int | None = None) -> list[dict]:
    """What a page needs to draw the settings people choose for method ``name``, one dict each, for
    an image of ``image_size`` (H, W) and a layer of ``channels`` channels: name, label, kind
    ("slider": low, high, step; "select": choices and their words), value (where to start: the
    default, or what a None default comes to here) and help.

    >>> [(w["name"], w["kind"], w["low"], w["high"], w["value"]) for w in setting_widgets("occlusion", image_size=(56, 80))[:2]]
    [('patch', 'slider', 1, 56, 7), ('stride', 'slider', 1, 56, 7)]
    >>> setting_widgets("integrated-gradients", image_size=(56, 56))[1]["choices"]
    ['black', 'blur', 'noise']
    """
    limits = Limits(min(image_size), channels)
    return [setting.widget(limits) for setting in method_info(name).schema if setting.offered]
