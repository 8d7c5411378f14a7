"""The explanation methods actviz offers, grouped by family, with one plain sentence each and
their settings: the table a menu, a ``--help`` and a caption are made from. No TensorFlow here."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ChoiceError

#: Families, in the order a menu shows them, with what they have in common.
FAMILIES = {
    "cam": "Class activation maps: which regions of a convolution layer's output speak for the class (coarse, at the layer's size).",
    "gradient": "Pixel attributions: how much each input pixel counts for the class score (fine, at the image's size).",
    "perturbation": "Perturbation: what happens to the class score when parts of the image are hidden.",
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


@dataclass(frozen=True)
class MethodInfo:
    """One method: its command-line name, title, family, a sentence for people, whether it needs a
    convolution layer, whether it runs the model many times (``expensive``: show a progress bar,
    one at a time per server), and its settings with their defaults."""

    name: str
    title: str
    family: str
    sentence: str
    layer: bool
    expensive: bool
    display: str
    settings: dict = field(default_factory=dict)
    reference: str = ""


_TABLE = [
    MethodInfo("gradcam", "Grad-CAM", "cam", "Weighs each channel of the layer by the average gradient of the class score, then adds them up.", True, False, "positive", reference="Selvaraju et al. 2017"),
    MethodInfo("gradcam++", "Grad-CAM++", "cam", "Like Grad-CAM, but weighs channels so that every region supporting the class counts, not only the strongest.", True, False, "positive", reference="Chattopadhay et al. 2018"),
    MethodInfo("hirescam", "HiResCAM", "cam", "Multiplies each feature value by its own gradient instead of the channel's average: the map shows exactly what the score adds up.", True, False, "positive", reference="Draelos & Carin 2020"),
    MethodInfo("xgradcam", "XGrad-CAM", "cam", "Weighs each channel by its gradient averaged where the channel is active, so the map follows the score more closely.", True, False, "positive", reference="Fu et al. 2020"),
    MethodInfo("layercam", "LayerCAM", "cam", "Keeps each feature value whose gradient is positive; works at early layers too, with finer detail.", True, False, "positive", reference="Jiang et al. 2021"),
    MethodInfo("scorecam", "Score-CAM", "cam", "Shows the model the image lit only where each channel is active, and weighs the channel by the class probability it then gives; no gradients.", True, True, "positive", {"channels": None}, "Wang et al. 2020"),
    MethodInfo("ablationcam", "Ablation-CAM", "cam", "Switches each channel off in turn and weighs it by how much the class score drops; no gradients.", True, True, "positive", reference="Desai & Ramaswamy 2020"),
    MethodInfo("eigencam", "Eigen-CAM", "cam", "The main pattern of the layer's channels (first principal component); the same for every class: it shows what the layer responds to, not why one class won.", True, False, "positive", reference="Muhammad & Yeasin 2020"),
    MethodInfo("saliency", "Saliency", "gradient", "The gradient of the class score for each pixel: which pixels would change the score most if they changed a little.", False, False, "gradient", reference="Simonyan et al. 2014"),
    MethodInfo("smoothgrad", "SmoothGrad", "gradient", "The saliency averaged over copies of the image with a little noise added, which removes much of its speckle.", False, True, "gradient", {"samples": 20, "noise": 0.2, "seed": 0}, "Smilkov et al. 2017"),
    MethodInfo("integrated-gradients", "Integrated Gradients", "gradient", "Adds up the gradients along a straight path from a plain image (black, blurred or noise) to this one; the attributions sum to the change in the score.", False, True, "magnitude", {"steps": 50, "baseline": "black", "black": 0.0, "seed": 0}, "Sundararajan et al. 2017"),
    MethodInfo("gradient-x-input", "Gradient x Input", "gradient", "Each pixel's value times its gradient: a first-order estimate of each pixel's share of the score.", False, False, "magnitude", reference="Shrikumar et al. 2016"),
    MethodInfo("occlusion", "Occlusion sensitivity", "perturbation", "Hides one square patch at a time and measures how much the class score drops; slow but makes no assumption about the model.", False, True, "positive", {"patch": None, "stride": None, "fill": "black", "black": 0.0}, "Zeiler & Fergus 2014"),
]
#: name -> MethodInfo, in menu order.
METHOD_INFO = {info.name: info for info in _TABLE}
#: The command-line names, in menu order.
METHOD_NAMES = tuple(METHOD_INFO)


def method_info(name: str) -> MethodInfo:
    """The method called ``name``; ``ChoiceError`` listing the methods otherwise."""
    if name not in METHOD_INFO:
        raise ChoiceError(f"Unknown explanation method '{name}'. Choose one of: {', '.join(METHOD_NAMES)}.")
    return METHOD_INFO[name]


def method_table() -> list[dict]:
    """The methods grouped by family, for a menu or a table: one dict per method, families in order.

    Each dict: name, title, family, family_sentence, sentence, needs_layer,
    expensive, settings (defaults), reference.
    """
    rows = []
    for family, family_sentence in FAMILIES.items():
        for info in _TABLE:
            if info.family == family:
                rows.append({
                    "name": info.name, "title": info.title, "family": family, "family_sentence": family_sentence,
                    "sentence": info.sentence, "needs_layer": info.layer, "expensive": info.expensive,
                    "settings": dict(info.settings), "reference": info.reference,
                })
    return rows


def check_settings(name: str, settings: dict) -> dict:
    """The method's settings: its defaults updated with ``settings``; ``ChoiceError`` for one it lacks."""
    info = method_info(name)
    unknown = sorted(set(settings) - set(info.settings))
    if unknown:
        offered = f"its settings are: {', '.join(info.settings)}" if info.settings else "it has no settings"
        raise ChoiceError(f"{info.title} has no setting '{unknown[0]}'; {offered}.")
    return {**info.settings, **settings}


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
    if name == "smoothgrad":
        return f"{settings['samples']} noisy copies, noise {settings['noise']:.0%} of the range of values"
    if name == "integrated-gradients":
        start = settings["baseline"]
        return f"{settings['steps']} steps from {BASELINES[start] if isinstance(start, str) else 'a given image'}"
    if name == "occlusion" and settings.get("patch") is not None:
        fill = settings["fill"]
        filled = FILLS[fill] if isinstance(fill, str) else f"the value {fill:g}"
        return f"patches of {settings['patch']} x {settings['patch']} pixels every {settings['stride']} pixels, filled with {filled}"
    if name == "scorecam":
        return "all channels" if settings.get("channels") is None else f"the {settings['channels']} channels whose maps vary most"
    return ""
